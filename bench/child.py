"""One benchmarked run: ``run_crslab.py`` in this process, with per-stage timers, batch caps and peak memory.

Usage: ``python -m bench.child --out run.json [--cap SPLIT.STAGE=N ...] <run_crslab.py flags>``.

Stage timers wrap the systems' stage methods (CRSLab's ``pretrain``/``train_recommender``/``train_conversation``,
C2-CRS's ``run_stage``) and time and count the training samples that pass through ``step``, so every model is
timed by the same rule. Caps (``train.conv=40``: 40 training batches per conv epoch; ``test.*=2``) become the
stage keys ``max_batches``/``valid_max_batches``/``test_max_batches``, which every model's loader honours
(:mod:`crslab_c2crs.data.batching`), so one budget rule holds for all models.
Stages are named ``pretrain`` (KGSF's MIM, C2-CRS's coarse and fine), ``rec`` and ``conv``. Under torchrun
(``torchrun --nproc_per_node N -m bench.child ...``) rank 0 writes the result, its sample counts those of every rank.
"""
from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

STAGE_METHODS = {"pretrain": "pretrain", "train_recommender": "rec", "train_conversation": "conv"}
BUDGET_STAGE = {"coarse": "pretrain", "fine": "pretrain"}
# The loss each pre-training stage optimises, as the systems log it: KGSF's MIM loss, C2-CRS's Eq. 5 / Eq. 7.
PRETRAIN_LOSS = {"pretrain": "info_loss", "coarse": "loss", "fine": "loss"}
SPLITS = ("train", "valid", "test")
Caps = Dict[str, Dict[str, int]]


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(v for v in batch.values() if hasattr(v, "shape"))
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    return int(batch.shape[0])


def parse_caps(specs: List[str]) -> Caps:
    """``["train.conv=40", "test.*=2"]`` -> ``{"train": {"conv": 40}, "test": {"*": 2}}``."""
    caps: Caps = {split: {} for split in SPLITS}
    for spec in specs:
        key, _, value = spec.partition("=")
        split, _, stage = key.partition(".")
        if split not in SPLITS or stage not in ("pretrain", "rec", "conv", "*") or not value.isdigit():
            raise SystemExit(f"--cap {spec!r}: expected SPLIT.STAGE=N with SPLIT in {SPLITS}, STAGE one of "
                             f"pretrain, rec, conv, * and N a positive integer")
        caps[split][stage] = int(value)
    return caps


class StageTracker:
    """The stage being run (``pretrain``, ``rec``, ``conv`` or C2-CRS's ``coarse``/``fine``), and its stats."""

    def __init__(self) -> None:
        self.current: Optional[str] = None
        self.in_train_step = False
        self.pretrain_losses: Dict[str, List[float]] = defaultdict(list)
        self.stats: Dict[str, Dict[str, float]] = defaultdict(
            lambda: {"seconds": 0.0, "train_step_seconds": 0.0, "train_samples": 0})


def cap_overrides(caps: Caps, config: Dict[str, Any]) -> List[str]:
    """``--set`` overrides that apply ``caps`` through the stage keys every model honours
    (``max_batches``, ``valid_max_batches``, ``test_max_batches``; see :mod:`crslab_c2crs.data.batching`).

    ``pretrain`` names KGSF's ``pretrain`` section and C2-CRS's ``coarse`` and ``fine``; ``*`` every stage section.
    """
    from crslab_c2crs.data.batching import CAP_KEYS

    sections = [key for key, value in config.items() if isinstance(value, dict) and "epoch" in value]
    overrides = []
    for split, split_caps in caps.items():
        for section in sections:
            stage = BUDGET_STAGE.get(section, section)
            cap = split_caps.get(stage, split_caps.get("*"))
            if cap is not None:
                overrides.append(f"{section}.{CAP_KEYS[split]}={cap}")
    return overrides


def install_timers(tracker: StageTracker) -> None:
    """Wrap the stage methods and ``step`` of the KGSF, KBRD and C2-CRS systems to fill ``tracker.stats``."""
    import crslab_c2crs.system.baselines as baselines
    import crslab_c2crs.system.c2crs as c2crs
    from crslab.evaluator.metrics.base import Metrics

    stats = tracker.stats
    add = Metrics.add

    @functools.wraps(add)
    def recording_add(self, key, value):
        # Per-batch training loss of the pre-training stages, for the loss curves of the report.
        if tracker.in_train_step and value is not None and key == PRETRAIN_LOSS.get(tracker.current):
            tracker.pretrain_losses[tracker.current].append(float(value.value()))
        add(self, key, value)

    Metrics.add = recording_add

    def timed(method, stage_of):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            stage = stage_of(args)
            tracker.current = stage
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                stats[stage]["seconds"] += time.perf_counter() - started
                tracker.current = None
        return wrapper

    def counted(step):
        @functools.wraps(step)
        def wrapper(self, batch, stage, mode):
            if mode != "train" or tracker.current is None:
                return step(self, batch, stage, mode)
            started = time.perf_counter()
            tracker.in_train_step = True
            try:
                return step(self, batch, stage, mode)
            finally:
                tracker.in_train_step = False
                stats[tracker.current]["train_step_seconds"] += time.perf_counter() - started
                stats[tracker.current]["train_samples"] += _batch_size(batch)
        return wrapper

    for cls in (baselines.KGSFSystem, baselines.KBRDSystem):
        for method, stage in STAGE_METHODS.items():
            if hasattr(cls, method):
                setattr(cls, method, timed(getattr(cls, method), lambda args, s=stage: s))
        cls.step = counted(cls.step)
    c2crs.C2CRSSystem.run_stage = timed(c2crs.C2CRSSystem.run_stage, lambda args: args[0])
    c2crs.C2CRSSystem.step = counted(c2crs.C2CRSSystem.step)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cap", action="append", default=[], metavar="SPLIT.STAGE=N",
                        help="batches per pass, e.g. train.conv=40 (training batches per conv epoch)")
    args, rest = parser.parse_known_args(argv)
    from crslab_c2crs.cli import build_parser, run

    run_args = build_parser().parse_args(rest)
    config = yaml.safe_load(Path(run_args.config).read_text(encoding="utf-8"))
    run_args.overrides = cap_overrides(parse_caps(args.cap), config) + run_args.overrides
    tracker = StageTracker()
    install_timers(tracker)
    started = time.perf_counter()
    result = run(run_args)
    result["process_seconds"] = time.perf_counter() - started
    for stage in tracker.stats.values():
        # Training throughput: samples through forward + backward + update, validation and test excluded. Under
        # torchrun this rank's samples, times the ranks, which step together on their shares of each batch.
        stage["train_samples"] *= result["world_size"]
        seconds = stage["train_step_seconds"]
        stage["samples_per_s"] = stage["train_samples"] / seconds if seconds else 0.0
    result["stages"] = dict(tracker.stats)
    result["pretrain_losses"] = dict(tracker.pretrain_losses)
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    from crslab_c2crs.distributed import launched_rank

    if launched_rank() == 0:  # under torchrun, rank 0 writes the result
        Path(args.out).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
