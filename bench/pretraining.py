"""What C2-CRS's pre-training buys the recommender, against its budget: the paper's schedule with snapshots, rec
seeds from every budget, one table and one plot.

Usage::

    python -m bench.pretraining run [--variant paper|masked|dropout|no_history|no_kg|no_review|multitask] [--seed 42]
        [--rec-seeds 42,43,44] [--schedule 13,12] [--data-root data]
    python -m bench.pretraining report

``run`` pre-trains with the paper's schedule (13 coarse epochs, then 12 fine epochs) and keeps a snapshot after
1, 2, 4 and 8 epochs of each stage (``save_epochs``); the stage checkpoints close the schedule. A killed run resumes
at its latest snapshot or finished stage: every epoch is snapshotted while its stage runs, and the snapshots that
are not budgets are removed when the stage ends. From every budget, (coarse, fine) in (0, 0) (the ``no_pretrain``
ablation), (1, 0), (2, 0), (4, 0), (8, 0), (13, 0), (13, 1), (13, 2), (13, 4), (13, 8), (13, 12), the rec stage runs
with each rec seed, as ``bench.recommendation`` runs it (CRSLab protocol, the same budget and evaluator); each rec
run's record, ``bench/results/redial-pretraining/<variant>/c<coarse>f<fine>-seed<seed>.json``, is skipped when it
exists. The pre-training runs' records (their validation InfoNCE terms beside the id floor and chance) go beside
them. Checkpoints: ``<data root>/save/pretraining/``.

``--schedule C,F`` runs a shorter schedule (C coarse epochs, then F fine epochs; budgets (0, 0), the coarse
snapshots below C, (C, 0), then (C, f) for the fine snapshots below F and F). The learning rate is constant, so a
coarse budget of a shorter schedule is the same model as that of the paper's (the same seeds and epochs); its
checkpoints have a folder of their own (``<variant>-seed<k>-c<C>f<F>``). Budget (0, 0) does not pre-train, so it is
run once, under ``paper``, and the report sets it at the head of every variant.

Variants: ``paper`` (the paper's views), ``masked`` (``pretrain_mask_mentions``), ``dropout``
(``pretrain_entity_dropout=0.3``); see ``docs/model.md``. The paper's Table 4 ablations that need runs of their own are
variants too, run at the budget the ``paper`` curve chooses on validation (``--schedule C,F`` of that budget):
``no_history``, ``no_kg``, ``no_review`` (their ``ablation`` stays on in the rec stage) and ``multitask`` (no
pre-training; its schedule is ignored). The report sets them beside the paper's Table 4 at that budget, where w/o
Coarse-Fine is budget (0, 0) and, at a budget without fine epochs, w/o Coarse and w/o Fine are the same runs as no
pre-training and C2-CRS (:func:`table4_rows`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from loguru import logger

from bench.recommendation import REC_FLAGS, Bench, parse_seeds, tested_validation, tested_validation_metrics
from bench.redial import RESULTS, ROOT, git_commit, mean_std, require_built_data, write_report
from bench.significance import compare
from crslab_c2crs.atomic import write_json

RECORDS = RESULTS / "redial-pretraining"
STEM = RESULTS / "redial-pretraining"
SCHEDULE = {"coarse": 13, "fine": 12}          # the paper's epochs (reference notes)
SNAPSHOTS = [1, 2, 4, 8]                       # the budgets kept from within a stage


def budgets(coarse: int, fine: int) -> List[Tuple[int, int]]:
    """The (coarse, fine) budgets of a schedule of ``coarse`` then ``fine`` epochs, from no pre-training on."""
    return ([(0, 0)] + [(c, 0) for c in SNAPSHOTS if c < coarse] + [(coarse, 0)]
            + [(coarse, f) for f in SNAPSHOTS if f < fine] + ([(coarse, fine)] if fine else []))


BUDGETS = budgets(SCHEDULE["coarse"], SCHEDULE["fine"])
# Each variant names its views in full: the config's default (masked mentions, chosen by this curve) is not the
# paper's
PAPER_VIEWS = ["pretrain_mask_mentions=false"]
# The pre-training objectives compared on validation
OBJECTIVES = {"paper": PAPER_VIEWS, "masked": ["pretrain_mask_mentions=true"],
              "dropout": PAPER_VIEWS + ["pretrain_entity_dropout=0.3"]}
MIN_SEEDS = 3                                  # rec seeds a setting needs before it can be chosen
# The paper's Table 4 rows that need runs of their own, as variants: their ``ablation`` stays on in the rec stage
# (the encoders it removes are not built). Multi-task has no pre-training: its one budget is (0, 0).
ABLATIONS = ("multitask", "no_history", "no_kg", "no_review")
VARIANTS = {**OBJECTIVES, **{name: PAPER_VIEWS + [f"ablation={name}"] for name in ABLATIONS}}
# Table 4 of the paper (ReDial, R@1 / R@10 / R@50; the authors' protocol: every turn that mentions a movie).
PAPER_TABLE4 = {"C2-CRS": (0.053, 0.233, 0.407), "w/o Coarse-Fine": (0.031, 0.150, 0.336),
                "w/o Coarse": (0.049, 0.220, 0.394), "w/o Fine": (0.048, 0.221, 0.400),
                "Multi-task": (0.052, 0.221, 0.404), "w/o CH": (0.048, 0.223, 0.403),
                "w/o SD": (0.051, 0.226, 0.403), "w/o UD": (0.051, 0.222, 0.395)}
PRETRAIN_VALID_BATCHES = 10
METRICS = (("valid R@10", "valid_hit@10"), ("valid R@50", "valid_hit@50"), ("test R@10", "hit@10"),
           ("test R@50", "hit@50"), ("test new R@10", "new_hit@10"))


class Curve:
    """The pre-training of one variant and seed, and the rec runs from each of its budgets."""

    def __init__(self, variant: str, seed: int, data_root: str, workdir: Path,
                 schedule: Optional[Dict[str, int]] = None) -> None:
        self.variant, self.seed, self.data_root = variant, seed, data_root
        self.schedule = dict(schedule or SCHEDULE)
        self.bench = Bench("recommender", data_root, workdir)
        suffix = "" if self.schedule == SCHEDULE else f"-c{self.schedule['coarse']}f{self.schedule['fine']}"
        self.folder = f"pretraining/{variant}-seed{seed}{suffix}"
        self.records = RECORDS / variant

    def _save(self, name: str = "") -> Path:
        return Path(self.data_root) / "save" / self.folder / name

    def _pretrain_stage(self, stage: str) -> None:
        """Run (or finish) one pre-training stage of the schedule, with its snapshots."""
        if self._save(f"{stage}.pth").is_file():
            return
        # a snapshot after every epoch, so that a killed run loses at most one; those that are not budgets are
        # removed once the stage is done (a snapshot, with its optimizer state, is about 1.1 GB)
        every = list(range(1, self.schedule[stage]))
        done = [k for k in every if self._save(f"{stage}-epoch{k}.pth").is_file()]
        overrides = VARIANTS[self.variant] + [
            f"checkpoint_dir={self.folder}", f"end_stage={stage}", f"{stage}.epoch={self.schedule[stage]}",
            f"{stage}.save_epochs={every}", f"{stage}.valid_max_batches={PRETRAIN_VALID_BATCHES}"]
        if done:
            overrides.append(f"{stage}.resume_epoch={max(done)}")
            logger.info(f"[pretraining] {self.variant}: continuing {stage} after {max(done)} epochs")
        result = self.bench.run(f"pretrain-{self.variant}-seed{self.seed}-{stage}", "C2CRS", self.seed, overrides,
                                ["--stage", stage])
        result.pop("ranks", None)
        self.records.mkdir(parents=True, exist_ok=True)
        resumed = f"-from{max(done)}" if done else ""
        write_json(self.records / f"pretrain-seed{self.seed}-{stage}{resumed}.json", result, indent=1, default=str)
        if self._save(f"{stage}.pth").is_file():
            for epochs in sorted(set(every) - set(SNAPSHOTS)):
                self._save(f"{stage}-epoch{epochs}.pth").unlink(missing_ok=True)

    def _budget_folder(self, coarse: int, fine: int) -> str:
        """A checkpoint folder holding the budget's checkpoints under the names the rec stage restores."""
        folder = f"{self.folder}-c{coarse}f{fine}"
        target = Path(self.data_root) / "save" / folder
        target.mkdir(parents=True, exist_ok=True)
        coarse_file = "coarse.pth" if coarse == self.schedule["coarse"] else f"coarse-epoch{coarse}.pth"
        files = {"coarse.pth": coarse_file}
        if fine:
            files["fine.pth"] = "fine.pth" if fine == self.schedule["fine"] else f"fine-epoch{fine}.pth"
        for name, source in files.items():
            (target / name).unlink(missing_ok=True)
            try:  # a hard link: the rec run only reads it, and a checkpoint is hundreds of MB
                os.link(self._save(source), target / name)
            except OSError:
                shutil.copy(self._save(source), target / name)
        return folder

    def rec(self, coarse: int, fine: int, rec_seed: int) -> None:
        path = self.records / f"c{coarse}f{fine}-seed{rec_seed}.json"
        if path.exists():
            return
        # the variant's settings hold in the rec stage too: its ablation, and its views (multi-task's contrastive
        # batches are pre-training batches)
        ablation = [flag for flag in VARIANTS[self.variant] if flag.startswith("ablation=")]
        overrides = list(REC_FLAGS["C2CRS"]) + VARIANTS[self.variant]
        if (coarse, fine) == (0, 0):  # no pre-training: the no_pretrain ablation (multi-task's own skips it too)
            overrides += ([] if ablation else ["ablation=no_pretrain"]) + [f"checkpoint_dir={self.folder}-c0f0"]
            extra: List[str] = []
        elif fine == 0:  # the rec stage from the coarse checkpoint, no fine stage
            overrides += [f"checkpoint_dir={self._budget_folder(coarse, 0)}", "fine.epoch=0"]
            extra = ["--stage", "fine"]
        else:
            # fine epochs set, so that the rec stage restores the fine checkpoint
            overrides += [f"checkpoint_dir={self._budget_folder(coarse, fine)}", f"fine.epoch={fine}"]
            extra = ["--stage", "rec"]
        result = self.bench.run(f"pretraining-{self.variant}-c{coarse}f{fine}-seed{rec_seed}", "C2CRS", rec_seed,
                                overrides, extra)
        result.update(variant=self.variant, pretrain_seed=self.seed, budget=[coarse, fine], name="C2CRS",
                      valid_recall_at_10=tested_validation(result))
        self.records.mkdir(parents=True, exist_ok=True)
        write_json(path, result, default=str)
        logger.info(f"[pretraining] {self.variant} c{coarse}f{fine} seed {rec_seed}: test R@10 "
                    f"{result['test'].get('hit@10')}")

    def run(self, rec_seeds: List[int]) -> None:
        if self.variant == "multitask":  # trained with the rec stage, from no pre-training
            for rec_seed in rec_seeds:
                self.rec(0, 0, rec_seed)
            return
        for stage in ("coarse", "fine"):
            if self.schedule[stage]:
                self._pretrain_stage(stage)
        # seed by seed over the budgets: a run cut short still has the whole curve for its first seeds
        for rec_seed in rec_seeds:
            for coarse, fine in budgets(self.schedule["coarse"], self.schedule["fine"]):
                if (coarse, fine) != (0, 0) or self.variant == "paper":  # no pre-training: one run for all
                    self.rec(coarse, fine, rec_seed)


