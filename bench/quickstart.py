"""The record of a quick start measured from a fresh clone, and the README's sentence about it.

Usage (in a fresh clone beside ``../shared``, 2 idle cores)::

    /usr/bin/time -v make quickstart > quickstart.log 2>&1
    python -m bench.quickstart record --log quickstart.log --results data/save/C2CRS_quickstart/results.json \\
        --commit $(git rev-parse --short HEAD) --out bench/results/redial-quickstart.json

``record`` reads the wall time and peak memory that ``/usr/bin/time -v`` printed, the time and training speed of
each stage from the run's log lines (``[<stage>: N training samples in Xs (Y samples/s), Zs in all]``) and the test
metrics from ``--results``; the README's and docs' figures are cog blocks over the committed record
(:func:`summary`), so they always name the commit it measured.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.redial import ROOT, response_length
from crslab_c2crs.atomic import write_json

RECORD = ROOT / "bench" / "results" / "redial-quickstart.json"
TEST_KEYS = ("hit@1", "hit@10", "hit@50", "new_hit@10", "coverage@10", "bleu@1", "bleu@2", "f1", "dist_ratio@2",
             "dist_ratio@3", "dist@2", "movie_mentions", "mentions_top10_new")
STAGE_LINE = re.compile(r"\[(\w+): (\d+) training samples in ([\d.]+)s \(([\d.]+) samples/s\), ([\d.]+)s in all\]")


def wall_seconds(text: str) -> float:
    """``Elapsed (wall clock) time (h:mm:ss or m:ss): 24:58`` -> 1498.0."""
    match = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if match is None:
        raise ValueError("no 'Elapsed (wall clock) time' line: run make under /usr/bin/time -v")
    seconds = 0.0
    for part in match.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def peak_rss_gb(text: str) -> float:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if match is None:
        raise ValueError("no 'Maximum resident set size' line: run make under /usr/bin/time -v")
    return round(int(match.group(1)) / 1024 ** 2, 2)


def stages(text: str) -> Dict[str, Dict[str, float]]:
    """Per stage: training samples, training seconds, samples/s and the stage's seconds in all."""
    return {name: {"train_samples": int(samples), "train_seconds": float(train), "samples_per_s": float(speed),
                   "stage_seconds": float(total)}
            for name, samples, train, speed, total in STAGE_LINE.findall(text)}


def build_record(log: str, results: Dict[str, Any], commit: str) -> Dict[str, Any]:
    test = {key: round(results["test"][key], 4) for key in TEST_KEYS if key in results["test"]}
    length = response_length(results["test"])
    if length is not None:
        test["tokens_per_response"] = round(length, 2)
    return {"what": f"make quickstart from a fresh clone of {commit} (beside ../shared), /usr/bin/time -v",
            "commit": commit, "wall_seconds": round(wall_seconds(log)), "peak_rss_gb": peak_rss_gb(log),
            "stages": stages(log), "quickstart_test": test}


def summary(record: Optional[Dict[str, Any]] = None) -> str:
    """One sentence of the committed quick-start record's figures, for the README's cog block."""
    record = record or json.loads(RECORD.read_text(encoding="utf-8"))
    test = record["quickstart_test"]
    minutes, seconds = divmod(record["wall_seconds"], 60)
    return (f"Its last measurement from a fresh clone (commit `{record['commit']}`; "
            f"[record](bench/results/redial-quickstart.json), [details](docs/results.md#the-quick-start)): "
            f"{minutes} min {seconds:02d} s, peak memory {record['peak_rss_gb']} GB, test Recall@10 "
            f"{test['hit@10']:.3f}, BLEU-1 {test['bleu@1']:.3f}, Distinct-2 {test['dist_ratio@2']:.3f}.")


def details(record: Optional[Dict[str, Any]] = None) -> str:
    """The committed record's stages and test figures, for docs/results.md's cog block."""
    record = record or json.loads(RECORD.read_text(encoding="utf-8"))
    test, stages = record["quickstart_test"], record["stages"]
    minutes, seconds = divmod(record["wall_seconds"], 60)
    timing = ", ".join(f"{name} {stage['stage_seconds'] / 60:.1f} min ({stage['samples_per_s']:.1f} samples/s)"
                       for name, stage in stages.items())
    return "\n".join([
        f"**Measured from a fresh clone** (commit `{record['commit']}`; "
        "[record](../bench/results/redial-quickstart.json)): "
        f"**{minutes} min {seconds:02d} s for the whole `make quickstart`**, setup and data build included ({timing}), "
        f"peak RSS {record['peak_rss_gb']} GB.", "",
        "| Recall@1 / @10 / @50 | new-item R@10 | BLEU-1 | BLEU-2 | F1 | Distinct-2 (paper) | Distinct-3 | tokens per "
        "response | movies per response | of them in the top 10, not in the context |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {test['hit@1']:.3f} / {test['hit@10']:.3f} / {test['hit@50']:.3f} | {test['new_hit@10']:.3f} | "
        f"{test['bleu@1']:.3f} | {test['bleu@2']:.3f} | {test['f1']:.3f} | {test['dist_ratio@2']:.3f} | "
        f"{test['dist_ratio@3']:.3f} | {test['tokens_per_response']:.1f} | {test['movie_mentions']:.2f} | "
        f"{test['mentions_top10_new']:.2f} |"])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("record", help="write the record of a measured quick start")
    make.add_argument("--log", required=True, help="make quickstart's output under /usr/bin/time -v")
    make.add_argument("--results", required=True, help="the run's --results file")
    make.add_argument("--commit", required=True)
    make.add_argument("--out", default=str(RECORD))
    args = parser.parse_args(argv)
    for flag, path in (("--log", args.log), ("--results", args.results)):
        if not Path(path).is_file():
            parser.error(f"{flag} {path}: no such file")
    try:
        record = build_record(Path(args.log).read_text(encoding="utf-8", errors="replace"),
                              json.loads(Path(args.results).read_text(encoding="utf-8")), args.commit)
    except ValueError as err:
        parser.error(f"--log {args.log}: {err}")
    if not record["stages"]:
        parser.error(f"--log {args.log}: no stage lines ([coarse: N training samples in ...]): is it the run's log?")
    write_json(args.out, record, indent=1)
    print(summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
