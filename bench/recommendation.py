"""Recommendation over seeds, under both target protocols, with paired significance.

Usage::

    python -m bench.recommendation run --protocol recommender --models C2CRS,KBRD,KGSF,Popularity,RepeatContext \\
        --seeds 42,43,44,45,46 [--pretrain-seed 42] [--pretraining coarse1-masked|batches40] \\
        [--variant no_bias|fast|history_fallback] [--data-root data]
    python -m bench.recommendation report

Every model is trained and tested through ``run_crslab.py`` (``bench.child``: CRSLab's runner, our evaluator) with
``--set rec_targets=<protocol>`` (:mod:`crslab_c2crs.data.targets`: ``recommender`` = CRSLab's, ``all`` = the
authors') and ``--dump-predictions``; a run's record, ``bench/results/redial-rec/<protocol>/<name>-seed<seed>.json``,
keeps its test metrics, its validation curve, the 0-based rank of every test target (from the dump, for the paired
tests) and the commit it ran. A run whose record exists is skipped, so a queue resumes where it stopped, in this
session or the next.

The budget is the rec stage of the ``cpu-long`` profile for every model: at most 8 epochs of 256 with early
stopping on validation (impatience 2; C2-CRS and KGSF on Recall@1 + Recall@50, KBRD on its validation loss as
CRSLab's KBRD system computes it, hence ``stop_mode: min``), no conversation stage (``conv.epoch=0``, one capped
conv test batch for CRSLab's systems, ``end_stage=rec`` for C2-CRS). Pre-training is done once per pre-training
seed in a run of its own, and every rec seed restores it (C2-CRS: one of :data:`PRETRAININGS`, by default the
config's one coarse epoch with masked mentions, ``--pretraining batches40`` the 40 + 40 batches of the earlier
records; KGSF: CRSLab's 3 MIM epochs, ``pretrain_cache``): the rec seeds differ in batch order, dropout and the
freshly initialised rec parameters. ``--variant`` runs C2-CRS under a setting compared on validation
(:data:`VARIANTS`) with that pre-training; one that changes the pre-training too (``fast``: the speed options) is
pre-trained per seed in a run and folder of its own. Checkpoints go to ``<data root>/save/rec-bench/``.

The report (``bench/results/redial-rec.{md,json,png}``) gives per protocol and model the mean and sample standard
deviation over seeds of Recall@1/10/50, MRR@10, NDCG@10 and new-item Recall@10, the validation Recall@10 of the
tested state, and the p-value of a paired permutation test (:mod:`bench.significance`) on the test targets'
seed-averaged hits of C2-CRS at the config's pre-training against each other model, and of each C2-CRS variant or
other pre-training seed against its own pre-training's run (:func:`reference_of`).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cogapp import Cog
from loguru import logger

from bench.redial import (
    COG_DOCS,
    CONFIGS,
    ROOT,
    SHORTCUTS,
    crslab_argv,
    git_commit,
    mean_std,
    require_built_data,
    run_child,
    write_report,
)
from bench.significance import compare, hits_at
from crslab_c2crs.atomic import write_json
from crslab_c2crs.data.targets import PROTOCOLS

RESULTS = ROOT / "bench" / "results"
RECORDS = RESULTS / "redial-rec"
STEM = RESULTS / "redial-rec"
CHECKPOINTS = "rec-bench"          # under <data root>/save
REC_BUDGET = ["rec.epoch=8", "rec.batch_size=256"]
NO_CONV = ["conv.epoch=0"]
CAPS = {"KGSF": ["test.conv=1"], "KBRD": ["test.conv=1"]}
REC_FLAGS = {
    "C2CRS": [*REC_BUDGET, "rec.impatience=2", "end_stage=rec"],
    "KGSF": [*REC_BUDGET, "rec.early_stop=true", "rec.stop_mode=max", "rec.impatience=2", "pretrain_cache=true",
             *NO_CONV],
    # CRSLab's KBRD system early-stops on its validation rec loss: lower is better
    "KBRD": [*REC_BUDGET, "rec.early_stop=true", "rec.stop_mode=min", "rec.impatience=2", *NO_CONV],
}


@dataclass(frozen=True)
class Pretraining:
    """A C2-CRS pre-training that rec runs start from: the pre-training run's overrides, the epochs its rec runs are
    given too (they restore the last stage these train), the checkpoint that marks it done, its label in the tables."""

    flags: Tuple[str, ...]
    epochs: Tuple[str, ...]
    marker: str
    label: str


# C2-CRS's pre-trainings, pinned here so that the records do not follow later config changes. ``batches40``: 40
# coarse then 40 fine batches (about 0.6 + 0.6 epochs) with the paper's views, the quick start's setting before issue
# #27; ``coarse1-masked``: the config's defaults since #27 (one coarse epoch with the mentions masked, no fine stage),
# the quick start's pre-training.
PRETRAININGS = {
    "batches40": Pretraining(
        flags=("coarse.epoch=1", "fine.epoch=1", "coarse.max_batches=40", "coarse.valid_max_batches=5",
               "fine.max_batches=40", "fine.valid_max_batches=5", "pretrain_mask_mentions=false", "end_stage=fine"),
        epochs=("coarse.epoch=1", "fine.epoch=1"), marker="fine.pth", label="40 + 40 pre-training batches"),
    "coarse1-masked": Pretraining(
        flags=("coarse.epoch=1", "fine.epoch=0", "coarse.valid_max_batches=5", "pretrain_mask_mentions=true",
               "end_stage=fine"),
        epochs=("coarse.epoch=1", "fine.epoch=0"), marker="coarse.pth", label="1 coarse epoch, masked mentions"),
}
HEADLINE_PRETRAINING = "coarse1-masked"   # the config's: the C2-CRS row every other model is compared with
UNNAMED_PRETRAINING = "batches40"         # its records predate the settings, so their names carry none
# KGSF's own pre-training (config: 3 epochs of 128), cached; its rec runs restore it in their pretrain stage
KGSF_PRETRAINING = Pretraining(flags=("pretrain_cache=true", "rec.epoch=0", *NO_CONV), epochs=(),
                               marker="pretrain.pth", label="CRSLab's MIM pre-training")
# C2-CRS's speed options (docs/benchmark.md, speed options): bfloat16 encoder layers, cheaper dropout masks, fused Adam.
FAST_TRAINING = ["mixed_precision=bf16", "fast_dropout=true"] + [f"{stage}.optimizer.fused=true"
                                                                 for stage in ("coarse", "fine", "rec")]
# C2-CRS settings compared on validation (``--variant``) against the same pre-training without them: overrides of the
# rec runs, and of the pre-training too for those in PRETRAINING_VARIANTS (pre-trained in a folder of their own).
VARIANTS = {"no_bias": ["rec_bias=false"], "fast": FAST_TRAINING, "history_fallback": ["rec_history_fallback=true"]}
PRETRAINING_VARIANTS = ("fast",)
TABLE = (("R@1", "hit@1"), ("R@10", "hit@10"), ("R@50", "hit@50"), ("MRR@10", "mrr@10"), ("NDCG@10", "ndcg@10"),
         ("new R@10", "new_hit@10"))
TESTED_KS = (10, 50)
MODEL_ORDER = ("C2CRS", "KGSF", "KBRD", "RepeatContext", "Popularity")
# Test targets by the number of entities in their context: (label, fewest, most or None)
CONTEXT_BUCKETS = (("1-2", 1, 2), ("3-5", 3, 5), ("6+", 6, None))
# Published figures, R@1 / R@10 / R@50 on ReDial, each beside the protocol it was measured under: the C2-CRS paper's
# Table 1 (its C2-CRS row from the authors' code, which scores every turn that mentions a movie; its KGSF and KBRD
# rows the KGSF paper's own, Recommender turns only) and Kostric & Balog's standardized re-runs (SIGIR 2026,
# iai-group/redial-reproducibility; Recommender turns, each model on its own split).
PUBLISHED = {
    "recommender": (("KGSF", "C2-CRS paper, Table 1 (the KGSF paper's figure)", (0.039, 0.183, 0.378)),
                    ("KBRD", "C2-CRS paper, Table 1 (the KGSF paper's figure)", (0.031, 0.150, 0.336)),
                    ("KGSF", "Kostric & Balog 2026, its own split", (0.034, 0.179, 0.365)),
                    ("KBRD", "Kostric & Balog 2026, its own split", (0.036, 0.176, 0.334))),
    "all": (("C2-CRS", "C2-CRS paper, Table 1", (0.053, 0.233, 0.407)),),
}
PUBLISHED_KEYS = ("hit@1", "hit@10", "hit@50")
VARIANT_LABELS = {"no_bias": "no item bias", "fast": "speed options", "history_fallback": "history fallback"}
# The columns of the generated tables: the README's, docs/results.md's, and the report's (every metric).
README_COLUMNS = (("Recall@1", "hit@1"), ("Recall@10", "hit@10"), ("Recall@50", "hit@50"))
DOCS_COLUMNS = README_COLUMNS + (("R@10, no context entity", "entityless_hit@10"), ("valid R@10", "valid_hit@10"))
REPORT_COLUMNS = TABLE + DOCS_COLUMNS[3:]



def commit_state() -> str:
    """HEAD, with ``-dirty`` when tracked files differ from it (a record must name the code it ran)."""
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return git_commit() + ("-dirty" if dirty else "")


def target_ranks(dump: Path) -> Dict[str, Optional[int]]:
    """``conv_id/turn/target index`` -> 0-based rank (None below the top 50) of every ranked target of a
    ``--dump-predictions`` file."""
    ranks = {}
    for line in dump.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for index, target in enumerate(record["targets"]):
            if target["in_context"] is not None:  # scored by the rec test pass
                ranks[f"{record['conv_id']}/{record['turn']}/{index}"] = target["rank"]
    return ranks


def tested_validation_metrics(result: Dict[str, Any]) -> Dict[str, float]:
    """The validation report of the state the rec test pass scored ({} without one): C2-CRS keeps its best epoch
    on Recall@1 + Recall@50, CRSLab's KGSF and KBRD their last one."""
    curve = [entry["metrics"] for entry in result["history"]
             if entry["mode"] in ("val", "valid") and "hit@10" in entry["metrics"]]
    if not curve:
        return {}
    if result["model"] == "C2CRS":
        return max(curve, key=lambda metrics: metrics["hit@1"] + metrics["hit@50"])
    return curve[-1]


