"""bench.gpu_check (#31): it refuses without a GPU in one line, and its steps and record work; here on the CPU, with
torch told that a GPU exists and the runs' ``-g`` pointed at the CPU, at the tiny runs' sizes."""
import json

import pytest
import torch

from bench import gpu_check
from tests.tiny_runs import SHORT


def test_without_a_gpu_the_check_refuses_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--skip-tests"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench.gpu_check: error: no CUDA device is visible; this check is for a machine with a GPU "
                   "(everything else runs on the CPU)"]


def test_the_record_is_named_after_the_device():
    assert gpu_check.device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


@pytest.mark.slow
def test_the_check_runs_every_model_and_records_the_c2crs_stage_speeds(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tiny GPU 1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpu_check, "GPU", "-1")
    monkeypatch.setattr(gpu_check, "CAPS", ["train.*=1", "valid.*=1", "test.*=1"])
    flags = gpu_check.run_flags  # the tiny runs' dimensions (the configs' take minutes on 2 cores)
    monkeypatch.setattr(gpu_check, "run_flags", lambda model, *args: flags(model, *args) + [
        part for override in SHORT[model] + ["num_threads=1"] for part in ("--set", override)])
    assert gpu_check.main(["--skip-tests", "--data-root", str(tiny_root), "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "gpu-check-tiny-gpu-1.json").read_text())
    assert record["data"] == "redial" and "tests" not in record and set(record["runs"]) == set(gpu_check.MODELS)
    assert all(run["status"] == "passed" and run["world_size"] == 1 for run in record["runs"].values())
    assert set(record["runs"]["C2CRS"]["stages"]) == {"coarse", "fine", "rec", "conv"}
    assert all(stage["samples_per_s"] > 0 for stage in record["runs"]["C2CRS"]["stages"].values())
    assert not list((tiny_root / "save").glob("gpu_check_*"))
    assert "C2-CRS coarse" in capsys.readouterr().out
