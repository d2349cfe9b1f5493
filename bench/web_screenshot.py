"""The README's picture of the web chat: saved models side by side, a scripted conversation typed into a real
headless Chromium, the page saved as a PNG.

Usage::

    python -m bench.web_screenshot --data-root data \\
        --model config/c2crs/redial.yaml checkpoint_dir=C2CRS_quickstart block_ngram=3 \\
        --model config/kgsf/redial.yaml checkpoint_dir=KGSF_quickstart \\
        --model config/kbrd/redial.yaml checkpoint_dir=KBRD_quickstart [--turns 3] [--out docs/img/web-chat.png]

Each ``--model`` is restored as the web chat restores it; the first ``--turns`` lines of the script's first
conversation (``bench/chat/script.json``) are typed into the page one by one, each waited for in every column, and
the whole page (not only the window) is written to ``--out``.
"""
from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench.browser import chromium_missing, headless_chromium, open_page, send, served
from bench.chat_script import RESET, SCRIPT, open_chats, read_script
from bench.redial import ROOT
from crslab_c2crs.interactive.chat import Chat
from crslab_c2crs.interactive.web import add_model_arguments, create_app

OUT = ROOT / "docs" / "img" / "web-chat.png"
WIDTH = 1500  # CSS pixels: three columns side by side


def first_talk(lines: List[str], turns: int) -> List[str]:
    """The first ``turns`` lines before the script's first ``[RESET]``."""
    talk = lines[:lines.index(RESET)] if RESET in lines else lines
    return talk[:turns]


def screenshot(chats: Dict[str, Chat], lines: Sequence[str], out: Path) -> None:
    """Serve ``chats`` side by side, type ``lines`` into the page one by one, and write the whole page to ``out``
    (PNG, :data:`WIDTH` CSS pixels wide)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with served(create_app(chats)) as url, headless_chromium(WIDTH, 900) as driver:
        open_page(driver, url, len(chats))
        for count, line in enumerate(lines, start=1):
            send(driver, line, count)
        # the whole page, beyond the window (Chromium's DevTools protocol: a window screenshot stops at its edge)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        out.write_bytes(base64.b64decode(shot["data"]))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--script", default=str(SCRIPT), help="JSON with a \"lines\" list ([RESET] between talks)")
    parser.add_argument("--turns", type=int, default=3, help="user turns typed into the page")
    parser.add_argument("--topk", type=int, default=5, help="recommendations shown per model, as the web chat's")
    parser.add_argument("--out", default=str(OUT), help="the PNG to write")
    args = parser.parse_args(argv)
    if chromium_missing():
        parser.error(chromium_missing())
    if args.turns < 1:
        parser.error(f"--turns {args.turns}: expected at least 1")
    lines = first_talk(read_script(parser, args.script), args.turns)
    chats = open_chats(parser, args, args.topk)
    screenshot(chats, lines, Path(args.out))
    print(f"wrote {args.out} ({len(lines)} turns, {len(chats)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
