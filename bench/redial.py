"""Benchmark C2-CRS against CRSLab's KGSF and KBRD on the built real ReDial data, in one reproducible run.

Usage::

    python -m bench.redial --profile cpu [--ablations] [--kernels stock,fast] [--data-root data]

Every model is trained and tested through ``run_crslab.py`` (CRSLab's runner and our evaluator) with the same
seed, in its own process (so peak memory is per model), once per R-GCN kernel: CRSLab's stock ``RGCNConv`` and
our exact fast kernel. Writes ``bench/results/redial-<profile>.json`` and ``.md`` and a PNG of the validation
Recall@10 per epoch and of the pre-training losses.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from loguru import logger

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONFIGS = {"KBRD": "config/kbrd/redial.yaml", "KGSF": "config/kgsf/redial.yaml", "C2CRS": "config/c2crs/redial.yaml"}

# Epoch budgets. The same rules for every model: equal rec and conv epochs and batch sizes; pre-training
# (KGSF's MIM, C2-CRS's coarse + fine) gets the same number of epochs in total.
PROFILES: Dict[str, Dict[str, List[str]]] = {
    "cpu": {
        "KBRD": ["rec.epoch=4", "rec.batch_size=256", "conv.epoch=2", "conv.batch_size=128"],
        "KGSF": ["pretrain.epoch=2", "pretrain.batch_size=256", "rec.epoch=4", "rec.batch_size=256",
                 "conv.epoch=2", "conv.batch_size=128"],
        "C2CRS": ["coarse.epoch=1", "fine.epoch=1", "rec.epoch=4", "rec.batch_size=256",
                  "conv.epoch=2", "conv.batch_size=128"],
    },
    "paper": {"KBRD": [], "KGSF": [], "C2CRS": []},
}
ABLATIONS = ("no_coarse", "no_fine", "no_pretrain", "multitask", "no_history", "no_kg", "no_review")
TABLE = (("R@1", "hit@1"), ("R@10", "hit@10"), ("R@50", "hit@50"), ("MRR@10", "mrr@10"), ("NDCG@10", "ndcg@10"),
         ("BLEU-1", "bleu@1"), ("BLEU-2", "bleu@2"), ("D-2", "dist_ratio@2"), ("D-3", "dist_ratio@3"),
         ("D-4", "dist_ratio@4"), ("D-2 (CRSLab)", "dist@2"), ("D-3 (CRSLab)", "dist@3"), ("D-4 (CRSLab)", "dist@4"))
PAPER = {  # C2-CRS paper, Tables 1 and 2 (ReDial); Distinct is corpus-level unique/total n-grams there.
    "KBRD": {"hit@1": 0.031, "hit@10": 0.150, "hit@50": 0.336, "dist_ratio@2": 0.086, "dist_ratio@3": 0.153,
             "dist_ratio@4": 0.265},
    "KGSF": {"hit@1": 0.039, "hit@10": 0.183, "hit@50": 0.378, "dist_ratio@2": 0.114, "dist_ratio@3": 0.204,
             "dist_ratio@4": 0.282},
    "C2CRS": {"hit@1": 0.053, "hit@10": 0.233, "hit@50": 0.407, "dist_ratio@2": 0.163, "dist_ratio@3": 0.291,
              "dist_ratio@4": 0.417},
}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_one(name: str, model: str, overrides: List[str], args: argparse.Namespace, workdir: Path) -> Dict:
    """Train and test one configuration in a child process; return its result JSON."""
    out = workdir / f"{name}.json"
    command = [sys.executable, "-m", "bench.child", "--out", str(out), "-c", str(ROOT / CONFIGS[model]),
               "--data-root", args.data_root, "--seed", str(args.seed), "-g", "-1"]
    for override in overrides:
        command += ["--set", override]
    logger.info(f"[bench] {name}: {' '.join(command[2:])}")
    started = time.time()
    log = workdir / f"{name}.log"
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run(command, cwd=workdir, stdout=handle, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {proc.returncode}); see {log}")
    result = json.loads(out.read_text(encoding="utf-8"))
    result.update(name=name, model=model, overrides=overrides, bench_wall_seconds=time.time() - started)
    logger.info(f"[bench] {name}: {result['bench_wall_seconds']:.0f}s, test {result['test']}")
    return result


def curves(result: Dict) -> Dict[str, List[float]]:
    """Validation Recall@10 per rec epoch and training loss per pre-training epoch, from the run's history."""
    valid_r10, pretrain_loss = [], []
    for entry in result["history"]:
        metrics = entry["metrics"]
        if entry["mode"] == "val" and "hit@10" in metrics:
            valid_r10.append(metrics["hit@10"])
        if entry["mode"] == "train" and not any(k.startswith("hit@") or k in ("rec_loss", "gen_loss")
                                                for k in metrics):
            loss = metrics.get("loss", metrics.get("info_loss"))
            if loss is not None:
                pretrain_loss.append(loss)
    return {"valid_recall@10": valid_r10, "pretrain_loss": pretrain_loss}


