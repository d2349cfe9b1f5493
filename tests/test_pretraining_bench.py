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


def test_a_stage_snapshots_every_epoch_resumes_from_the_last_and_keeps_only_the_budgets(tmp_path, monkeypatch):
    monkeypatch.setattr(curve, "RECORDS", tmp_path / "records")
    run = curve.Curve("paper", 42, str(tmp_path), tmp_path / "work")
    save = tmp_path / "save" / run.folder
    save.mkdir(parents=True)
    calls = []

    def fake_run(name, model, seed, overrides, extra):
        """The child: killed after 5 coarse epochs the first time, done the second."""
        opts = dict(override.split("=", 1) for override in overrides)
        calls.append(opts)
        first = int(opts.get("coarse.resume_epoch", 0)) + 1
        last = 5 if len(calls) == 1 else 13
        for epochs in range(first, min(last, 12) + 1):
            (save / f"coarse-epoch{epochs}.pth").write_text(str(epochs))
        if last == 13:
            (save / "coarse.pth").write_text("13")
        return {}

    monkeypatch.setattr(run.bench, "run", fake_run)
    run._pretrain_stage("coarse")
    assert calls[0]["coarse.save_epochs"] == str(list(range(1, 13))) and "coarse.resume_epoch" not in calls[0]
    assert len(list(save.glob("coarse-epoch*.pth"))) == 5  # killed: every snapshot so far is kept
    run._pretrain_stage("coarse")
    assert calls[1]["coarse.resume_epoch"] == "5"
    assert sorted(int(p.stem.split("epoch")[1]) for p in save.glob("coarse-epoch*.pth")) == curve.SNAPSHOTS
    run._pretrain_stage("coarse")  # done: nothing runs
    assert len(calls) == 2


def test_each_pretraining_epoch_sets_its_infonce_terms_beside_the_id_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(curve, "RECORDS", tmp_path)
    folder = tmp_path / "paper"
    folder.mkdir()

    def val(epoch, trained, floor):
        return {"epoch": epoch, "mode": "val", "metrics": {
            "coarse/history-kg": trained, "floor/coarse/history-kg": floor, "chance/coarse/history-kg": 5.5,
            "coarse_loss": trained}}

    train = {"epoch": 0, "mode": "train", "metrics": {"coarse/history-kg": 9.0}}
    # a stage killed after its first epoch and resumed: two records, one table
    (folder / "pretrain-seed42-coarse.json").write_text(json.dumps({"seed": 42, "history": [train, val(0, 2.0, 1.5)]}))
    (folder / "pretrain-seed42-coarse-from1.json").write_text(json.dumps({"seed": 42, "history": [val(1, 1.2, 1.5)]}))
    rows = curve.floor_rows(folder)
    assert [(row["stage"], row["epoch"]) for row in rows] == [("coarse", 0), ("coarse", 1)]
    assert rows[1]["terms"]["coarse/history-kg"] == {"trained": 1.2, "floor": 1.5, "chance": 5.5}
    text = curve.markdown({"paper": []}, "abc")
    assert "coarse/history-kg (chance 5.50)" in text
    assert "| coarse | 1 | 2.000 / 1.500 |" in text and "| coarse | 2 | **1.200 / 1.500** |" in text
    curve.plot({"paper": []}, {"paper": rows}, tmp_path / "curve.png")  # floors only, no rec run yet
    assert (tmp_path / "curve.png").stat().st_size > 0
