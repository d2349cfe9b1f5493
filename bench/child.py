"""One benchmarked run: ``run_crslab.py`` in this process, with per-stage timers and peak memory.

Usage: ``python -m bench.child --out run.json <run_crslab.py flags>``. Stage timers wrap the systems' stage
methods (CRSLab's ``pretrain``/``train_recommender``/``train_conversation``, C2-CRS's ``run_stage``) and count the
training samples that pass through ``step``, so every model is timed by the same rule.
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

STAGE_METHODS = {"pretrain": "pretrain", "train_recommender": "rec", "train_conversation": "conv"}


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(v for v in batch.values() if hasattr(v, "shape"))
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    return int(batch.shape[0])


def install_timers(stats: Dict[str, Dict[str, float]]) -> None:
    """Wrap the stage methods and ``step`` of the KGSF, KBRD and C2-CRS systems to fill ``stats``."""
    import crslab_c2crs.system.baselines as baselines
    import crslab_c2crs.system.c2crs as c2crs

    current: List[Optional[str]] = [None]

    def timed(method, stage_of):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            stage = stage_of(args)
            current[0] = stage
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                stats[stage]["seconds"] += time.perf_counter() - started
                current[0] = None
        return wrapper

    def counted(step):
        @functools.wraps(step)
        def wrapper(self, batch, stage, mode):
            if mode == "train" and current[0] is not None:
                stats[current[0]]["train_samples"] += _batch_size(batch)
            return step(self, batch, stage, mode)
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
    args, rest = parser.parse_known_args(argv)
    from crslab_c2crs.cli import build_parser, run

    run_args = build_parser().parse_args(rest)
    stats: Dict[str, Dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "train_samples": 0})
    install_timers(stats)
    started = time.perf_counter()
    result = run(run_args)
    result["process_seconds"] = time.perf_counter() - started
    for stage in stats.values():
        stage["samples_per_s"] = stage["train_samples"] / stage["seconds"] if stage["seconds"] else 0.0
    result["stages"] = dict(stats)
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