def speed_table(runs: List[Dict]) -> List[Dict[str, Any]]:
    """Per run: wall seconds and samples/s per stage, peak RSS, and ratios to KGSF with the same kernel."""
    rows = []
    for run in runs:
        reference = next((r for r in runs if r["model"] == "KGSF" and r["kernel"] == run["kernel"]
                          and not r.get("ablation")), None)
        total = sum(stage["seconds"] for stage in run["stages"].values())
        row = {"name": run["name"], "model": run["model"], "kernel": run["kernel"], "train_seconds": total,
               "peak_rss_mb": run["peak_rss_mb"], "stages": run["stages"]}
        if reference:
            ref_total = sum(stage["seconds"] for stage in reference["stages"].values())
            row["time_vs_kgsf"] = total / ref_total if ref_total else None
            row["rss_vs_kgsf"] = run["peak_rss_mb"] / reference["peak_rss_mb"]
        rows.append(row)
    return rows


def markdown(report: Dict) -> str:
    lines = [f"# ReDial benchmark, profile `{report['profile']}`", "",
             f"Commit `{report['git_commit']}`, {report['machine']}, torch {report['torch']}, "
             f"{report['threads']} threads, seed {report['seed']}. D-n = distinct n-grams / all n-grams "
             f"(paper definition); D-n (CRSLab) = distinct n-grams / sentences.", "",
             "## Quality (test set; fast R-GCN kernel runs)", "",
             "| model | " + " | ".join(label for label, _ in TABLE) + " |",
             "|---" * (len(TABLE) + 1) + "|"]
    for run in report["runs"]:
        if run["kernel"] != "fast":
            continue
        cells = [f"{run['test'].get(key, float('nan')):.4f}" for _, key in TABLE]
        lines.append(f"| {run['name']} | " + " | ".join(cells) + " |")
    for model, paper in PAPER.items():
        cells = [f"{paper[key]:.3f}" if key in paper else "" for _, key in TABLE]
        lines.append(f"| {model} (paper) | " + " | ".join(cells) + " |")
    lines += ["", "## Speed (training + validation + test wall time per stage; ratios to KGSF, same kernel)", "",
              "| run | kernel | stages (s, samples/s) | total s | x KGSF | peak RSS MB | x KGSF |",
              "|---|---|---|---|---|---|---|"]
    for row in report["speed"]:
        stages = ", ".join(f"{name} {s['seconds']:.0f}s {s['samples_per_s']:.0f}/s"
                           for name, s in row["stages"].items())
        lines.append(f"| {row['name']} | {row['kernel']} | {stages} | {row['train_seconds']:.0f} | "
                     f"{row.get('time_vs_kgsf') or float('nan'):.2f} | {row['peak_rss_mb']:.0f} | "
                     f"{row.get('rss_vs_kgsf') or float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def plot(report: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in report["runs"]:
        if run["kernel"] != "fast":
            continue
        curve = run["curves"]
        if curve["valid_recall@10"]:
            left.plot(range(1, len(curve["valid_recall@10"]) + 1), curve["valid_recall@10"], marker="o",
                      label=run["name"])
        if curve["pretrain_loss"]:
            right.plot(range(1, len(curve["pretrain_loss"]) + 1), curve["pretrain_loss"], marker="o",
                       label=run["name"])
    left.set(title="Validation Recall@10 per rec epoch", xlabel="epoch", ylabel="Recall@10")
    right.set(title="Pre-training loss per epoch", xlabel="epoch", ylabel="loss")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--models", default="KBRD,KGSF,C2CRS")
    parser.add_argument("--kernels", default="stock,fast", help="R-GCN kernels to time: stock, fast or both")
    parser.add_argument("--ablations", action="store_true", help="also run the Table 4 ablations of C2-CRS")
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.data_root = str(Path(args.data_root).resolve())
    out_dir = Path(args.out)
    workdir = out_dir / f"runs-{args.profile}"
    workdir.mkdir(parents=True, exist_ok=True)
    import torch

    plan = []
    for kernel in args.kernels.split(","):
        for model in args.models.split(","):
            plan.append((f"{model}-{kernel}", model, kernel, None))
    if args.ablations:
        plan += [(f"C2CRS-{ablation}", "C2CRS", "fast", ablation) for ablation in ABLATIONS]
    runs = []
    for name, model, kernel, ablation in plan:
        overrides = PROFILES[args.profile][model] + [f"fast_rgcn={'true' if kernel == 'fast' else 'false'}"]
        if ablation:
            overrides.append(f"ablation={ablation}")
        result = run_one(name, model, overrides, args, workdir)
        result.update(kernel=kernel, ablation=ablation, curves=curves(result))
        runs.append(result)
    report = {"profile": args.profile, "git_commit": git_commit(), "machine": f"{platform.machine()} "
              f"{os.cpu_count()} cores, {platform.platform()}", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "seed": args.seed, "epochs": PROFILES[args.profile],
              "runs": [{k: v for k, v in run.items() if k not in ("history", "config")} for run in runs],
              "speed": speed_table(runs)}
    stem = out_dir / f"redial-{args.profile}"
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    Path(f"{stem}.md").write_text(markdown(report), encoding="utf-8")
    plot(report, Path(f"{stem}.png"))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
