"""Tiny C2-CRS fixtures shared by the ``test_c2crs_*`` tests (HF-style "model tester").

A 50-token vocabulary, a 10-node KG with 2 relations, 6 items, and small hand-made batches that follow the
dataloader's batch contract.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from crslab_c2crs.model.c2crs import C2CRSModel

VOCAB_SIZE = 50
N_ENTITY = 10
PAD, START, END, UNK = 0, 1, 2, 3
ITEMS = [2, 3, 5, 7, 8, 9]
# (head, tail, relation); both directions plus a few self-loops as CRSLab builds them
EDGES = [(1, 2, 0), (2, 3, 0), (3, 4, 1), (4, 5, 1), (5, 6, 0), (6, 7, 1), (7, 8, 0), (8, 9, 1)]
EDGES += [(t, h, r) for h, t, r in EDGES] + [(n, n, 1) for n in (1, 5, 9)]

TINY_OPT: Dict[str, Any] = {
    "token_emb_dim": 16,
    "kg_emb_dim": 24,
    "n_heads": 2,
    "n_layers": 2,
    "ffn_size": 20,
    "num_bases": 2,
    "n_positions": 64,
    "response_truncate": 6,
    "token_freq_th": 5,
    "coarse_weight_th": 0.1,
}


def vocab() -> Dict[str, Any]:
    tokens = ["__pad__", "__start__", "__end__", "__unk__"] + [f"w{i}" for i in range(4, VOCAB_SIZE)]
    return {
        "vocab_size": VOCAB_SIZE,
        "n_entity": N_ENTITY,
        "pad": PAD,
        "start": START,
        "end": END,
        "unk": UNK,
        "pad_entity": 0,
        "tok2ind": {t: i for i, t in enumerate(tokens)},
        "ind2tok": dict(enumerate(tokens)),
    }


def side_data(copy_mask: Optional[Tensor] = None) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "entity_kg": {"edge": list(EDGES), "n_relation": 2},
        "item_entity_ids": list(ITEMS),
        # END is counted often but, not being a word, weighs 1; every 12-token cycle holds frequent and rare words
        "token_freq": [0, 0, 40, 0] + [i % 12 for i in range(4, VOCAB_SIZE)],
        # token 9 is said twice in a row often enough to repeat under block_stutter; token 7 is not
        "token_repeats": [0] * 9 + [5] + [0] * (VOCAB_SIZE - 10),
    }
    if copy_mask is not None:
        data["copy_mask"] = copy_mask
    return data


def opt(**overrides: Any) -> Dict[str, Any]:
    return {**TINY_OPT, **overrides}


def model(seed: int = 0, copy_mask: Optional[Tensor] = None, **overrides: Any) -> C2CRSModel:
    torch.manual_seed(seed)
    return C2CRSModel(opt(**overrides), torch.device("cpu"), vocab(), side_data(copy_mask))


def _pad(rows: Sequence[Sequence[int]], width: Optional[int] = None) -> Tensor:
    width = max([len(r) for r in rows] + [width or 0, 1])
    return torch.tensor([list(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long).reshape(len(rows), width)


MENTIONS = [(0, 1, 2, 3), (0, 3, 5, 5), (1, 0, 1, 3), (1, 2, 3, 7), (3, 4, 5, 8), (3, 0, 1, 8)]
REVIEWS = [
    (0, 3, [40, 41, 42]),
    (0, 5, [43, 44]),
    (1, 7, [45, 46, 47, 48]),
    (1, 3, [40, 49]),
    (3, 8, [41, 42, 43]),
    (3, 2, [44]),
]


def batch(mentions: bool = True, reviews: bool = True) -> Dict[str, Tensor]:
    """A 4-sample batch following the dataloader contract. Row 2 has no context entities, mentions or reviews.

    Mentions :data:`MENTIONS` are (row, start, end, entity); reviews :data:`REVIEWS` are (row, entity, tokens).
    ``mentions``/``reviews`` False give M = 0 / R = 0.
    """
    context = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14], [15, 16, 17], [18, 19, 20, 21, 22, 23, 24]]
    out = {
        "context": _pad(context),
        "context_entities": _pad([[3, 5], [3, 7, 4], [], [8, 2]]),
        "item": torch.tensor([2, 7, 9, 3]),
        "response": _pad([[START, 30, 31, END], [START, 32, END], [START, 33, 34, 35, END], [START, END]]),
    }
    mention_rows = MENTIONS if mentions else []
    names = ("mention_row", "mention_start", "mention_end", "mention_entity")
    for index, name in enumerate(names):
        out[name] = torch.tensor([m[index] for m in mention_rows], dtype=torch.long)
    review_rows = REVIEWS if reviews else []
    out["review"] = _pad([r[2] for r in review_rows], 5) if review_rows else torch.zeros(0, 5, dtype=torch.long)
    out["review_row"] = torch.tensor([r[0] for r in review_rows], dtype=torch.long)
    out["review_entity"] = torch.tensor([r[1] for r in review_rows], dtype=torch.long)
    return out
