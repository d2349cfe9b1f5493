"""The benchmark command end to end on the tiny dataset: every model with both R-GCN kernels, batch caps that
hold for every model, and a report (JSON, Markdown, PNG) with ratios to KGSF."""
import json

import pytest

from bench import child, redial
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
    assert names == {f"{m}-{k}" for m in ("KBRD", "KGSF", "C2CRS") for k in ("fast", "stock")}
    for run in report["runs"]:
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
    assert (tmp_path / "redial-tiny.png").stat().st_size > 10_000


@pytest.fixture
def restore_patched_classes(monkeypatch):
    """bench.profile runs in this process and wraps class attributes (as bench.child does in its own process):
    put them back after the test so that later tests see stock classes."""
    from crslab.data.dataloader.base import BaseDataLoader
    from crslab.evaluator.metrics.base import Metrics
    from crslab.system.base import BaseSystem

    import crslab_c2crs.system.baselines as baselines
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
