"""The chat loop of interactive mode (``run_crslab.py ... -rs -i``), for C2-CRS, KGSF and KBRD.

Reads one message per line from standard input (a terminal or a pipe), prints the model's reply with movie
placeholders replaced by titles (with ``movie_slots``, the default, each filled by the recommender's best movie not
yet said), and the top-k recommended titles. ``[RESET]`` starts a new conversation,
``[EXIT]`` or the end of input quits (commands in any case). Input is read as bytes and decoded as UTF-8 with
replacement, so a stray non-UTF-8 byte costs one character, never the chat. Nothing is written to the data or
model folders.
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

from loguru import logger

import crslab.config
import crslab.data
from crslab_c2crs.data.layout import redial_dir
from crslab_c2crs.data.linking import EntityLinker, entity_label
from crslab_c2crs.data.movies import Movie, load_movies, title_key
from crslab_c2crs.data.tokenize import is_movie_token, movie_id, tokenize
from crslab_c2crs.interactive.adapters import Adapter, adapter_for
from crslab_c2crs.interactive.linker import MovieLinker
from crslab_c2crs.interactive.session import ChatSession
from crslab_c2crs.movie_slots import fill_slots

EXIT, RESET = "[EXIT]", "[RESET]"
# What a system's ``interact`` opens: the terminal chat below unless a front end is set (:func:`frontend`).
_FRONTEND: ContextVar[Optional[Callable[[Any], Any]]] = ContextVar("chat_frontend", default=None)


def build_session(system) -> ChatSession:
    """A chat session over ``system``'s vocabulary and the movies and entity linker of its data folder; in Chinese
    for a Chinese dataset (TG-ReDial, :mod:`crslab_c2crs.interactive.chinese`)."""
    if crslab.data.dataset_language_map.get(system.opt["dataset"]) == "zh":
        from crslab_c2crs.interactive import chinese

        return chinese.build_session(system)
    dpath = str(redial_dir(Path(crslab.config.DATASET_PATH).parent, system.opt["tokenize"]))
    vocab = system.vocab
    entity_linker = EntityLinker.from_dataset_dir(dpath)
    return ChatSession(
        tok2ind=vocab["tok2ind"], entity2id=vocab["entity2id"], word2id=vocab.get("word2id", {}),
        movie_linker=MovieLinker(load_movies(dpath)), tokenize=tokenize,
        link_entities=lambda tokens: [(link.start, link.end, link.entity) for link in entity_linker.link(tokens)],
        unk_token_idx=vocab["unk"])


@dataclass
class Turn:
    """One exchange, as shown: notes on the input, the linked movies (display titles) and other entities, the
    reply with its movies as titles, the movies it names, the top recommended titles, and the time the turn took."""

    notes: List[str]
    linked: List[str]
    entities: List[str]
    reply: str
    reply_movies: List[str]
    recommended: List[str]
    latency_ms: float


class Chat:
    """One model, one conversation at a time: turns text into a reply and recommendations."""

    def __init__(self, system, topk: int = 5):
        self.adapter: Adapter = adapter_for(system)
        self.session = build_session(system)
        self.topk = topk
        self.ind2tok = system.vocab["ind2tok"]
        self.specials = {system.vocab[name] for name in ("pad", "start", "end") if name in system.vocab}
        self.end = system.vocab["end"]
        # movie_slots (default on): the movies a reply names come from the recommender's own ranking
        self.movie_slots = bool(system.opt.get("movie_slots", True))
        self.by_entity = {movie.entity_id: movie for movie in self.session.movie_linker.movies}
        self.by_title: Dict[str, List[Movie]] = {}
        for movie in self.session.movie_linker.movies:
            self.by_title.setdefault(title_key(movie.title), []).append(movie)
        self.latencies_ms: List[float] = []

    def _reply_tokens(self, ids: List[int]) -> List[str]:
        tokens = []
        for index in ids:
            if index == self.end:
                break
            if index not in self.specials:
                tokens.append(self.ind2tok.get(index, "__unk__"))
        return tokens

    def _display(self, tokens: List[str]) -> str:
        words = []
        for token in tokens:
            movie = self.session.movie_linker.by_id.get(movie_id(token))
            words.append(movie.display if movie else token)
        return self.session.detokenize(words)

    def said_movies(self) -> Set[int]:
        """Entity ids of the movies of the conversation so far, with every other ReDial id of the same movie
        (:meth:`~crslab_c2crs.data.movies.Movie.same_movie`), so a named movie is never recommended back."""
        said = set(self.session.context_items())
        for entity in list(said):
            movie = self.by_entity.get(entity)
            if movie is not None:
                said.update(other.entity_id for other in self.by_title[title_key(movie.title)]
                            if other.same_movie(movie))
        return said

    def respond(self, text: str) -> Optional[Turn]:
        """One user message: what was understood of it, the reply and the recommendations; None for a message
        without a word."""
        started = time.perf_counter()
        understood = self.session.add_user_turn(text)
        if understood is None:
            return None
        notes = []
        if understood.truncated:
            notes.append(f"Your message was long: only its last {len(understood.tokens)} words were read.")
        unknown = [token for token in dict.fromkeys(understood.tokens)
                   if is_movie_token(token) and movie_id(token) not in self.session.movie_linker.by_id]
        if unknown:
            notes.append(f"No movie has this id, read as an unknown word: {', '.join(unknown)}.")
        scores = self.adapter.recommend(self.session)
        mentioned = self.said_movies()
        ranked = [self.adapter.item_ids[i] for i in scores.argsort(descending=True).tolist()]
        recommended = [self.by_entity[e] for e in ranked if e in self.by_entity and e not in mentioned]
        reply = self._reply_tokens(self.adapter.respond(self.session))
        if self.movie_slots:
            reply = fill_movie_slots(reply, recommended)
        self.session.add_system_turn(reply)
        latency_ms = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(latency_ms)
        # a long message can name one movie dozens of times: list each once
        return Turn(notes=notes, linked=list(dict.fromkeys(movie.display for movie in understood.movies)),
                    entities=list(dict.fromkeys(entity_label(name) or name for name in understood.entities)),
                    reply=self._display(reply) or "...",
                    reply_movies=[self.session.movie_linker.by_id[movie_id(token)].display for token in reply
                                  if movie_id(token) in self.session.movie_linker.by_id],
                    recommended=[movie.display for movie in recommended[:self.topk]], latency_ms=latency_ms)

    def turn(self, text: str) -> List[str]:
        """Lines to print for one user message."""
        turn = self.respond(text)
        if turn is None:
            return ["(Say something about movies you like; [EXIT] quits, [RESET] starts over.)"]
        lines = [f"({note})" for note in turn.notes]
        if turn.linked:
            lines.append("Linked: " + ", ".join(turn.linked))
        if turn.entities:
            lines.append("Entities: " + ", ".join(turn.entities))
        lines.append("System: " + turn.reply)
        lines.append("Recommended: " + "; ".join(f"{i + 1}. {title}" for i, title in enumerate(turn.recommended)))
        return lines

    def latency_summary(self) -> Optional[str]:
        if not self.latencies_ms:
            return None
        return (f"{len(self.latencies_ms)} turns, median {statistics.median(self.latencies_ms):.0f} ms, "
                f"max {max(self.latencies_ms):.0f} ms per turn")


def fill_movie_slots(tokens: List[str], ranked: Sequence[Movie]) -> List[str]:
    """``tokens`` with every movie the decoder named replaced by the next of ``ranked`` (the recommender's ranking,
    best first, without the movies already said): the reply and the list agree, a reply never names a movie twice
    nor re-offers one the user named (:mod:`crslab_c2crs.movie_slots`). A slot left when the ranking runs out is
    dropped."""
    return fill_slots(tokens, lambda token: movie_id(token) is not None, (f"@{movie.movie_id}" for movie in ranked))


def printable(text: str) -> str:
    """``text`` with every control or other unprintable character (ANSI escape sequences included) written as its
    escape (``\\x1b``, ``\\u202e``), so piped input is shown as text and never acts on the terminal."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def read_line(stdin: IO[str]) -> Optional[str]:
    """The next line of ``stdin`` without its line break, or None at the end of input. The bytes under a text
    stream are decoded here, as UTF-8 with replacement: a strict decoder would end the chat on one bad byte and
    lose the lines it had buffered."""
    raw = getattr(stdin, "buffer", None)
    line = raw.readline().decode("utf-8", errors="replace") if raw is not None else stdin.readline()
    return line.rstrip("\r\n") if line else None


