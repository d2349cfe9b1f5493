"""Interactive mode in Chinese, for TG-ReDial: jieba input, titles in 《》 linked to movies, KG entities by name.

Users write a movie title between ``《`` and ``》``, as TG-ReDial's dialogs do. The title is matched against the
movie table ``c2crs_movies.json`` (written by ``python -m crslab_c2crs.data build tgredial``): exactly, by its
title or a spelling seen in the dialogs (among equal titles the most mentioned movie wins), or, from
``min_fuzzy_chars`` characters on, with small typos (rapidfuzz ratio >= ``threshold``: one wrong character in
four). Unlike ReDial's ``@<movieId>`` placeholders, TG-ReDial keeps titles as words, so a linked title's tokens
stay in the message and are the movie's mention span. Other entities (people, genres) are linked where whole
tokens spell the name of a KG entity that is not a movie, of two characters or more. Messages are segmented
like the review corpus (:class:`~crslab_c2crs.data.jieba_tokenize.ChineseTokenizer`); replies are shown without
spaces between Chinese words.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from rapidfuzz import fuzz, process

import crslab.config
from crslab_c2crs.data.jieba_tokenize import ChineseTokenizer
from crslab_c2crs.data.layout import TGREDIAL_MOVIES_FILE, build_hint, tgredial_dir
from crslab_c2crs.data.movies import Movie
from crslab_c2crs.data.tgredial import surface_key, title_spans
from crslab_c2crs.errors import MissingDataError
from crslab_c2crs.interactive.linker import TitleMatch
from crslab_c2crs.interactive.session import ChatSession

# Entity names worth linking: two characters or more, with a Chinese character or a Latin letter.
_NAME = re.compile(r"[\u4e00-\u9fffA-Za-z]")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class ChineseMovie(Movie):
    """A TG-ReDial movie: ``movie_id`` is its entity id (TG-ReDial has no other movie id)."""

    aliases: Tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return f"《{self.title}》" + (f"（{self.year}）" if self.year else "")


def load_movies(dpath: str) -> List[ChineseMovie]:
    """The movie table of the TG-ReDial folder ``dpath``, most mentioned first."""
    path = os.path.join(dpath, TGREDIAL_MOVIES_FILE)
    if not os.path.isfile(path):
        raise MissingDataError(f"TG-ReDial movie table {path} is missing. {build_hint(dpath)}")
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)["movies"]
    return [ChineseMovie(record["entity_id"], record["entity_id"], record["title"], record["year"],
                         tuple(record["aliases"])) for record in records]


class TitleLinker:
    """Finds the movies written between 《》 in a tokenized message (the interface of ``MovieLinker``)."""

    def __init__(self, movies: Sequence[ChineseMovie], threshold: float = 75.0, min_fuzzy_chars: int = 3):
        self.movies = list(movies)
        self.by_id: Dict[int, ChineseMovie] = {movie.movie_id: movie for movie in self.movies}
        self.threshold = threshold
        self.min_fuzzy_chars = min_fuzzy_chars
        self._exact: Dict[str, ChineseMovie] = {}
        for movie in self.movies:  # most mentioned first: it keeps a shared title
            for name in (movie.title, *movie.aliases):
                self._exact.setdefault(surface_key(name), movie)
        self._keys = list(self._exact)

    def _match(self, title: str) -> Optional[Tuple[ChineseMovie, float]]:
        key = surface_key(title)
        if key in self._exact:
            return self._exact[key], 100.0
        if len(key) < self.min_fuzzy_chars:
            return None
        best = process.extractOne(key, self._keys, scorer=fuzz.ratio, score_cutoff=self.threshold)
        return (self._exact[best[0]], best[1]) if best else None

    def link(self, tokens: Sequence[str]) -> List[TitleMatch]:
        """The movies of the titles in 《》, as token spans of the title inside the brackets."""
        matches = []
        for start, end in title_spans(tokens):
            hit = self._match("".join(tokens[start:end]))
            if hit:
                matches.append(TitleMatch(start, end, hit[0], hit[1]))
        return matches


class EntityNameLinker:
    """Links token spans that spell a KG entity name (longest first, never overlapping).

    Args:
        names: the entity names that may be linked.
        max_tokens: the longest span tried.
    """

    def __init__(self, names: Iterable[str], max_tokens: int = 4):
        self.names: Set[str] = {name for name in names if len(name) >= 2 and _NAME.search(name)}
        self.max_tokens = max_tokens

    def __call__(self, tokens: Sequence[str]) -> List[Tuple[int, int, str]]:
        spans = [(start, end, "".join(tokens[start:end])) for start in range(len(tokens))
                 for end in range(start + 1, min(len(tokens), start + self.max_tokens) + 1)]
        taken = [False] * len(tokens)
        linked = []
        for start, end, name in sorted(spans, key=lambda span: (-(span[1] - span[0]), span[0])):
            if name in self.names and not any(taken[start:end]):
                linked.append((start, end, name))
                for k in range(start, end):
                    taken[k] = True
        return sorted(linked)


def join_tokens(tokens: Sequence[str]) -> str:
    """Chinese text from tokens: no spaces, except between two Latin words or numbers."""
    text = ""
    for token in tokens:
        if text and _ASCII_WORD.match(text[-1]) and _ASCII_WORD.match(token[0]):
            text += " "
        text += token
    return text


@dataclass
class ChineseChatSession(ChatSession):
    """A chat session whose linked titles stay words (TG-ReDial has no movie placeholder tokens)."""

    def movie_tokens(self, tokens: Sequence[str], match: TitleMatch) -> List[str]:
        return list(tokens[match.start:match.end])

    def detokenize(self, tokens: Sequence[str]) -> str:
        return join_tokens(tokens)


def build_session(system) -> ChineseChatSession:
    """A Chinese chat session over ``system``'s vocabulary, movie table and KG entity names."""
    vocab = system.vocab
    dpath = str(tgredial_dir(Path(crslab.config.DATASET_PATH).parent, system.opt["tokenize"]))
    movies = set(system.side_data["item_entity_ids"])
    entity2id = vocab["entity2id"]
    names = [name for name in system.side_data["entity_kg"]["entity"] if entity2id.get(name) not in movies]
    return ChineseChatSession(
        tok2ind=vocab["tok2ind"], entity2id=entity2id, word2id=vocab.get("word2id", {}),
        movie_linker=TitleLinker(load_movies(dpath)),
        tokenize=ChineseTokenizer(sorted(vocab["tok2ind"], key=vocab["tok2ind"].get)),
        link_entities=EntityNameLinker(names), unk_token_idx=vocab["unk"])
