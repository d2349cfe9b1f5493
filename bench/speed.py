"""Training and decoding speed of the new path against the previous one, every model, in one run.

Usage::

    python -m bench.speed [--baseline 427dc2a] [--models C2CRS,KGSF,KBRD] [--set KEY=VALUE ...] [--name speed-cpu]
        [--data-root data]

For each model, each stage is run for a fixed number of training steps (and the conv test pass for a fixed number
of batches of greedy decoding) twice, each time in its own process: once with the code of ``--baseline`` (a git
worktree of that commit: CRSLab's batch order, the explicit attention, the previous kernels) and once with this
checkout (length bucketing, SDPA attention, everything else of the fast-training work). Batch sizes are the cpu
profile's (pre-training and rec 256, conv 128). Writes ``bench/results/speed-cpu.{json,md}`` with samples/s,
seconds per step, peak RSS and new/old ratios per stage, and a projection of the wall time of the paper's whole
C2-CRS schedule on this machine. ``--set`` overrides apply to the new path only (e.g. C2-CRS's speed options, which
the old code does not know); ``--name`` names the report.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from loguru import logger

from bench.redial import CONFIGS, RESULTS, ROOT, crslab_argv, git_commit, require_built_data, write_report

BASELINE = "427dc2a"  # main before the fast-training work
# Both paths use the fast R-GCN kernel (the previous one in the old checkout), so the ratios show this work's
# gains, not the stock kernel's cost (bench/results/rgcn.json has that).
BATCH = {"C2CRS": ["coarse.batch_size=256", "fine.batch_size=256", "rec.batch_size=256", "conv.batch_size=128",
                   "coarse.epoch=1", "fine.epoch=1", "rec.epoch=1", "conv.epoch=1"],
         "KGSF": ["pretrain.batch_size=256", "rec.batch_size=256", "conv.batch_size=128", "pretrain.epoch=1",
                  "rec.epoch=1", "conv.epoch=1"],
         "KBRD": ["rec.batch_size=256", "conv.batch_size=128", "rec.epoch=1", "conv.epoch=1"]}
# Training steps per stage, one validation batch, test batches (greedy decoding in the conv stage).
CAPS = ["train.pretrain={pretrain}", "train.rec={rec}", "train.conv={conv}", "valid.*=1", "test.rec=1",
        "test.conv={test}"]
STEPS = {"pretrain": 6, "rec": 12, "conv": 8, "test": 8}
# The paper's schedule (section 5.1.4 / reference notes): 13 coarse and 12 fine epochs; rec and conv stop early.
PAPER_EPOCHS = {"coarse": 13, "fine": 12}
STAGE_ORDER = ("pretrain", "coarse", "fine", "rec", "conv")


def worktree(ref: str, parent: Path) -> Path:
    """A detached checkout of ``ref`` under ``parent`` (removed with it)."""
    path = parent / f"baseline-{ref}"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def run_path(model: str, tree: Path, args: argparse.Namespace, workdir: Path, label: str) -> Dict[str, Any]:
    out = workdir / f"{model}-{label}.json"
    caps = [cap.format(**STEPS) for cap in CAPS]
    overrides = BATCH[model] + ["fast_rgcn=true"]
    overrides += [f"checkpoint_dir=speed_{model}_{label}"] if model == "C2CRS" else []
    overrides += args.set if label == "new" else []
    # -P: the script folder (bench/, which has a profile.py) must not shadow the standard library
    command = [sys.executable, "-P", str(ROOT / "bench" / "speed_child.py"), "--out", str(out)]
    command += [part for cap in caps for part in ("--cap", cap)] + ["--"]
    argv = crslab_argv(model, args.data_root, args.seed, overrides)
    # each checkout runs with its own config file (the old one does not know the new keys)
    argv[argv.index("-c") + 1] = str(tree / CONFIGS[model])
    command += argv
    env = dict(os.environ, PYTHONPATH=str(tree))
    logger.info(f"[speed] {model} {label}: {tree}")
    started = time.time()
    with open(workdir / f"{model}-{label}.log", "w", encoding="utf-8") as log:
        proc = subprocess.run(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{model} {label} failed (exit {proc.returncode}); see {workdir}/{model}-{label}.log")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["wall_seconds"] = time.time() - started
    return result


def ratios(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """Per stage: samples/s old and new (training; test decoding for ``conv-test``) and new/old."""
    table = {}
    for stage, numbers in new["stages"].items():
        before = old["stages"].get(stage, {})
        for kind, key in (("train", "samples_per_s"), ("test", "test_samples_per_s")):
            if kind == "test" and stage != "conv":
                continue  # one rec test batch (scoring only) is timed, too little to compare
            if numbers.get(key) and before.get(key):
                name = stage if kind == "train" else f"{stage}-test"
                table[name] = {"old": before[key], "new": numbers[key], "ratio": numbers[key] / before[key]}
    return table


def epoch_sizes(data_root: str) -> Dict[str, int]:
    """Training samples per epoch of each C2-CRS stage on the built data."""
    import crslab_c2crs  # noqa: F401  (applies the CRSLab patches)
    from crslab_c2crs.compat import relocate
    from crslab_c2crs.config import load_config
    from crslab_c2crs.data.dataloader import C2CRSDataLoader
    from crslab_c2crs.data.dataset import ReDialReviewDataset

    relocate(Path(data_root))
    opt = load_config(ROOT / CONFIGS["C2CRS"])
    dataset = ReDialReviewDataset(opt, "nltk")
    loader = C2CRSDataLoader(opt, dataset.train_data, dataset.vocab)
    turns = len(loader.recommender_turns())
    return {"coarse": turns, "fine": turns, "rec": len(loader.rec_process_fn()), "conv": turns}


def projection(new: Dict[str, Any], sizes: Dict[str, int], rec_epochs: int, conv_epochs: int) -> Dict[str, float]:
    """Hours of training steps for the paper's schedule at the measured samples/s (validation not included)."""
    epochs = dict(PAPER_EPOCHS, rec=rec_epochs, conv=conv_epochs)
    hours = {stage: epochs[stage] * sizes[stage] / new["stages"][stage]["samples_per_s"] / 3600
             for stage in epochs if new["stages"].get(stage, {}).get("samples_per_s")}
    hours["total"] = sum(hours.values())
    return hours


