"""Benchmark C2-CRS against CRSLab's KGSF and KBRD and two shortcut baselines on the built real ReDial data.

Usage::

    python -m bench.redial --profile cpu [--seeds 3] [--ablations] [--variants word2vec] [--kernels stock,fast]
        [--data-root data]

Every model is trained and tested through ``run_crslab.py`` (CRSLab's runner and our evaluator) with the same
seeds, in its own process (so peak memory is per model), once per R-GCN kernel: CRSLab's stock ``RGCNConv`` and
our exact fast kernel. The shortcut baselines (popularity, "repeat the context"; nothing to train, no R-GCN) run
once per seed. With ``--seeds N`` every quality run is repeated with seeds ``seed .. seed + N - 1`` and every
metric is reported as mean +- sample standard deviation (the stock-kernel speed probes run once). Writes
``bench/results/redial-<profile>.json`` and ``.md`` and a PNG of the validation Recall@10 per rec epoch, the
validation NLL per conv epoch (with the follow-up conv runs kept in ``redial-<profile>-decoding``) and the
pre-training losses (first seed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from loguru import logger

from crslab_c2crs.atomic import write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONFIGS = {"KBRD": "config/kbrd/redial.yaml", "KGSF": "config/kgsf/redial.yaml", "C2CRS": "config/c2crs/redial.yaml",
           "Popularity": "config/popularity/redial.yaml", "RepeatContext": "config/repeat/redial.yaml"}
# Shortcut baselines: nothing is trained, so they have no budget, no R-GCN kernel and no training to time.
SHORTCUTS = ("Popularity", "RepeatContext")

REC_EARLY_STOP = ("rec.early_stop=true", "rec.stop_mode=max", "rec.impatience=2")
# Budgets. The same rules for every model: equal rec and conv epochs and batch sizes; pre-training (KGSF's MIM,
# C2-CRS's coarse + fine) gets the same number of epochs in total. ``caps`` (see bench.child) bound the batches
# of a pass identically for every model: in the cpu profile, each pre-training epoch is 20 batches of 256 and
# the conv epoch 40 batches of 128 (the rec epochs are whole), conv validation (early stopping only) sees 10
# batches, the conv test the first 40 batches (5,120 samples); the rec test is always the whole test set.
# A model a profile does not list (the shortcut baselines) runs with its config unchanged.
PROFILES: Dict[str, Dict[str, Any]] = {
    "cpu": {
        "caps": ["train.pretrain=20", "valid.pretrain=10", "train.conv=40", "valid.conv=10", "test.conv=40"],
        "overrides": {
            "KBRD": ["rec.epoch=4", "rec.batch_size=256", "conv.epoch=1", "conv.batch_size=128"],
            "KGSF": ["pretrain.epoch=2", "pretrain.batch_size=256", "rec.epoch=4", "rec.batch_size=256",
                     "conv.epoch=1", "conv.batch_size=128"],
            "C2CRS": ["coarse.epoch=1", "fine.epoch=1", "rec.epoch=4", "rec.batch_size=256",
                      "conv.epoch=1", "conv.batch_size=128"],
        },
    },
    # Budgets long enough to learn (README "cpu-long"), one model per command (``--models C2CRS``), each well
    # under 2.5 hours on 2 cores; every run's record is kept and the report merges all records of the profile.
    # Pre-training: C2-CRS 2 full coarse + 2 full fine epochs (its validation terms are far below chance after
    # the first coarse epoch), KGSF its own CRSLab pre-training (3 epochs of 128). Rec: at most 8 whole epochs
    # of 256, early stopping on validation Recall@1 + Recall@50 with impatience 2 (CRSLab's KGSF and KBRD keep
    # the last state, C2-CRS restores the best). Conv: 2 whole epochs of 128 (C2-CRS keeps the state of lower
    # validation NLL). Conv validation sees 20 batches, the conv test the first 20 (2,560 responses, the same
    # for every model: CRSLab's decoders re-run the whole prefix per token, ~8 responses/s), pre-training
    # validation 10 batches.
    "cpu-long": {
        "caps": ["valid.pretrain=10", "valid.conv=20", "test.conv=20"],
        "overrides": {
            "KBRD": ["rec.epoch=8", "rec.batch_size=256", *REC_EARLY_STOP, "conv.epoch=2", "conv.batch_size=128"],
            "KGSF": ["rec.epoch=8", "rec.batch_size=256", *REC_EARLY_STOP, "conv.epoch=2", "conv.batch_size=128"],
            "C2CRS": ["coarse.epoch=2", "fine.epoch=2", "rec.epoch=8", "rec.batch_size=256", "rec.impatience=2",
                      "conv.epoch=2", "conv.batch_size=128"],
        },
    },
    "paper": {"caps": [], "overrides": {"KBRD": [], "KGSF": [], "C2CRS": []}},
}
# CRSLab's stock R-GCN costs ~24 s per forward + backward on the real KG (bench/results/rgcn.json), so runs with
# it are speed probes: two training batches per stage, one validation and one test batch, no quality figures.
SPEED_PROBE_CAPS = ["train.*=2", "valid.*=1", "test.*=1"]
ABLATIONS = ("no_coarse", "no_fine", "no_pretrain", "multitask", "no_history", "no_kg", "no_review")
# C2-CRS settings outside the paper's, run under the same budget as the full model: the word vectors CRSLab's
# KGSF and KBRD start from (the paper and the reference train the token embedding from scratch).
VARIANTS = {"word2vec": ["embedding=word2vec_redial.npy"]}
# The repeat-aware table (evaluator docstring): targets already in the context, recall on all and on new targets,
# top-10 coverage and popularity (mean training mentions of the recommended movies).
REPEAT_TABLE = (("in context", "target_in_context"), ("R@1", "hit@1"), ("R@10", "hit@10"), ("R@50", "hit@50"),
                ("new R@1", "new_hit@1"), ("new R@10", "new_hit@10"), ("new R@50", "new_hit@50"),
                ("new MRR@10", "new_mrr@10"), ("coverage@10", "coverage@10"), ("popularity@10", "popularity@10"))
TABLE = (("R@1", "hit@1"), ("R@10", "hit@10"), ("R@50", "hit@50"), ("MRR@10", "mrr@10"), ("NDCG@10", "ndcg@10"),
         ("BLEU-1", "bleu@1"), ("BLEU-2", "bleu@2"), ("D-2", "dist_ratio@2"), ("D-3", "dist_ratio@3"),
         ("D-4", "dist_ratio@4"), ("D-2 (CRSLab)", "dist@2"), ("D-3 (CRSLab)", "dist@3"), ("D-4 (CRSLab)", "dist@4"),
         ("length", "response_len"))
PAPER = {  # C2-CRS paper, Tables 1 and 2 (ReDial); Distinct is corpus-level unique/total n-grams there.
    "KBRD": {"hit@1": 0.031, "hit@10": 0.150, "hit@50": 0.336, "dist_ratio@2": 0.086, "dist_ratio@3": 0.153,
             "dist_ratio@4": 0.265},
    "KGSF": {"hit@1": 0.039, "hit@10": 0.183, "hit@50": 0.378, "dist_ratio@2": 0.114, "dist_ratio@3": 0.204,
             "dist_ratio@4": 0.282},
    "C2CRS": {"hit@1": 0.053, "hit@10": 0.233, "hit@50": 0.407, "dist_ratio@2": 0.163, "dist_ratio@3": 0.291,
              "dist_ratio@4": 0.417},
}

# The pages whose figures are cog blocks over the committed records (regenerated by `bench.recommendation report`,
# or `cog -r` on them; tests/test_docs.py checks them with `cog --check`).
COG_DOCS = ("README.md", "docs/results.md", "docs/chat.md", "docs/benchmark.md")

def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_record(name: str) -> Dict[str, Any]:
    """A committed record, ``bench/results/<name>.json`` (for the docs' cog blocks)."""
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def quick_start_overrides() -> List[str]:
    """The quick start's config overrides (the Makefile's ``QUICK``, its one definition), as ``KEY=VALUE`` strings."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    variables = dict(re.findall(r"^([A-Z_]+) := (.*)$", text, flags=re.MULTILINE))
    if "QUICK" not in variables:
        raise RuntimeError(f"{ROOT / 'Makefile'} defines no QUICK")
    flags = re.sub(r"\$\(([A-Z_]+)\)", lambda match: variables[match.group(1)], variables["QUICK"])
    return [value.strip("'") for value in shlex.split(flags) if value != "--set"]


def crslab_argv(model: str, data_root: str, seed: int, overrides: List[str]) -> List[str]:
    """``run_crslab.py`` flags for one model on CPU: its config, the data root, the seed and ``--set`` overrides."""
    argv = ["-c", str(ROOT / CONFIGS[model]), "--data-root", data_root, "--seed", str(seed), "-g", "-1"]
    for override in overrides:
        argv += ["--set", override]
    return argv


def write_report(stem: Path, report: Dict[str, Any], text: str) -> None:
    """``<stem>.json`` (the numbers) and ``<stem>.md`` (``text``), created with their folder; ``text`` is printed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    Path(f"{stem}.md").write_text(text, encoding="utf-8")
    print(text)


def response_length(metrics: Dict[str, float]) -> Optional[float]:
    """Mean generated tokens per response from a generation report, None without generated tokens:
    tokens / responses = (distinct / responses) / (distinct / tokens) = ``dist@1 / dist_ratio@1``."""
    return metrics["dist@1"] / metrics["dist_ratio@1"] if metrics.get("dist_ratio@1") else None


def require_built_data(parser: argparse.ArgumentParser, data_root: str) -> None:
    if not (Path(data_root) / "dataset" / "redial" / "nltk" / "train_data.json").exists():
        parser.error(f"--data-root {data_root}: no built ReDial data there; run `make data` first")


def run_child(run_name: str, caps: List[str], run_flags: List[str], workdir: Path,
              launcher: Sequence[str] = ()) -> Dict[str, Any]:
    """``bench.child`` with ``caps`` and ``run_crslab.py`` flags ``run_flags`` in a child process (its output in
    ``workdir/<run_name>.log``); returns the child's result JSON. Raises RuntimeError when the child fails.
    ``launcher``: what starts the child instead of this interpreter, e.g. ``torchrun`` and its flags."""
    out = workdir / f"{run_name}.json"
    command = [*(launcher or [sys.executable]), "-m", "bench.child", "--out", str(out)]
    for cap in caps:
        command += ["--cap", cap]
    command += run_flags
    logger.info(f"[bench] {run_name}: {' '.join(command[1:])}")
    log = workdir / f"{run_name}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run(command, cwd=workdir, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{run_name} failed (exit {proc.returncode}); see {log}")
    return json.loads(out.read_text(encoding="utf-8"))


