"""One speed measurement in its own process, for ``bench.speed``; works against any checkout of this project.

Usage: ``PYTHONPATH=<checkout> python bench/speed_child.py --out run.json --cap SPLIT.STAGE=N ... -- <run_crslab.py
flags>``. The checkout's own ``bench.child`` applies the caps (through the stage keys where it has them, through its
``get_data`` wrapper in older checkouts) and times the training steps; this script adds the time and samples of
the test passes (greedy decoding in the conv stage), so the old and the new path are measured by one rule.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional


def install_test_timers(stats: Dict[str, Dict[str, float]]) -> None:
    """Time every test-mode ``step`` of the three systems, keyed by the stage name the system passes."""
    import crslab_c2crs.system.baselines as baselines
    import crslab_c2crs.system.c2crs as c2crs

    def timed(step):
        @functools.wraps(step)
        def wrapper(self, batch, stage, mode):
            if mode != "test":
                return step(self, batch, stage, mode)
            started = time.perf_counter()
            try:
                return step(self, batch, stage, mode)
            finally:
                stats[stage]["test_seconds"] += time.perf_counter() - started
                stats[stage]["test_samples"] += _rows(batch)
        return wrapper

    for cls in (baselines.KGSFSystem, baselines.KBRDSystem, c2crs.C2CRSSystem):
        cls.step = timed(cls.step)


def sample_stage_rss(tracker, peaks: Dict[str, float], stop: threading.Event, every: float = 0.2) -> None:
    """Record the largest resident set size seen while each stage runs (read from /proc every ``every`` s)."""
    while not stop.wait(every):
        stage = tracker.current
        if stage is None:
            continue
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss_mb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        peaks[stage] = max(peaks.get(stage, 0.0), rss_mb)


def _rows(batch) -> int:
    if isinstance(batch, dict):
        batch = next(v for v in batch.values() if hasattr(v, "shape"))
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    return int(batch.shape[0])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cap", action="append", default=[])
    args, rest = parser.parse_known_args(argv)
    import yaml

    from bench import child
    from crslab_c2crs.cli import build_parser, run

    run_args = build_parser().parse_args([a for a in rest if a != "--"])
    tracker = child.StageTracker()
    caps = child.parse_caps(args.cap)
    if hasattr(child, "cap_overrides"):
        config = yaml.safe_load(Path(run_args.config).read_text(encoding="utf-8"))
        run_args.overrides = child.cap_overrides(caps, config) + run_args.overrides
    else:  # checkouts before the batching module capped through a get_data wrapper
        child.install_batch_caps(caps, tracker)
    child.install_timers(tracker)
    test_stats: Dict[str, Dict[str, float]] = defaultdict(lambda: {"test_seconds": 0.0, "test_samples": 0})
    install_test_timers(test_stats)
    peaks: Dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_stage_rss, args=(tracker, peaks, stop), daemon=True)
    sampler.start()
    try:
        run(run_args)
    finally:
        stop.set()
        sampler.join()
    stages = {}
    for name, stage in tracker.stats.items():
        seconds = stage["train_step_seconds"]
        stages[name] = dict(stage, samples_per_s=stage["train_samples"] / seconds if seconds else 0.0)
    for name, stage in test_stats.items():
        stages.setdefault(name, {}).update(
            stage, test_samples_per_s=stage["test_samples"] / stage["test_seconds"] if stage["test_seconds"] else 0.0)
    for name, peak in peaks.items():
        stages.setdefault(name, {})["peak_rss_mb"] = peak
    result = {"stages": stages, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
