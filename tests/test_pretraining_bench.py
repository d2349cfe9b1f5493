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


def test_every_objective_names_its_views_and_the_paper_is_not_the_configs_default():
    from crslab_c2crs.config import load_config

    assert load_config(curve.ROOT / "config/c2crs/redial.yaml")["pretrain_mask_mentions"] is True
    assert "pretrain_mask_mentions=false" in curve.VARIANTS["paper"]
    assert all(any(flag.startswith("pretrain_mask_mentions=") for flag in flags) for flags in curve.VARIANTS.values())


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


def test_a_shorter_schedule_has_its_own_budgets_and_checkpoint_folder(tmp_path):
    assert curve.budgets(2, 2) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
    assert curve.budgets(4, 0) == [(0, 0), (1, 0), (2, 0), (4, 0)]
    run = curve.Curve("masked", 42, str(tmp_path), tmp_path / "work", {"coarse": 2, "fine": 2})
    assert run.folder == "pretraining/masked-seed42-c2f2"
    assert curve.Curve("masked", 42, str(tmp_path), tmp_path / "work").folder == "pretraining/masked-seed42"
    save = tmp_path / "save" / run.folder
    save.mkdir(parents=True)
    for name in ("coarse-epoch1.pth", "coarse.pth", "fine-epoch1.pth", "fine.pth"):
        (save / name).write_text(name)
    folder = tmp_path / "save" / run._budget_folder(2, 0)  # the end of a 2-epoch stage is its coarse.pth
    assert (folder / "coarse.pth").read_text() == "coarse.pth"
    folder = tmp_path / "save" / run._budget_folder(2, 1)
    assert [(folder / n).read_text() for n in ("coarse.pth", "fine.pth")] == ["coarse.pth", "fine-epoch1.pth"]


@pytest.mark.parametrize("variant, runs_no_pretraining", [("paper", True), ("masked", False)])
def test_only_the_paper_variant_runs_no_pretraining(tmp_path, monkeypatch, variant, runs_no_pretraining):
    run = curve.Curve(variant, 42, str(tmp_path), tmp_path / "work", {"coarse": 1, "fine": 0})
    stages, budgets = [], []
    monkeypatch.setattr(run, "_pretrain_stage", stages.append)
    monkeypatch.setattr(run, "rec", lambda coarse, fine, seed: budgets.append((coarse, fine, seed)))
    run.run([42, 43])
    assert stages == ["coarse"]  # a schedule without fine epochs has no fine stage
    expected = [(0, 0), (1, 0)] if runs_no_pretraining else [(1, 0)]
    assert budgets == [(*budget, seed) for seed in (42, 43) for budget in expected]


@pytest.mark.parametrize("text", ["13", "a,b", "0,2", "2,-1"])
def test_a_bad_schedule_is_one_line_naming_the_flag(text, capsys):
    with pytest.raises(SystemExit):
        curve.main(["run", "--schedule", text])
    assert "--schedule" in capsys.readouterr().err


TARGETS = [f"c/{index}/0" for index in range(40)]


def write_rec_record(records, folder, budget, seed, hits):
    """A rec run of 40 test targets whose first ``hits`` are ranked first, the rest below the top 50."""
    (records / folder).mkdir(exist_ok=True)
    ranks = {key: (0 if index < hits else None) for index, key in enumerate(TARGETS)}
    history = [{"mode": "val", "metrics": {"hit@1": 0.0, "hit@10": hits / 100, "hit@50": 0.4}}]
    result = {"budget": list(budget), "git_commit": f"commit{seed}", "history": history, "ranks": ranks,
              "model": "C2CRS", "test": {"hit@1": hits / 80, "hit@10": hits / len(TARGETS), "hit@50": 0.5,
                                         "new_hit@10": 0.1}}
    (records / folder / f"c{budget[0]}f{budget[1]}-seed{seed}.json").write_text(json.dumps(result))


@pytest.fixture
def rec_records(tmp_path, monkeypatch):
    """Writes rec records for rec seeds 42 and 43 under a temporary RECORDS: ``(folder, budget, hits)`` each."""
    monkeypatch.setattr(curve, "RECORDS", tmp_path)

    def write(*runs):
        for seed in (42, 43):
            for folder, budget, hits in runs:
                write_rec_record(tmp_path, folder, budget, seed, hits)

    return write


def test_every_variant_is_set_beside_no_pretraining_with_a_paired_test(rec_records):
    rec_records(("paper", (0, 0), 8), ("paper", (2, 0), 9), ("masked", (2, 0), 20), ("masked", (1, 0), 19))
    summary = curve.summarise()
    masked = {tuple(row["budget"]): row for row in summary["masked"]}
    assert sorted(masked) == [(0, 0), (1, 0), (2, 0)] and masked[(0, 0)]["tests"] == {}
    assert masked[(2, 0)]["tests"]["hit@10"]["difference"] == pytest.approx(0.3)
    assert masked[(2, 0)]["tests"]["hit@10"]["p_value"] < 0.01
    assert summary["paper"][1]["tests"]["hit@10"]["p_value"] == pytest.approx(1.0)  # one target apart
    assert masked[(2, 0)]["commits"] == ["commit42", "commit43"]
    assert curve.chosen_on_validation(summary["masked"])["budget"] == [2, 0]
    text = curve.markdown(summary, "abc")
    assert "| 2.500× (p " in text
    assert "Chosen on validation Recall@10 (among the budgets with 2 rec seeds): (2, 0)" in text