def tested_validation(result: Dict[str, Any]) -> Optional[float]:
    """Validation Recall@10 of the state the rec test pass scored (:func:`tested_validation_metrics`)."""
    return tested_validation_metrics(result).get("hit@10")


def parse_seeds(parser: argparse.ArgumentParser, flag: str, text: str) -> List[int]:
    """The comma-separated integer seeds of ``flag``; a parser error naming the flag otherwise."""
    try:
        return [int(seed) for seed in text.split(",") if seed]
    except ValueError:
        parser.error(f"{flag} {text!r}: expected comma-separated integers, e.g. 42,43,44")


def run_name(model: str, pretraining: str = HEADLINE_PRETRAINING, variant: Optional[str] = None,
             pretrain_seed: int = 42) -> str:
    """The name of ``model``'s rec runs (recorded as ``<name>-seed<seed>.json``): C2-CRS's names its pre-training
    setting (but :data:`UNNAMED_PRETRAINING`) and its variant; any model's, a pre-training seed other than 42."""
    setting = pretraining if model == "C2CRS" and pretraining != UNNAMED_PRETRAINING else None
    return "-".join([model, *(part for part in (setting, variant) if part)]) + (
        f"-p{pretrain_seed}" if pretrain_seed != 42 else "")


def pretraining_of(model: str, pretraining: str) -> Optional[Pretraining]:
    """The pre-training ``model``'s rec runs start from (C2-CRS: the setting ``pretraining``), or None."""
    return PRETRAININGS[pretraining] if model == "C2CRS" else {"KGSF": KGSF_PRETRAINING}.get(model)


