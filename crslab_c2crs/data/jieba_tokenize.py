"""Chinese word segmentation with jieba, for TG-ReDial review text and interactive input.

CRSLab segmented TG-ReDial with pkuseg, which does not build on Python 3.11; jieba does. With its own dictionary
jieba cuts differently from pkuseg and often keeps a word the models never saw (``一部``, ``喜剧电影``), which
then reads as ``__unk__``. So jieba segments here over the dataset's own vocabulary instead: every token with a
Chinese character becomes a dictionary word, with a Zipf frequency from its rank in ``token2id.json`` (CRSLab
numbers tokens by frequency), and the most probable cut into known words wins (``一 部``, ``喜剧 电影``). jieba's
HMM, which glues runs of single characters into new (unknown) words, is off. Latin vocabulary entries are left
out of the dictionary: fragments such as ``Han`` and ``ks`` would cut ``Hanks`` apart. Whitespace is never a
token.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import List, Sequence

import jieba

HAN = re.compile(r"[\u4e00-\u9fff]")
# A sentence ends after Chinese or Latin end punctuation (closing quotes stay with it) or at a line break.
SENTENCE_END = re.compile(r"(?<=[。！？!?；;…])(?![”’」』）)])|\n+")
ZIPF_SCALE = 1_000_000

jieba.setLogLevel(logging.WARNING)


class ChineseTokenizer:
    """A jieba segmenter over a dataset's vocabulary, built on first use (about a second for 30,000 tokens).

    Args:
        vocabulary: the dataset's tokens, most frequent first (``token2id.json`` keys in id order); special
            tokens such as ``__unk__`` are skipped.
    """

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self._words = [word for word in vocabulary
                       if HAN.search(word) and not word.startswith("__") and not any(c.isspace() for c in word)]
        self._jieba = None

    def _build(self) -> jieba.Tokenizer:
        # jieba reads a custom dictionary from a file and caches it beside itself: both live in a folder of ours
        with tempfile.TemporaryDirectory(prefix="c2crs_jieba_") as folder:
            dictionary = Path(folder) / "vocabulary.txt"
            dictionary.write_text("".join(f"{word} {max(1, ZIPF_SCALE // rank)}\n"
                                          for rank, word in enumerate(self._words, start=1)), encoding="utf-8")
            tokenizer = jieba.Tokenizer(str(dictionary))
            tokenizer.tmp_dir = folder
            tokenizer.initialize()
        return tokenizer

    def __call__(self, text: str) -> List[str]:
        """The tokens of ``text``, in order, without whitespace tokens."""
        if self._jieba is None:
            self._jieba = self._build()
        return [token for token in self._jieba.lcut(text, HMM=False) if token.strip()]


def split_sentences(text: str) -> List[str]:
    """Split Chinese text after ``。！？；…`` (and their Latin forms) and at line breaks; blank pieces dropped."""
    return [piece.strip() for piece in SENTENCE_END.split(text) if piece and piece.strip()]