def chat(system, stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None,
         topk: Optional[int] = None) -> Chat:
    """Run the chat loop until ``[EXIT]`` or the end of ``stdin``; return the finished :class:`Chat`."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    session = Chat(system, topk or system.opt.get("interact_topk", 5))
    interactive = stdin.isatty()
    print(f"Chatting with {system.opt['model_name']}. Type {EXIT} to quit, {RESET} to start over.", file=stdout)
    while True:
        if interactive:
            print("You: ", end="", file=stdout, flush=True)
        text = read_line(stdin)
        if text is None or text.strip().upper() == EXIT:
            break
        if text.strip().upper() == RESET:
            session.session.reset()
            print("(New conversation.)", file=stdout)
            continue
        if not interactive:
            print(f"You: {printable(text[:200])}{'...' if len(text) > 200 else ''}", file=stdout)
        for out in session.turn(text):
            print(out, file=stdout, flush=True)
    summary = session.latency_summary()
    if summary:
        logger.info(f"[Interactive latency: {summary}]")
        print(f"(Latency: {summary})", file=stdout)
    return session


def open_chat(system) -> None:
    """What the systems' ``interact`` does (``run_crslab.py -rs -i``): the terminal chat, or the front end set by
    :func:`frontend`."""
    (_FRONTEND.get() or chat)(system)


@contextlib.contextmanager
def frontend(handler: Callable[[Any], Any]) -> Iterator[None]:
    """While open, ``interact`` hands its restored system to ``handler`` instead of the terminal chat (the web
    chat loads its models so)."""
    token = _FRONTEND.set(handler)
    try:
        yield
    finally:
        _FRONTEND.reset(token)
