"""Where C2-CRS's training memory goes, stage by stage, on the real data.

Usage::

    python -m bench.memory [--data-root data] [--seed 42] [--out bench/results] [--set KEY=VALUE ...] [--name NAME]
    python -m bench.memory --whole [...]           # the quick start's whole run, peak per stage and pass

Runs C2-CRS through ``run_crslab.py`` in this process with the config's own batch sizes, one training step per stage
(coarse, fine, rec, conv) on that stage's **longest** training batch (the training batches are put longest first,
by context tokens), one validation and one test batch. For every training step it records:

* the resident memory before the step (data, model and what earlier stages left) and the step's peak (Linux
  ``VmHWM``, reset before the step through ``/proc/self/clear_refs``);
* the bytes of the trainable parameters, of their gradients and of the optimiser's state after the step;
* the activations held for backward, per part of the model (``torch.autograd.graph.saved_tensors_hooks``: every
  tensor autograd saves, each storage counted once, parameters and buffers left out), and the batch's shape.

Before the first stage it records the memory after the imports and after the data and model are built. Writes
``<NAME>.json`` and ``.md`` (default ``c2crs-memory``).

With ``--whole`` it runs the quick start's budget instead (the Makefile's ``QUICK`` overrides, its own checkpoint
folder) and records the process's peak (``VmHWM``) and the largest resident set sampled (every 50 ms) during each
stage's training, validation and test passes, with the ``MALLOC_*`` and ``LD_PRELOAD`` settings it ran under (an
allocator is chosen before the process starts: ``MALLOC_ARENA_MAX=2 python -m bench.memory --whole ...``). Default
name ``c2crs-memory-whole``. Memory does not depend on the machine's load, so this can
run beside other work.
"""
from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from bench.profile import PARTS, hook_parts
from bench.redial import RESULTS, ROOT, crslab_argv, git_commit, quick_start_overrides, require_built_data, write_report

MB = 1024 * 1024
OTHER = "losses and glue"


def _status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Reset the process's peak resident memory (``VmHWM``) to its current one (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def tensors_mb(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MB


def longest_first(bucketed: Callable[..., List[List[int]]]) -> Callable[..., List[List[int]]]:
    """``bucketed_batches`` with the training batches (``shuffle``) ordered by their longest sample, longest first."""

    @functools.wraps(bucketed)
    def batches(lengths, batch_size, shuffle, pool_batches, *args, **kwargs):
        result = bucketed(lengths, batch_size, shuffle, pool_batches, *args, **kwargs)
        if shuffle:
            result.sort(key=lambda batch: -max((lengths[index] for index in batch), default=0))
        return result

    return batches


class SavedActivations:
    """Bytes of the tensors autograd saves for backward, by the model part whose forward saved them."""

    def __init__(self) -> None:
        self._parts: List[str] = []
        self._hooked: Optional[nn.Module] = None
        self._excluded: set = set()
        self._seen: set = set()
        self.bytes: Dict[str, int] = defaultdict(int)

    def hook(self, model: nn.Module) -> None:
        if self._hooked is model:
            return
        hook_parts(model, self._enter, self._exit)
        self._excluded = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        self._hooked = model

    def _enter(self, label: str, module: nn.Module, inputs: Any) -> None:
        self._parts.append(label)

    def _exit(self, label: str, module: nn.Module, inputs: Any, output: Any) -> None:
        self._parts.pop()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.layout != torch.strided:  # the R-GCN's sparse adjacency is built once and cached, not per step
            return tensor
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in self._excluded and pointer not in self._seen:
            self._seen.add(pointer)
            self.bytes[self._parts[-1] if self._parts else OTHER] += storage.nbytes()
        return tensor

    def measure(self):
        """Context manager: count the tensors saved while it is open (from a clean count)."""
        # a checkpointed layer's recomputation in backward stops as soon as it has what it needs, past its forward
        # hooks' exits: labels it pushed are left behind, so every measured step starts from an empty stack
        self._parts.clear()
        self._seen.clear()
        self.bytes.clear()
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)