def test_the_table4_ablations_keep_their_ablation_in_the_rec_stage(tmp_path, monkeypatch):
    calls = []

    def fake_run(name, model, seed, overrides, extra):
        calls.append((name, overrides, extra))
        return {"history": [], "test": {"hit@10": 0.1}}

    multitask = curve.Curve("multitask", 42, str(tmp_path), tmp_path / "work", {"coarse": 1, "fine": 0})
    monkeypatch.setattr(multitask, "_pretrain_stage", lambda stage: pytest.fail("multi-task does not pre-train"))
    monkeypatch.setattr(multitask.bench, "run", fake_run)
    monkeypatch.setattr(curve, "RECORDS", tmp_path / "records")
    multitask.records = tmp_path / "records" / "multitask"
    multitask.run([42, 43])
    assert [name for name, _, _ in calls] == ["pretraining-multitask-c0f0-seed42", "pretraining-multitask-c0f0-seed43"]
    assert "ablation=multitask" in calls[0][1] and "ablation=no_pretrain" not in calls[0][1]
    no_kg = curve.Curve("no_kg", 42, str(tmp_path), tmp_path / "work", {"coarse": 1, "fine": 0})
    (tmp_path / "save" / no_kg.folder).mkdir(parents=True)
    (tmp_path / "save" / no_kg.folder / "coarse.pth").write_text("coarse")
    monkeypatch.setattr(no_kg.bench, "run", fake_run)
    no_kg.records = tmp_path / "records" / "no_kg"
    no_kg.rec(1, 0, 42)
    assert "ablation=no_kg" in calls[-1][1] and calls[-1][2] == ["--stage", "fine"]
    # the paper's ablations keep the paper's views, whatever the config's default
    assert all("pretrain_mask_mentions=false" in overrides for _, overrides, _ in calls)


def test_table4_sets_each_ablation_beside_full_c2crs_at_the_chosen_budget(rec_records):
    rec_records(("paper", (0, 0), 8), ("paper", (1, 0), 20), ("multitask", (0, 0), 10), ("no_history", (1, 0), 19))
    rows = {row["row"]: row for row in curve.table4_rows(curve.load_runs(), (1, 0))}
    assert list(rows) == list(curve.PAPER_TABLE4)
    assert rows["C2-CRS"]["mean"]["hit@10"] == pytest.approx(0.5) and "versus_full" not in rows["C2-CRS"]
    # at a budget without fine epochs, w/o Coarse is no pre-training and w/o Fine is C2-CRS itself
    assert rows["w/o Coarse"]["mean"] == rows["w/o Coarse-Fine"]["mean"]
    assert rows["w/o Fine"]["mean"] == rows["C2-CRS"]["mean"] and rows["w/o Fine"]["run_as"].startswith("=")
    assert rows["w/o Coarse-Fine"]["versus_full"]["ratio"] == pytest.approx(0.4)
    assert rows["w/o Coarse-Fine"]["versus_full"]["p_value"] < 0.01
    assert rows["w/o CH"]["versus_full"]["p_value"] > 0.9  # one target apart
    assert rows["w/o SD"]["seeds"] == 0 and rows["w/o SD"]["mean"] == {}
    assert "multitask" not in curve.summarise()  # no budgets of its own: a Table 4 row only
    text = curve.table4(list(rows.values()), (1, 0))
    assert "| Multi-task | `multitask` | 2 | 0.1250 ± 0.0000 | 0.2500 ± 0.0000 |" in text
    assert "| w/o SD | `no_kg` | 0 |  |  |  |  | 0.051 | 0.226 | 0.403 |" in text
    brief = curve.table4(list(rows.values()), (1, 0), same_rows=False)
    assert "w/o Fine" not in brief and "w/o Coarse |" not in brief and "| w/o Coarse-Fine |" in brief


def test_the_setting_chosen_is_the_objective_best_on_validation_at_its_own_budget(rec_records, monkeypatch):
    # valid Recall@10 is hits / 100: masked at (1, 0) (19) beats the paper's best budget (2, 0) (12); the
    # ablations are Table 4 rows, never candidates, whatever their validation
    rec_records(("paper", (0, 0), 8), ("paper", (1, 0), 11), ("paper", (2, 0), 12), ("masked", (1, 0), 19),
                ("masked", (2, 0), 15), ("no_kg", (1, 0), 30))
    summary = curve.summarise()
    assert curve.chosen_setting(summary, curve.load_runs()) is None  # two rec seeds are not enough
    assert "No pre-training setting has 3 rec seeds" in curve.chosen_markdown(None)
    monkeypatch.setattr(curve, "MIN_SEEDS", 2)
    chosen = curve.chosen_setting(summary, curve.load_runs())
    assert (chosen["variant"], chosen["budget"]) == ("masked", [1, 0])
    assert [(c["variant"], c["budget"]) for c in chosen["candidates"]] == [("paper", [2, 0]), ("masked", [1, 0])]
    assert chosen["versus_paper"]["ratio"] == pytest.approx(19 / 12) and chosen["versus_paper"]["p_value"] < 0.05
    text = curve.chosen_markdown(chosen)
    assert "| masked | (1, 0) | 2 | 0.1900 | 0.4750 |" in text
    assert "Chosen: **masked** at (1, 0); test Recall@10 1.583× the paper's objective's (p " in text
    brief = curve.chosen_markdown(chosen, brief=True)
    assert "paper (2, 0) 0.1200 over 2 rec seeds (test 0.3000); masked (1, 0) 0.1900" in brief and "|" not in brief
