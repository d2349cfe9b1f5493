"""The items (movies) every recommender here ranks, and how popular each was in the training dialogs.

CRSLab scores items in the order of ``side_data['item_entity_ids']`` (``movie_ids.json``): item index ``i`` is the
movie whose KG entity id is ``item_entity_ids[i]``. :class:`ItemCatalog` maps between the two and holds each
movie's mention count in the training dialogs, which the popularity baselines rank by and the evaluator's
coverage report averages.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence


def movie_mentions(samples: Iterable[Mapping[str, Any]]) -> Counter:
    """Movie mentions per entity id in the dialogs behind CRSLab's ReDial samples.

    Sample ``k`` of a conversation holds the movies of turn ``k`` in ``items`` and those of every earlier turn in
    ``context_items``; the first turn is never a response, so its movies are taken from the conversation's first
    sample (the one with a single context turn). Every mention of every turn is then counted once.
    """
    counts: Counter = Counter()
    for sample in samples:
        if len(sample["context_tokens"]) == 1:
            counts.update(sample["context_items"])
        counts.update(sample["items"])
    return counts


class ItemCatalog:
    """Item index <-> entity id, and the training mention count of every item.

    Args:
        entity_ids: entity id of every item; its position is the item index.
        train_mentions: mentions of every item in the training dialogs (same order).
    """

    def __init__(self, entity_ids: Sequence[int], train_mentions: Sequence[int]) -> None:
        if len(entity_ids) != len(train_mentions):
            raise ValueError(f"{len(entity_ids)} items but {len(train_mentions)} mention counts")
        self.entity_ids: List[int] = list(entity_ids)
        self.train_mentions: List[int] = list(train_mentions)
        self._index: Dict[int, int] = {entity: index for index, entity in enumerate(self.entity_ids)}
        if len(self._index) != len(self.entity_ids):
            raise ValueError("item_entity_ids lists an entity twice")

    @classmethod
    def from_data(cls, item_entity_ids: Sequence[int], train_samples: Iterable[Mapping[str, Any]]) -> "ItemCatalog":
        """The catalog of ``side_data['item_entity_ids']`` with mention counts from the training samples."""
        counts = movie_mentions(train_samples)
        return cls(item_entity_ids, [counts.get(entity, 0) for entity in item_entity_ids])

    @property
    def n_items(self) -> int:
        return len(self.entity_ids)

    def index_of(self, entity: int) -> Optional[int]:
        """The item index of ``entity``, or None when it is not an item (a non-movie entity, padding)."""
        return self._index.get(entity)

    def items_among(self, entities: Iterable[int]) -> List[int]:
        """Item indices of the movies among ``entities``, in their order, each once."""
        seen: Dict[int, None] = {}
        for entity in entities:
            index = self._index.get(entity)
            if index is not None:
                seen.setdefault(index)
        return list(seen)