class StageMemory:
    """The memory records of every stage's training step (see module docstring)."""

    def __init__(self) -> None:
        self.activations = SavedActivations()
        self.stages: Dict[str, Dict[str, Any]] = {}
        self.setup: Dict[str, float] = {"after imports": _status_mb("VmRSS")}

    def wrap_init(self, init):
        @functools.wraps(init)
        def wrapper(system, *args, **kwargs):
            init(system, *args, **kwargs)
            self.setup["data and model built"] = _status_mb("VmRSS")
        return wrapper

    def wrap_step(self, step):
        @functools.wraps(step)
        def wrapper(system, batch, stage, mode):
            if mode != "train" or stage in self.stages:
                return step(system, batch, stage, mode)
            self.activations.hook(system.model)
            before = _status_mb("VmRSS")
            reset_peak()
            with self.activations.measure():
                result = step(system, batch, stage, mode)
            peak = _status_mb("VmHWM")
            trainable = [p for p in system.model.parameters() if p.requires_grad]
            optimizer_state = [value for state in system.optimizer.state.values() for value in state.values()
                               if isinstance(value, torch.Tensor)]
            self.stages[stage] = {
                "rss_before_mb": before, "peak_rss_mb": peak,
                "parameters_mb": tensors_mb(trainable),
                "gradients_mb": tensors_mb(p.grad for p in trainable if p.grad is not None),
                "optimizer_state_mb": tensors_mb(optimizer_state),
                "activations_mb": {part: size / MB for part, size in sorted(
                    self.activations.bytes.items(), key=lambda kv: -kv[1])},
                "batch": {key: list(value.shape) for key, value in batch.items()
                          if key in ("context", "review", "response", "context_entities")},
            }
            return result
        return wrapper


