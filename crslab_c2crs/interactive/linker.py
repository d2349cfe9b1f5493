"""Link movie titles written in a user's message to ReDial movies.

Users write ``@<movieId>`` (as in the data), or a title, with or without its year, in any case, with small typos.
Titles are matched on windows of the message's tokens with rapidfuzz; the longest, best-scoring windows win and
matches never overlap. Short titles (``Up``, ``Her``, ``It``) are common words, so a window shorter than
``min_fuzzy_chars`` characters must match a title exactly, with the user's capitals.

Titles made only of everyday words ("Scary Movie", "Big", "Training Day", "Anything Else"; a word is everyday when
its Zipf frequency in English, from the ``wordfreq`` library, is at least :data:`EVERYDAY_ZIPF`) link only where
the user marks them as a title: followed by the movie's year, in quotes, or capitalised as a title. A capital that
opens a sentence is the sentence's, not a title's, so there the capitalised title must be the whole sentence
("Big" alone links, "Big fan of Tom Hanks" does not). Every other title keeps the fuzzy matching, in any case.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from rapidfuzz import fuzz, process

from crslab_c2crs.data.movies import Movie, title_key
from crslab_c2crs.data.tokenize import movie_id

YEAR = re.compile(r"^\(?(1[89]\d\d|20\d\d)\)?$")
# Zipf 4 = 10 occurrences per million words: "frozen" 4.3, "scary" 4.4, "matrix" 4.1 are everyday words; "shining"
# 4.0- , "jaws" 3.6, "inception" 3.7, "superbad" 2.2 are not, so "the shining" or "jaws" still link in lower case.
EVERYDAY_ZIPF = 4.0
# Words a title keeps in lower case ("Eternal Sunshine of the Spotless Mind"), never the first.
SMALL_WORDS = frozenset("a an and as at but by for from in into nor of on or the to with".split())
OPENING_QUOTES = frozenset(["``", '"', "'", "\u2018", "\u201c"])
CLOSING_QUOTES = frozenset(["''", '"', "'", "\u2019", "\u201d"])
SENTENCE_END = frozenset([".", "!", "?"])


@lru_cache(maxsize=None)
def is_everyday_word(word: str) -> bool:
    """Whether ``word`` (any case) is an everyday English word (Zipf frequency >= :data:`EVERYDAY_ZIPF`)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") >= EVERYDAY_ZIPF


def _title_cased(words: Sequence[str]) -> bool:
    """Every word capitalised as in a title: the first always, the others unless they are small words."""
    return all(word[:1].isupper() or (index > 0 and word.lower() in SMALL_WORDS) or not word[:1].isalpha()
               for index, word in enumerate(words))


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
                 min_fuzzy_chars: int = 6, everyday_word: Callable[[str], bool] = is_everyday_word):
        self.movies = list(movies)
        self.everyday_word = everyday_word
        everyday_word("the")  # loads wordfreq's tables now (about a second), not on the first message that needs them
        self.by_id: Dict[int, Movie] = {movie.movie_id: movie for movie in self.movies}
        self.threshold = threshold
        self.max_window = max_window
        self.min_fuzzy_chars = min_fuzzy_chars
        # Titles sorted by key length: fuzz.ratio >= threshold bounds the length ratio of the two strings, so
        # a window is compared only with titles of compatible length. The sort is stable, so among equal
        # scores the most-mentioned movie (first in the input) still wins.
        order = sorted(range(len(self.movies)), key=lambda i: len(title_key(self.movies[i].title)))
        self._sorted_movies = [self.movies[i] for i in order]
        self._keys = [title_key(movie.title) for movie in self._sorted_movies]
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
        key = title_key(text)
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

    def everyday_title(self, movie: Movie) -> bool:
        """Whether every word of ``movie``'s title is an everyday word (see the module docstring)."""
        words = title_key(movie.title).split()
        return bool(words) and all(self.everyday_word(word) for word in words)

    @staticmethod
    def marked_as_title(tokens: Sequence[str], start: int, end: int, movie: Movie) -> bool:
        """Whether tokens [start, end) are written as a title: followed by the movie's year, quoted, or
        capitalised as a title (at the start of a sentence only when they are the whole sentence)."""
        year = _year_after(tokens, end)
        if year is not None and year == movie.year:
            return True
        before = tokens[start - 1] if start > 0 else None
        after = tokens[end] if end < len(tokens) else None
        if before in OPENING_QUOTES and after in CLOSING_QUOTES:
            return True
        if not _title_cased(tokens[start:end]):
            return False
        opens_sentence = before is None or before in SENTENCE_END
        closes_sentence = after is None or after in SENTENCE_END or year is not None
        return not opens_sentence or closes_sentence

    def link(self, tokens: Sequence[str]) -> List[TitleMatch]:
        """All non-overlapping movie mentions in ``tokens``: ``@id`` tokens and written titles."""
        matches: List[TitleMatch] = []
        taken = [False] * len(tokens)
        for i, token in enumerate(tokens):
            if movie_id(token) in self.by_id:
                matches.append(TitleMatch(i, i + 1, self.by_id[movie_id(token)], 100.0))
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
                if hit and (not self.everyday_title(hit[0]) or self.marked_as_title(tokens, start, end, hit[0])):
                    found.append(TitleMatch(start, end, hit[0], hit[1] + 0.01 * (end - start)))
        for match in sorted(found, key=lambda m: (-m.score, m.start)):
            if not any(taken[match.start:match.end]):
                matches.append(match)
                for k in range(match.start, match.end):
                    taken[k] = True
        return sorted(matches, key=lambda m: m.start)