REFERENCE = run_name("C2CRS")  # C2-CRS at the config's pre-training: every other model is compared with it


def reference_of(row: Dict[str, Any]) -> Optional[str]:
    """The name a summarised row is tested against: a C2-CRS variant, or another pre-training seed, against its own
    pre-training's run with seed 42 (the one thing changed); every other row against :data:`REFERENCE`."""
    if row["name"] == REFERENCE:
        return None
    if row["model"] == "C2CRS" and (row.get("variant") or row.get("pretrain_seed") not in (None, 42)):
        return run_name("C2CRS", row["pretraining"])
    return REFERENCE


class Bench:
    """Runs (or skips, when recorded) the pre-training and rec runs of one protocol."""

    def __init__(self, protocol: str, data_root: str, workdir: Path) -> None:
        self.protocol, self.data_root, self.workdir = protocol, data_root, workdir
        self.records = RECORDS / protocol

    def run(self, run_name: str, model: str, seed: int, overrides: List[str],
            extra: Optional[List[str]] = None) -> Dict[str, Any]:
        """One ``run_crslab.py`` run of ``model`` under this protocol in a child process: its result with the
        commit, the flags and the per-target test ranks (from ``--dump-predictions``)."""
        dump = self.workdir / f"{self.protocol}-{run_name}.jsonl"
        overrides = [f"rec_targets={self.protocol}", *overrides]
        argv = crslab_argv(model, self.data_root, seed, overrides) + (extra or []) + ["--dump-predictions", str(dump)]
        commit, started = commit_state(), time.time()
        result = run_child(f"{self.protocol}-{run_name}", CAPS.get(model, []), argv, self.workdir)
        result.update(model=model, overrides=overrides, extra_flags=extra or [], caps=CAPS.get(model, []),
                      protocol=self.protocol, git_commit=commit, bench_wall_seconds=time.time() - started)
        if dump.exists():
            result["ranks"] = target_ranks(dump)
            dump.unlink()
        result.pop("config", None)  # the overrides and the committed config files say it
        return result

    def pretrain(self, model: str, seed: int, variant: Optional[str], pretraining: str) -> str:
        """The checkpoint folder of ``model``'s pre-training with ``seed`` (C2-CRS: the setting ``pretraining``, under
        ``variant`` when it changes the pre-training), run first when it is missing."""
        variant = variant if variant in PRETRAINING_VARIANTS else None
        name = run_name(model, pretraining, variant)
        folder = f"{CHECKPOINTS}/{name}-pretrain-seed{seed}"
        setting = pretraining_of(model, pretraining)
        if not (Path(self.data_root) / "save" / folder / setting.marker).is_file():
            logger.info(f"[rec bench] pre-training {name} with seed {seed}")
            result = self.run(f"{name}-pretrain-seed{seed}", model, seed,
                              [*setting.flags, *(VARIANTS[variant] if variant else []), f"checkpoint_dir={folder}"])
            result.pop("ranks", None)
            result.update(pretraining=pretraining if model == "C2CRS" else None)
            (RECORDS / "pretrain").mkdir(parents=True, exist_ok=True)
            write_json(RECORDS / "pretrain" / f"{name}-seed{seed}.json", result, indent=1, default=str)
        return folder

    def rec(self, model: str, seed: int, pretrain_seed: int, variant: Optional[str],
            pretraining: str = HEADLINE_PRETRAINING) -> None:
        """One rec run, recorded as ``<name>-seed<seed>.json``; skipped when that record exists."""
        name = run_name(model, pretraining, variant, pretrain_seed)
        path = self.records / f"{name}-seed{seed}.json"
        if path.exists():
            logger.info(f"[rec bench] {path.name} is recorded; skipped")
            return
        overrides = REC_FLAGS.get(model, []) + (VARIANTS[variant] if variant else [])
        setting = pretraining_of(model, pretraining)
        if setting:
            overrides = overrides + [f"checkpoint_dir={self.pretrain(model, pretrain_seed, variant, pretraining)}",
                                     *setting.epochs]
        # C2-CRS restores its pre-training's last stage and starts at rec; KGSF restores pretrain.pth in its pretrain
        # stage
        extra = ["--stage", "rec"] if model == "C2CRS" else []
        result = self.run(f"{name}-seed{seed}", model, seed, overrides, extra)
        result.update(name=name, variant=variant, pretrain_seed=pretrain_seed if setting else None,
                      pretraining=pretraining if model == "C2CRS" else None,
                      valid_recall_at_10=tested_validation(result))
        logger.info(f"[rec bench] {name} seed {seed}: test R@10 {result['test'].get('hit@10')}, "
                    f"{result['bench_wall_seconds']:.0f}s")
        self.records.mkdir(parents=True, exist_ok=True)
        write_json(path, result, default=str)


