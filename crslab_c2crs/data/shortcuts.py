"""Batches for the shortcut baselines (registered as the ``Popularity`` and ``RepeatContext`` dataloaders).

The samples are CRSLab's ReDial samples; as for every other model, the rec targets follow the run's protocol
(``rec_targets``, :mod:`crslab_c2crs.data.targets`), one entry per target movie, in the dataset's order. A batch
holds

==============  ===========  ==================================================================
key             shape        content
==============  ===========  ==================================================================
recent_movies   (B, *)       per row, the context's movie entity ids, most recently mentioned first
item            (B,)         target movie entity id
==============  ===========  ==================================================================
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch

from crslab.data.dataloader.base import BaseDataLoader
from crslab_c2crs.data.targets import RecTargetsMixin
from crslab_c2crs.registry import register_dataloader

Sample = Dict[str, Any]


def recent_movies(sample: Mapping[str, Any]) -> List[int]:
    """The context's movie candidates, most recent first, each once: the ``@`` mentions (``context_items``, in
    mention order) by their last mention, then the other context entities (titles linked in plain text) from
    the latest first mentioned. Entities that are not movies are dropped by the model."""
    ordered: Dict[int, None] = dict.fromkeys(reversed(sample["context_items"]))
    ordered.update(dict.fromkeys(entity for entity in reversed(sample["context_entities"]) if entity not in ordered))
    return list(ordered)


@register_dataloader("Popularity")
@register_dataloader("RepeatContext")
class ShortcutDataLoader(RecTargetsMixin, BaseDataLoader):
    """Recommendation batches of the shortcut baselines (see module docstring); they have no conversation part."""

    def __init__(self, opt, dataset: List[Sample], vocab: Dict[str, Any]):
        super().__init__(opt, dataset)

    def rec_process_fn(self) -> List[Sample]:
        """One entry per target movie of the protocol's target turns, sharing the turn's dict (no copies)."""
        return [{"sample": sample, "item": movie} for sample, movie in self.rec_target_entries()]

    def rec_batchify(self, batch: List[Sample]) -> Dict[str, Any]:
        return {"recent_movies": [recent_movies(entry["sample"]) for entry in batch],
                "item": torch.tensor([entry["item"] for entry in batch], dtype=torch.long)}

    def conv_batchify(self, *args, **kwargs):
        raise NotImplementedError("the shortcut baselines do not generate responses")

    def policy_batchify(self, *args, **kwargs):
        raise NotImplementedError("the shortcut baselines have no policy module")
