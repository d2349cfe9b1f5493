"""What each conv epoch's decoder says on the validation split: curves from a run with ``conv.decode_valid``.

Usage::

    python run_crslab.py --config config/c2crs/redial.yaml ... --set conv.decode_valid=true --results run.json
    python -m bench.conv_curves run.json --out bench/results/my-conv-curves

Reads the run's ``--results`` history (the validation likelihood of every conv epoch and its ``valid_decode``
report: greedy decoding of the same validation batches) and writes ``<out>.json`` and ``<out>.md`` (one row per
epoch: validation NLL, BLEU-1/2, F1, Distinct-2/3 (paper definition), mean length) and ``<out>.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.redial import response_length, write_report

COLUMNS = (("valid NLL", "nll"), ("BLEU-1", "bleu@1"), ("BLEU-2", "bleu@2"), ("F1", "f1"),
           ("Distinct-2", "dist_ratio@2"), ("Distinct-3", "dist_ratio@3"), ("length", "length"))


def epoch_rows(history: List[Dict[str, Any]]) -> List[Dict[str, float]]:
    """One row per conv epoch that has a ``valid_decode`` report: its metrics, the epoch's validation NLL
    (``nll``, the ``val`` report of the same epoch just before it) and the mean generated length (tokens per
    response, :func:`bench.redial.response_length`)."""
    rows, last_val = [], None
    for entry in history:
        metrics = entry["metrics"]
        if entry["mode"] == "val" and "gen_loss" in metrics:
            last_val = metrics["gen_loss"]
        elif entry["mode"] == "valid_decode":
            row = {"epoch": entry["epoch"] + 1, **metrics}
            if last_val is not None:
                row["nll"] = last_val
            length = response_length(metrics)
            if length is not None:
                row["length"] = length
            rows.append(row)
    return rows


def markdown(rows: List[Dict[str, float]], title: str) -> str:
    lines = [f"# {title}", "", "| epoch | " + " | ".join(label for label, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        cells = [f"{row[key]:.4f}" if key in row and key != "length" else f"{row.get(key, float('nan')):.1f}"
                 for _, key in COLUMNS]
        lines.append(f"| {row['epoch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = ((("nll", "validation NLL"),), (("bleu@1", "BLEU-1"), ("f1", "F1"), ("dist_ratio@2", "Distinct-2"),
                                             ("dist_ratio@3", "Distinct-3")), (("length", "tokens per response"),))
    for axis, panel in zip(axes, panels):
        for key, label in panel:
            axis.plot(epochs, [row.get(key, float("nan")) for row in rows], marker="o", label=label)
        axis.set_xlabel("conv epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a run's --results JSON (run with --set conv.decode_valid=true)")
    parser.add_argument("--out", required=True, help="output stem: writes <out>.json, <out>.md and <out>.png")
    parser.add_argument("--title", default="Greedy decoding of the validation batches after each conv epoch")
    args = parser.parse_args(argv)
    try:
        result = json.loads(Path(args.results).read_text(encoding="utf-8"))
        history = result["history"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        parser.error(f"{args.results}: not a run_crslab --results file ({err})")
    rows = epoch_rows(history)
    if not rows:
        parser.error(f"{args.results}: no valid_decode reports; run the conv stage with --set conv.decode_valid=true")
    report = {"source": str(args.results), "config": result.get("config"), "epochs": rows,
              "test": result.get("test")}
    write_report(Path(args.out), report, markdown(rows, args.title))
    plot(rows, Path(f"{args.out}.png"), args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
