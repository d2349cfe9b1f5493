"""bench.pretraining on hand-made files: the budgets, the checkpoint folder of a budget (the snapshots under the
names the rec stage restores), and the table over rec seeds."""
import json

import pytest

import bench.pretraining as curve


def test_the_budgets_run_from_no_pretraining_to_the_papers_schedule():
    assert curve.BUDGETS[0] == (0, 0) and curve.BUDGETS[-1] == (13, 12)
    assert (8, 0) in curve.BUDGETS and (13, 0) in curve.BUDGETS and len(curve.BUDGETS) == 11


def test_a_budget_folder_holds_its_snapshots_as_stage_checkpoints(tmp_path):
    run = curve.Curve("paper", 42, str(tmp_path), tmp_path / "work")
    save = tmp_path / "save" / run.folder
    save.mkdir(parents=True)
    for name in ("coarse-epoch4.pth", "coarse.pth", "fine-epoch2.pth"):
        (save / name).write_text(name)
    folder = tmp_path / "save" / run._budget_folder(4, 0)
    assert sorted(p.name for p in folder.iterdir()) == ["coarse.pth"]
    assert (folder / "coarse.pth").read_text() == "coarse-epoch4.pth"
    folder = tmp_path / "save" / run._budget_folder(13, 2)
    assert [(folder / n).read_text() for n in ("coarse.pth", "fine.pth")] == ["coarse.pth", "fine-epoch2.pth"]


def test_the_table_over_rec_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(curve, "RECORDS", tmp_path)
    folder = tmp_path / "paper"
    folder.mkdir()
    for seed, r10 in ((42, 0.17), (43, 0.19)):
        history = [{"mode": "val", "metrics": {"hit@1": 0.04, "hit@10": 0.2, "hit@50": 0.4}}]
        record = {"budget": [4, 0], "git_commit": "abc", "history": history, "model": "C2CRS",
                  "test": {"hit@10": r10, "hit@50": 0.35, "new_hit@10": 0.13}}
        (folder / f"c4f0-seed{seed}.json").write_text(json.dumps(record))
    (folder / "pretrain-seed42-coarse.json").write_text("{}")  # a pre-training record is not a rec run
    summary = curve.summarise()
    (row,) = summary["paper"]
    assert row["budget"] == [4, 0] and row["seeds"] == 2
    assert row["mean"]["hit@10"] == pytest.approx(0.18) and row["mean"]["valid_hit@10"] == pytest.approx(0.2)
    assert "| 4 | 0 | 2 | 0.2000 ± 0.0000 |" in curve.markdown(summary, "abc")
