"""What movie slots change on the test set: each quick-start-sized model's test pass with the decoder's own movies and
with the slots filled from the turn's ranking, side by side.

Usage (the models of ``make web``; ``results.json`` is the training run's test pass, the raw decoder output;
``results-slots.json`` the same saved model tested again with ``eval_movie_slots=true``, as in docs/chat.md)::

    python -m bench.chat_slots record --data-root data [--runs C2CRS_quickstart,KGSF_quickstart,KBRD_quickstart]

Writes ``bench/results/chat-slots-test.{json,md}``; :func:`table` is the docs' cog block over the record.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.redial import RESULTS, git_commit, load_record, write_report

NAME = "chat-slots-test"
RUNS = ("C2CRS_quickstart", "KGSF_quickstart", "KBRD_quickstart")
PASSES = {"raw": "results.json", "movie slots": "results-slots.json"}
# (column, metric key of our evaluator): the responses' words, then how far their movies agree with the ranking
KEYS = (("BLEU-1", "bleu@1"), ("BLEU-2", "bleu@2"), ("F1", "f1"), ("Distinct-2 (ratio)", "dist_ratio@2"),
        ("Distinct-2 (per response)", "dist@2"), ("movies per response", "movie_mentions"),
        ("of them in the top 10 and new", "mentions_top10_new"))


def read_pass(path: Path) -> Dict[str, Any]:
    """The test metrics of one ``--results`` file and what it tested; ValueError with one line when it is not one."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        test, config = result["test"], result["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a run_crslab.py --results file ({err})") from None
    missing = [key for _, key in KEYS if key not in test]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} in its test metrics (a conv test pass writes them)")
    return {"model": config.get("model"), "eval_movie_slots": bool(config.get("eval_movie_slots", False)),
            "test_max_batches": config.get("conv", {}).get("test_max_batches"),
            "conv_batch_size": config.get("conv", {}).get("batch_size"),
            "metrics": {key: test[key] for _, key in KEYS}}


def build_record(save: Path, runs: List[str]) -> Dict[str, Any]:
    """Both passes of every run folder under ``save``, checked to be the slot setting their name says."""
    models = {}
    for run in runs:
        passes = {name: read_pass(save / run / file) for name, file in PASSES.items()}
        for name, entry in passes.items():
            if entry["eval_movie_slots"] != (name == "movie slots"):
                raise ValueError(f"{save / run / PASSES[name]}: eval_movie_slots is {entry['eval_movie_slots']}, "
                                 f"not the {name} pass")
        models[run] = passes
    return {"git_commit": git_commit(), "what": "each model's test pass, raw and with eval_movie_slots",
            "models": models}


def table(record: Optional[Dict[str, Any]] = None) -> str:
    """The record as a markdown table: one row per model and pass."""
    record = record or load_record(NAME)
    lines = ["| model | pass | " + " | ".join(label for label, _ in KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for run, passes in record["models"].items():
        for name, entry in passes.items():
            lines.append(f"| {entry['model']} | {name} | "
                         + " | ".join(f"{entry['metrics'][key]:.3f}" for _, key in KEYS) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="read both test passes of every run and write the record")
    record.add_argument("--data-root", default="data")
    record.add_argument("--runs", default=",".join(RUNS), help="checkpoint_dir of each saved model")
    record.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    try:
        built = build_record(Path(args.data_root) / "save", [run for run in args.runs.split(",") if run])
    except ValueError as err:
        parser.error(str(err))
    write_report(Path(args.out) / NAME, built, table(built) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
