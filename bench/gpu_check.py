"""The GPU check (#31): one command that tells, in under 12 minutes on one modern GPU, whether this checkout trains
on CUDA and how fast.

Usage::

    python -m bench.gpu_check [--data-root data] [--skip-tests] [--test-timeout 420]

Steps, each timed and recorded in ``bench/results/gpu-check-<device>.json`` (``<device>``: the GPU's name, e.g.
``nvidia-h100-80gb-hbm3``):

1. the test suite with the GPU visible (``pytest -q -x``, given up after ``--test-timeout`` seconds);
2. a short ``-g 0`` run of KGSF, KBRD and C2-CRS (every stage: coarse, fine, rec, conv) through
   :mod:`bench.child`, at the configs' batch sizes, 20 training batches per stage and 2 validation and test
   batches: the training samples/s of every stage, the peak GPU memory and the test metrics;
3. with two or more GPUs, the same C2-CRS run on 2 GPUs with ``torchrun`` (``nccl``): the same figures for the
   two ranks together.

The runs use the built ReDial data under ``--data-root``; without it, the tiny dataset the tests build (the
figures then show that CUDA works, not how fast). Without a CUDA device the check refuses with one line (exit
status 2); nothing else in the project needs a GPU. Exit status 1 when a step failed (the record says which).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.redial import CONFIGS, RESULTS, ROOT, git_commit, run_child
from crslab_c2crs.atomic import write_json

MODELS = ("KGSF", "KBRD", "C2CRS")
CAPS = ["train.*=20", "valid.*=1", "test.*=2"]
# one epoch of every stage (rec and conv would otherwise run their configs' 10 to 50 epochs)
ONE_EPOCH = {"KGSF": ("pretrain", "rec", "conv"), "KBRD": ("rec", "conv"), "C2CRS": ("coarse", "fine", "rec", "conv")}
TWO_GPUS = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
GPU = "0"  # the -g of the one-GPU runs


def device_slug(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``: the record's file name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_tests(timeout_s: int) -> Dict[str, Any]:
    """The test suite with CUDA visible; its outcome, time and last summary line."""
    started = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x"], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": f"stopped after {timeout_s} s (--test-timeout)", "seconds": time.time() - started}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return {"status": "passed" if proc.returncode == 0 else "failed", "seconds": time.time() - started,
            "summary": lines[-1] if lines else proc.stderr[-500:]}


def run_flags(model: str, data_root: Path, gpu: Optional[str], name: str) -> List[str]:
    """``run_crslab.py`` flags of one short run (``gpu`` None: each torchrun rank takes its own GPU)."""
    flags = ["-c", str(ROOT / CONFIGS[model]), "--data-root", str(data_root), "--seed", "42"]
    flags += ["-g", gpu] if gpu is not None else []
    overrides = [f"{stage}.epoch=1" for stage in ONE_EPOCH[model]] + [f"checkpoint_dir=gpu_check_{name}"]
    return flags + [part for override in overrides for part in ("--set", override)]


def run_model(model: str, data_root: Path, workdir: Path, gpus: int = 1) -> Dict[str, Any]:
    """One short run of ``model`` on GPU 0 (or on ``gpus`` GPUs under torchrun): stage speeds, memory, metrics."""
    name = f"{model}-{gpus}gpu"
    started = time.time()
    try:
        result = run_child(name, CAPS, run_flags(model, data_root, GPU if gpus == 1 else None, name), workdir,
                           launcher=TWO_GPUS if gpus > 1 else ())
    except RuntimeError as err:
        return {"status": "failed", "error": str(err), "seconds": time.time() - started}
    return {"status": "passed", "seconds": time.time() - started, "world_size": result["world_size"],
            "backend": result["backend"], "peak_gpu_mb": result.get("peak_gpu_mb"),
            "stages": {stage: {key: numbers[key] for key in ("train_samples", "samples_per_s", "seconds")}
                       for stage, numbers in result["stages"].items()},
            "test": result["test"]}


def tiny_data(folder: Path) -> Path:
    """The tiny dataset the tests build, built under ``folder``; returns its data root."""
    from crslab_c2crs.data.builder import build_redial
    from tests.data.tiny_raw import write_tiny_raw

    build_redial(write_tiny_raw(folder / "raw"), folder / "root")
    return folder / "root"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data", help="built ReDial data (default: data)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the test suite (step 1)")
    parser.add_argument("--test-timeout", type=int, default=420, help="seconds the test suite may take")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the record (default: bench/results)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench.gpu_check: error: no CUDA device is visible; this check is for a machine with a GPU "
              "(everything else runs on the CPU)", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0)
    record: Dict[str, Any] = {"device": name, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
                              "cuda": torch.version.cuda, "git_commit": git_commit(), "caps": CAPS}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        workdir = Path(tmp)
        data_root = Path(args.data_root).resolve()
        record["data"] = "redial"
        if not (data_root / "dataset" / "redial" / "nltk" / "train_data.json").exists():
            print(f"bench.gpu_check: no built ReDial data under {data_root}; using the tests' tiny dataset",
                  file=sys.stderr)
            data_root, record["data"] = tiny_data(workdir / "tiny"), "tiny"
        if not args.skip_tests:
            record["tests"] = run_tests(args.test_timeout)
        record["runs"] = {model: run_model(model, data_root, workdir) for model in MODELS}
        if torch.cuda.device_count() >= 2:
            record["runs"]["C2CRS-2gpu"] = run_model("C2CRS", data_root, workdir, gpus=2)
        for checkpoints in (data_root / "save").glob("gpu_check_*"):
            shutil.rmtree(checkpoints, ignore_errors=True)  # the short runs' checkpoints are of no further use
    record["seconds"] = time.time() - started
    path = Path(args.out) / f"gpu-check-{device_slug(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record, indent=2, default=str)
    steps = [("tests", record.get("tests"))] + list(record["runs"].items())
    for step, outcome in steps:
        if outcome is not None:
            print(f"{step:12s} {outcome['status']:8s} {outcome['seconds']:7.1f} s")
    for stage, numbers in record["runs"]["C2CRS"].get("stages", {}).items():
        print(f"C2-CRS {stage:6s} {numbers['samples_per_s']:9.1f} samples/s")
    print(f"{path} ({record['seconds'] / 60:.1f} min)")
    failed = [step for step, outcome in steps if outcome is not None and outcome["status"] != "passed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
