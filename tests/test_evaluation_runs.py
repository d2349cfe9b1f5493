"""The evaluation protocol through run_crslab.py on the tiny data: the shortcut baselines, repeat-aware metrics and
``--dump-predictions`` for every model, with the dump agreeing with the reported metrics."""
import json
from pathlib import Path

import pytest

from crslab_c2crs.cli import main
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"Popularity": "config/popularity/redial.yaml", "RepeatContext": "config/repeat/redial.yaml",
           "KGSF": "config/kgsf/redial.yaml", "KBRD": "config/kbrd/redial.yaml", "C2CRS": "config/c2crs/redial.yaml"}
TEST_RECOMMENDER_TURNS = 16  # tests/data/tiny_raw.py: 8 test conversations, 2 Recommender turns each
LINE_KEYS = {"conv_id", "turn", "role", "context", "targets", "top10", "response", "reference"}


def run_with_dump(model, root, workdir, extra=()):
    """Run ``model`` on the tiny data with --dump-predictions; return (test metrics, dump lines)."""
    dump, results = workdir / f"{model}.jsonl", workdir / f"{model}.json"
    argv = ["-c", str(ROOT / CONFIGS[model]), "-g", "-1", "--data-root", str(root), "--seed", "1",
            "--set", "num_threads=1", "--results", str(results), "--dump-predictions", str(dump)]
    for override in SHORT.get(model, []) + list(extra):
        argv += ["--set", override]
    assert main(argv) == 0
    result = json.loads(results.read_text())
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert result["predictions"] == {"file": str(dump), "lines": len(lines)}
    return result["test"], lines


def check_dump_agrees_with_metrics(test, lines):
    """One line per Recommender turn; a ranking for every turn with targets (a turn recommending only movies
    without a KG entity has none); Recall@k from the targets' ranks equals the metric."""
    assert len(lines) == TEST_RECOMMENDER_TURNS
    assert all(set(line) == LINE_KEYS for line in lines)
    targets = [target for line in lines for target in line["targets"]]
    assert targets and all(bool(line["top10"]) == bool(line["targets"]) for line in lines)
    for k in (1, 10, 50):
        hits = sum(t["rank"] is not None and t["rank"] < k for t in targets)
        assert hits / len(targets) == pytest.approx(test[f"hit@{k}"], abs=1e-9)
    for line in lines:
        assert line["context"] and line["context"][0].startswith("Seeker: ")
        if not line["top10"]:
            continue
        assert len(line["top10"]) == 10
        scores = [entry["score"] for entry in line["top10"]]
        assert scores == sorted(scores, reverse=True)


def test_shortcut_baselines_report_repeat_aware_metrics_and_dump(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    test, lines = run_with_dump("Popularity", tiny_root, tmp_path)
    # tiny conversations never recommend a movie the context mentioned: every target is new
    assert test["target_in_context"] == 0.0
    assert all(test[f"new_hit@{k}"] == test[f"hit@{k}"] for k in (1, 10, 50))
    assert test["coverage@10"] == pytest.approx(10 / 60)  # one list for every context, of 60 movies
    assert "bleu@1" not in test and "Coverage@10" in capsys.readouterr().out
    check_dump_agrees_with_metrics(test, lines)
    assert len({json.dumps(line["top10"]) for line in lines if line["top10"]}) == 1
    assert all(line["response"] is None for line in lines)  # no decoder

    test, lines = run_with_dump("RepeatContext", tiny_root, tmp_path)
    check_dump_agrees_with_metrics(test, lines)
    for line in filter(lambda line: line["top10"], lines):
        mentioned = [t for t in (e["title"] for e in line["top10"]) if any(t in turn for turn in line["context"])]
        # the context's movies lead the list (the second Recommender turn's context names one)
        assert [e["title"] for e in line["top10"][:len(mentioned)]] == mentioned
        assert len(mentioned) == (1 if line["turn"] == 3 else 0), line


def test_excluding_the_context_keeps_its_movies_out_of_the_lists(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test, lines = run_with_dump("RepeatContext", tiny_root, tmp_path, ["rec_exclude_context=true"])
    check_dump_agrees_with_metrics(test, lines)
    for line in filter(lambda line: line["top10"], lines):
        assert not any(entry["title"] in turn for entry in line["top10"] for turn in line["context"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD", "C2CRS"])
def test_every_model_dumps_its_test_predictions(model, tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = [f"checkpoint_dir=dump_{model}"] if model == "C2CRS" else []
    test, lines = run_with_dump(model, tiny_root, tmp_path, extra)
    assert test["target_in_context"] == 0.0 and test["new_hit@10"] == test["hit@10"]
    assert 0.0 < test["coverage@10"] <= 1.0
    check_dump_agrees_with_metrics(test, lines)
    # the conv test is not capped here: every Recommender turn has its generated and reference response
    assert all(isinstance(line["response"], str) and line["reference"] for line in lines)


def test_dump_flag_errors_are_reported_before_the_run(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["-c", str(ROOT / CONFIGS["Popularity"]), "--data-root", str(tiny_root)]
    assert main(base + ["--dump-predictions", str(tmp_path)]) == 2
    assert "--dump-predictions" in capsys.readouterr().err
    from crslab_c2crs.errors import ConfigError
    from crslab_c2crs.predictions import check_supported

    with pytest.raises(ConfigError, match="TGReDial"):
        check_supported({"dataset": "TGReDial"})


def test_the_authors_protocol_scores_seeker_turns_too(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test, lines = run_with_dump("RepeatContext", tiny_root, tmp_path, ["rec_targets=all"])
    seeker = [line for line in lines if line["role"] == "Seeker"]
    # every test conversation's Seeker says "I love @a" about the movie just recommended: a target in its context
    assert len(seeker) == 8 and all(len(line["targets"]) == 1 and line["targets"][0]["in_context"] for line in seeker)
    targets = [target for line in lines for target in line["targets"] if target["in_context"] is not None]
    for k in (1, 10, 50):
        assert sum(t["rank"] is not None and t["rank"] < k for t in targets) / len(targets) == \
            pytest.approx(test[f"hit@{k}"], abs=1e-9)
    assert test["target_in_context"] == pytest.approx(8 / len(targets))
    # repeating the context finds every Seeker target first
    assert all(line["targets"][0]["rank"] == 0 for line in seeker)
