"""Command line: ``python -m crslab_c2crs.data build redial [--raw DIR] [--data-root DIR] [--force]`` and
``python -m crslab_c2crs.data build tgredial [--reviews FILE] [--data-root DIR] [--force]``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

from loguru import logger

from crslab_c2crs.data.builder import build_redial
from crslab_c2crs.data.builder.output import build_lock
from crslab_c2crs.data.builder.stats import format_table
from crslab_c2crs.data.builder.tgredial import build_tgredial
from crslab_c2crs.data.layout import STATS_FILE, redial_dir
from crslab_c2crs.data.linking import DEFAULT_THRESHOLD
from crslab_c2crs.errors import PluginError
from crslab_c2crs.paths import DEFAULT_RAW, resolve_data_root


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crslab_c2crs.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a dataset offline from raw files")
    build.add_argument("dataset", choices=["redial", "tgredial"],
                       help="redial: everything, from raw ReDial; tgredial: side files beside CRSLab's TG-ReDial")
    build.add_argument("--raw", default=str(DEFAULT_RAW), help=f"raw ReDial folder (default {DEFAULT_RAW})")
    build.add_argument("--reviews", default=None,
                       help="tgredial: review file for C2-CRS, one JSON object per line: movie, text, rating")
    build.add_argument("--data-root", default=None,
                       help="CRSLab data root (default $CRSLAB_DATA_ROOT, else ./data)")
    build.add_argument("--force", action="store_true",
                       help="replace an existing build (it is moved aside to <name>.old-/.bak-<time>, never deleted)")
    build.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                       help=f"fuzzy entity-linking threshold, 0-100 (default {DEFAULT_THRESHOLD})")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status (2 on a data error, printed without a traceback)."""
    args = parse_args(argv)
    data_root = resolve_data_root(args.data_root)
    started = time.monotonic()
    try:
        with build_lock(data_root):
            if args.dataset == "tgredial":
                stats = build_tgredial(data_root, Path(args.reviews) if args.reviews else None, force=args.force)
            else:
                stats = build_redial(Path(args.raw), data_root, force=args.force, threshold=args.threshold)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dataset == "tgredial":
        print("\n".join(f"{key}: {value}" for key, value in stats.items()))
    else:
        print(format_table(stats))
        print(f"statistics saved to {redial_dir(data_root) / STATS_FILE}")
    logger.info(f"build finished in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
