"""bench.chat_slots: both test passes of each saved model, checked and tabulated (hand-made --results files)."""
import json

import pytest

from bench import chat_slots


def results(folder, name, model, slots, bleu):
    folder.mkdir(parents=True, exist_ok=True)
    test = {key: 0.5 for _, key in chat_slots.KEYS}
    test.update({"bleu@1": bleu, "mentions_top10_new": 1.0 if slots else 0.4})
    config = {"model": model, "eval_movie_slots": slots, "conv": {"test_max_batches": 20, "batch_size": 128}}
    (folder / name).write_text(json.dumps({"test": test, "config": config}))


def test_both_passes_of_every_model_side_by_side(tmp_path, capsys):
    for run, model in (("C2CRS_quickstart", "C2CRS"), ("KBRD_quickstart", "KBRD")):
        results(tmp_path / "save" / run, "results.json", model, False, 0.11)
        results(tmp_path / "save" / run, "results-slots.json", model, True, 0.12)
    assert chat_slots.main(["record", "--data-root", str(tmp_path), "--runs", "C2CRS_quickstart,KBRD_quickstart",
                            "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "chat-slots-test.json").read_text())
    assert record["models"]["KBRD_quickstart"]["movie slots"]["metrics"]["bleu@1"] == 0.12
    text = chat_slots.table(record)
    assert "| C2CRS | raw | 0.110 |" in text and "| KBRD | movie slots | 0.120 |" in text
    assert text.splitlines()[0].count("|") == len(chat_slots.KEYS) + 3


def test_a_pass_that_is_not_what_its_name_says_is_one_line(tmp_path, capsys):
    run = tmp_path / "save" / "KGSF_quickstart"
    results(run, "results.json", "KGSF", False, 0.1)
    results(run, "results-slots.json", "KGSF", False, 0.1)  # tested without the slots
    with pytest.raises(SystemExit):
        chat_slots.main(["record", "--data-root", str(tmp_path), "--runs", "KGSF_quickstart"])
    assert "results-slots.json: eval_movie_slots is False" in capsys.readouterr().err
    (run / "results.json").write_text("{}")
    with pytest.raises(SystemExit):
        chat_slots.main(["record", "--data-root", str(tmp_path), "--runs", "KGSF_quickstart"])
    assert "results.json: not a run_crslab.py --results file" in capsys.readouterr().err
