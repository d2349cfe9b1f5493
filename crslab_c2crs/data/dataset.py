"""``ReDialReview``: CRSLab's ReDial plus what C2-CRS needs (flat context, mention spans, review sentences).

Reads the same folder and resource version as CRSLab's ReDial (``dataset/redial/nltk``, ``.built`` 0.31) plus
the side files written by ``python -m crslab_c2crs.data build redial``: ``c2crs_mentions_{split}.json`` and
``c2crs_reviews.json``. Sample order and the stock fields are exactly CRSLab's; each sample also gets:

* ``context_seq`` (``List[int]``): each context turn (after CRSLab's same-role merge) as token ids followed
  by ``end`` (2), concatenated; only the last ``opt['context_truncate']`` ids are kept;
* ``context_mentions`` (``List[Tuple[int, int, int]]``): ``(start, end, entity_id)`` spans of ``context_seq``
  for every ``@`` movie and linked entity mention of the context, ordered by position; a mention cut
  (even partly) by the truncation is dropped;
* ``review_sentences`` (``List[Tuple[int, List[int]]]``): ``(entity_id, token_ids)``; of the context entities
  that have review sentences, the ``opt['review_entity_limit']`` most recently mentioned (most recent
  first, recency = end of the entity's last mention in the untruncated context), each with its top
  ``opt['nb_review']`` ranked sentences cut to ``opt['info_truncate']`` ids, no start/end tokens.

The options and their defaults are :class:`~crslab_c2crs.data.options.SampleOptions`.

``side_data`` also gets ``token_freq`` and ``token_repeats`` (``List[int]``, vocab_size): how often each word occurs
in the responses the conversation stage learns (Recommender turns of the training split), and how often twice in a
row there; START, END, PAD and UNK are not words and count 0, so Eq. 12 gives them weight 1 (counting END once per
response gave it alpha 0.04: the decoder then rarely stopped); ``copy_mask`` (``numpy`` bool, vocab_size): the
tokens the copy mechanism may boost, KGSF's ``copy_mask.npy`` written by the data builder; ``review_corpus_version``
(the review file's ``format_version``); and ``entity_reviews`` (entity id -> ranked sentence token ids).
"""
from __future__ import annotations

import importlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from loguru import logger
from tqdm import tqdm

from crslab_c2crs.data.layout import COPY_MASK_FILE, REVIEWS_FILE, SPLITS, build_hint, mentions_file, redial_kgsf_dir
from crslab_c2crs.data.options import SampleOptions
from crslab_c2crs.errors import MissingDataError
from crslab_c2crs.registry import register_dataset

# CRSLab's package __init__ star-imports shadow submodules, so the module is fetched by name.
_redial = importlib.import_module("crslab.data.dataset.redial.redial")

Mention = Tuple[int, int, int]


def merge_turn_mentions(dialog: Sequence[Mapping[str, Any]], mentions: Sequence[Sequence[Sequence[int]]]
                        ) -> List[List[Mention]]:
    """Merge per-utterance mention spans into CRSLab's same-role turns.

    Args:
        dialog: CRSLab utterances (``role``, ``text``), as in ``*_data.json``.
        mentions: per utterance, ``[start, end, entity_id]`` spans into its ``text``.

    Returns:
        Per merged turn, the spans shifted to positions in the merged turn's token list.
    """
    turns: List[List[Mention]] = []
    offset = 0
    last_role = None
    for utt, spans in zip(dialog, mentions, strict=True):
        if utt["role"] != last_role:
            turns.append([])
            offset = 0
        turns[-1].extend((start + offset, end + offset, entity) for start, end, entity in spans)
        offset += len(utt["text"])
        last_role = utt["role"]
    return turns


def truncate_context(turn_tokens: Sequence[Sequence[int]], turn_mentions: Sequence[Sequence[Mention]],
                     end_idx: int, limit: int) -> Tuple[List[int], List[Mention]]:
    """Flatten context turns as ``tokens + [end_idx]`` and keep the last ``limit`` ids.

    Returns:
        ``(context_seq, mentions)`` with mention spans re-based on the kept ids; spans that start before
        the cut are dropped.
    """
    seq: List[int] = []
    spans: List[Mention] = []
    for tokens, mentions in zip(turn_tokens, turn_mentions, strict=True):
        base = len(seq)
        spans.extend((start + base, end + base, entity) for start, end, entity in mentions)
        seq.extend(tokens)
        seq.append(end_idx)
    cut = max(0, len(seq) - limit)
    kept = [(start - cut, end - cut, entity) for start, end, entity in spans if start >= cut]
    return seq[cut:], kept


