"""Tokenize ReDial text the way CRSLab's ``nltk`` ReDial files were tokenized, without nltk data packages.

CRSLab's files were made with ``nltk.word_tokenize`` (which needs the ``punkt`` sentence model). Offline we
split sentences with a regular expression on sentence-final punctuation, tokenize each sentence with
``word_tokenize(..., preserve_line=True)`` (which needs no data package) and re-join ``@`` + digits, which
nltk splits, into one movie token. Measured against CRSLab's own token lists this matches 99% of utterances.
"""
from __future__ import annotations

import re
from typing import List, Optional

from nltk.tokenize import word_tokenize

# No split after a lone capital initial ("Michael B. Jordan"), as punkt knows single-letter abbreviations.
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])(?<![\s(][A-Z]\.)\s+")
# ASCII digits only: str.isdigit() and \d also accept "²" or "٣", which int() rejects or reads as another number
MOVIE_TOKEN = re.compile(r"@([0-9]+)")


def split_sentences(text: str) -> List[str]:
    """Split ``text`` after ``.``, ``!`` or ``?`` followed by whitespace; empty pieces are dropped."""
    return [piece for piece in SENTENCE_BOUNDARY.split(text.strip()) if piece]


def _join_movie_tokens(tokens: List[str]) -> List[str]:
    """Re-join the ``@``, ``123`` pairs nltk produces into one ``@123`` token."""
    joined: List[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "@" and i + 1 < len(tokens) and MOVIE_TOKEN.fullmatch("@" + tokens[i + 1]):
            joined.append("@" + tokens[i + 1])
            i += 2
        else:
            joined.append(tokens[i])
            i += 1
    return joined


def tokenize(text: str) -> List[str]:
    """Tokenize one ReDial message into CRSLab-style word tokens; ``@<movieId>`` stays one token."""
    tokens: List[str] = []
    for sentence in split_sentences(text):
        tokens.extend(word_tokenize(sentence, preserve_line=True))
    return _join_movie_tokens(tokens)


def is_movie_token(token: str) -> bool:
    """True for a ReDial movie placeholder token such as ``@191911``."""
    return MOVIE_TOKEN.fullmatch(token) is not None


def movie_id(token: str) -> Optional[int]:
    """The movie id of a placeholder token (``@191911`` -> 191911), None for any other token."""
    match = MOVIE_TOKEN.fullmatch(token)
    return int(match.group(1)) if match else None
