"""The benchmark command end to end on the tiny dataset: every model with both R-GCN kernels, batch caps that
hold for every model, and a report (JSON, Markdown, PNG) with ratios to KGSF."""
import json

import pytest
import torch

from bench import child, conv_curves, redial
from tests.test_runner import SHORT


def test_caps_parse_and_reject_bad_specs():
    caps = child.parse_caps(["train.conv=40", "test.*=2"])
    assert caps == {"train": {"conv": 40}, "valid": {}, "test": {"*": 2}}
    for bad in ("train.coarse=3", "dev.conv=1", "train.conv=many"):
        with pytest.raises(SystemExit, match="SPLIT.STAGE=N"):
            child.parse_caps([bad])


@pytest.mark.slow
def test_bench_runs_all_models_and_writes_the_report(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setitem(redial.PROFILES, "tiny", {
        "caps": ["train.*=2", "valid.conv=1", "test.conv=1"],
        "overrides": {model: SHORT[model] + ["num_threads=1"] for model in SHORT}})
    assert redial.main(["--profile", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "redial-tiny.json").read_text())
    names = {run["name"] for run in report["runs"]}
    assert names == {f"{m}-{k}" for m in ("KBRD", "KGSF", "C2CRS") for k in ("fast", "stock")} | set(redial.SHORTCUTS)
    for run in report["runs"]:
        assert "new_hit@10" in run["test"] and "coverage@10" in run["test"] or run["probe"], run["name"]
        if run["model"] in redial.SHORTCUTS:
            assert run["stages"] == {} and "bleu@1" not in run["test"]
            continue
        batch = 16  # every SHORT batch size; both the tiny profile and the probes cap training at 2 batches
        for stage, numbers in run["stages"].items():
            epochs = 2 if (run["model"], stage) == ("C2CRS", "rec") else 1
            assert 0 < numbers["train_samples"] <= epochs * 2 * batch, (run["name"], stage)
            assert numbers["samples_per_s"] > 0
        if not run["probe"]:
            assert "hit@10" in run["test"] and "dist_ratio@2" in run["test"]
            assert run["valid_recall@10"], run["name"]
    c2crs = next(run for run in report["runs"] if run["name"] == "C2CRS-fast")
    assert set(c2crs["pretrain_losses"]) == {"coarse", "fine"}
    assert len(c2crs["pretrain_losses"]["coarse"]) == 2
    kgsf = next(row for row in report["speed"] if row["name"] == "KGSF-fast")
    assert kgsf["time_vs_kgsf"] == pytest.approx(1.0)
    assert {row["model"] for row in report["kernel_speedups"]} == {"KBRD", "KGSF", "C2CRS"}
    assert report["git_commit"] and report["threads"] >= 1

    table = (tmp_path / "redial-tiny.md").read_text()
    assert "| C2CRS-fast |" in table and "| KGSF (paper) |" in table and "speed-up" in table
    assert "## Repeat-aware recommendation (test set)" in table
    assert table.count("| RepeatContext |") == 3  # the quality, repeat-aware and speed tables
    assert (tmp_path / "redial-tiny.png").stat().st_size > 10_000


def test_seeds_are_aggregated_as_mean_and_sample_std():
    def result(seed, hit, seconds):
        return {"seed": seed, "test": {"hit@10": hit}, "stages": {"rec": {"seconds": seconds}}, "peak_rss_mb": seed,
                "valid_recall@10": [hit], "bench_wall_seconds": 1.0, "history": [], "config": {}, "model": "KBRD"}

    run = redial.aggregate([result(1, 0.1, 10.0), result(2, 0.2, 20.0), result(3, 0.3, 30.0)])
    assert run["seeds"] == [1, 2, 3]
    assert run["test"]["hit@10"] == pytest.approx(0.2) and run["test_std"]["hit@10"] == pytest.approx(0.1)
    assert run["stages"]["rec"]["seconds"] == pytest.approx(20.0) and run["peak_rss_mb"] == 3
    assert [entry["test"]["hit@10"] for entry in run["per_seed"]] == [0.1, 0.2, 0.3]
    assert "history" not in run and run["valid_recall@10"] == [0.1]
    assert redial._cell(dict(run, probe=False), "hit@10") == "0.2000 ± 0.1000"
    assert redial.aggregate([result(1, 0.1, 10.0)])["test_std"]["hit@10"] == 0.0


@pytest.mark.slow
def test_bench_repeats_every_run_per_seed(tiny_root, tmp_path):
    assert redial.main(["--models", "Popularity,RepeatContext", "--seeds", "2", "--data-root", str(tiny_root),
                        "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "redial-cpu.json").read_text())
    assert report["seeds"] == [42, 43] and [run["seeds"] for run in report["runs"]] == [[42, 43]] * 2
    assert "± 0.0000" in (tmp_path / "redial-cpu.md").read_text()  # nothing random in a shortcut baseline


@pytest.mark.slow
def test_separate_commands_merge_into_one_report_with_each_runs_commit(tiny_root, tmp_path):
    """One model per command (as the cpu-long profile is run): each run is recorded with its commit and seed, and
    every report of the profile merges all recorded runs."""
    for model in ("RepeatContext", "Popularity"):
        assert redial.main(["--models", model, "--data-root", str(tiny_root), "--out", str(tmp_path)]) == 0
    records = sorted(path.name for path in (tmp_path / "redial-cpu-runs").iterdir())
    assert records == ["Popularity-seed42.json", "RepeatContext-seed42.json"]
    report = json.loads((tmp_path / "redial-cpu.json").read_text())
    assert [run["name"] for run in report["runs"]] == ["Popularity", "RepeatContext"]  # canonical order
    assert all(run["git_commits"] == [redial.git_commit()] for run in report["runs"])
    assert f"Popularity `{redial.git_commit()[:7]}`" in (tmp_path / "redial-cpu.md").read_text()
    # a rerun of one model replaces its record instead of adding a second copy of the same seed
    assert redial.main(["--models", "Popularity", "--data-root", str(tiny_root), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "redial-cpu.json").read_text())
    assert [run["seeds"] for run in report["runs"]] == [[42], [42]]
    # the report alone is rebuilt from the records, without data or runs; follow-up conv runs kept beside the
    # records join the NLL curves, re-tests (no conv epochs) do not
    (tmp_path / "redial-cpu.json").unlink()
    followups = tmp_path / "redial-cpu-decoding"
    followups.mkdir()
    conv_epochs = [{"mode": "val", "metrics": {"gen_loss": loss}} for loss in (5.7, 4.4)]
    (followups / "C2CRS-conv2-seed42.json").write_text(json.dumps({"history": conv_epochs}))
    (followups / "C2CRS-retest-seed42.json").write_text(json.dumps({"history": [{"mode": "test", "metrics": {}}]}))
    assert redial.main(["--report-only", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / "redial-cpu.json").read_text())
    assert rebuilt["runs"] == report["runs"]
    assert rebuilt["followup_conv_curves"] == {"C2CRS-conv2-seed42": [5.7, 4.4]}
    assert "| C2CRS-conv2-seed42 | 5.700, 4.400 |" in (tmp_path / "redial-cpu.md").read_text()
    with pytest.raises(SystemExit):
        redial.main(["--report-only", "--profile", "paper", "--out", str(tmp_path)])  # nothing recorded
    with pytest.raises(SystemExit):
        redial.main(["--ablations", "no_such_row", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        redial.main(["--variants", "no_such_variant", "--out", str(tmp_path)])


def test_a_variant_runs_the_full_models_budget_plus_its_settings(tiny_root, tmp_path, monkeypatch):
    planned, run_one = [], redial.run_one

    def plan_or_run(name, model, overrides, caps, *rest):
        if model in redial.SHORTCUTS:  # run for real: a report needs one record
            return run_one(name, model, overrides, caps, *rest)
        planned.append((name, model, overrides, caps, rest[-1]))

    monkeypatch.setattr(redial, "run_one", plan_or_run)
    assert redial.main(["--profile", "cpu-long", "--models", "Popularity", "--variants", "word2vec",
                        "--data-root", str(tiny_root), "--out", str(tmp_path)]) == 0
    [(name, model, overrides, caps, meta)] = planned
    assert (name, model, caps) == ("C2CRS-word2vec", "C2CRS", redial.PROFILES["cpu-long"]["caps"])
    assert overrides == [*redial.PROFILES["cpu-long"]["overrides"]["C2CRS"], "embedding=word2vec_redial.npy",
                         "fast_rgcn=true"]
    assert meta == {"kernel": "fast", "ablation": None, "variant": "word2vec", "probe": False}


@pytest.fixture
def restore_patched_classes(monkeypatch):
    """bench.profile runs in this process and wraps class attributes (as bench.child does in its own process):
    put them back after the test so that later tests see stock classes."""
    import crslab_c2crs.system.baselines as baselines
    from crslab.data.dataloader.base import BaseDataLoader
    from crslab.evaluator.metrics.base import Metrics
    from crslab.system.base import BaseSystem
    from crslab_c2crs.system.c2crs import C2CRSSystem

    patched = [(BaseSystem, "__init__"), (BaseDataLoader, "get_data"), (Metrics, "add"),
               (C2CRSSystem, "run_stage"), (C2CRSSystem, "step")]
    for cls in (baselines.KGSFSystem, baselines.KBRDSystem):
        patched += [(cls, name) for name in ("step", *child.STAGE_METHODS) if hasattr(cls, name)]
    for cls, name in patched:
        monkeypatch.setattr(cls, name, getattr(cls, name))


@pytest.mark.slow
def test_profile_splits_each_stage_into_modules_and_operators(tiny_root, tmp_path, monkeypatch,
                                                              restore_patched_classes):
    from bench import profile

    monkeypatch.chdir(tmp_path)
    small = [o for o in SHORT["C2CRS"] if not o.endswith("epoch=2")] + ["num_threads=1"]
    argv = ["--data-root", str(tiny_root), "--steps", "2", "--out", str(tmp_path)]
    for override in small:
        argv += ["--set", override]
    assert profile.main(argv) == 0
    report = json.loads((tmp_path / "c2crs-profile.json").read_text())
    assert set(report["stages"]) == {"coarse", "fine", "rec", "conv"}
    coarse = report["stages"]["coarse"]
    assert coarse["timed_steps"] == 1
    parts = {"history_encoder", "kg_encoder.rgcn", "kg_encoder.pooling", "review_encoder", "heads"}
    assert parts <= set(coarse["forward_seconds_per_step"])
    assert "decoder" in report["stages"]["conv"]["forward_seconds_per_step"]
    assert sum(coarse["forward_seconds_per_step"].values()) < coarse["seconds_per_step"]
    assert coarse["top_operators"] and all(row["self_seconds"] >= 0 for row in coarse["top_operators"])
    assert "| forward: kg_encoder.rgcn |" in (tmp_path / "c2crs-profile.md").read_text()


def test_conv_curves_pair_each_decoded_epoch_with_its_validation_nll(tmp_path, capsys):
    def report(epoch, mode, **metrics):
        return {"epoch": epoch, "mode": mode, "metrics": metrics}

    history = [report(0, "train", gen_loss=5.0), report(0, "val", gen_loss=5.1),
               report(0, "valid_decode", **{"bleu@1": 0.05, "dist@1": 0.2, "dist_ratio@1": 0.02}),
               report(1, "val", gen_loss=4.4),
               report(1, "valid_decode", **{"bleu@1": 0.08, "dist@1": 0.1, "dist_ratio@1": 0.01}),
               report(-1, "test", **{"bleu@1": 0.07})]
    rows = conv_curves.epoch_rows(history)
    assert [(row["epoch"], row["nll"], row["bleu@1"]) for row in rows] == [(1, 5.1, 0.05), (2, 4.4, 0.08)]
    assert [round(row["length"], 6) for row in rows] == [10.0, 10.0]
    results = tmp_path / "run.json"
    results.write_text(json.dumps({"history": history, "test": {"bleu@1": 0.07}}))
    assert conv_curves.main([str(results), "--out", str(tmp_path / "curves")]) == 0
    assert "| 2 | 4.4000 | 0.0800 |" in (tmp_path / "curves.md").read_text()
    assert (tmp_path / "curves.png").stat().st_size > 0
    results.write_text(json.dumps({"history": history[:2]}))
    with pytest.raises(SystemExit):
        conv_curves.main([str(results), "--out", str(tmp_path / "none")])
    assert "conv.decode_valid=true" in capsys.readouterr().err


def test_longest_first_orders_only_training_batches():
    from bench.memory import longest_first

    lengths = [5, 1, 9, 3, 7, 2]
    fake = lambda lengths, batch_size, shuffle, pool_batches: [[1, 3], [0, 5], [2, 4]]  # noqa: E731
    assert longest_first(fake)(lengths, 2, True, 1) == [[2, 4], [0, 5], [1, 3]]
    assert longest_first(fake)(lengths, 2, False, 1) == [[1, 3], [0, 5], [2, 4]]


def test_the_quick_start_overrides_come_from_the_makefile():
    from bench.redial import quick_start_overrides

    flags = quick_start_overrides()
    assert {"coarse.valid_max_batches=5", "rec.epoch=4", "checkpoint_dir=C2CRS_quickstart",
            "conv_freeze=[kg,history,review]"} <= set(flags)
    # the pre-training budget is the config's, the one chosen on validation
    assert not [flag for flag in flags if flag.startswith(("coarse.epoch", "fine.epoch", "coarse.max_batches"))]
    assert not [flag for flag in flags if "$(" in flag or flag.startswith("-") or "=" not in flag]


def test_pass_peaks_label_the_samples_by_stage_and_pass():
    from bench.memory import PassPeaks

    peaks = PassPeaks(every=0.001)
    step = peaks.wrap_step(lambda system, batch, stage, mode: bytearray(8 * 2**20))
    batch = {"context": torch.zeros(3, 5)}
    with peaks:
        step(None, batch, "coarse", "train")
        step(None, batch, "coarse", "train")
        step(None, batch, "rec", "valid")
    assert {"coarse/train", "rec/valid"} <= set(peaks.peaks) <= {"setup", "coarse/train", "rec/valid"}
    assert all(mb > 0 for mb in peaks.peaks.values())
    assert peaks.speed["coarse/train"]["samples"] == 6 and peaks.speed["rec/valid"]["samples"] == 3
    assert peaks.speed["coarse/train"]["step_seconds"] > 0


@pytest.mark.slow
def test_memory_bench_whole_run_peaks_every_pass(tiny_root, tmp_path, monkeypatch):
    from bench import memory
    from crslab_c2crs.system.c2crs import C2CRSSystem

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(C2CRSSystem, "step", C2CRSSystem.step)  # bench.memory wraps it in its process
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    argv = ["--data-root", str(tiny_root), "--out", str(tmp_path), "--whole"]
    for override in [o for o in SHORT["C2CRS"] if "epoch" not in o] + ["num_threads=1"]:
        argv += ["--set", override]
    assert memory.main(argv) == 0
    report = json.loads((tmp_path / "c2crs-memory-whole.json").read_text())
    assert {"coarse/train", "coarse/val", "rec/train", "rec/val", "rec/test", "conv/train",
            "conv/test"} <= set(report["passes"])
    assert "fine/train" not in report["passes"]  # the quick start pre-trains as the config: no fine stage
    assert report["process_peak_mb"] >= max(report["passes"].values()) > 0
    assert report["allocator"]["MALLOC_ARENA_MAX"] == "2"
    start = report["pass_starts"]["conv/train"]
    assert 0 < start["live_tensors_mb"] < start["rss_mb"]
    assert "| rec/test |" in (tmp_path / "c2crs-memory-whole.md").read_text()
    speed = report["pass_speed"]["coarse/train"]
    assert speed["samples"] > 0 and speed["step_seconds"] > 0


@pytest.mark.slow
def test_memory_bench_splits_each_stage_and_checkpointing_drops_the_encoders_activations(tiny_root, tmp_path,
                                                                                         monkeypatch):
    import crslab_c2crs.data.batching as batching
    from bench import memory
    from crslab_c2crs.system.c2crs import C2CRSSystem

    monkeypatch.chdir(tmp_path)
    small = [o for o in SHORT["C2CRS"] if "epoch" not in o] + ["num_threads=1"]
    reports = {}
    for flag in ("false", "true"):
        with monkeypatch.context() as patch:  # bench.memory wraps these in its process: put them back
            for owner, name in ((C2CRSSystem, "__init__"), (C2CRSSystem, "step"), (batching, "bucketed_batches")):
                patch.setattr(owner, name, getattr(owner, name))
            argv = ["--data-root", str(tiny_root), "--out", str(tmp_path), "--name", f"memory-{flag}"]
            for override in small + [f"gradient_checkpointing={flag}"]:
                argv += ["--set", override]
            assert memory.main(argv) == 0
        reports[flag] = json.loads((tmp_path / f"memory-{flag}.json").read_text())
    plain, checkpointed = reports["false"]["stages"], reports["true"]["stages"]
    assert set(plain) == {"coarse", "fine", "rec", "conv"}
    for row in plain.values():
        assert row["peak_rss_mb"] >= row["rss_before_mb"] > 0
        assert row["gradients_mb"] <= row["parameters_mb"] and row["optimizer_state_mb"] > 0
    assert plain["conv"]["parameters_mb"] < plain["coarse"]["parameters_mb"]  # the conv stage freezes encoders
    assert {"history_encoder", "review_encoder", "heads"} <= set(plain["fine"]["activations_mb"])
    for stage in ("coarse", "fine"):
        assert (checkpointed[stage]["activations_mb"]["history_encoder"]
                < plain[stage]["activations_mb"]["history_encoder"] / 2)
    assert "| fine |" in (tmp_path / "memory-true.md").read_text()