def recent_entities(turn_mentions: Sequence[Sequence[Mention]], turn_lengths: Sequence[int]) -> List[int]:
    """Entity ids of the (untruncated) context, most recently mentioned first, without repeats."""
    last_end: Dict[int, int] = {}
    base = 0
    for mentions, length in zip(turn_mentions, turn_lengths, strict=True):
        for _start, end, entity in mentions:
            last_end[entity] = max(last_end.get(entity, -1), base + end)
        base += length + 1
    return sorted(last_end, key=lambda entity: (-last_end[entity], entity))


def response_word_counts(samples: Sequence[Mapping[str, Any]], vocab_size: int, special_ids: set) -> List[int]:
    """Per token id, its count over the Recommender responses of ``samples`` (the conv stage's targets);
    ``special_ids`` (START/END/PAD/UNK) are not words and count 0."""
    counts: Counter = Counter()
    for sample in samples:
        if sample["role"] == "Recommender":
            counts.update(sample["response"])
    return [0 if idx in special_ids else counts.get(idx, 0) for idx in range(vocab_size)]


def response_word_repeats(samples: Sequence[Mapping[str, Any]], vocab_size: int, special_ids: set) -> List[int]:
    """Per token id, how often the Recommender responses of ``samples`` say it twice in a row (the words the
    decoder's ``block_stutter`` rule lets repeat); ``special_ids`` count 0."""
    counts: Counter = Counter()
    for sample in samples:
        if sample["role"] == "Recommender":
            response = sample["response"]
            counts.update(word for word, after in zip(response, response[1:]) if word == after)
    return [0 if idx in special_ids else counts.get(idx, 0) for idx in range(vocab_size)]


def select_review_sentences(entities: Sequence[int], reviews: Mapping[int, Sequence[Sequence[int]]],
                            entity_limit: int, nb_review: int, info_truncate: int) -> List[Tuple[int, List[int]]]:
    """``(entity_id, token_ids)`` review sentences for ``entities`` (most recent first): the first
    ``entity_limit`` entities that have sentences, their top ``nb_review`` sentences cut to ``info_truncate``."""
    selected: List[Tuple[int, List[int]]] = []
    for entity in [entity for entity in entities if entity in reviews][:entity_limit]:
        selected.extend((entity, list(sentence[:info_truncate])) for sentence in reviews[entity][:nb_review])
    return selected


def c2crs_fields(turn_tokens: Sequence[Sequence[int]], turn_mentions: Sequence[Sequence[Mention]], end_idx: int,
                 reviews: Mapping[int, Sequence[Sequence[int]]], options: SampleOptions) -> Dict[str, Any]:
    """The C2-CRS fields of a context of turns (token ids and mention spans per turn): ``context_seq``,
    ``context_mentions`` and ``review_sentences`` (see the module docstring)."""
    context_seq, context_mentions = truncate_context(turn_tokens, turn_mentions, end_idx, options.context_truncate)
    entities = recent_entities(turn_mentions, [len(tokens) for tokens in turn_tokens])
    return {"context_seq": context_seq, "context_mentions": context_mentions,
            "review_sentences": select_review_sentences(entities, reviews, options.review_entity_limit,
                                                        options.nb_review, options.info_truncate)}


class C2CRSFieldsMixin:
    """What ``ReDialReview`` and ``TGReDialReview`` add to CRSLab's samples (see module docstring), cut as the
    :class:`~crslab_c2crs.data.options.SampleOptions` of ``opt`` say."""

    special_token_idx: Dict[str, int]

    def _read_c2crs_options(self, opt: Mapping[str, Any]) -> None:
        # called before CRSLab's __init__, which loads and processes everything
        self.sample_options = SampleOptions.from_opt(opt)

    def _use_review_corpus(self, corpus: Mapping[str, Any]) -> None:
        """Keep the ranked sentence ids of a ``c2crs_reviews.json`` document."""
        self.review_corpus_version = corpus["format_version"]
        self.reviews: Dict[int, List[List[int]]] = {
            int(entity): [sentence["ids"] for sentence in sentences]
            for entity, sentences in corpus["entities"].items()}

    def _add_c2crs_fields(self, samples: List[Dict[str, Any]], turn_tokens: Sequence[Sequence[int]],
                          turn_mentions: Sequence[Sequence[Mention]]) -> List[Dict[str, Any]]:
        """Extend CRSLab's samples of one conversation, whose sample k has turns[:k + 1] as context (CRSLab emits
        one sample per turn after the first), with ``context_seq``, ``context_mentions`` and ``review_sentences``."""
        end_idx = self.special_token_idx["end"]
        for k, sample in enumerate(samples):
            sample.update(c2crs_fields(turn_tokens[:k + 1], turn_mentions[:k + 1], end_idx, self.reviews,
                                       self.sample_options))
        return samples


