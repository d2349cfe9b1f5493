"""The C2-CRS review corpus: per movie entity, a ranked list of tokenized sentences about it.

Sources, in rank order (the paper pairs an entity with "its most related sentence, e.g. the most
highly-rated review or descriptive text"):

1. ``plot``: the IMDB plot summary, split into sentences (descriptive, covers about 95% of movies);
2. ``meta``: short sentences made from IMDB metadata (genre, director, writers, stars);
3. ``review``: sentences of full IMDB user reviews (aclImdb), reviews ordered by rating (10 first), then
   by source file name; sentences in reading order, with 5..60 tokens, at most
   :data:`MAX_REVIEW_SENTENCES` per movie;
4. ``helpful_prefix``: RevCore's first 20 tokens of the most helpful IMDB review (ordered text, but cut
   mid-sentence), a last-resort review snippet for movies without full reviews.

RevCore's other file (``dict_movie2tokenreview.pkl``) holds 20 unordered tokens per movie: not a
sentence, so it is not used. Identical token sequences are kept once. Only movie entities get sentences.

File format (``c2crs_reviews.json``, :data:`FORMAT_VERSION`)::

    {"format_version": 1, "token_vocab": "token2id.json", "unk_id": 3,
     "sources": ["plot", "meta", "review", "helpful_prefix"],
     "entities": {"<CRSLab entity id>": [{"source": str, "ids": [token id, ...]}, ...]}}

sentences best first; token ids index ``token2id.json`` (unknown tokens -> ``__unk__`` = 3).
"""
from __future__ import annotations

import html
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Sequence, Tuple

from tqdm import tqdm

from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.sources import iter_jsonl
from crslab_c2crs.data.tokenize import split_sentences, tokenize

FORMAT_VERSION = 1
SOURCES = ("plot", "meta", "review", "helpful_prefix")
MIN_REVIEW_TOKENS = 5
MAX_REVIEW_TOKENS = 60
MAX_REVIEW_SENTENCES = 40
UNK_ID = 3
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

Sentence = Tuple[str, List[str]]


def review_sentences(text: str) -> Iterator[List[str]]:
    """Tokenized sentences of one IMDB review, lazily (callers stop early): ``<br />`` tags become paragraph
    breaks, HTML entities are decoded, sentences outside ``MIN_REVIEW_TOKENS..MAX_REVIEW_TOKENS`` are dropped."""
    for paragraph in _BR.split(html.unescape(text)):
        for sentence in split_sentences(paragraph):
            tokens = tokenize(sentence)
            if MIN_REVIEW_TOKENS <= len(tokens) <= MAX_REVIEW_TOKENS:
                yield tokens


def _names(value: Any) -> List[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _enumerate(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def meta_sentences(title: str, info: Mapping[str, Any]) -> List[str]:
    """Short English sentences from IMDB metadata, e.g. ``"Pari (1995) is a drama and romance movie."``."""
    sentences = []
    genres = [g.lower() for g in _names(info.get("genre"))]
    if genres:
        sentences.append(f"{title} is a {_enumerate(genres)} movie.")
    for key, verb in (("director", "directed by"), ("writer", "written by"), ("star", "starring")):
        people = _names(info.get(key))
        if people:
            sentences.append(f"{title} is {verb} {_enumerate(people)}." if key != "star"
                             else f"{title} stars {_enumerate(people)}.")
    return sentences


def load_imdb_reviews(path: Path) -> Dict[str, List[Tuple[int, str, str]]]:
    """``{ReDial movieId: [(rating, source, text), ...]}`` from the aclImdb JSONL file."""
    reviews: Dict[str, List[Tuple[int, str, str]]] = defaultdict(list)
    for lineno, record in iter_jsonl(path):
        movie, text, rating = record.get("movieId"), record.get("text"), record.get("rating")
        if not isinstance(text, str) or not isinstance(rating, int) or movie is None:
            raise DataBuildError(f"{path}, line {lineno}: a review needs 'movieId', an int 'rating' and a 'text'")
        reviews[str(movie)].append((rating, str(record.get("source", "")), text))
    return reviews


def movie_sentences(movie: str, meta: Mapping[str, Mapping[str, Any]],
                    reviews: Mapping[str, Sequence[Tuple[int, str, str]]],
                    helpful: Mapping[str, Sequence[str]]) -> List[Sentence]:
    """Ranked ``(source, tokens)`` sentences of one ReDial movie (see the module docstring for the order)."""
    ranked: List[Sentence] = []
    info = meta.get(movie) or {}
    plot = info.get("plot")
    if isinstance(plot, str):
        ranked += [("plot", tokenize(s)) for s in split_sentences(html.unescape(plot))]
    title = info.get("name")
    if isinstance(title, str) and title.strip():
        ranked += [("meta", tokenize(s)) for s in meta_sentences(title.strip(), info)]
    # highest rating first: the paper's "most highly-rated review"; the source name breaks ties
    by_rating = sorted(reviews.get(movie, ()), key=lambda review: (-review[0], review[1]))
    review_count = 0
    for _rating, _source, text in by_rating:
        if review_count == MAX_REVIEW_SENTENCES:
            break
        for tokens in review_sentences(text):
            ranked.append(("review", tokens))
            review_count += 1
            if review_count == MAX_REVIEW_SENTENCES:
                break
    prefix = helpful.get(movie)
    if isinstance(prefix, list) and prefix:
        ranked.append(("helpful_prefix", [str(token) for token in prefix]))
    return [(source, tokens) for source, tokens in ranked if tokens]


def build_review_corpus(movie2entity: Mapping[str, int], token2id: Mapping[str, int],
                        meta: Mapping[str, Mapping[str, Any]],
                        reviews: Mapping[str, Sequence[Tuple[int, str, str]]],
                        helpful: Mapping[str, Sequence[str]]) -> Dict[str, Any]:
    """Build the review corpus document (see the module docstring for its format).

    Several ReDial movie ids can share one entity; their sentences are concatenated in ascending
    numeric movie-id order, per source rank, and duplicates dropped, so the result is deterministic.
    """
    by_entity: Dict[int, List[str]] = defaultdict(list)
    for movie, entity_id in movie2entity.items():
        by_entity[entity_id].append(movie)
    entities: Dict[str, List[Dict[str, Any]]] = {}
    for entity_id in tqdm(sorted(by_entity), desc="review corpus", unit="entity", mininterval=2):
        movies = sorted(by_entity[entity_id], key=lambda m: (len(m), m))
        merged = [s for movie in movies for s in movie_sentences(movie, meta, reviews, helpful)]
        merged.sort(key=lambda sentence: SOURCES.index(sentence[0]))  # stable: keeps order within a source
        seen = set()
        ranked = []
        for source, tokens in merged:
            # duplicates are judged on tokens: different sentences can share ids through __unk__
            if tuple(tokens) in seen:
                continue
            seen.add(tuple(tokens))
            ranked.append({"source": source, "ids": [token2id.get(token, UNK_ID) for token in tokens]})
        if ranked:
            entities[str(entity_id)] = ranked
    return {
        "format_version": FORMAT_VERSION,
        "token_vocab": "token2id.json",
        "unk_id": UNK_ID,
        "sources": list(SOURCES),
        "entities": entities,
    }