def tested_metrics(result: Dict[str, Any]) -> Dict[str, float]:
    """The test metrics of a rec record and the validation Recall@10/@50 of the state it tested."""
    valid = tested_validation_metrics(result)
    return {**result["test"], "valid_hit@10": valid.get("hit@10"), "valid_hit@50": valid.get("hit@50")}


Runs = Dict[str, Dict[Tuple[int, int], List[Dict[str, Any]]]]


def load_runs() -> Runs:
    """The rec records under :data:`RECORDS`: variant -> (coarse, fine) budget -> records (one per rec seed)."""
    runs: Runs = {}
    for folder in sorted(RECORDS.iterdir()) if RECORDS.is_dir() else ():
        by_budget = runs.setdefault(folder.name, {})
        for path in sorted(folder.glob("c*f*-seed*.json")):
            result = json.loads(path.read_text(encoding="utf-8"))
            by_budget.setdefault(tuple(result["budget"]), []).append(result)
    return runs


def table4_rows(runs: Runs, budget: Tuple[int, int]) -> List[Dict[str, Any]]:
    """The paper's Table 4 at the pre-training ``budget`` (coarse, fine epochs): per row its runs' mean ± std test
    Recall@1/10/50 over rec seeds and a paired permutation test of Recall@10 against full C2-CRS at that budget.
    At a budget without fine epochs, w/o Coarse (no coarse stage, lambda 0 in the fine stage) is no pre-training
    and w/o Fine is C2-CRS itself, so those rows are the same runs; a row without runs has ``seeds`` 0."""
    coarse, fine = budget
    paper = runs.get("paper", {})
    sources = [("C2-CRS", paper.get(budget, []), "the paper's objective"),
               ("w/o Coarse-Fine", paper.get((0, 0), []), "`no_pretrain`"),
               ("w/o Coarse", paper.get((0, 0), []) if fine == 0 else [],
                "= w/o Coarse-Fine at this budget" if fine == 0 else "`no_coarse` (not run)"),
               ("w/o Fine", paper.get((coarse, 0), []), "= C2-CRS at this budget" if fine == 0 else "`no_fine`"),
               ("Multi-task", runs.get("multitask", {}).get((0, 0), []), "`multitask`"),
               ("w/o CH", runs.get("no_history", {}).get(budget, []), "`no_history`"),
               ("w/o SD", runs.get("no_kg", {}).get(budget, []), "`no_kg`"),
               ("w/o UD", runs.get("no_review", {}).get(budget, []), "`no_review`")]
    full = sources[0][1]
    full_mean = mean_std([result["test"]["hit@10"] for result in full])[0] if full else None
    rows = []
    for label, results, note in sources:
        row: Dict[str, Any] = {"row": label, "run_as": note, "seeds": len(results), "mean": {}, "std": {},
                               "paper": PAPER_TABLE4[label], "commits": sorted({r["git_commit"] for r in results})}
        for key in ("hit@1", "hit@10", "hit@50"):
            if results:
                row["mean"][key], row["std"][key] = mean_std([result["test"][key] for result in results])
        if results and full and results is not full and all("ranks" in r for r in results + full):
            test = compare([r["ranks"] for r in results], [r["ranks"] for r in full], 10)
            row["versus_full"] = {"ratio": row["mean"]["hit@10"] / full_mean,
                                  "p_value": test.p_value, "n": test.n}
        rows.append(row)
    return rows