def run_one(name: str, model: str, overrides: List[str], caps: List[str], args: argparse.Namespace,
            workdir: Path, seed: int, records: Path, meta: Dict[str, Any]) -> Dict:
    """Train and test one configuration with ``seed`` in a child process; return its result JSON, also kept as
    ``records/<name>-seed<seed>.json`` with ``meta`` (kernel, ablation, variant, probe), the profile and the git commit,
    so that runs made by separate commands (or sessions) merge into one report."""
    run_name = f"{name}-seed{seed}"
    if model == "C2CRS":
        # Each C2-CRS run keeps its own stage checkpoints under <data root>/save.
        overrides = overrides + [f"checkpoint_dir=bench_{run_name}"]
    commit, started = git_commit(), time.time()  # the code the child imports now, whatever is committed later
    result = run_child(run_name, caps, crslab_argv(model, args.data_root, seed, overrides), workdir)
    result.update(meta, name=name, model=model, overrides=overrides, caps=caps, profile=args.profile,
                  git_commit=commit, bench_wall_seconds=time.time() - started)
    logger.info(f"[bench] {run_name}: {result['bench_wall_seconds']:.0f}s, test {result['test']}")
    records.mkdir(parents=True, exist_ok=True)
    write_json(records / f"{run_name}.json", result, indent=1, default=str)
    return result