def markdown(report: Dict[str, Any]) -> str:
    lines = [f"# Training speed, new path against `{report['baseline']}`", "",
             f"Commit `{report['git_commit']}` (working tree), {report['machine']}, torch {report['torch']}, "
             f"{report['threads']} threads; new path's overrides: {' '.join(report.get('overrides', [])) or 'none'}. "
             "Each path of each model runs in its own process, one after the other "
             f"on the same machine; steps per stage: {report['steps']}; batch sizes: pre-training and rec 256, "
             "conv 128. Samples/s count training steps (forward, backward, update) or test batches (conv: greedy "
             "decoding).", "",
             "| model | stage | old samples/s | new samples/s | new/old | old s/step | new s/step |",
             "|---|---|---|---|---|---|---|"]
    for model, entry in report["models"].items():
        for stage, row in entry["ratios"].items():
            batch = 128 if stage.startswith("conv") else 256
            lines.append(f"| {model} | {stage} | {row['old']:.1f} | {row['new']:.1f} | **{row['ratio']:.2f}** | "
                         f"{batch / row['old']:.2f} | {batch / row['new']:.2f} |")
    lines += ["", "Peak resident memory (MB) of the process, and the largest seen while each stage ran (sampled every "
              "0.2 s):", "", "| model | path | process | " + " | ".join(STAGE_ORDER) + " |",
              "|---|---|---|" + "---|" * len(STAGE_ORDER)]
    for model, entry in report["models"].items():
        for path in ("old", "new"):
            run = entry[path]
            cells = [f"{run['stages'][s]['peak_rss_mb']:.0f}" if "peak_rss_mb" in run["stages"].get(s, {}) else "-"
                     for s in STAGE_ORDER]
            lines.append(f"| {model} | {path} | {run['peak_rss_mb']:.0f} | " + " | ".join(cells) + " |")
    if report.get("projection"):
        proj = report["projection"]
        lines += ["", f"Projected training-step hours of the paper's C2-CRS schedule on this machine "
                  f"(epoch sizes {report['epoch_sizes']}; {PAPER_EPOCHS['coarse']} coarse + {PAPER_EPOCHS['fine']} "
                  f"fine epochs, rec {report['rec_epochs']} and conv {report['conv_epochs']} epochs; validation "
                  "not included): " + ", ".join(f"{k} {v:.2f} h" for k, v in proj.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the previous path")
    parser.add_argument("--models", default="C2CRS,KGSF,KBRD")
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rec-epochs", type=int, default=10, help="rec epochs assumed by the projection")
    parser.add_argument("--conv-epochs", type=int, default=10, help="conv epochs assumed by the projection")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override of the new path only (repeatable)")
    parser.add_argument("--name", default="speed-cpu", help="file name of the report, without extension")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.data_root = str(Path(args.data_root).resolve())
    models = args.models.split(",")
    if not set(models) <= set(CONFIGS):
        parser.error(f"--models: unknown {sorted(set(models) - set(CONFIGS))}; choose from {sorted(CONFIGS)}")
    require_built_data(parser, args.data_root)
    import torch

    out_dir = Path(args.out).resolve()  # the runs' working folder is below it
    workdir = out_dir / "runs-speed"
    workdir.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = {"baseline": args.baseline, "git_commit": git_commit(), "torch": torch.__version__,
                              "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
                              "threads": torch.get_num_threads(), "steps": STEPS, "overrides": args.set,
                              "models": {}}
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        old_tree = worktree(args.baseline, Path(tmp))
        try:
            for model in models:
                old = run_path(model, old_tree, args, workdir, "old")
                new = run_path(model, ROOT, args, workdir, "new")
                report["models"][model] = {"old": old, "new": new, "ratios": ratios(old, new)}
                logger.info(f"[speed] {model}: {report['models'][model]['ratios']}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, capture_output=True)
    if "C2CRS" in report["models"]:
        report.update(epoch_sizes=epoch_sizes(args.data_root), rec_epochs=args.rec_epochs,
                      conv_epochs=args.conv_epochs)
        report["projection"] = projection(report["models"]["C2CRS"]["new"], report["epoch_sizes"],
                                          args.rec_epochs, args.conv_epochs)
    write_report(out_dir / args.name, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