def table4(rows: List[Dict[str, Any]], budget: Tuple[int, int], same_rows: bool = True) -> str:
    """:func:`table4_rows` as a markdown table beside the paper's figures; without ``same_rows``, leaving out the rows
    that are the same runs as another at this budget."""
    lines = [f"Pre-training budget ({budget[0]}, {budget[1]}) (coarse, fine epochs); ours: CRSLab protocol "
             "(Recommender turns), mean ± std over rec seeds, R@10 against C2-CRS with a paired permutation test; "
             "paper: its Table 4 (every turn that mentions a movie, the authors' data and budget).", "",
             "| Table 4 row | run as | seeds | R@1 | R@10 | R@50 | R@10 vs C2-CRS | paper R@1 | paper R@10 | "
             "paper R@50 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if not same_rows and row["run_as"].startswith("="):
            continue
        cells = [f"{row['mean'][key]:.4f} ± {row['std'][key]:.4f}" if key in row["mean"] else ""
                 for key in ("hit@1", "hit@10", "hit@50")]
        versus = row.get("versus_full")
        lines.append(f"| {row['row']} | {row['run_as']} | {row['seeds']} | " + " | ".join(cells) + " | "
                     + (f"{versus['ratio']:.3f}× (p {versus['p_value']:.2g})" if versus else "") + " | "
                     + " | ".join(f"{value:.3f}" for value in row["paper"]) + " |")
    return "\n".join(lines)


def summarise() -> Dict[str, List[Dict[str, Any]]]:
    """Per variant and budget: mean and std over rec seeds of :data:`METRICS`, the commits, and the paired test of
    test Recall@10 against budget (0, 0) (no pre-training: the ``paper`` folder's runs, at the head of every
    variant)."""
    runs = load_runs()
    baseline = runs.get("paper", {}).get((0, 0), [])
    summary: Dict[str, List[Dict[str, Any]]] = {}
    for variant, by_budget in runs.items():
        if variant == "multitask":  # no pre-training budgets: a Table 4 row only (table4_rows)
            continue
        if baseline:
            by_budget = {(0, 0): baseline, **by_budget}
        rows = []
        for budget in sorted(by_budget):
            results = by_budget[budget]
            metrics = [tested_metrics(result) for result in results]
            row: Dict[str, Any] = {"budget": list(budget), "seeds": len(results), "mean": {}, "std": {}, "tests": {},
                                   "commits": sorted({result["git_commit"] for result in results})}
            for _, key in METRICS:
                values = [run[key] for run in metrics if run.get(key) is not None]
                if values:
                    row["mean"][key], row["std"][key] = mean_std(values)
            if budget != (0, 0) and baseline and all("ranks" in result for result in results + baseline):
                test = compare([result["ranks"] for result in results], [result["ranks"] for result in baseline], 10)
                row["tests"]["hit@10"] = {"difference": test.difference, "p_value": test.p_value, "n": test.n}
            rows.append(row)
        summary[variant] = rows
    return summary


def chosen_on_validation(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The pre-trained budget (not (0, 0)) with the best mean validation Recall@10 among those run with the most
    rec seeds (a one-seed budget does not win on its noise), or None."""
    rows = [row for row in rows if row["budget"] != [0, 0] and "valid_hit@10" in row["mean"]]
    if not rows:
        return None
    most = max(row["seeds"] for row in rows)
    return max((row for row in rows if row["seeds"] == most), key=lambda row: row["mean"]["valid_hit@10"])


def chosen_setting(summary: Dict[str, List[Dict[str, Any]]], runs: Runs) -> Optional[Dict[str, Any]]:
    """The pre-training setting the evidence favours: each objective of :data:`OBJECTIVES` at the budget its own
    curve chooses on validation (:func:`chosen_on_validation`), among those with at least :data:`MIN_SEEDS` rec
    seeds there, the one with the best mean validation Recall@10. Returned with every candidate and, when it is not
    the paper's objective, a paired permutation test of its test Recall@10 against the paper's at the paper's
    chosen budget; None before any objective has enough seeds."""
    candidates = []
    for variant in OBJECTIVES:
        row = chosen_on_validation(summary.get(variant, []))
        if row and row["seeds"] >= MIN_SEEDS:
            candidates.append({"variant": variant, "budget": row["budget"], "seeds": row["seeds"],
                               "valid_hit@10": row["mean"]["valid_hit@10"], "test_hit@10": row["mean"]["hit@10"]})
    if not candidates:
        return None
    best = max(candidates, key=lambda candidate: candidate["valid_hit@10"])
    chosen: Dict[str, Any] = {**best, "candidates": candidates}
    paper = next((candidate for candidate in candidates if candidate["variant"] == "paper"), None)
    if paper and best is not paper:
        ranks = [[result["ranks"] for result in runs[c["variant"]][tuple(c["budget"])]] for c in (best, paper)]
        test = compare(ranks[0], ranks[1], 10)
        chosen["versus_paper"] = {"ratio": best["test_hit@10"] / paper["test_hit@10"], "p_value": test.p_value,
                                  "n": test.n}
    return chosen


def chosen_markdown(chosen: Optional[Dict[str, Any]], brief: bool = False) -> str:
    """:func:`chosen_setting` as a table and the choice, or (``brief``) in one sentence."""
    if chosen is None:
        return f"No pre-training setting has {MIN_SEEDS} rec seeds at its chosen budget yet."
    versus = chosen.get("versus_paper")
    choice = (f"**{chosen['variant']}** at ({chosen['budget'][0]}, {chosen['budget'][1]})"
              + (f"; test Recall@10 {versus['ratio']:.3f}× the paper's objective's (p {versus['p_value']:.2g})"
                 if versus else "") + ".")
    if brief:
        return ("Validation Recall@10 of each objective at the budget its curve chooses: " + "; ".join(
            f"{c['variant']} ({c['budget'][0]}, {c['budget'][1]}) {c['valid_hit@10']:.4f} over {c['seeds']} rec "
            f"seeds (test {c['test_hit@10']:.4f})" for c in chosen["candidates"]) + ". Chosen: " + choice)
    lines = [f"Each objective at the budget its curve chooses on validation ({MIN_SEEDS}+ rec seeds there):", "",
             "| objective | budget (coarse, fine) | seeds | valid R@10 | test R@10 |", "|---|---|---|---|---|"]
    lines += [f"| {c['variant']} | ({c['budget'][0]}, {c['budget'][1]}) | {c['seeds']} | {c['valid_hit@10']:.4f} | "
              f"{c['test_hit@10']:.4f} |" for c in chosen["candidates"]]
    return "\n".join(lines + ["", "Chosen: " + choice])


def floor_rows(folder: Path) -> List[Dict[str, Any]]:
    """Per pre-training stage and epoch of a variant's records (``pretrain-seed<k>-<stage>[-from<e>].json``, a
    resumed stage in several): every validation InfoNCE term beside the id floor's and chance's on the same batches,
    as ``{"stage", "epoch", "seed", "terms": {term: {"trained", "floor", "chance"}}}``, by stage then epoch."""
    rows: Dict[Tuple[int, str, int], Dict[str, Any]] = {}
    for path in folder.glob("pretrain-seed*-*.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        stage = path.stem.split("-")[2]
        for entry in result.get("history", []):
            if entry["mode"] != "val":
                continue
            metrics = entry["metrics"]
            terms = {name: {"trained": value, "floor": metrics.get(f"floor/{name}"),
                            "chance": metrics.get(f"chance/{name}")}
                     for name, value in metrics.items() if name.startswith(("coarse/", "fine/"))}
            rows[(result["seed"], stage, entry["epoch"])] = {"stage": stage, "epoch": entry["epoch"],
                                                              "seed": result["seed"], "terms": terms}
    order = {stage: index for index, stage in enumerate(SCHEDULE)}
    return [rows[key] for key in sorted(rows, key=lambda key: (key[0], order.get(key[1], 9), key[2]))]


def floor_markdown(rows: List[Dict[str, Any]]) -> List[str]:
    """A table of :func:`floor_rows`: ``trained / floor`` per term (bold where the trained term is below the id
    floor: the model learned what entity ids alone do not give), chance in the header."""
    if not rows:
        return []
    names = sorted({name for row in rows for name in row["terms"]}, key=lambda name: (name.split("/")[0] != "coarse",
                                                                                       name))
    chance = {name: next((row["terms"][name]["chance"] for row in rows if name in row["terms"]), None)
              for name in names}
    lines = ["Validation InfoNCE of each pre-training epoch, `trained / id floor` (the id floor: one fixed random "
             "vector per entity id, nothing trained; **bold**: the trained term is below it); chance in the header.",
             "", "| stage | epoch | " + " | ".join(
                 f"{name} (chance {chance[name]:.2f})" if chance[name] is not None else name for name in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for row in rows:
        cells = []
        for name in names:
            term = row["terms"].get(name)
            if term is None or term["floor"] is None:
                cells.append("" if term is None else f"{term['trained']:.3f}")
                continue
            text = f"{term['trained']:.3f} / {term['floor']:.3f}"
            cells.append(f"**{text}**" if term["trained"] < term["floor"] else text)
        lines.append(f"| {row['stage']} | {row['epoch'] + 1} | " + " | ".join(cells) + " |")
    return lines + [""]


def _versus_baseline(row: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> str:
    """``ratio× (p …)``: the row's mean test Recall@10 over no pre-training's, with the paired test's p-value."""
    test = row["tests"].get("hit@10")
    if test is None or not baseline or not baseline["mean"].get("hit@10"):
        return ""
    return f"{row['mean']['hit@10'] / baseline['mean']['hit@10']:.3f}× (p {test['p_value']:.2g})"


def markdown(summary: Dict[str, List[Dict[str, Any]]], commit: str,
             ablations: Optional[Dict[str, Any]] = None, chosen: Optional[Dict[str, Any]] = None) -> str:
    lines = ["# C2-CRS: the recommender against the pre-training budget", "",
             f"Report at `{commit}` from `bench/results/redial-pretraining/` (each record names its commit). Rec "
             "stage as `bench.recommendation` runs it (CRSLab protocol: Recommender turns are the targets; Recall@k "
             "as CRSLab computes it); mean ± std over rec seeds; budget (0, 0) is the `no_pretrain` ablation (the "
             "`paper` folder's runs, the same for every variant). Last column: test Recall@10 over (0, 0)'s, with a "
             "two-sided paired permutation test over the test targets (seed-averaged hits).", "",
             "## The pre-training setting chosen on validation", "", chosen_markdown(chosen), ""]
    if ablations:
        lines += ["## The paper's Table 4 at the budget chosen on validation", "",
                  table4(ablations["rows"], ablations["budget"]), ""]
    for variant, rows in summary.items():
        lines += [f"## {variant}", ""]
        if rows:
            lines += [budget_table(rows), ""]
        lines += floor_markdown(floor_rows(RECORDS / variant))
    return "\n".join(lines)


def budget_table(rows: List[Dict[str, Any]]) -> str:
    """One variant's rows of :func:`summarise` as a table, and the budget chosen on validation."""
    baseline = next((row for row in rows if row["budget"] == [0, 0]), None)
    lines = ["| coarse epochs | fine epochs | seeds | " + " | ".join(label for label, _ in METRICS)
             + " | test R@10 vs no pre-training |", "|---" * (len(METRICS) + 4) + "|"]
    for row in rows:
        cells = [f"{row['mean'][key]:.4f} ± {row['std'][key]:.4f}" if key in row["mean"] else ""
                 for _, key in METRICS]
        lines.append(f"| {row['budget'][0]} | {row['budget'][1]} | {row['seeds']} | " + " | ".join(cells)
                     + f" | {_versus_baseline(row, baseline)} |")
    chosen = chosen_on_validation(rows)
    if chosen:
        lines += ["", f"Chosen on validation Recall@10 (among the budgets with {chosen['seeds']} rec seeds): "
                  f"({chosen['budget'][0]}, {chosen['budget'][1]}), test Recall@10 "
                  f"{chosen['mean']['hit@10']:.4f}, {_versus_baseline(chosen, baseline) or 'no baseline'}."]
    return "\n".join(lines)


def plot(summary: Dict[str, List[Dict[str, Any]]], floors: Dict[str, List[Dict[str, Any]]], path: Path) -> None:
    """Validation and test Recall@10 against the pre-training epochs (coarse + fine), one line per variant, and
    each variant's validation InfoNCE terms against its epochs with the id floors as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, key, title in ((axes[0], "valid_hit@10", "validation Recall@10"), (axes[1], "hit@10", "test Recall@10")):
        for variant, rows in summary.items():
            rows = [row for row in rows if key in row["mean"]]
            if rows:
                ax.errorbar([sum(row["budget"]) for row in rows], [row["mean"][key] for row in rows],
                            yerr=[row["std"][key] for row in rows], marker="o", capsize=3, label=variant)
        ax.set_xlabel("pre-training epochs (coarse, then fine)")
        ax.set_title(title)
        if ax.lines:
            ax.legend()
    ax = axes[2]
    for variant, rows in floors.items():
        # fine epochs follow the coarse epochs the run had on the x axis
        coarse_epochs = max((row["epoch"] + 1 for row in rows if row["stage"] == "coarse"), default=0)
        for name in sorted({name for row in rows for name in row["terms"]}):
            points = [(row["epoch"] + 1 + (coarse_epochs if row["stage"] == "fine" else 0), row["terms"][name])
                      for row in rows if name in row["terms"]]
            line, = ax.plot([x for x, _ in points], [term["trained"] for _, term in points], marker=".",
                            label=f"{variant} {name}")
            floor = [term["floor"] for _, term in points if term["floor"] is not None]
            if floor:
                ax.axhline(floor[-1], color=line.get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("pre-training epochs (coarse, then fine)")
    ax.set_title("validation InfoNCE (dashed: id floor)")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_schedule(parser: argparse.ArgumentParser, text: str) -> Dict[str, int]:
    """``--schedule C,F`` as ``{"coarse": C, "fine": F}``; C at least 1, F at least 0 (exits with one line)."""
    try:
        coarse, fine = (int(part) for part in text.split(","))
    except ValueError:
        parser.error(f"--schedule: {text!r} is not two epoch counts such as 13,12 (coarse, fine)")
    if coarse < 1 or fine < 0:
        parser.error(f"--schedule: {text!r} needs at least 1 coarse epoch and no negative fine epochs")
    return {"coarse": coarse, "fine": fine}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="pre-train with snapshots, then rec from every budget (resumes)")
    run.add_argument("--variant", choices=sorted(VARIANTS), default="paper")
    run.add_argument("--seed", type=int, default=42, help="pre-training seed")
    run.add_argument("--rec-seeds", default="42,43,44")
    run.add_argument("--schedule", default=f"{SCHEDULE['coarse']},{SCHEDULE['fine']}",
                     help="coarse and fine epochs, e.g. 2,2 (default: the paper's)")
    run.add_argument("--data-root", default=str(ROOT / "data"))
    sub.add_parser("report", help="tabulate and plot the recorded rec runs and the pre-training terms")
    args = parser.parse_args(argv)
    if args.command == "report":
        summary = summarise()
        if not summary:
            parser.error(f"no records under {RECORDS}; run first")
        commit = git_commit()
        floors = {variant: floor_rows(RECORDS / variant) for variant in summary}
        chosen = chosen_on_validation(summary.get("paper", []))
        runs = load_runs()
        ablations = None if chosen is None else {
            "budget": chosen["budget"], "rows": table4_rows(runs, tuple(chosen["budget"]))}
        setting = chosen_setting(summary, runs)
        write_report(STEM, {"git_commit": commit, "variants": summary, "floors": floors, "table4": ablations,
                            "chosen": setting}, markdown(summary, commit, ablations, setting))
        objectives = {variant: rows for variant, rows in summary.items() if variant in OBJECTIVES}
        plot(objectives, {variant: floors[variant] for variant in objectives}, STEM.with_suffix(".png"))
        return 0
    rec_seeds = parse_seeds(parser, "--rec-seeds", args.rec_seeds)
    schedule = parse_schedule(parser, args.schedule)
    args.data_root = str(Path(args.data_root).resolve())
    require_built_data(parser, args.data_root)
    workdir = RESULTS / "runs-pretraining"
    workdir.mkdir(parents=True, exist_ok=True)
    Curve(args.variant, args.seed, args.data_root, workdir, schedule).run(rec_seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
