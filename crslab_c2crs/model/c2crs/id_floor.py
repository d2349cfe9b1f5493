"""The id floor of the contrastive objectives: the loss that entity ids alone reach, with nothing trained.

The three views of a user share their entities: the KG view's entities are the history's mentioned entities in
almost every row, the review view's a subset of them, and the fine level's units are keyed by entity. So a
"model" with one fixed random vector per entity id, mean-pooled per view, already matches the views of one user
far better than chance. A trained model's validation InfoNCE below chance therefore shows only that ids were
matched; below this floor, that the encoders learnt something ids do not give.

:class:`IdFloor` computes, on the batch the model is validated on, each coarse (Eq. 5) and fine (Eq. 6) term of
that id model with the very loss functions the model trains with (identity heads), and the chance value of each
term: the same loss when every vector is equal.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from crslab_c2crs.model.c2crs.contrastive import FineUnits, coarse_loss, entity_units, fine_loss, units_of_every_rank

Batch = Dict[str, Tensor]
_IDENTITY = nn.ModuleDict({view: nn.Identity() for view in ("history", "kg", "review")})


def _pool(vectors: Tensor, rows: Tensor, entities: Tensor, batch_size: int) -> Tuple[Tensor, Tensor]:
    """Per row, the mean of ``vectors[entities]`` over the entities listed for it ``(batch, dim)``, and whether it
    has any ``(batch,)``."""
    total = vectors.new_zeros(batch_size, vectors.shape[1]).index_add_(0, rows, vectors[entities])
    count = torch.bincount(rows, minlength=batch_size).to(vectors.dtype)
    return total / count.clamp(min=1)[:, None], count > 0


class IdFloor:
    """A fixed random vector per entity id (seeded, never trained) and the contrastive terms it reaches.

    The history view of a row pools the entities mentioned in its context and, like the model's, counts for every
    row with a context: a context that mentions nothing has the zero vector, matching nothing. The KG and review
    views count for the rows that have entities or review sentences, as the model's do. A batch whose mentions are
    masked (``history_ids_hidden``, ``pretrain_mask_mentions``) shows the history view no id, so ids alone give its
    terms nothing: their floor is chance. (Zero history vectors would not give chance: the other view's anchors
    then meet their own view's rows, similar wherever rows share entities, as closer negatives than the blind
    positive, and the term rises above chance.)

    Args:
        n_entity: number of KG entities.
        dim: vector size (the contrastive space's, ``kg_dim``).
        pad_entity: the padding entity id of ``context_entities``.
        pad_token: the padding token id of ``context``.
        seed: seed of the vectors.
    """

    def __init__(self, n_entity: int, dim: int, pad_entity: int = 0, pad_token: int = 0, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.vectors = torch.randn(n_entity, dim, generator=generator)
        self.pad_entity, self.pad_token = pad_entity, pad_token

    @staticmethod
    def _history_hidden(batch: Batch) -> bool:
        """Whether the batch's history view shows no entity id (masked mentions)."""
        hidden = batch.get("history_ids_hidden")
        return hidden is not None and bool(hidden)

    def _views(self, batch: Batch, vectors: Tensor, views: Tuple[str, ...]
               ) -> Dict[str, Tuple[Optional[Tensor], Optional[Tensor]]]:
        size = batch["context_entities"].shape[0]
        entities = batch["context_entities"]
        rows, cols = (entities != self.pad_entity).nonzero(as_tuple=True)
        pooled = {
            "history": (_pool(vectors, batch["mention_row"], batch["mention_entity"], size)[0],
                        (batch["context"] != self.pad_token).any(dim=1)),
            "kg": _pool(vectors, rows, entities[rows, cols], size),
            "review": _pool(vectors, batch["review_row"], batch["review_entity"], size),
        }
        return {view: pooled[view] if view in views else (None, None) for view in pooled}

    def _units(self, batch: Batch, vectors: Tensor, views: Tuple[str, ...]
               ) -> Tuple[Optional[FineUnits], Optional[FineUnits], Optional[FineUnits]]:
        empty = batch["mention_entity"].new_zeros(0)
        sentence, sentence_tokens = None, batch["review"][:0]
        if "review" in views:
            # one unit per distinct (entity, sentence), as the model's sentence units
            seen: Dict[Tuple[int, Tuple[int, ...]], int] = {}
            for row, (entity, tokens) in enumerate(zip(batch["review_entity"].tolist(), batch["review"].tolist())):
                seen.setdefault((entity, tuple(tokens)), row)
            kept = torch.tensor(list(seen.values()), dtype=torch.long)
            review_entity, sentence_tokens = batch["review_entity"][kept], batch["review"][kept]
            sentence = FineUnits(vectors[review_entity], review_entity)
        mention_entity = batch["mention_entity"]
        word = FineUnits(vectors[mention_entity], mention_entity) if "history" in views else None
        # under torchrun, the units of the global batch, as the model's
        word, sentence = units_of_every_rank(word, sentence, sentence_tokens, self.pad_token)
        entity = None
        if "kg" in views:
            keys = entity_units(empty if word is None else word.keys, empty if sentence is None else sentence.keys)
            entity = FineUnits(vectors[keys], keys)
        return word, entity, sentence

    def terms(self, batch: Batch, level: str, temperature: float, views: Tuple[str, ...], chance: bool = False
              ) -> Dict[str, float]:
        """The coarse (``level="coarse"``) or fine (``"fine"``) InfoNCE terms of the id model on ``batch``, keyed
        ``"<level>/<view>-<view>"`` as the model reports its own; with ``chance``, those of equal vectors. The
        terms of a history view without ids (masked mentions) are chance's."""
        vectors = torch.ones_like(self.vectors) if chance else self.vectors
        with torch.no_grad():
            if level == "coarse":
                pooled = self._views(batch, vectors, views)
                _, terms = coarse_loss(pooled["history"][0], pooled["kg"][0], pooled["review"][0], _IDENTITY,
                                       temperature, pooled["history"][1], pooled["kg"][1], pooled["review"][1])
            elif level == "fine":
                _, terms = fine_loss(*self._units(batch, vectors, views), _IDENTITY, temperature)
            else:
                raise ValueError(f"level must be coarse or fine, got {level!r}")
        result = {f"{level}/{pair}": float(value) for pair, value in terms.items()}
        if self._history_hidden(batch) and not chance:
            equal = self.terms(batch, level, temperature, views, chance=True)
            result.update({name: value for name, value in equal.items() if "history" in name})
        return result
