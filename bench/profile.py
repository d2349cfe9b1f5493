"""Where C2-CRS's training time goes on CPU: per module and per operator, for each stage, on the real data.

Usage::

    python -m bench.profile [--data-root data] [--steps 3] [--out bench/results]

Runs C2-CRS through ``run_crslab.py`` with the benchmark's batch caps (``--steps`` training batches per stage,
one validation and one test batch) at the cpu profile's batch sizes. Every training step after the first (a
warm-up) is timed: forward time per top-level module (forward hooks), the rest of the forward (contrastive and
generation losses, glue), and backward + optimiser update; the same steps run under ``torch.profiler`` for the
operators with the most self CPU time. Writes ``c2crs-profile.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import yaml
from torch import nn

from bench import child
from bench.redial import CONFIGS, PROFILES, RESULTS, ROOT, crslab_argv, git_commit, require_built_data, write_report

TOP_OPERATORS = 12
# The parts of the model whose forward time is reported (paths of ``C2CRSModel`` submodules).
PARTS = ("history_encoder", "kg_encoder.rgcn", "kg_encoder.pooling", "review_encoder", "heads", "recommender",
         "decoder")


def hook_parts(model: nn.Module, enter: Callable[..., None], exit: Callable[..., None]) -> None:
    """Call ``enter(label, module, inputs)`` and ``exit(label, module, inputs, output)`` around the forward of every
    module of every part in :data:`PARTS`. Some parts are never called through their own forward (the R-GCN runs
    from ``encode_graph``, the heads' ``ModuleDict`` is indexed, the decoder runs from ``forced``/``greedy``), so
    every descendant is hooked. Embeddings are shared between parts and are left out."""
    for label in PARTS:
        try:
            part = model.get_submodule(label)
        except AttributeError:  # an ablation without this view
            continue
        for module in part.modules():
            if not isinstance(module, nn.Embedding):
                module.register_forward_pre_hook(functools.partial(enter, label))
                module.register_forward_hook(functools.partial(exit, label))


class StepProfiler:
    """Times the modules of the C2-CRS model within each training step and profiles its operators."""

    def __init__(self) -> None:
        self.module_seconds: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.step_seconds: Dict[str, float] = defaultdict(float)
        self.steps: Dict[str, int] = defaultdict(int)
        self.operators: Dict[str, List[Dict[str, float]]] = {}
        self._hooked: Optional[nn.Module] = None
        self._started: Dict[str, float] = {}
        self._depth: Dict[str, int] = defaultdict(int)
        self._stage: Optional[str] = None

    def hook(self, model: nn.Module) -> None:
        # a part is timed from its outermost active call
        hook_parts(model, self._enter, self._exit)
        self._hooked = model

    def _enter(self, label: str, module: nn.Module, inputs) -> None:
        if self._stage is not None:
            if self._depth[label] == 0:
                self._started[label] = time.perf_counter()
            self._depth[label] += 1

    def _exit(self, label: str, module: nn.Module, inputs, output) -> None:
        if self._stage is not None and self._depth[label] > 0:
            self._depth[label] -= 1
            if self._depth[label] == 0:
                self.module_seconds[self._stage][label] += time.perf_counter() - self._started.pop(label)

    def wrap_step(self, step):
        @functools.wraps(step)
        def wrapper(system, batch, stage, mode):
            if mode != "train":
                return step(system, batch, stage, mode)
            if self._hooked is not system.model:
                self.hook(system.model)
            self.steps[stage] += 1
            if self.steps[stage] == 1:  # warm-up: allocator and thread pool
                return step(system, batch, stage, mode)
            self._stage = stage
            started = time.perf_counter()
            try:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    result = step(system, batch, stage, mode)
            finally:
                self._stage = None
            self.step_seconds[stage] += time.perf_counter() - started
            averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
            merged = {row["op"]: row for row in self.operators.get(stage, [])}
            for event in averages[:TOP_OPERATORS * 2]:
                row = merged.setdefault(event.key, {"op": event.key, "self_seconds": 0.0, "calls": 0})
                row["self_seconds"] += event.self_cpu_time_total / 1e6
                row["calls"] += event.count
            self.operators[stage] = sorted(merged.values(), key=lambda r: r["self_seconds"], reverse=True)
            return result
        return wrapper

    def report(self) -> Dict[str, Dict]:
        stages = {}
        for stage, total in self.step_seconds.items():
            timed_steps = self.steps[stage] - 1
            modules = dict(self.module_seconds[stage])
            forward_modules = sum(modules.values())
            stages[stage] = {
                "timed_steps": timed_steps,
                "seconds_per_step": total / timed_steps,
                "forward_seconds_per_step": {k: v / timed_steps for k, v in modules.items()},
                # Loss functions (contrastive, copy/generation), batch transfer and glue, then autograd + Adam.
                "other_forward_and_backward_seconds_per_step": (total - forward_modules) / timed_steps,
                "top_operators": [dict(row, self_seconds=row["self_seconds"] / timed_steps)
                                  for row in self.operators[stage][:TOP_OPERATORS]],
            }
        return stages


def markdown(report: Dict) -> str:
    lines = ["# Where C2-CRS's training time goes (CPU)", "",
             f"Commit `{report['git_commit']}`, torch {report['torch']}, {report['threads']} threads, "
             f"{report['steps']} training steps per stage (the first is a warm-up and not counted), batch sizes of "
             f"the cpu profile.", ""]
    for stage, numbers in report["stages"].items():
        total = numbers["seconds_per_step"]
        lines += [f"## {stage}: {total:.2f} s per step", "", "| part | s per step | share |", "|---|---|---|"]
        for name, seconds in sorted(numbers["forward_seconds_per_step"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| forward: {name} | {seconds:.3f} | {seconds / total:.0%} |")
        rest = numbers["other_forward_and_backward_seconds_per_step"]
        lines += [f"| losses, backward, update | {rest:.3f} | {rest / total:.0%} |", "",
                  "| operator (self CPU time) | s per step | share | calls per step |", "|---|---|---|---|"]
        for row in numbers["top_operators"]:
            calls = row["calls"] / numbers["timed_steps"]
            lines.append(f"| `{row['op']}` | {row['self_seconds']:.3f} | {row['self_seconds'] / total:.0%} | "
                         f"{calls:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--steps", type=int, default=3, help="training steps per stage (>= 2; the first warms up)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override after the cpu profile's (e.g. a smaller model)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps: at least 2 (the first step is a warm-up and is not timed)")
    require_built_data(parser, args.data_root)
    import crslab_c2crs.system.c2crs as c2crs
    from crslab_c2crs.cli import build_parser, run

    tracker = child.StageTracker()
    child.install_timers(tracker)
    profiler = StepProfiler()
    c2crs.C2CRSSystem.step = profiler.wrap_step(c2crs.C2CRSSystem.step)
    caps = child.cap_overrides(child.parse_caps([f"train.*={args.steps}", "valid.*=1", "test.*=1"]),
                               yaml.safe_load((ROOT / CONFIGS["C2CRS"]).read_text(encoding="utf-8")))
    overrides = ["checkpoint_dir=bench_profile"] + PROFILES["cpu"]["overrides"]["C2CRS"] + caps + args.set
    run(build_parser().parse_args(crslab_argv("C2CRS", args.data_root, args.seed, overrides)))
    report = {"git_commit": git_commit(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "steps": args.steps, "stages": profiler.report()}
    write_report(Path(args.out) / "c2crs-profile", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
