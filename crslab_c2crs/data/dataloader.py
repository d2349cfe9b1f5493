"""Batches for C2-CRS (registered as the ``C2CRS`` dataloader).

Samples come from :class:`crslab_c2crs.data.dataset.ReDialReviewDataset`, which already holds the flattened,
truncated context (``context_seq``), the entity mentions as spans of it and the review sentences of the context
entities. This module only selects samples per stage and pads them into the batch contract of
:class:`crslab_c2crs.model.c2crs.model.C2CRSModel`:

==================  ===========  ==================================================================
key                 shape        content
==================  ===========  ==================================================================
context             (B, Lc)      context token ids, right-padded with ``pad``
context_entities    (B, Le)      context entity ids, right-padded with ``pad_entity`` (Le >= 1)
mention_row/...     (M,)         ``mention_row``, ``mention_start``, ``mention_end``, ``mention_entity``
review              (R, Lr)      review sentence token ids, right-padded
review_row          (R,)         batch row of each sentence
review_entity       (R,)         entity each sentence is about
item                (B,)         target movie entity id (multitask pretrain and rec batches)
history_ids_hidden  ()           True when the pre-training history view's mentions are masked
response            (B, Lt)      [START] response [END], right-padded (conv batches)
==================  ===========  ==================================================================

Pre-training and the conversation stage learn from the Recommender turns. The rec targets follow the run's
protocol (``rec_targets``, :mod:`crslab_c2crs.data.targets`), as every other model's loader does, so all models are
scored on the same samples. Unlike the reference, samples are selected once (not deep-copied every epoch).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from crslab.data.dataloader.base import BaseDataLoader
from crslab.data.dataloader.utils import add_start_end_token_idx, padded_tensor, truncate
from crslab_c2crs.data.options import SampleOptions
from crslab_c2crs.data.pretrain_views import PretrainViews, movie_token_ids, pretrain_view
from crslab_c2crs.data.targets import RecTargetsMixin
from crslab_c2crs.registry import register_dataloader

Sample = Dict[str, Any]


def _long(values: List[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


@register_dataloader("C2CRS")
class C2CRSDataLoader(RecTargetsMixin, BaseDataLoader):
    """Selects the samples of each stage and pads them into C2-CRS batches (see module docstring)."""

    def __init__(self, opt, dataset: List[Sample], vocab: Dict[str, Any]):
        super().__init__(opt, dataset)
        self.pad_token_idx = vocab["pad"]
        self.start_token_idx = vocab["start"]
        self.end_token_idx = vocab["end"]
        self.pad_entity_idx = vocab["pad_entity"]
        self.response_truncate = SampleOptions.from_opt(opt).response_truncate
        self.entity_truncate: Optional[int] = opt.get("entity_truncate", None)
        self._recommender_turns: Optional[List[Sample]] = None
        self._item_samples: Optional[List[Sample]] = None
        self.pretrain_views = PretrainViews.from_opt(opt)
        self.unk_token_idx = vocab.get("unk", self.pad_token_idx)
        self.movie_tokens = movie_token_ids(vocab.get("tok2ind", {})) if self.pretrain_views.active else set()

    def recommender_turns(self) -> List[Sample]:
        """The samples whose response is a Recommender turn (computed once)."""
        if self._recommender_turns is None:
            self._recommender_turns = [sample for sample in self.dataset if sample["role"] == "Recommender"]
        return self._recommender_turns

    def rec_process_fn(self) -> List[Sample]:
        """One entry per target movie of the protocol's target turns, sharing the turn's dict (no copies)."""
        if self._item_samples is None:
            self._item_samples = [{"sample": sample, "item": movie} for sample, movie in self.rec_target_entries()]
        return self._item_samples

    def pretrain_process_fn(self) -> List[Sample]:
        """Contrastive pre-training sees each Recommender turn once: one user per row, so the same context is
        never its own in-batch negative (the reference duplicated a turn once per mentioned movie)."""
        return [{"sample": sample} for sample in self.recommender_turns()]

    def conv_process_fn(self) -> List[Sample]:
        return [{"sample": sample} for sample in self.recommender_turns()]

    def get_pretrain_data(self, batch_size: int, shuffle: bool = True):
        return self.get_data(self.pretrain_batchify, batch_size, shuffle, self.pretrain_process_fn)

    def batchify_context(self, samples: List[Sample]) -> Dict[str, torch.Tensor]:
        """The context part of a batch: tokens, entities, mention spans and review sentences."""
        entities = [sample["context_entities"] for sample in samples]
        if self.entity_truncate:
            entities = [truncate(ids, self.entity_truncate, truncate_tail=False) for ids in entities]
        mention_row, mention_start, mention_end, mention_entity = [], [], [], []
        review, review_row, review_entity = [], [], []
        for row, sample in enumerate(samples):
            for start, end, entity in sample["context_mentions"]:
                mention_row.append(row)
                mention_start.append(start)
                mention_end.append(end)
                mention_entity.append(entity)
            for entity, tokens in sample["review_sentences"]:
                review.append(tokens)
                review_row.append(row)
                review_entity.append(entity)
        return {
            "context": padded_tensor([sample["context_seq"] for sample in samples], self.pad_token_idx),
            "context_entities": padded_tensor(entities, self.pad_entity_idx),
            "mention_row": _long(mention_row),
            "mention_start": _long(mention_start),
            "mention_end": _long(mention_end),
            "mention_entity": _long(mention_entity),
            "review": padded_tensor(review, self.pad_token_idx) if review else torch.zeros(0, 1, dtype=torch.long),
            "review_row": _long(review_row),
            "review_entity": _long(review_entity),
        }

    def pretrain_batchify(self, batch: List[Sample]) -> Dict[str, torch.Tensor]:
        """A pre-training batch, its views masked or thinned as ``pretrain_mask_mentions`` and
        ``pretrain_entity_dropout`` say (:mod:`crslab_c2crs.data.pretrain_views`); with masked mentions the batch
        says so (``history_ids_hidden``), for the id floor."""
        samples = [pretrain_view(entry["sample"], self.pretrain_views, self.movie_tokens, self.unk_token_idx)
                   for entry in batch]
        tensors = self.batchify_context(samples)
        if self.pretrain_views.pretrain_mask_mentions:
            tensors["history_ids_hidden"] = torch.tensor(True)
        return tensors

    def rec_batchify(self, batch: List[Sample]) -> Dict[str, torch.Tensor]:
        tensors = self.batchify_context([entry["sample"] for entry in batch])
        tensors["item"] = _long([entry["item"] for entry in batch])
        return tensors

    def conv_batchify(self, batch: List[Sample]) -> Dict[str, torch.Tensor]:
        samples = [entry["sample"] for entry in batch]
        tensors = self.batchify_context(samples)
        responses = [add_start_end_token_idx(truncate(sample["response"], self.response_truncate - 2),
                                             start_token_idx=self.start_token_idx,
                                             end_token_idx=self.end_token_idx) for sample in samples]
        tensors["response"] = padded_tensor(responses, self.pad_token_idx)
        return tensors

    def policy_process_fn(self, *args, **kwargs):
        raise NotImplementedError("C2-CRS has no policy module")

    def policy_batchify(self, *args, **kwargs):
        raise NotImplementedError("C2-CRS has no policy module")