@register_dataset("ReDialReview", language="en")
class ReDialReviewDataset(C2CRSFieldsMixin, _redial.ReDialDataset):
    """CRSLab's ReDial dataset with C2-CRS's context spans and review sentences (see module docstring and
    :class:`C2CRSFieldsMixin` for the options)."""

    def __init__(self, opt, tokenize, restore=False, save=False):
        self._read_c2crs_options(opt)
        super().__init__(opt, tokenize, restore, save)

    def _side_file(self, name: str) -> Any:
        path = os.path.join(self.dpath, name)
        if not os.path.isfile(path):
            raise MissingDataError(f"C2-CRS side file {path} not found. {build_hint(self.dpath)}")
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)

    def _load_raw_data(self):
        train_data, valid_data, test_data = super()._load_raw_data()
        self.mentions = {split: self._side_file(mentions_file(split))["conversations"]
                         for split in SPLITS}
        self._use_review_corpus(self._side_file(REVIEWS_FILE))
        logger.debug(f"[Load C2-CRS mentions and {len(self.reviews)} entity review lists from {self.dpath}]")
        return train_data, valid_data, test_data

    def _data_preprocess(self, train_data, valid_data, test_data):
        processed = {}
        for split, data in zip(SPLITS, (train_data, valid_data, test_data), strict=True):
            processed[split] = self._process_split(split, data)
            logger.debug(f"[Finish {split} data process]")
        self._train_samples = processed["train"]
        side_data = self._side_data_process()
        logger.debug("[Finish side data process]")
        return processed["train"], processed["valid"], processed["test"], side_data

    def _process_split(self, split: str, raw_data: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        mentions = self.mentions[split]
        path = os.path.join(self.dpath, mentions_file(split))
        samples: List[Dict[str, Any]] = []
        for conversation in tqdm(raw_data):
            conv_id = str(conversation["conv_id"])
            spans = mentions.get(conv_id)
            if spans is None or len(spans) != len(conversation["dialog"]):
                raise MissingDataError(f"{path} does not match {split}_data.json at conversation {conv_id}; "
                                       f"rebuild both. {build_hint(self.dpath)}")
            samples.extend(self._conversation_samples(conversation["dialog"], spans))
        return samples

    def _conversation_samples(self, dialog: List[Dict[str, Any]], spans: List[List[List[int]]]
                              ) -> List[Dict[str, Any]]:
        """CRSLab's samples of one conversation, each extended with the C2-CRS fields."""
        turns = self._merge_conv_data(dialog)
        return self._add_c2crs_fields(self._augment_and_add(turns), [turn["text"] for turn in turns],
                                      merge_turn_mentions(dialog, spans))

    def _copy_mask(self) -> np.ndarray:
        import crslab.config

        # the data root is the parent of CRSLab's dataset folder, which this dataset was read from
        path = redial_kgsf_dir(Path(crslab.config.DATASET_PATH).parent) / COPY_MASK_FILE
        if not path.is_file():
            raise MissingDataError(f"copy mask {path} not found. {build_hint(self.dpath)}")
        mask = np.load(path).astype(bool)
        if mask.shape != (len(self.tok2ind),):
            raise MissingDataError(f"copy mask {path} has shape {mask.shape}, the vocabulary has "
                                   f"{len(self.tok2ind)} tokens; rebuild. {build_hint(self.dpath)}")
        return mask

    def _side_data_process(self):
        side_data = super()._side_data_process()
        specials = set(self.special_token_idx.values())
        side_data["token_freq"] = response_word_counts(self._train_samples, len(self.tok2ind), specials)
        side_data["token_repeats"] = response_word_repeats(self._train_samples, len(self.tok2ind), specials)
        side_data["copy_mask"] = self._copy_mask()
        side_data["review_corpus_version"] = self.review_corpus_version
        # interactive mode selects the review sentences of a live conversation from the same ranked lists
        side_data["entity_reviews"] = self.reviews
        return side_data
