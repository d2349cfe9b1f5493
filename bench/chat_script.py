"""A scripted conversation with saved models: the transcript, each turn's latency, and whether the replies agree
with the recommendations.

Usage::

    python -m bench.chat_script --data-root data \\
        --model config/c2crs/redial.yaml checkpoint_dir=C2CRS_quickstart block_ngram=3 \\
        --model config/kgsf/redial.yaml checkpoint_dir=KGSF_quickstart \\
        --model config/kbrd/redial.yaml checkpoint_dir=KBRD_quickstart [--script bench/chat/script.json]

Each ``--model`` (as the web chat takes it) is restored once and answers every line of the script (``[RESET]``
starts a new conversation) twice: with ``movie_slots`` (the chat's default: the movies a reply names come from the
recommender's ranking) and with the decoder's own movies. Per turn it records the reply, the movies it names, the
top 10 recommendations and the latency, and counts the two slips the chat must not make: a reply that offers a
movie the user named earlier in the conversation, and a reply movie outside that turn's top 10. Latency is the
movie-slots pass's (the chat's), after one warm-up turn that is not counted. Writes
``bench/results/<name>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench.redial import RESULTS, ROOT, git_commit, write_report
from crslab_c2crs.errors import USER_ERRORS
from crslab_c2crs.interactive.chat import Chat
from crslab_c2crs.interactive.web import add_model_arguments, load_chat, model_specs

SCRIPT = ROOT / "bench" / "chat" / "script.json"
RESET = "[RESET]"
TOP = 10  # a reply movie must be in this turn's top 10


def converse(chat: Chat, lines: Sequence[str], movie_slots: bool) -> List[Dict[str, Any]]:
    """The script's turns with ``chat`` (movie slots on or off), from a fresh conversation: per user line, the
    reply, its movies, the top :data:`TOP`, the latency and the slips (``reoffered``: reply movies the user named
    earlier in the conversation; ``outside_top``: reply movies not in the turn's top :data:`TOP`)."""
    chat.movie_slots, chat.topk = movie_slots, TOP
    chat.session.reset()
    named: List[str] = []
    turns = []
    for line in lines:
        if line == RESET:
            chat.session.reset()
            named = []
            continue
        turn = chat.respond(line)
        if turn is None:
            continue
        named += turn.linked
        turns.append({"user": line, "linked": turn.linked, "entities": turn.entities, "reply": turn.reply,
                      "reply_movies": turn.reply_movies, "recommended": turn.recommended,
                      "latency_ms": turn.latency_ms,
                      "reoffered": [movie for movie in turn.reply_movies if movie in named],
                      "outside_top": [movie for movie in turn.reply_movies if movie not in turn.recommended]})
    chat.session.reset()
    return turns


def summary(turns: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Counts of a pass: turns, reply movies, replies with a re-offered movie or a movie outside the top
    :data:`TOP`, and the latency's median and maximum."""
    latencies = [turn["latency_ms"] for turn in turns]
    return {"turns": len(turns), "reply_movies": sum(len(turn["reply_movies"]) for turn in turns),
            "replies_reoffering": sum(bool(turn["reoffered"]) for turn in turns),
            "replies_outside_top": sum(bool(turn["outside_top"]) for turn in turns),
            "median_ms": statistics.median(latencies) if latencies else None,
            "max_ms": max(latencies) if latencies else None}


def run_script(chats: Dict[str, Chat], lines: Sequence[str]) -> Dict[str, Any]:
    """Both passes of the script for every model; the latency pass is the movie-slots one, after a warm-up turn."""
    models = {}
    for name, chat in chats.items():
        chat.respond("Hi")  # warm-up: the first turn pays for lazily built caches (the R-GCN pass)
        passes = {"movie_slots": converse(chat, lines, True), "raw": converse(chat, lines, False)}
        models[name] = {"passes": passes, "summary": {key: summary(turns) for key, turns in passes.items()}}
    return models


def markdown(report: Dict[str, Any]) -> str:
    lines = ["# The chat on a scripted conversation", "",
             f"Commit `{report['git_commit']}`; script `{report['script']}` ({report['turns']} user turns); "
             f"`python -m bench.chat_script`. A slip: a reply movie the user named earlier in the conversation "
             f"(re-offered) or outside the turn's top {TOP}. Latency: the movie-slots pass, after one warm-up turn.",
             "", "| model | decoding | turns | reply movies | replies re-offering | replies outside the top 10 "
             "| median / max ms |", "|---|---|---|---|---|---|---|"]
    for name, model in report["models"].items():
        for key, counts in model["summary"].items():
            latency = f"{counts['median_ms']:.0f} / {counts['max_ms']:.0f}" if key == "movie_slots" else ""
            lines.append(f"| {name} | {key} | {counts['turns']} | {counts['reply_movies']} | "
                         f"{counts['replies_reoffering']} | {counts['replies_outside_top']} | {latency} |")
    for name, model in report["models"].items():
        lines += ["", f"## {name} (movie slots)", "", "```text"]
        for turn in model["passes"]["movie_slots"]:
            lines.append(f"You: {turn['user']}")
            if turn["linked"]:
                lines.append("Linked: " + ", ".join(turn["linked"]))
            lines.append(f"System: {turn['reply']}")
            lines.append("Recommended: " + "; ".join(f"{i + 1}. {t}" for i, t in enumerate(turn["recommended"][:5]))
                         + f" ({turn['latency_ms']:.0f} ms)")
        lines.append("```")
    return "\n".join(lines) + "\n"


def read_script(parser: argparse.ArgumentParser, path: str) -> List[str]:
    """The ``lines`` of the script file ``path``; a file that is not one exits through ``parser.error``."""
    try:
        lines = json.loads(Path(path).read_text(encoding="utf-8"))["lines"]
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise TypeError("\"lines\" must be a list of strings")
    except (OSError, ValueError, KeyError, TypeError) as err:
        parser.error(f"--script {path}: not a JSON file with a \"lines\" list ({err})")
    return lines


def open_chats(parser: argparse.ArgumentParser, args: argparse.Namespace, topk: int) -> Dict[str, Chat]:
    """Every ``--model`` restored on the CPU as the web chat restores it, showing ``topk`` recommendations (column
    name -> chat); a bad model exits through ``parser.error`` with one line."""
    specs = model_specs(parser, args.model)
    try:
        return {spec.name: load_chat(spec, args.data_root, "-1", topk) for spec in specs}
    except USER_ERRORS as err:
        parser.error(str(err))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--script", default=str(SCRIPT), help="JSON with a \"lines\" list ([RESET] between talks)")
    parser.add_argument("--name", default="chat-transcript", help="file name of the report, without extension")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    lines = read_script(parser, args.script)
    chats = open_chats(parser, args, TOP)
    report = {"git_commit": git_commit(), "script": args.script, "turns": sum(line != RESET for line in lines),
              "models": run_script(chats, lines)}
    write_report(Path(args.out) / args.name, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