def load_runs(protocol: str) -> Dict[str, List[Dict[str, Any]]]:
    """The recorded rec runs of ``protocol``, by name, each list sorted by seed."""
    runs: Dict[str, List[Dict[str, Any]]] = {}
    for path in sorted((RECORDS / protocol).glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        runs.setdefault(result["name"], []).append(result)
    return {name: sorted(results, key=lambda result: result["seed"]) for name, results in runs.items()}


def context_sizes(data_root: str) -> Dict[str, Dict[str, int]]:
    """Per protocol, the number of entities in the context of every test target (keyed ``conv_id/turn/target
    index``): 0 for the targets a recommender without an item bias cannot rank (every score is 0)."""
    import importlib

    from crslab_c2crs import compat
    from crslab_c2crs.data.layout import redial_dir
    from crslab_c2crs.data.targets import is_target_turn
    from crslab_c2crs.predictions import sample_turns

    compat.relocate(Path(data_root))
    dataset = importlib.import_module("crslab.data.dataset.redial.redial").ReDialDataset({}, "nltk")
    conversations = json.loads((redial_dir(Path(data_root)) / "test_data.json").read_text(encoding="utf-8"))
    located = sample_turns(conversations, dataset.test_data)
    sizes: Dict[str, Dict[str, int]] = {protocol: {} for protocol in PROTOCOLS}
    for (conv_id, turns), sample in zip(located, dataset.test_data):
        for protocol in PROTOCOLS:
            if is_target_turn(sample, protocol):
                for index in range(len(sample["items"])):
                    sizes[protocol][f"{conv_id}/{len(turns) - 1}/{index}"] = len(sample["context_entities"])
    return sizes


def hit_rate(ranks: Dict[str, Optional[int]], keys: List[str], k: int = 10) -> float:
    """Recall@k over the targets ``keys`` of one run's ``ranks``."""
    return float(hits_at([ranks[key] for key in keys], k).sum()) / max(len(keys), 1)


def summarise(protocol: str, sizes: Optional[Dict[str, int]] = None) -> List[Dict[str, Any]]:
    """Per recorded name of ``protocol``: seeds, commits, mean and std of every table metric and of the validation
    Recall@10, and the paired tests of its reference (:func:`reference_of`) against it on hit@10 and hit@50; with the
    targets' context ``sizes``, Recall@10 on the targets with no context entity and per :data:`CONTEXT_BUCKETS`. A
    shortcut baseline is deterministic: its one run stands for every seed."""
    runs = load_runs(protocol)
    names = sorted(runs, key=lambda name: (MODEL_ORDER.index(runs[name][0]["model"]), name != REFERENCE, name))
    rows = []
    for name in names:
        results = runs[name]
        row: Dict[str, Any] = {"name": name, "model": results[0]["model"], "variant": results[0].get("variant"),
                               "seeds": [r["seed"] for r in results],
                               "deterministic": results[0]["model"] in SHORTCUTS,
                               "pretrain_seed": results[0].get("pretrain_seed"),
                               "pretraining": (results[0].get("pretraining", UNNAMED_PRETRAINING)
                                               if results[0]["model"] == "C2CRS" else None),
                               "commits": sorted({r["git_commit"] for r in results}),
                               "n_targets": len(results[0]["ranks"]),
                               "mean": {}, "std": {}, "tests": {}}
        for _, key in TABLE:
            row["mean"][key], row["std"][key] = mean_std([r["test"][key] for r in results])
        if sizes is not None:
            for bucket, low, high in (("entityless", 0, 0),) + CONTEXT_BUCKETS:
                subset = [key for key in results[0]["ranks"]
                          if low <= sizes[key] and (high is None or sizes[key] <= high)]
                row[f"n_{bucket}"] = len(subset)
                row["mean"][f"{bucket}_hit@10"], row["std"][f"{bucket}_hit@10"] = mean_std(
                    [hit_rate(r["ranks"], subset) for r in results])
        valid = [r["valid_recall_at_10"] for r in results if r.get("valid_recall_at_10") is not None]
        if valid:
            row["mean"]["valid_hit@10"], row["std"]["valid_hit@10"] = mean_std(valid)
        row["reference"] = reference_of(row)
        if row["reference"] in runs:
            for k in TESTED_KS:
                test = compare([r["ranks"] for r in runs[row["reference"]]], [r["ranks"] for r in results], k)
                row["tests"][f"hit@{k}"] = {"difference": test.difference, "p_value": test.p_value, "n": test.n}
        rows.append(row)
    return rows


def _cell(row: Dict[str, Any], key: str) -> str:
    if key not in row["mean"]:
        return ""
    if row["deterministic"]:
        return f"{row['mean'][key]:.4f}"
    return f"{row['mean'][key]:.4f} ± {row['std'][key]:.4f}"


def _p(row: Dict[str, Any], key: str) -> str:
    test = row["tests"].get(key)
    if test is None:
        return ""
    # with 10,000 resamples the smallest two-sided p-value is 2 / 10,001: "p 0.0002" means "at most"
    return f"{test['difference']:+.4f} (p {test['p_value']:.2g})"


def label(row: Dict[str, Any]) -> str:
    """The model's name as the docs write it, with C2-CRS's pre-training when it is not the config's and the setting
    a variant changes."""
    if row["model"] != "C2CRS":
        return row["model"]
    settings = [PRETRAININGS[row["pretraining"]].label] if row["pretraining"] != HEADLINE_PRETRAINING else []
    return ", ".join(["C2-CRS", *settings, *([VARIANT_LABELS[row["variant"]]] if row.get("variant") else [])])


def headline_rows(report: Dict[str, Any], protocol: str) -> List[Dict[str, Any]]:
    """The rows of ``protocol`` that are C2-CRS at the config's pre-training or tested against it: every model once,
    with no C2-CRS variant or other pre-training seed."""
    return [row for row in report["protocols"][protocol] if row.get("reference") in (None, REFERENCE)]


def table(report: Dict[str, Any], protocol: str, columns: Tuple[Tuple[str, str], ...] = README_COLUMNS,
          variants: bool = True, commits: bool = False) -> str:
    """The markdown table of ``protocol``: a row per recorded name with its paired tests against its reference, then
    the published rows measured under this protocol. ``variants=False`` keeps the rows tested against
    :data:`REFERENCE` (C2-CRS at the config's pre-training); ``variants=True`` adds the C2-CRS settings and
    pre-training seeds, each tested against its own pre-training's run, in a column that names it."""
    rows = report["protocols"][protocol] if variants else headline_rows(report, protocol)
    names = {row["name"]: label(row) for row in rows}
    head = ["model", "rec seeds", *(name for name, _ in columns)]
    head += ["tested against", "reference − row: R@10 (p)", "R@50 (p)"] if variants else [
        "C2-CRS − model: R@10 (p)", "R@50 (p)"]
    head += ["commits"] if commits else []
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        seeds = "deterministic" if row["deterministic"] else f"{len(row['seeds'])}"
        if row.get("pretrain_seed") is not None:
            seeds += f" (pre-training seed {row['pretrain_seed']})"
        cells = [label(row), seeds, *(_cell(row, key) for _, key in columns)]
        cells += [names.get(row.get("reference"), "")] if variants else []
        cells += [_p(row, "hit@10"), _p(row, "hit@50")]
        cells += [", ".join(f"`{commit[:7]}`" for commit in row["commits"])] if commits else []
        lines.append("| " + " | ".join(cells) + " |")
    for model, source, figures in PUBLISHED[protocol]:
        published = dict(zip(PUBLISHED_KEYS, figures))
        cells = [f"{model}: {source}", "published", *(f"{published[key]:.3f}" if key in published else ""
                                                     for _, key in columns), "", ""]
        cells += [""] * (variants + commits)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rows(report: Dict[str, Any], protocol: str) -> Dict[str, Dict[str, Any]]:
    return {row["name"]: row for row in report["protocols"][protocol]}


def _mean(row: Dict[str, Any], key: str = "hit@10") -> str:
    return f"{row['mean'][key]:.4f} ± {row['std'][key]:.4f} ({len(row['seeds'])} rec seeds)"


def target_finding(report: Dict[str, Any]) -> str:
    """Issue #26's target under CRSLab's protocol, met or missed, with the figures and tests behind it."""
    rows = _rows(report, "recommender")
    c2crs, kgsf, kbrd = rows[REFERENCE], rows["KGSF"], rows["KBRD"]
    best = max((kgsf, kbrd), key=lambda row: row["mean"]["hit@10"])
    ratio = c2crs["mean"]["hit@10"] / best["mean"]["hit@10"]
    met = ratio >= 1.1 and all(row["tests"]["hit@10"]["p_value"] < 0.05 for row in (kgsf, kbrd))
    return (f"**Target (issue #26): C2-CRS Recall@10 at least 1.1x the better of KGSF and KBRD, p < 0.05 against "
            f"each: {'met' if met else 'missed'}.** C2-CRS {_mean(c2crs)}, KGSF {_mean(kgsf)}, KBRD {_mean(kbrd)}: "
            f"{ratio:.2f}x the better one ({best['name']}). Paired on the test targets, C2-CRS minus KGSF: R@10 "
            f"{_p(kgsf, 'hit@10')}, R@50 {_p(kgsf, 'hit@50')}; minus KBRD: R@10 {_p(kbrd, 'hit@10')}, R@50 "
            f"{_p(kbrd, 'hit@50')}.")


def pretraining_seed_finding(report: Dict[str, Any], protocol: str = "recommender",
                             pretraining: str = UNNAMED_PRETRAINING) -> str:
    """The spread of C2-CRS over the seeds of one pre-training setting: each seed's mean over rec seeds and their
    difference."""
    rows = [row for row in report["protocols"][protocol]
            if row["model"] == "C2CRS" and row["pretraining"] == pretraining and not row.get("variant")]
    if len(rows) < 2:
        return "One pre-training seed so far."
    means = [row["mean"]["hit@10"] for row in rows]
    parts = [f"pre-training seed {row['pretrain_seed']}: {_mean(row)}" for row in rows]
    tests = [f"seed {row['pretrain_seed']} − seed {rows[0]['pretrain_seed']}: "
             f"{-row['tests']['hit@10']['difference']:+.4f} (p {row['tests']['hit@10']['p_value']:.2g})"
             for row in rows[1:]]
    return (f"C2-CRS test Recall@10 over {len(rows)} seeds of its {PRETRAININGS[pretraining].label}: "
            + "; ".join(parts)
            + f"; spread of the seed means {max(means) - min(means):.4f}; paired, " + "; ".join(tests) + ".")


def variant_finding(report: Dict[str, Any], variant: str, pretraining: str = UNNAMED_PRETRAINING) -> str:
    """A C2-CRS setting (``variant``) against the same pre-training without it under CRSLab's protocol: validation
    first, then the test set, read once for each, with the targets whose context holds no entity; differences are
    default minus setting, paired on the targets."""
    rows = _rows(report, "recommender")
    changed = rows[run_name("C2CRS", pretraining, variant)]
    default, setting = rows[changed["reference"]], VARIANT_LABELS[variant]
    return (f"Validation Recall@10 of the tested state {_mean(default, 'valid_hit@10')} by default against "
            f"{_mean(changed, 'valid_hit@10')} with {setting}. On the test set, read once for each: Recall@10 "
            f"{default['mean']['hit@10']:.4f} against {changed['mean']['hit@10']:.4f} (default minus {setting}, "
            f"paired on the targets: {_p(changed, 'hit@10')}), Recall@50 {default['mean']['hit@50']:.4f} against "
            f"{changed['mean']['hit@50']:.4f} ({_p(changed, 'hit@50')}), and Recall@10 "
            f"{default['mean']['entityless_hit@10']:.3f} against {changed['mean']['entityless_hit@10']:.3f} on the "
            f"{default['n_entityless']} targets whose context holds no entity.")


def paper_finding(report: Dict[str, Any]) -> str:
    """C2-CRS under the authors' protocol set beside the paper's Table 1 figure."""
    rows = _rows(report, "all")
    c2crs = rows[REFERENCE]
    r1, r10, r50 = dict((model, figures) for model, _, figures in PUBLISHED["all"])["C2-CRS"]
    others = "; ".join(f"{row['name']} {row['mean']['hit@10']:.4f}" for row in rows.values() if row["model"] != "C2CRS")
    return (f"Under the authors' protocol ({c2crs['n_targets']} test targets) C2-CRS reaches Recall@10 {_mean(c2crs)}, "
            f"{c2crs['mean']['hit@10'] / r10:.0%} of the paper's {r10:.3f} (Recall@1 {c2crs['mean']['hit@1']:.4f} "
            f"against {r1:.3f}, Recall@50 {c2crs['mean']['hit@50']:.4f} against {r50:.3f}); the other models here: "
            f"{others}.")


def bucket_table(report: Dict[str, Any], protocol: str) -> str:
    """Test Recall@10 of each model (:func:`headline_rows`) by the number of entities in the target's context."""
    rows = headline_rows(report, protocol)
    buckets = [("entityless", "0")] + [(bucket, bucket) for bucket, _, _ in CONTEXT_BUCKETS]
    lines = ["| model | " + " | ".join(f"{shown} context entities ({rows[0][f'n_{bucket}']} targets)"
                                       for bucket, shown in buckets) + " |", "|---" * (len(buckets) + 1) + "|"]
    for row in rows:
        lines.append(f"| {label(row)} | " + " | ".join(f"{row['mean'][f'{bucket}_hit@10']:.3f}"
                                                       for bucket, _ in buckets) + " |")
    return "\n".join(lines)


def cog_table(protocol: str, detail: bool = False) -> str:
    """A table of the committed report for a cog block of the README (``detail=False``) or docs/results.md."""
    return table(load_report(), protocol, DOCS_COLUMNS if detail else README_COLUMNS, variants=detail)


def load_report() -> Dict[str, Any]:
    """The committed report, ``bench/results/redial-rec.json``."""
    return json.loads(STEM.with_suffix(".json").read_text(encoding="utf-8"))


def markdown(report: Dict[str, Any]) -> str:
    lines = ["# ReDial recommendation over seeds, both target protocols", "",
             f"Report built at commit `{report['git_commit']}` from the records in `bench/results/redial-rec/` (each "
             "names the commit it ran). Test set; mean ± sample standard deviation over the seeds listed; the shortcut "
             "baselines are deterministic (one run). C2-CRS − model (p): the C2-CRS row minus this row on the test "
             "targets' seed-averaged hits, two-sided paired permutation test over the targets (10,000 resamples, so "
             "p 0.0002 means p <= 0.0002; `bench/significance.py`). Budget and pre-training: "
             "`bench/recommendation.py`. Published rows: the figure as published, under this protocol.", ""]
    for protocol, rows in report["protocols"].items():
        if not rows:
            continue
        title = {"recommender": "CRSLab protocol: targets are the movies of Recommender turns",
                 "all": "Authors' protocol: targets are the movies of every turn that mentions one (Seeker turns "
                        "too)"}[protocol]
        lines += [f"## {title} (`rec_targets={protocol}`)", "",
                  f"{rows[0]['n_targets']} test targets"
                  + (f", {rows[0]['n_entityless']} of them with no entity in their context" if "n_entityless" in rows[0]
                     else "") + ".", "", table(report, protocol, REPORT_COLUMNS, commits=True), ""]
    return "\n".join(lines)


def plot(report: Dict[str, Any], path: Path) -> None:
    """Test Recall@10 and @50 per model (mean ± std over seeds), one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [protocol for protocol, rows in report["protocols"].items() if rows]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        rows = report["protocols"][protocol]
        x = range(len(rows))
        for offset, key in ((-0.2, "hit@10"), (0.2, "hit@50")):
            ax.bar([i + offset for i in x], [row["mean"][key] for row in rows], 0.4,
                   yerr=[row["std"][key] for row in rows], capsize=3, label=key.replace("hit", "Recall"))
        ax.set_xticks(list(x), [row["name"] for row in rows], rotation=30, ha="right")
        ax.set_title(f"rec_targets={protocol}")
        ax.set_ylabel("test recall")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(data_root: Optional[str] = None) -> Dict[str, Any]:
    """Summarise every protocol's records into ``redial-rec.{json,md,png}``; with the built data at ``data_root``,
    also Recall@10 on the targets whose context holds no entity."""
    sizes = context_sizes(data_root) if data_root else {}
    result = {"git_commit": git_commit(),
              "protocols": {protocol: summarise(protocol, sizes.get(protocol)) for protocol in PROTOCOLS}}
    write_report(STEM, result, markdown(result))
    plot(result, STEM.with_suffix(".png"))
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or skip, when recorded) the rec runs of one protocol")
    run.add_argument("--protocol", choices=PROTOCOLS, required=True)
    run.add_argument("--models", default="C2CRS,KBRD,KGSF," + ",".join(SHORTCUTS))
    run.add_argument("--seeds", default="42,43,44,45,46", help="comma-separated rec seeds")
    run.add_argument("--pretrain-seed", type=int, default=42, help="pre-training seed of C2-CRS and KGSF")
    run.add_argument("--variant", choices=sorted(VARIANTS), default=None, help="a C2-CRS setting to compare")
    run.add_argument("--pretraining", choices=sorted(PRETRAININGS), default=HEADLINE_PRETRAINING,
                     help="the C2-CRS pre-training its rec runs start from (default: the config's)")
    run.add_argument("--data-root", default=str(ROOT / "data"))
    tabulate = sub.add_parser("report", help="tabulate and plot every recorded run")
    tabulate.add_argument("--data-root", default=None,
                          help="the built data: adds Recall@10 on the targets whose context holds no entity")
    args = parser.parse_args(argv)
    if args.command == "report":
        if args.data_root:
            require_built_data(tabulate, args.data_root)
        report(args.data_root)
        # the README's and docs/results.md's tables are cog blocks over the report just written
        return Cog().main(["cog", "-r", *(str(ROOT / path) for path in COG_DOCS)])
    models = [model for model in args.models.split(",") if model]
    unknown = sorted(set(models) - set(CONFIGS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {sorted(CONFIGS)}")
    if args.variant and models != ["C2CRS"]:
        parser.error(f"--variant {args.variant} is a C2-CRS setting: give --models C2CRS")
    seeds = parse_seeds(parser, "--seeds", args.seeds)
    args.data_root = str(Path(args.data_root).resolve())
    require_built_data(parser, args.data_root)
    workdir = RESULTS / "runs-rec"
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.protocol, args.data_root, workdir)
    for model in models:
        for seed in (seeds[:1] if model in SHORTCUTS else seeds):
            bench.rec(model, seed, args.pretrain_seed, args.variant, args.pretraining)
    return 0


if __name__ == "__main__":
    sys.exit(main())
