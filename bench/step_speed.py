"""Training-step time of C2-CRS under speed options, as same-run ratios: every option on the same batches, interleaved.

Usage::

    python -m bench.step_speed [--stages coarse,fine] [--batches 8] [--rounds 2] [--threads 2]
        [--option NAME=KEY=VALUE[,KEY=VALUE...] ...] [--data-root data] [--out bench/results] [--name NAME]

On a shared machine the wall time of the same step drifts by 10-20% from minute to minute, so separate runs cannot
show a 10% gain. Here every option has its own model (the same seed, hence the same initial weights) and its own
Adam, and each training step (forward, backward, gradient clipping, update) is timed on the same real batch for every
option in turn, the order rotated from batch to batch; a step is compared only with the other options' steps on
the same batch, moments apart. The batches are the first ``--batches`` of the stage's training plan at seed 42
(length-bucketed, batch size 256), repeated ``--rounds`` times (the first round warms up and is not counted).

Options are config overrides (``--set`` syntax); ``optimizer.KEY=VALUE`` goes to the stage's Adam (e.g.
``optimizer.fused=true``). The first option is the reference (default: none). Writes ``<NAME>.json`` and ``.md``
(default ``c2crs-step-speed``): per stage and option, seconds per step (median over batches), the median ratio of the
reference's step time to the option's on the same batch and its range over batches, and samples/s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import yaml
from loguru import logger
from tqdm import tqdm

from bench.learnability import update
from bench.redial import CONFIGS, RESULTS, ROOT, git_commit, require_built_data, write_report

DEFAULT_OPTIONS = ["fp32=", "bf16=mixed_precision=bf16", "fast_dropout=fast_dropout=true",
                   "fused_adam=optimizer.fused=true",
                   "all=mixed_precision=bf16,fast_dropout=true,optimizer.fused=true",
                   "all+checkpointing=mixed_precision=bf16,fast_dropout=true,optimizer.fused=true,"
                   "gradient_checkpointing=true"]


def parse_option(text: str) -> Tuple[str, List[str], Dict[str, Any]]:
    """``NAME=KEY=VALUE,...`` -> name, config overrides, optimizer keyword arguments."""
    name, _, spec = text.partition("=")
    if not name:
        raise ValueError(f"--option {text!r}: give it a name, NAME=KEY=VALUE,...")
    overrides: List[str] = []
    optimizer: Dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"--option {text!r}: {item!r} is not KEY=VALUE")
        if key.startswith("optimizer."):
            optimizer[key[len("optimizer."):]] = yaml.safe_load(value)
        else:
            overrides.append(item)
    return name, overrides, optimizer


def time_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Dict[str, torch.Tensor],
              stage: str) -> float:
    """Seconds of one training step: forward, backward, clipping (0.1, the config's), update."""
    started = time.perf_counter()
    update(model, optimizer, model.pretrain(batch, stage)[0])
    return time.perf_counter() - started


def training_batches(loader: Any, count: int) -> List[Dict[str, torch.Tensor]]:
    """The first ``count`` batches of the pre-training stages' training plan at seed 42 (coarse and fine batches
    are the same samples, collated alike)."""
    import random

    from crslab_c2crs.data.batching import DEFAULT_POOL_BATCHES, bucketed_batches

    entries = [{"sample": sample} for sample in loader.recommender_turns()]
    plan = bucketed_batches([len(entry["sample"]["context_seq"]) for entry in entries], 256, True,
                            DEFAULT_POOL_BATCHES, random.Random(42))
    return [loader.pretrain_batchify([entries[i] for i in index]) for index in plan[:count]]


def summarise(times: Dict[str, List[float]], rows: List[int]) -> Dict[str, Any]:
    names = list(times)
    reference = times[names[0]]
    result: Dict[str, Any] = {}
    for name in names:
        ratios = [ref / own for ref, own in zip(reference, times[name])]
        result[name] = {"seconds_per_step": statistics.median(times[name]),
                        "samples_per_s": sum(rows) / sum(times[name]),
                        "speedup_median": statistics.median(ratios), "speedup_min": min(ratios),
                        "speedup_max": max(ratios), "step_seconds": times[name]}
    return result


def markdown(report: Dict[str, Any]) -> str:
    lines = ["# C2-CRS training-step speed under speed options (CPU, same-run ratios)", "",
             f"Commit `{report['git_commit']}`, torch {report['torch']}, {report['threads']} threads; "
             f"{report['batches']} real training batches of 256 per stage, every option's step on the same batch in "
             f"turn (rotated order), {report['rounds'] - 1} timed round(s) after a warm-up round. Speed-up: the "
             f"reference's ({report['reference']}) step time over the option's on the same batch, median and range "
             "over batches. `python -m bench.step_speed`.", ""]
    for stage, options in report["stages"].items():
        lines += [f"## {stage}", "", "| option | overrides | s per step (median) | samples/s | speed-up | range |",
                  "|---|---|---|---|---|---|"]
        for name, row in options.items():
            lines.append(f"| {name} | {' '.join(report['options'][name]) or '-'} | {row['seconds_per_step']:.2f} | "
                         f"{row['samples_per_s']:.1f} | **{row['speedup_median']:.2f}x** | "
                         f"{row['speedup_min']:.2f}-{row['speedup_max']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def docs_table(report: Dict[str, Any]) -> str:
    """Markdown for the docs: a row per option, each stage's seconds per step and median same-batch speed-up."""
    stages = list(report["stages"])
    lines = ["| option | " + " | ".join(f"{stage} s/step | {stage} speed-up" for stage in stages) + " |",
             "|---|" + "---|---|" * len(stages)]
    for name in report["options"]:
        cells = [f"{report['stages'][stage][name]['seconds_per_step']:.2f} | "
                 f"**{report['stages'][stage][name]['speedup_median']:.2f}x**" for stage in stages]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="coarse,fine")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the batches; the first warms up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--option", action="append", default=None, metavar="NAME=KEY=VALUE,...")
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default="c2crs-step-speed")
    args = parser.parse_args(argv)
    stages = args.stages.split(",")
    if not set(stages) <= {"coarse", "fine"}:
        parser.error(f"--stages: pre-training stages only (coarse, fine), got {args.stages!r}")
    if args.batches < 1 or args.rounds < 2:
        parser.error("--batches must be >= 1 and --rounds >= 2 (the first round warms up)")
    try:
        options = [parse_option(text) for text in (args.option or DEFAULT_OPTIONS)]
    except ValueError as error:
        parser.error(str(error))
    require_built_data(parser, args.data_root)

    import crslab_c2crs  # noqa: F401  (applies the CRSLab patches)
    from crslab_c2crs.compat import relocate
    from crslab_c2crs.config import load_config
    from crslab_c2crs.data.dataloader import C2CRSDataLoader
    from crslab_c2crs.data.dataset import ReDialReviewDataset
    from crslab_c2crs.model.c2crs import C2CRSModel

    torch.set_num_threads(args.threads)
    relocate(Path(args.data_root).resolve())
    base = load_config(ROOT / CONFIGS["C2CRS"], [])
    dataset = ReDialReviewDataset(base, "nltk")
    loader = C2CRSDataLoader(base, dataset.train_data, dataset.vocab)
    report: Dict[str, Any] = {"git_commit": git_commit(), "torch": torch.__version__, "threads": args.threads,
                              "batches": args.batches, "rounds": args.rounds, "reference": options[0][0],
                              "options": {name: overrides + [f"optimizer.{k}={v}" for k, v in optimizer.items()]
                                          for name, overrides, optimizer in options}, "stages": {}}
    batches = training_batches(loader, args.batches)
    rows = [int(batch["context"].shape[0]) for batch in batches]
    for stage in stages:
        runs = []
        for name, overrides, optimizer_kwargs in options:
            opt = load_config(ROOT / CONFIGS["C2CRS"], overrides)
            torch.manual_seed(42)
            model = C2CRSModel(opt, torch.device("cpu"), dataset.vocab, dataset.side_data).train()
            adam = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, **optimizer_kwargs)
            runs.append((name, model, adam))
        times: Dict[str, List[float]] = {name: [] for name, _, _ in runs}
        with tqdm(total=args.rounds * len(batches) * len(runs), desc=f"step speed {stage}") as progress:
            for round_ in range(args.rounds):
                for index, batch in enumerate(batches):
                    shift = index % len(runs)
                    for name, model, adam in runs[shift:] + runs[:shift]:
                        seconds = time_step(model, adam, batch, stage)
                        if round_ > 0:
                            times[name].append(seconds)
                        progress.update()
        report["stages"][stage] = summarise(times, rows * (args.rounds - 1))
        for name, row in report["stages"][stage].items():
            logger.info(f"[step speed] {stage} {name}: {row['seconds_per_step']:.2f} s/step, "
                        f"{row['speedup_median']:.2f}x")
        del runs
    write_report(Path(args.out) / args.name, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