class PassPeaks:
    """The largest resident set seen during each stage's passes of a whole run (``coarse/train``, ``rec/val``,
    ``conv/test``, ...), sampled every ``every`` seconds by a thread and at every step; a pass's label holds from
    its first step until the next pass's first step, so what a pass leaves behind counts to it. Use as a context
    manager."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.label = "setup"
        self.peaks: Dict[str, float] = {}
        # at the first step of each pass: the resident set and the bytes of every live tensor (a gap between them
        # is memory the allocator holds but no tensor uses)
        self.starts: Dict[str, Dict[str, float]] = {}
        # per pass: samples and seconds inside its steps
        self.speed: Dict[str, Dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def record(self) -> None:
        label, rss = self.label, _status_mb("VmRSS")
        self.peaks[label] = max(self.peaks.get(label, 0.0), rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.record()

    def wrap_step(self, step):
        @functools.wraps(step)
        def wrapper(system, batch, stage, mode):
            label = f"{stage}/{mode}"
            if label != self.label:
                self.starts[label] = {"rss_mb": _status_mb("VmRSS"), "live_tensors_mb": live_tensors_mb()}
            self.label = label
            self.record()
            started = time.perf_counter()
            output = step(system, batch, stage, mode)
            speed = self.speed.setdefault(label, {"samples": 0, "step_seconds": 0.0})
            speed["samples"] += int(batch["context"].shape[0])
            speed["step_seconds"] += time.perf_counter() - started
            return output
        return wrapper

    def __enter__(self) -> "PassPeaks":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.record()


def live_tensors_mb() -> float:
    """MiB of the storages of every tensor the garbage collector can reach (each storage once)."""
    storages = {}
    for obj in gc.get_objects():
        try:
            # type(), not isinstance(): isinstance reads __class__, which deprecated module proxies warn about
            if issubclass(type(obj), torch.Tensor) and obj.layout == torch.strided and obj.device.type == "cpu":
                storage = obj.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, ReferenceError):  # tensors without storage (meta, freed weak proxies)
            continue
    return sum(storages.values()) / MB


def allocator_settings() -> Dict[str, str]:
    """The environment variables that choose or tune the C allocator of this process."""
    return {key: value for key, value in sorted(os.environ.items())
            if key.startswith("MALLOC_") or key == "LD_PRELOAD"}


def whole_markdown(report: Dict[str, Any]) -> str:
    settings = ", ".join(f"`{key}={value}`" for key, value in report["allocator"].items()) or "glibc defaults"
    lines = ["# C2-CRS's memory over a whole run (CPU)", "",
             f"Commit `{report['git_commit']}`, torch {report['torch']}, overrides {report['overrides'] or 'none'}, "
             f"allocator: {settings}. The quick start's budget (the Makefile's `QUICK`). Process peak (`VmHWM`): "
             f"**{report['process_peak_mb'] / 1024:.2f} GiB** ({report['process_peak_mb'] * 2**20 / 1e9:.2f} GB). "
             "`python -m bench.memory --whole`.", "",
             "| stage / pass | largest resident set sampled (GiB) | at its first step: resident | live tensors "
             "| samples/s in its steps |",
             "|---|---|---|---|---|"]
    for label, mb in report["passes"].items():
        start = report.get("pass_starts", {}).get(label)
        cells = [f"{start['rss_mb'] / 1024:.2f}", f"{start['live_tensors_mb'] / 1024:.2f}"] if start else ["", ""]
        speed = report.get("pass_speed", {}).get(label)
        cells.append(f"{speed['samples'] / speed['step_seconds']:.1f}" if speed else "")
        lines.append(f"| {label} | {mb / 1024:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(report: Dict[str, Any]) -> str:
    setup = ", ".join(f"{name} {mb:.0f} MB" for name, mb in report["setup"].items())
    lines = ["# Where C2-CRS's training memory goes (CPU)", "",
             f"Commit `{report['git_commit']}`, torch {report['torch']}, overrides {report['overrides'] or 'none'}. "
             "One training step per stage on its longest batch (by context tokens), the config's batch sizes. "
             f"Resident memory: {setup}. `python -m bench.memory`.", "",
             "| stage | batch | RSS before (MiB) | step peak | trainable parameters | gradients | optimiser state | "
             "activations for backward |", "|---|---|---|---|---|---|---|---|"]
    for stage, row in report["stages"].items():
        batch = ", ".join(f"{key} {'x'.join(map(str, shape))}" for key, shape in row["batch"].items())
        lines.append(f"| {stage} | {batch} | {row['rss_before_mb']:.0f} | **{row['peak_rss_mb']:.0f}** | "
                     f"{row['parameters_mb']:.0f} | {row['gradients_mb']:.0f} | {row['optimizer_state_mb']:.0f} | "
                     f"{sum(row['activations_mb'].values()):.0f} |")
    lines += ["", "Activations held for backward by part (MiB):", "",
              "| stage | " + " | ".join(PARTS + (OTHER,)) + " |", "|---|" + "---|" * (len(PARTS) + 1)]
    for stage, row in report["stages"].items():
        cells = [f"{row['activations_mb'].get(part, 0.0):.0f}" for part in PARTS + (OTHER,)]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison(records: List[Tuple[str, Dict[str, Any]]]) -> str:
    """Markdown for the docs: each stage's step peak and activations for backward in every record, labelled (the
    first is the reference the others' savings are against)."""
    (_, reference), labels = records[0], [label for label, _ in records]
    lines = ["| stage | " + " | ".join(f"step peak, {label}" for label in labels) + " | "
             + " | ".join(f"activations, {label}" for label in labels) + " |",
             "|---|" + "---|" * (2 * len(records))]
    for stage, row in reference["stages"].items():
        peaks = [record["stages"][stage]["peak_rss_mb"] / 1024 for _, record in records]
        activations = [sum(record["stages"][stage]["activations_mb"].values()) / 1024 for _, record in records]
        cells = [f"{peaks[0]:.2f} GiB"] + [f"**{peak:.2f} GiB** ({peak - peaks[0]:+.2f})" for peak in peaks[1:]]
        cells += [f"{size:.2f} GiB" for size in activations]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. a memory option; it is named in the report")
    parser.add_argument("--name", default=None,
                        help="file name of the report, without extension (default c2crs-memory[-whole])")
    parser.add_argument("--whole", action="store_true", help="the quick start's whole run, peak per stage and pass")
    args = parser.parse_args(argv)
    require_built_data(parser, args.data_root)
    if not Path("/proc/self/clear_refs").exists():
        parser.error("bench.memory reads peak memory from Linux's /proc/self (clear_refs, VmHWM)")
    import crslab_c2crs.data.batching as batching
    import crslab_c2crs.system.c2crs as c2crs
    from crslab_c2crs.cli import build_parser, run

    if args.whole:
        overrides = [flag for flag in quick_start_overrides() if not flag.startswith("checkpoint_dir=")]
        peaks = PassPeaks()
        c2crs.C2CRSSystem.step = peaks.wrap_step(c2crs.C2CRSSystem.step)
        reset_peak()
        with peaks:
            run(build_parser().parse_args(crslab_argv(
                "C2CRS", args.data_root, args.seed, [*overrides, "checkpoint_dir=bench_memory_whole", *args.set])))
        report = {"git_commit": git_commit(), "torch": torch.__version__, "overrides": args.set,
                  "allocator": allocator_settings(), "passes": peaks.peaks, "pass_starts": peaks.starts,
                  "pass_speed": peaks.speed,
                  # the kernel updates VmHWM lazily, so a sample may exceed it by a few pages
                  "process_peak_mb": max(_status_mb("VmHWM"), *peaks.peaks.values())}
        write_report(Path(args.out) / (args.name or "c2crs-memory-whole"), report, whole_markdown(report))
        return 0

    meter = StageMemory()
    batching.bucketed_batches = longest_first(batching.bucketed_batches)
    c2crs.C2CRSSystem.__init__ = meter.wrap_init(c2crs.C2CRSSystem.__init__)
    c2crs.C2CRSSystem.step = meter.wrap_step(c2crs.C2CRSSystem.step)
    steps = [f"{stage}.{key}=1" for stage in ("coarse", "fine", "rec", "conv")
             for key in ("epoch", "max_batches", "valid_max_batches", "test_max_batches")]
    run(build_parser().parse_args(crslab_argv(
        "C2CRS", args.data_root, args.seed, ["checkpoint_dir=bench_memory", *steps, *args.set])))
    report = {"git_commit": git_commit(), "torch": torch.__version__, "overrides": args.set,
              "setup": meter.setup, "stages": meter.stages}
    write_report(Path(args.out) / (args.name or "c2crs-memory"), report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
