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
