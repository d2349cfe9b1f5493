"""Shortcut recommenders: what ReDial's Recall@k rewards without reading the dialog.

* ``Popularity``: every context gets the same list, the movies by their mention count in the training dialogs.
* ``RepeatContext``: the movies the context mentions, most recent first, then the popularity list. About one
  ReDial test target in ten was already mentioned in its context (He et al., CIKM 2023), which this exploits.

Neither has trainable parameters; the training counts are set once with :meth:`PopularityRecommender.fit`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor

from crslab.model.base import BaseModel
from crslab_c2crs.registry import register_model


@register_model("Popularity")
class PopularityRecommender(BaseModel):
    """Scores every item by its training mention count, whatever the context.

    Batches (``crslab_c2crs.data.shortcuts``): ``recent_movies`` (per row, context movie entity ids, most recent
    first) and ``item`` ``(batch,)`` target entity ids.
    """

    def __init__(self, opt: Dict[str, Any], device: torch.device, vocab: Dict[str, Any],
                 side_data: Dict[str, Any]) -> None:
        self.item_entity_ids: List[int] = list(side_data["item_entity_ids"])
        self.entity_to_item = {entity: index for index, entity in enumerate(self.item_entity_ids)}
        super().__init__(opt, device)

    def build_model(self) -> None:
        # a buffer, so a saved system (-ss) keeps the counts it was evaluated with
        self.register_buffer("popularity", torch.zeros(len(self.item_entity_ids)))

    def fit(self, train_mentions: Sequence[int]) -> None:
        """Set the training mention count of every item (in item index order)."""
        self.popularity.copy_(torch.as_tensor(list(train_mentions), dtype=torch.float))

    def item_index(self, entities: Tensor) -> List[int]:
        """Item indices of the target entity ids ``entities`` ``(batch,)``."""
        return [self.entity_to_item[entity] for entity in entities.tolist()]

    def recommend(self, batch: Dict[str, Any], mode: str) -> Tensor:
        """Scores ``(batch, n_items)``: the training mention counts on every row."""
        return self.popularity.expand(len(batch["recent_movies"]), -1)


@register_model("RepeatContext")
class RepeatContextRecommender(PopularityRecommender):
    """Ranks the context's movies first, most recently mentioned first, then every other item by popularity."""

    def recommend(self, batch: Dict[str, Any], mode: str) -> Tensor:
        """Scores ``(batch, n_items)``: the mention counts, with the ``L`` context movies of a row raised above
        the most popular item, to ``max count + L - r`` for the ``r``-th most recent (``r`` from 0)."""
        scores = super().recommend(batch, mode).clone()
        top = float(self.popularity.max()) if scores.numel() else 0.0
        for row, entities in enumerate(batch["recent_movies"]):
            items = [self.entity_to_item[entity] for entity in entities if entity in self.entity_to_item]
            for recency, item in enumerate(items):
                scores[row, item] = top + len(items) - recency
        return scores
