"""The web chat: one page on localhost, one input box, every loaded model's answer side by side.

Usage::

    python -m crslab_c2crs.interactive.web --data-root data \\
        --model config/c2crs/redial.yaml checkpoint_dir=C2CRS_quickstart block_ngram=3 \\
        --model config/kgsf/redial.yaml checkpoint_dir=KGSF_quickstart \\
        --model config/kbrd/redial.yaml checkpoint_dir=KBRD_quickstart  [--port 8000] [-g -1]

Each ``--model`` is a config file and its ``key=value`` overrides (as ``--set`` takes them), a system saved with
``-ss``; it is restored once, exactly as ``run_crslab.py -rs -i`` restores it, before the server starts. The page
posts each message to ``/turn``; the server runs it through every model's :class:`~crslab_c2crs.interactive.chat.Chat`
(one turn at a time, under a lock) and returns, per model, the reply, the top recommendations as titles, the linked
movies and entities, notes on the input and the turn's latency; the page writes them as text (``textContent``),
never as HTML. ``/reset`` starts a new conversation. One conversation per server: a local tool for one person.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from flask import Flask, Response, jsonify, request
from loguru import logger

from crslab_c2crs.interactive.chat import Chat, Turn, frontend

MAX_BODY_BYTES = 1 << 20  # a message of 100 KB and more fits; the chat reads its last context_truncate words
PAGE = Path(__file__).with_name("web.html")


@dataclasses.dataclass
class ModelSpec:
    """One ``--model``: a config file, its overrides, and the name its column shows."""

    config: str
    overrides: List[str]

    @property
    def name(self) -> str:
        checkpoint = [value for key, _, value in (o.partition("=") for o in self.overrides) if key == "checkpoint_dir"]
        return Path(self.config).parent.name.upper() + (f" ({checkpoint[0]})" if checkpoint else "")


def load_chat(spec: ModelSpec, data_root: Optional[str], gpu: Optional[str], topk: int) -> Chat:
    """Restore ``spec``'s saved system through ``run_crslab.py``'s own path (``-rs -i``) and open a chat on it."""
    from crslab_c2crs.cli import build_parser, run

    argv = ["-c", spec.config, "-rs", "-i"] + (["--data-root", data_root] if data_root else [])
    argv += (["-g", gpu] if gpu else []) + [arg for override in spec.overrides for arg in ("--set", override)]
    systems: List[Any] = []
    with frontend(systems.append):
        run(build_parser().parse_args(argv))
    return Chat(systems[0], topk)


# what a model column shows for a message without words (Chat.respond answers it with None)
NOTHING_SAID = Turn(notes=["Say something about movies you like."], linked=[], entities=[], reply="", reply_movies=[],
                    recommended=[], latency_ms=0.0)


def message_text(body: bytes) -> str:
    """The ``text`` of a ``/turn`` body (JSON ``{"text": ...}``), decoded as UTF-8 with replacement so a stray
    byte costs one character; ValueError with one line naming what is wrong otherwise."""
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as err:
        raise ValueError(f"the body must be JSON like {{\"text\": \"...\"}} ({err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("the body must be JSON like {\"text\": \"...\"} with a string text")
    return data["text"]


def create_app(chats: Dict[str, Chat]) -> Flask:
    """The Flask app serving ``chats`` (column name -> chat) side by side."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    lock = threading.Lock()  # the chats hold one conversation: one turn at a time

    @app.get("/")
    def page() -> Response:
        return Response(PAGE.read_text(encoding="utf-8"), mimetype="text/html")

    @app.get("/models")
    def models() -> Response:
        return jsonify(models=list(chats))

    @app.post("/turn")
    def turn() -> Any:
        try:
            text = message_text(request.get_data())
        except ValueError as err:
            return jsonify(error=str(err)), 400
        with lock:
            turns = {name: chat.respond(text) for name, chat in chats.items()}
        return jsonify(turns=[{"model": name, **dataclasses.asdict(turn or NOTHING_SAID)}
                              for name, turn in turns.items()])

    @app.post("/reset")
    def reset() -> Response:
        with lock:
            for chat in chats.values():
                chat.session.reset()
        return jsonify(reset=True)

    return app


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model CONFIG [KEY=VALUE ...]`` (repeated) and ``--data-root``; :func:`model_specs` reads them."""
    parser.add_argument("--model", nargs="+", action="append", required=True, metavar="CONFIG [KEY=VALUE ...]",
                        help="a config file and its overrides, a system saved with -ss; repeat for each model")
    parser.add_argument("--data-root", default=None, help="as run_crslab.py's --data-root")


def model_specs(parser: argparse.ArgumentParser, models: List[List[str]]) -> List[ModelSpec]:
    """The ``--model`` values as specs, each checked (an existing config, ``KEY=VALUE`` overrides, names unique);
    a bad one exits through ``parser.error`` with one line."""
    specs = []
    for config, *overrides in models:
        if not Path(config).is_file():
            parser.error(f"--model {config}: no such config file")
        bad = [override for override in overrides if "=" not in override]
        if bad:
            parser.error(f"--model {config}: overrides are KEY=VALUE, not {bad[0]!r}")
        specs.append(ModelSpec(config, overrides))
    if len({spec.name for spec in specs}) < len(specs):
        parser.error("--model: two models with one name; give each its own checkpoint_dir=...")
    return specs


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crslab_c2crs.interactive.web",
                                     description="Chat with several saved models side by side in a browser.")
    add_model_arguments(parser)
    parser.add_argument("-g", "--gpu", default=None, help="as run_crslab.py's -g (-1: the CPU)")
    parser.add_argument("--topk", type=int, default=5, help="recommendations shown per model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    args.specs = model_specs(parser, args.model)
    if args.topk < 1:
        parser.error(f"--topk {args.topk}: expected at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    from werkzeug.serving import make_server

    from crslab_c2crs.errors import USER_ERRORS

    args = parse_args(argv)
    try:
        chats = {spec.name: load_chat(spec, args.data_root, args.gpu, args.topk) for spec in args.specs}
        server = make_server(args.host, args.port, create_app(chats), threaded=True)
    except USER_ERRORS as err:
        print(f"web chat: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"web chat: error: cannot serve on {args.host}:{args.port}: {err.strerror} (choose another --port)",
              file=sys.stderr)
        return 2
    logger.info(f"[Web chat with {', '.join(chats)} at http://{args.host}:{server.server_port}/ (Ctrl-C stops)]")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
