"""C2-CRS through run_crslab.py on the tiny dataset: all four stages, checkpoints and resuming, seeds,
ablations."""
import json
import math
from pathlib import Path

import pytest
import torch

from crslab_c2crs.cli import main
from crslab_c2crs.system.c2crs import ABLATIONS, STAGES
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "config/c2crs/redial.yaml")


def run_c2crs(root, workdir, name, extra=()):
    results = workdir / f"{name}.json"
    argv = ["-c", CONFIG, "-g", "-1", "--data-root", str(root), "--seed", "3", "--results", str(results),
            "--set", "num_threads=1", "--set", f"checkpoint_dir={name}"]
    for override in SHORT["C2CRS"] + list(extra):
        argv += ["--set", override]
    code = main(argv)
    return code, json.loads(results.read_text()) if code == 0 else None


def reports_in_test(result):
    """The test reports of a run, in order (rec test, then conv test)."""
    return [entry["metrics"] for entry in result["history"] if entry["mode"] == "test"]


@pytest.mark.slow
def test_all_stages_run_save_checkpoints_and_report(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, result = run_c2crs(tiny_root, tmp_path, "full")
    assert code == 0
    for stage in STAGES:
        assert torch.load(tiny_root / "save" / "full" / f"{stage}.pth")["model_config"]["token_dim"] == 16
    rec_test, conv_test = reports_in_test(result)
    assert {"hit@1", "hit@10", "hit@50"} <= set(rec_test)
    assert {"dist@2", "dist_ratio@2", "bleu@1"} <= set(conv_test)
    train = [entry["metrics"] for entry in result["history"] if entry["mode"] == "train"]
    assert "coarse_loss" in train[0] and "fine_loss" in train[1] and "rec_loss" in train[2]
    printed = capsys.readouterr().out
    assert "Recall@10" in printed and "Dist-2 (paper)" in printed


@pytest.mark.slow
def test_resumed_conv_stage_equals_the_uninterrupted_run_and_seeds_repeat(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, first = run_c2crs(tiny_root, tmp_path, "seeded")
    _, again = run_c2crs(tiny_root, tmp_path, "seeded_again")
    assert reports_in_test(first) == reports_in_test(again)
    code, resumed = run_c2crs(tiny_root, tmp_path, "seeded", ["start_stage=conv"])
    assert code == 0
    assert reports_in_test(resumed) == reports_in_test(first)[1:]
    # --stage test: the saved conv checkpoint tested again, nothing trained or written
    conv_checkpoint = tiny_root / "save" / "seeded" / "conv.pth"
    saved = conv_checkpoint.read_bytes()
    code, tested = run_c2crs(tiny_root, tmp_path, "seeded", ["start_stage=test"])
    assert code == 0 and conv_checkpoint.read_bytes() == saved
    assert reports_in_test(tested) == reports_in_test(first)
    assert not [entry for entry in tested["history"] if entry["mode"] == "train"]


@pytest.mark.slow
def test_eval_split_valid_scores_the_validation_split(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, result = run_c2crs(tiny_root, tmp_path, "on_valid", ["eval_split=valid", "rec.epoch=1"])
    assert code == 0
    rec_valid = [entry["metrics"] for entry in result["history"]
                 if entry["mode"] == "val" and "hit@1" in entry["metrics"]]
    rec_test = reports_in_test(result)[0]
    # the rec test pass runs right after the single rec epoch, on its state: on the validation split it repeats
    # that epoch's validation report
    keys = ("hit@1", "hit@10", "hit@50", "mrr@10")
    assert [rec_test[key] for key in keys] == [rec_valid[-1][key] for key in keys]
    assert "Test metrics on the valid split" in capsys.readouterr().out
    assert run_c2crs(tiny_root, tmp_path, "on_valid", ["eval_split=train"])[0] == 2
    assert "eval_split: unknown split 'train'" in capsys.readouterr().err


@pytest.mark.slow
def test_decode_valid_scores_each_conv_epoch_on_validation_without_changing_training(tiny_root, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, plain = run_c2crs(tiny_root, tmp_path, "no_decode", ["conv.epoch=2", "rec.epoch=1"])
    assert code == 0
    code, decoded = run_c2crs(tiny_root, tmp_path, "decode", ["conv.epoch=2", "rec.epoch=1", "conv.decode_valid=true"])
    assert code == 0
    per_epoch = [entry for entry in decoded["history"] if entry["mode"] == "valid_decode"]
    assert [entry["epoch"] for entry in per_epoch] == [0, 1]
    assert all({"bleu@1", "dist_ratio@2", "dist@1"} <= set(entry["metrics"]) for entry in per_epoch)
    assert not [entry for entry in plain["history"] if entry["mode"] == "valid_decode"]
    # decoding the validation batches leaves training and the test passes as they were
    assert reports_in_test(decoded) == reports_in_test(plain)
    # and is the decoding a --stage test on the validation split gives for that epoch's state: with one conv
    # epoch that state is the saved conv checkpoint
    code, one_epoch = run_c2crs(tiny_root, tmp_path, "decode_one", ["rec.epoch=1", "conv.decode_valid=true"])
    assert code == 0
    code, rescored = run_c2crs(tiny_root, tmp_path, "decode_one", ["start_stage=test", "eval_split=valid"])
    assert code == 0
    epoch_report = [entry["metrics"] for entry in one_epoch["history"] if entry["mode"] == "valid_decode"]
    assert epoch_report == [reports_in_test(rescored)[1]]
    assert run_c2crs(tiny_root, tmp_path, "bad", ["conv.decode_valid=sometimes"])[0] == 2


@pytest.mark.slow
def test_select_on_keeps_the_conv_epoch_best_on_that_validation_metric(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept = {}
    for select_on in ("gen_loss", "dist_ratio@2"):
        # eval_split=valid: the conv test pass decodes the validation batches, so it repeats the per-epoch
        # decoding report of the epoch that was kept
        code, result = run_c2crs(tiny_root, tmp_path, f"select_{select_on}",
                                 ["rec.epoch=1", "conv.epoch=4", "conv.impatience=4", "conv.decode_valid=true",
                                  f"conv.select_on={select_on}", "eval_split=valid"])
        assert code == 0
        losses = [entry["metrics"]["gen_loss"] for entry in result["history"]
                  if entry["mode"] == "val" and "gen_loss" in entry["metrics"]]
        decoded = [entry["metrics"] for entry in result["history"] if entry["mode"] == "valid_decode"]
        assert len(losses) == len(decoded) == 4
        scores = [-loss for loss in losses] if select_on == "gen_loss" else [d[select_on] for d in decoded]
        kept[select_on] = scores.index(max(scores))
        assert reports_in_test(result)[1] == decoded[kept[select_on]]
    # on this tiny set the two rules keep different epochs, so the test tells them apart
    assert kept["gen_loss"] != kept["dist_ratio@2"], kept


def test_the_best_conv_epoch_is_kept_without_copying_the_frozen_encoders(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from crslab_c2crs.system.c2crs import C2CRSSystem

    copies = []
    changing_state = C2CRSSystem._changing_state

    def recorded(system):
        state = changing_state(system)
        copies.append((sorted(state), {name for name, p in system.model.named_parameters() if not p.requires_grad}))
        return state

    monkeypatch.setattr(C2CRSSystem, "_changing_state", recorded)
    code, _ = run_c2crs(tiny_root, tmp_path, "best_copy", ["rec.epoch=1", "conv.epoch=1"])
    assert code == 0
    rec_keys, rec_frozen = copies[0]
    conv_keys, conv_frozen = copies[-1]
    assert not rec_frozen and conv_frozen  # conv_freeze: [kg, history] by default
    assert not set(conv_keys) & conv_frozen and len(conv_keys) < len(rec_keys)
    assert any("decoder" in key for key in conv_keys)


def test_a_best_epoch_copy_that_does_not_fit_is_an_error_not_a_no_op():
    from types import SimpleNamespace

    import torch

    from crslab_c2crs.system.c2crs import C2CRSSystem

    system = SimpleNamespace(model=torch.nn.Linear(2, 2))
    for state, message in (({}, "empty"), ({"other.weight": torch.zeros(2, 2)}, "other.weight")):
        with pytest.raises(RuntimeError, match=f"does not fit the model: .*{message}"):
            C2CRSSystem._restore(system, state)
    C2CRSSystem._restore(system, {"bias": torch.ones(2)})
    assert system.model.bias.tolist() == [1.0, 1.0]


def test_the_history_fallback_runs_from_a_pretraining_checkpoint_without_it(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _ = run_c2crs(tiny_root, tmp_path, "fallback", ["end_stage=fine"])
    assert code == 0
    code, result = run_c2crs(tiny_root, tmp_path, "fallback", ["start_stage=rec", "end_stage=rec",
                                                              "rec_history_fallback=true"])
    assert code == 0 and "hit@10" in reports_in_test(result)[0]
    code, _ = run_c2crs(tiny_root, tmp_path, "fallback_bad", ["ablation=no_history", "rec_history_fallback=true"])
    assert code != 0 and "rec_history_fallback" in capsys.readouterr().err


def test_resuming_without_checkpoint_is_a_clear_error(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _ = run_c2crs(tiny_root, tmp_path, "nothing_here", ["start_stage=conv"])
    assert code == 2
    err = capsys.readouterr().err
    assert "rec.pth" in err and "Run the earlier stages first" in err


@pytest.mark.slow
@pytest.mark.parametrize("ablation", sorted(set(ABLATIONS) - {"none"}))
def test_every_ablation_runs(ablation, tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, result = run_c2crs(tiny_root, tmp_path, f"abl_{ablation}", [f"ablation={ablation}", "rec.epoch=1"])
    assert code == 0
    assert "hit@10" in reports_in_test(result)[0]


def test_unknown_ablation_and_stage_are_named(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_c2crs(tiny_root, tmp_path, "bad", ["ablation=no_everything"])[0] == 2
    assert "ablation: unknown value 'no_everything'" in capsys.readouterr().err
    assert run_c2crs(tiny_root, tmp_path, "bad", ["start_stage=dessert"])[0] == 2
    assert "unknown stage 'dessert'" in capsys.readouterr().err


@pytest.mark.slow
def test_frozen_kg_is_encoded_once_per_conv_pass(tiny_root, tmp_path, monkeypatch):
    from crslab_c2crs.model.c2crs.encoders import KGEncoder
    from crslab_c2crs.system.c2crs import C2CRSSystem

    stage, encodes, steps = [None], [], []
    run_stage, encode_graph, step = C2CRSSystem.run_stage, KGEncoder.encode_graph, C2CRSSystem.step

    def tracking_run_stage(self, name):
        stage[0] = name
        return run_stage(self, name)

    def tracking_step(self, batch, name, mode):
        steps.append((name, mode))
        return step(self, batch, name, mode)

    monkeypatch.setattr(C2CRSSystem, "run_stage", tracking_run_stage)
    monkeypatch.setattr(C2CRSSystem, "step", tracking_step)
    monkeypatch.setattr(KGEncoder, "encode_graph", lambda self: encodes.append(stage[0]) or encode_graph(self))
    monkeypatch.chdir(tmp_path)
    code, _ = run_c2crs(tiny_root, tmp_path, "frozen_kg")
    assert code == 0
    assert steps.count(("conv", "train")) >= 3
    # one encoding for the training pass, one for validation, one for the test (after the best state is loaded)
    assert encodes.count("conv") == 3


def test_end_stage_stops_after_pretraining_then_after_rec(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "ends"
    code, result = run_c2crs(tiny_root, tmp_path, "ends", ["end_stage=fine"])
    assert code == 0 and not reports_in_test(result)
    assert sorted(path.name for path in folder.glob("*.pth")) == ["coarse.pth", "fine.pth"]
    code, result = run_c2crs(tiny_root, tmp_path, "ends", ["start_stage=rec", "end_stage=rec"])
    assert code == 0
    (rec_test,) = reports_in_test(result)
    assert "hit@10" in rec_test and "bleu@1" not in rec_test
    assert sorted(path.name for path in folder.glob("*.pth")) == ["coarse.pth", "fine.pth", "rec.pth"]


def test_without_fine_epochs_rec_starts_from_the_coarse_checkpoint(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "coarse_only"
    code, result = run_c2crs(tiny_root, tmp_path, "coarse_only", ["fine.epoch=0", "end_stage=rec"])
    assert code == 0 and "hit@10" in reports_in_test(result)[0]
    assert sorted(path.name for path in folder.glob("*.pth")) == ["coarse.pth", "rec.pth"]
    assert "[Restored" not in "".join(capsys.readouterr())
    code, _ = run_c2crs(tiny_root, tmp_path, "coarse_only", ["fine.epoch=0", "start_stage=rec", "end_stage=rec"])
    assert code == 0 and f"Restored the coarse checkpoint from {folder / 'coarse.pth'}" in "".join(capsys.readouterr())
    # no pre-training stage runs: the rec stage starts from fresh encoders, restoring nothing
    code, _ = run_c2crs(tiny_root, tmp_path, "nothing_before", ["ablation=no_pretrain", "start_stage=rec",
                                                                "end_stage=rec"])
    assert code == 0 and "[Restored" not in "".join(capsys.readouterr())


def test_pretraining_validation_reports_each_term_beside_its_id_floor_and_chance(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, result = run_c2crs(tiny_root, tmp_path, "floors", ["end_stage=fine"])
    assert code == 0
    valid = [entry["metrics"] for entry in result["history"] if entry["mode"] == "val"]
    coarse, fine = valid[0], valid[-1]
    for metrics, level_terms in ((coarse, ["coarse"]), (fine, ["coarse", "fine"])):
        for level in level_terms:
            for pair in ("history-kg", "history-review", "kg-review"):
                term = f"{level}/{pair}"
                assert {term, f"floor/{term}", f"chance/{term}"} <= set(metrics), term
                assert all(math.isfinite(metrics[key]) for key in (f"floor/{term}", f"chance/{term}"))


def test_pretraining_with_masked_mentions_and_entity_dropout_runs_and_repeats(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = ["end_stage=fine", "pretrain_mask_mentions=true", "pretrain_entity_dropout=0.3"]
    first = run_c2crs(tiny_root, tmp_path, "views_a", options)
    second = run_c2crs(tiny_root, tmp_path, "views_b", options)
    assert first[0] == second[0] == 0
    valid = [[entry["metrics"] for entry in result["history"] if entry["mode"] == "val"] for _, result in (first,
                                                                                                           second)]
    assert valid[0] == valid[1]  # the dropout is drawn from the seeded random module
    chance = valid[0][0]["chance/coarse/history-kg"]
    assert valid[0][0]["floor/coarse/history-kg"] > 0.5 * chance  # masked: no id left to match


def test_pretraining_snapshots_are_budgets_to_start_from_and_points_to_continue(tiny_root, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    folder = tiny_root / "save" / "budgets"
    code, result = run_c2crs(tiny_root, tmp_path, "budgets", ["coarse.epoch=3", "coarse.save_epochs=[1,2]",
                                                               "end_stage=coarse"])
    assert code == 0
    assert sorted(p.name for p in folder.glob("*.pth")) == ["coarse-epoch1.pth", "coarse-epoch2.pth", "coarse.pth"]
    snapshot = torch.load(folder / "coarse-epoch1.pth")
    assert snapshot["stage"] == "coarse" and snapshot["epochs"] == 1 and "optimizer_state_dict" in snapshot
    # continue the stage from its second epoch: one more epoch is trained and validated
    code, resumed = run_c2crs(tiny_root, tmp_path, "budgets", ["coarse.epoch=3", "coarse.resume_epoch=2",
                                                                "end_stage=coarse"])
    assert code == 0 and len([e for e in resumed["history"] if e["mode"] == "val"]) == 1
    # a budget: the one-epoch snapshot as the coarse checkpoint of another run, fine-tuned from there
    shutil.copytree(folder, tiny_root / "save" / "budget1")
    shutil.copy(folder / "coarse-epoch1.pth", tiny_root / "save" / "budget1" / "coarse.pth")
    code, _ = run_c2crs(tiny_root, tmp_path, "budget1", ["start_stage=fine", "end_stage=fine"])
    assert code == 0


@pytest.mark.parametrize("override, message", [
    ("coarse.save_epochs=[0]", "coarse.save_epochs: [0] is not a list of epoch counts from 1"),
    ("rec.save_epochs=[1]", "rec.save_epochs: only the pre-training stages"),
    ("coarse.resume_epoch=1", "coarse.resume_epoch: 1 is not an epoch count from 1 to coarse.epoch - 1 = 0"),
])
def test_bad_snapshot_settings_are_named(override, message, tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _ = run_c2crs(tiny_root, tmp_path, "bad_snapshots", [override])
    assert code == 2 and message in capsys.readouterr().err