def load_records(records: Path, order: List[str]) -> List[Dict]:
    """Every recorded run of a profile, grouped by name and aggregated over its seeds; names in ``order`` first
    (in that order), then the others by name."""
    by_name: Dict[str, List[Dict]] = {}
    for path in sorted(records.glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        by_name.setdefault(result["name"], []).append(result)
    names = [name for name in order if name in by_name] + sorted(set(by_name) - set(order))
    runs = []
    for name in names:
        results = sorted(by_name[name], key=lambda result: result["seed"])
        for result in results:  # the curves are derived from the recorded evaluator history
            result["valid_recall@10"] = valid_curve(result, "hit@10")
            result["valid_gen_loss"] = valid_curve(result, "gen_loss")
            test = result["test"]
            length = response_length(test)
            if length is not None:
                test["response_len"] = length
        first = results[0]
        runs.append(dict(aggregate(results), kernel=first["kernel"], ablation=first["ablation"],
                         probe=first["probe"], git_commits=sorted({result["git_commit"] for result in results})))
    return runs


def followup_conv_curves(folder: Path) -> Dict[str, List[float]]:
    """Validation NLL per conv epoch of the follow-up runs kept beside a profile's records (``bench.child``
    records in ``redial-<profile>-decoding``, e.g. a run's ``rec.pth`` trained for more conv epochs), by file
    stem; records that only re-test a checkpoint have no curve and are left out."""
    curves = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        curve = valid_curve(json.loads(path.read_text(encoding="utf-8")), "gen_loss")
        if curve:
            curves[path.stem] = curve
    return curves


def valid_curve(result: Dict, metric: str) -> List[float]:
    """A validation metric after each epoch of the stage that reports it, from the run's evaluator history:
    ``hit@10`` (rec epochs), ``gen_loss`` (conv epochs: the plain negative log-likelihood for every model)."""
    return [entry["metrics"][metric] for entry in result["history"]
            if entry["mode"] in ("val", "valid") and metric in entry["metrics"]]


def mean_std(values: List[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(results: List[Dict]) -> Dict[str, Any]:
    """One configuration over its seeds: ``test`` and ``test_std`` (mean and sample std of every test metric),
    ``stages`` (mean of every stage figure), ``peak_rss_mb`` (the largest), the first seed's validation curve
    and pre-training losses, and ``per_seed`` (each seed's test metrics, curve and timing)."""
    first = results[0]
    run = {key: value for key, value in first.items() if key not in ("history", "config", "test", "stages")}
    run["seeds"] = [result["seed"] for result in results]
    run["test"], run["test_std"] = {}, {}
    for key in sorted({key for result in results for key in result["test"]}):
        run["test"][key], run["test_std"][key] = mean_std([r["test"][key] for r in results if key in r["test"]])
    run["stages"] = {stage: {field: statistics.fmean(r["stages"][stage][field] for r in results)
                             for field in numbers}
                     for stage, numbers in first["stages"].items()}
    run["peak_rss_mb"] = max(result["peak_rss_mb"] for result in results)
    run["bench_wall_seconds"] = sum(result["bench_wall_seconds"] for result in results)
    run["per_seed"] = [{key: result[key] for key in ("seed", "test", "valid_recall@10", "stages", "peak_rss_mb",
                                                     "bench_wall_seconds")} for result in results]
    return run


def total_seconds(run: Dict) -> float:
    return sum(stage["seconds"] for stage in run["stages"].values())


def is_full_model(run: Dict) -> bool:
    """A run of a model as configured: neither a Table 4 ablation nor a variant (the reference for ratios)."""
    return not run.get("ablation") and not run.get("variant")


def speed_table(runs: List[Dict]) -> List[Dict[str, Any]]:
    """Per run: wall seconds and samples/s per stage, peak RSS, and ratios to KGSF with the same kernel."""
    rows = []
    for run in runs:
        if run["model"] in SHORTCUTS:
            rows.append({"name": run["name"], "model": run["model"], "kernel": None, "probe": False,
                         "train_seconds": None, "peak_rss_mb": run["peak_rss_mb"], "stages": {}})
            continue
        reference = next((r for r in runs if r["model"] == "KGSF" and r["kernel"] == run["kernel"]
                          and is_full_model(r)), None)
        row = {"name": run["name"], "model": run["model"], "kernel": run["kernel"], "probe": run["probe"],
               "train_seconds": total_seconds(run), "peak_rss_mb": run["peak_rss_mb"], "stages": run["stages"]}
        if reference:
            row["time_vs_kgsf"] = row["train_seconds"] / total_seconds(reference)
            row["rss_vs_kgsf"] = run["peak_rss_mb"] / reference["peak_rss_mb"]
        rows.append(row)
    return rows


def kernel_speedups(runs: List[Dict]) -> List[Dict[str, Any]]:
    """Training samples/s per stage with the stock and the fast R-GCN kernel, for each model that has both."""
    rows = []
    for stock in (r for r in runs if r["kernel"] == "stock"):
        fast = next((r for r in runs if r["model"] == stock["model"] and r["kernel"] == "fast"
                     and is_full_model(r)), None)
        if fast is None:
            continue
        for stage, numbers in stock["stages"].items():
            fast_rate = fast["stages"].get(stage, {}).get("samples_per_s", 0.0)
            rows.append({"model": stock["model"], "stage": stage, "stock_samples_per_s": numbers["samples_per_s"],
                         "fast_samples_per_s": fast_rate,
                         "speedup": fast_rate / numbers["samples_per_s"] if numbers["samples_per_s"] else None})
    return rows


def _ratio(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _cell(run: Dict, key: str) -> str:
    """``mean`` or ``mean ± std`` (several seeds) of a test metric; popularity (a mention count) and length
    (tokens) with 1 decimal."""
    if key not in run["test"]:
        return "-"
    digits = 1 if key.startswith("popularity@") or key == "response_len" else 4
    mean = f"{run['test'][key]:.{digits}f}"
    return f"{mean} ± {run['test_std'][key]:.{digits}f}" if len(run["seeds"]) > 1 else mean


def _quality_table(runs: List[Dict], columns: Tuple[Tuple[str, str], ...]) -> List[str]:
    lines = ["| model | " + " | ".join(label for label, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {run['name']} | " + " | ".join(_cell(run, key) for _, key in columns) + " |"
              for run in runs if not run["probe"]]
    return lines


def markdown(report: Dict) -> str:
    profile = PROFILES[report["profile"]]
    seeds = report["seeds"]
    spread = (f"seeds {', '.join(map(str, seeds))}: every figure is the mean ± sample standard deviation over "
              f"the {len(seeds)} seeds (stock-kernel probes: first seed only)" if len(seeds) > 1
              else f"seed {seeds[0]}, one run")
    lines = [f"# ReDial benchmark, profile `{report['profile']}`", "",
             f"Commit `{report['git_commit']}`, {report['machine']}, torch {report['torch']}, "
             f"{report['threads']} threads, {spread}, {report['wall_minutes']:.0f} min in all.", "",
             "Runs (each with its commit; runs recorded by earlier commands of this profile are merged in): "
             + ", ".join(f"{run['name']} `{' '.join(c[:7] for c in run['git_commits'])}`" for run in report["runs"])
             + ".", "",
             "Budget: " + "; ".join(f"{model} `{' '.join(o)}`" for model, o in profile["overrides"].items())
             + (f"; caps `{' '.join(profile['caps'])}` (bench/child.py)" if profile["caps"] else "")
             + f"; {' and '.join(SHORTCUTS)} are shortcut baselines (nothing trained).", "",
             "D-n = distinct n-grams / all n-grams over the test responses (the C2-CRS paper's definition); "
             "D-n (CRSLab) = distinct n-grams / responses (CRSLab's `dist@n`); length = mean generated tokens per "
             "response (`dist@1 / dist_ratio@1`).", "",
             "## Quality (test set)", ""]
    lines += _quality_table(report["runs"], TABLE)
    for model, paper in PAPER.items():
        cells = [f"{paper[key]:.3f}" if key in paper else "" for _, key in TABLE]
        lines.append(f"| {model} (paper) | " + " | ".join(cells) + " |")
    lines += ["", "## Repeat-aware recommendation (test set)", "",
              "in context = share of targets already mentioned in the context; new R@k = Recall@k over the other "
              "targets; coverage@10 = distinct movies in the top-10 lists / all movies; popularity@10 = mean "
              "training mentions of the recommended movies.", ""]
    lines += _quality_table(report["runs"], REPEAT_TABLE)
    lines += ["", "## Speed", "",
              "Stage seconds include validation and test; samples/s counts training steps only (forward, "
              "backward, update). Ratios are to KGSF with the same R-GCN kernel. Stock-kernel runs are speed "
              "probes (`" + " ".join(SPEED_PROBE_CAPS) + "`): their seconds are not comparable with full runs.",
              "", "| run | kernel | stages (s, training samples/s) | total s | x KGSF | peak RSS MB | x KGSF |",
              "|---|---|---|---|---|---|---|"]
    for row in report["speed"]:
        if row["model"] in SHORTCUTS:
            lines.append(f"| {row['name']} | - | nothing trained (evaluation only) | - | - | "
                         f"{row['peak_rss_mb']:.0f} | - |")
            continue
        stages = ", ".join(f"{name} {s['seconds']:.0f}s {s['samples_per_s']:.1f}/s"
                           for name, s in row["stages"].items())
        lines.append(f"| {row['name']} | {row['kernel']}{' (probe)' if row['probe'] else ''} | {stages} | "
                     f"{row['train_seconds']:.0f} | {_ratio(row.get('time_vs_kgsf'))} | "
                     f"{row['peak_rss_mb']:.0f} | {_ratio(row.get('rss_vs_kgsf'))} |")
    if report["kernel_speedups"]:
        lines += ["", "## R-GCN kernel: training samples/s, stock vs fast", "",
                  "| model | stage | stock | fast | speed-up |", "|---|---|---|---|---|"]
        for row in report["kernel_speedups"]:
            lines.append(f"| {row['model']} | {row['stage']} | {row['stock_samples_per_s']:.1f} | "
                         f"{row['fast_samples_per_s']:.1f} | {_ratio(row['speedup'])} |")
    if report.get("followup_conv_curves"):
        lines += ["", f"## Follow-up conv runs (`redial-{report['profile']}-decoding`): validation NLL per epoch",
                  "", "| record | NLL per conv epoch |", "|---|---|"]
        for name, nll in report["followup_conv_curves"].items():
            lines.append(f"| {name} | {', '.join(f'{value:.3f}' for value in nll)} |")
    return "\n".join(lines) + "\n"


def plot(report: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.5))
    for run in report["runs"]:
        if run["probe"]:
            continue
        recall = run["valid_recall@10"]
        if recall and run["model"] in SHORTCUTS:
            # nothing trained: one validation figure, drawn as the level a trained model has to beat
            left.axhline(recall[0], linestyle="--", linewidth=1, color="grey" if run["model"] == "Popularity"
                         else "black", label=run["name"])
        elif recall:
            left.plot(range(1, len(recall) + 1), recall, marker="o", label=run["name"])
        nll = run.get("valid_gen_loss")
        if nll:
            middle.plot(range(1, len(nll) + 1), nll, marker="o", label=run["name"])
        offset = 0
        for stage, losses in run["pretrain_losses"].items():
            right.plot(range(offset + 1, offset + len(losses) + 1), losses, label=f"{run['name']} {stage}")
            offset += len(losses)
    for name, nll in report.get("followup_conv_curves", {}).items():
        middle.plot(range(1, len(nll) + 1), nll, marker="x", linestyle="--", label=f"{name} (follow-up)")
    left.set(title="Validation Recall@10 per rec epoch (first seed)", xlabel="epoch", ylabel="Recall@10")
    middle.set(title="Validation NLL per conv epoch (first seed)", xlabel="epoch", ylabel="NLL per token")
    # log scale: KGSF's MIM loss spikes to 10^4 while the InfoNCE losses sit near 1-60
    right.set(title="Pre-training loss per training batch", xlabel="batch", ylabel="loss (log scale)", yscale="log")
    for axis in (left, middle):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (left, middle, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a run of shortcut baselines alone has no pre-training curve
            axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--models", default="KBRD,KGSF,C2CRS," + ",".join(SHORTCUTS))
    parser.add_argument("--kernels", default="fast,stock",
                        help="fast: full runs with the exact fast R-GCN; stock: speed probes with CRSLab's R-GCN")
    parser.add_argument("--ablations", nargs="?", const=",".join(ABLATIONS), default="",
                        help="also run Table 4 ablations of C2-CRS: all, or those listed (no_pretrain,no_fine)")
    parser.add_argument("--variants", default="",
                        help=f"also run C2-CRS variants outside the paper's settings: {', '.join(VARIANTS)}")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the report from the runs recorded for the profile")
    parser.add_argument("--data-root", default=str(ROOT / "data"))
    parser.add_argument("--seed", type=int, default=42, help="first seed")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds per quality run (seed, seed + 1, ...); metrics as mean ± std over them")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.data_root = str(Path(args.data_root).resolve())
    models, kernels = [m for m in args.models.split(",") if m], args.kernels.split(",")
    ablations = [a for a in args.ablations.split(",") if a]
    variants = [v for v in args.variants.split(",") if v]
    for name, chosen, known in (("--models", models, CONFIGS), ("--kernels", kernels, ("fast", "stock")),
                                ("--ablations", ablations, ABLATIONS), ("--variants", variants, VARIANTS)):
        if not set(chosen) <= set(known):
            parser.error(f"{name}: unknown {sorted(set(chosen) - set(known))}; choose from {sorted(known)}")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least 1")
    out_dir = Path(args.out)
    records = out_dir / f"redial-{args.profile}-runs"
    if args.report_only:
        models, ablations, variants = [], [], []
        if not records.is_dir():
            parser.error(f"--report-only: no runs recorded for profile {args.profile} in {records}")
    else:
        require_built_data(parser, args.data_root)
    workdir = out_dir / f"runs-{args.profile}"
    workdir.mkdir(parents=True, exist_ok=True)
    import torch

    profile = PROFILES[args.profile]
    seeds = [args.seed + offset for offset in range(args.seeds)]
    plan = [(f"{model}-{kernel}", model, kernel, None, None) for kernel in kernels for model in models
            if model not in SHORTCUTS]
    plan += [(model, model, None, None, None) for model in models if model in SHORTCUTS]
    plan += [(f"C2CRS-{ablation}", "C2CRS", "fast", ablation, None) for ablation in ablations]
    plan += [(f"C2CRS-{variant}", "C2CRS", "fast", None, variant) for variant in variants]
    for name, model, kernel, ablation, variant in plan:
        probe = kernel == "stock"
        overrides = list(profile["overrides"].get(model, [])) + VARIANTS.get(variant, [])
        if kernel is not None:
            overrides.append(f"fast_rgcn={'false' if probe else 'true'}")
        if ablation:
            overrides.append(f"ablation={ablation}")
        caps = SPEED_PROBE_CAPS if probe else profile["caps"]
        for seed in seeds[:1] if probe else seeds:
            run_one(name, model, overrides, caps, args, workdir, seed, records,
                    {"kernel": kernel, "ablation": ablation, "variant": variant, "probe": probe})
    order = [f"{model}-{kernel}" for kernel in ("fast", "stock") for model in CONFIGS if model not in SHORTCUTS]
    order += list(SHORTCUTS) + [f"C2CRS-{ablation}" for ablation in ABLATIONS] + [f"C2CRS-{v}" for v in VARIANTS]
    runs = load_records(records, order)
    report = {"profile": args.profile, "git_commit": git_commit(), "machine": f"{platform.machine()} "
              f"{os.cpu_count()} cores, {platform.platform()}", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "seed": args.seed,
              "seeds": sorted({seed for run in runs for seed in run["seeds"]}), "budget": profile,
              "wall_minutes": sum(run["bench_wall_seconds"] for run in runs) / 60, "runs": runs,
              "speed": speed_table(runs), "kernel_speedups": kernel_speedups(runs),
              "followup_conv_curves": followup_conv_curves(out_dir / f"redial-{args.profile}-decoding")}
    stem = out_dir / f"redial-{args.profile}"
    write_report(stem, report, markdown(report))
    plot(report, Path(f"{stem}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
