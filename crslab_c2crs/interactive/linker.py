"""Link movie titles written in a user's message to ReDial movies.

Users write ``@<movieId>`` (as in the data), or a title, with or without its year, in any case, with small typos.
Titles are matched on windows of the message's tokens with rapidfuzz; the longest, best-scoring windows win and
matches never overlap. Short titles (``Up``, ``Her``, ``It``) are common words, so a window shorter than
``min_fuzzy_chars`` characters must match a title exactly, with the user's capitals.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from rapidfuzz import fuzz, process

from crslab_c2crs.data.movies import Movie

YEAR = re.compile(r"^\(?(1[89]\d\d|20\d\d)\)?$")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _year_after(tokens: Sequence[str], end: int) -> Optional[int]:
    """The year written right after a title: ``1999``, ``(1999)`` or the tokens ``(``, ``1999``, ``)``."""
    following = tokens[end:end + 2]
    if following and following[0] == "(":
        following = following[1:]
    match = YEAR.match(following[0]) if following else None
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class TitleMatch:
    """A title found in a token list: tokens [start, end) name ``movie`` with score 0-100."""

    start: int
    end: int
    movie: Movie
    score: float


class MovieLinker:
    """Finds ReDial movies in tokenized user messages."""

    def __init__(self, movies: Sequence[Movie], threshold: float = 88.0, max_window: int = 8,
                 min_fuzzy_chars: int = 6):
        self.movies = list(movies)
        self.by_id: Dict[int, Movie] = {movie.movie_id: movie for movie in self.movies}
        self.threshold = threshold
        self.max_window = max_window
        self.min_fuzzy_chars = min_fuzzy_chars
        # Titles sorted by key length: fuzz.ratio >= threshold bounds the length ratio of the two strings, so
        # a window is compared only with titles of compatible length. The sort is stable, so among equal
        # scores the most-mentioned movie (first in the input) still wins.
        order = sorted(range(len(self.movies)), key=lambda i: len(normalise(self.movies[i].title)))
        self._sorted_movies = [self.movies[i] for i in order]
        self._keys = [normalise(movie.title) for movie in self._sorted_movies]
        self._lengths = [len(key) for key in self._keys]
        self._exact: Dict[str, Movie] = {}
        for movie in self.movies:
            self._exact.setdefault(movie.title, movie)

    def _candidates(self, key: str) -> Tuple[int, int]:
        """Index range of the titles whose length allows ``fuzz.ratio(key, title) >= threshold``."""
        ratio = self.threshold / 100.0
        low = len(key) * ratio / (2.0 - ratio)
        high = len(key) * (2.0 - ratio) / ratio
        return bisect.bisect_left(self._lengths, low), bisect.bisect_right(self._lengths, high)

    def _window_match(self, text: str, year: Optional[int]) -> Optional[Tuple[Movie, float]]:
        key = normalise(text)
        if not key:
            return None
        if len(key) < self.min_fuzzy_chars:
            # short titles are common words ("Up", "It") or numbers ("2"): only a capitalised exact match counts
            movie = self._exact.get(text) if text[:1].isupper() else None
            return (movie, 100.0) if movie and (year is None or movie.year == year) else None
        start, end = self._candidates(key)
        candidates = process.extract(key, self._keys[start:end], scorer=fuzz.ratio, score_cutoff=self.threshold,
                                     limit=5)
        best = None
        for _, score, index in candidates:
            movie = self._sorted_movies[start + index]
            if year is not None and movie.year is not None:
                score += 5.0 if movie.year == year else -10.0
            if score >= self.threshold and (best is None or score > best[1]):
                best = (movie, score)
        return best

    def link(self, tokens: Sequence[str]) -> List[TitleMatch]:
        """All non-overlapping movie mentions in ``tokens``: ``@id`` tokens and written titles."""
        matches: List[TitleMatch] = []
        taken = [False] * len(tokens)
        for i, token in enumerate(tokens):
            if token.startswith("@") and token[1:].isdigit() and int(token[1:]) in self.by_id:
                matches.append(TitleMatch(i, i + 1, self.by_id[int(token[1:])], 100.0))
                taken[i] = True
        found: List[TitleMatch] = []
        seen: Dict[Tuple[str, Optional[int]], Optional[Tuple[Movie, float]]] = {}
        for start in range(len(tokens)):
            for end in range(min(len(tokens), start + self.max_window), start, -1):
                if any(taken[start:end]):
                    continue
                words = list(tokens[start:end])
                year = _year_after(tokens, end)
                text = " ".join(words)
                if (text, year) not in seen:
                    seen[(text, year)] = self._window_match(text, year)
                hit = seen[(text, year)]
                if hit:
                    found.append(TitleMatch(start, end, hit[0], hit[1] + 0.01 * (end - start)))
        for match in sorted(found, key=lambda m: (-m.score, m.start)):
            if not any(taken[match.start:match.end]):
                matches.append(match)
                for k in range(match.start, match.end):
                    taken[k] = True
        return sorted(matches, key=lambda m: m.start)
