"""The word vectors CRSLab's ReDial configs of KGSF and KBRD load (``embedding: word2vec_redial.npy``).

CRSLab ships ``word2vec_redial.npy`` in its downloaded ReDial archive: 300-d word2vec vectors trained on the
ReDial dialogs (KGSF's recipe: gensim's default CBOW, window 5, 5 epochs, every word kept), one row per id of
``token2id.json``. Offline, the builder trains them itself, on the **training** dialogs only (no validation or
test text leaks into the inputs), deterministically: a fixed seed and one worker thread. Tokens the training
dialogs never use, and the special tokens, get zero rows, as in KGSF's file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from crslab_c2crs.data.layout import WORD2VEC_FILE
from crslab_c2crs.errors import MissingDataError

WORD2VEC_DIM = 300
WORD2VEC_SEED = 42


def dialog_sentences(conversations: Sequence[Mapping[str, Any]]) -> List[List[str]]:
    """One sentence per utterance: its tokens as in ``*_data.json`` (``@<movieId>`` placeholders included)."""
    return [list(utterance["text"]) for conversation in conversations for utterance in conversation["dialog"]
            if utterance["text"]]


def train_word_vectors(sentences: Sequence[Sequence[str]], token2id: Mapping[str, int], dim: int = WORD2VEC_DIM,
                       seed: int = WORD2VEC_SEED) -> np.ndarray:
    """Word2vec vectors of the vocabulary, ``(len(token2id), dim)`` float32, row = token id.

    Deterministic for equal inputs: gensim draws its initial vectors and samples from ``seed``, and one worker
    thread fixes the order of the updates.
    """
    from gensim.models import Word2Vec

    model = Word2Vec(sentences=[list(sentence) for sentence in sentences], vector_size=dim, min_count=1,
                     workers=1, seed=seed)
    vectors = np.zeros((max(token2id.values()) + 1, dim), dtype=np.float32)
    for token, index in token2id.items():
        if token in model.wv.key_to_index:
            vectors[index] = model.wv[token]
    return vectors


def word2vec_stats(vectors: np.ndarray, token2id: Mapping[str, int]) -> Dict[str, Any]:
    """Dimension and the share of the vocabulary that got a vector (non-zero row)."""
    covered = int(np.count_nonzero(np.abs(vectors).sum(axis=1)))
    return {"file": WORD2VEC_FILE, "dim": int(vectors.shape[1]), "tokens_with_vectors": covered,
            "vocabulary": len(token2id), "seed": WORD2VEC_SEED, "trained_on": "train"}


def check_word_vectors(dataset_dir: Path, name: str) -> None:
    """Raise :class:`MissingDataError` when the built dataset at ``dataset_dir`` lacks the ``embedding`` file
    ``name`` a config asks for (a build made before the builder wrote word vectors), instead of numpy's
    FileNotFoundError once the data is loaded. A folder not built at all is left to CRSLab's own check."""
    if (dataset_dir / ".built").is_file() and not (dataset_dir / name).is_file():
        hint = (f"rebuild the data with: python -m crslab_c2crs.data build redial --data-root "
                f"{dataset_dir.parent.parent.parent} --force" if name == WORD2VEC_FILE else
                "place the file there")
        raise MissingDataError(f"embedding: {dataset_dir / name} does not exist; {hint}, or run without "
                               f"pretrained word vectors with --set embedding=null")
