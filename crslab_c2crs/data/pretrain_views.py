"""Pre-training views that ids alone cannot match: options that depart from the paper (issue #27).

The three views of a C2-CRS user share their entities, so contrastive pre-training can be solved by matching entity
ids (the id floor, :mod:`crslab_c2crs.model.c2crs.id_floor`). Two options make the pre-training batches (training
and validation; the rec and conv stages never see them) harder than ids:

* ``pretrain_mask_mentions: true``: in the history view, every token of a mention span (``@movie`` tokens and
  linked entity mentions) and every other ``@movie`` token becomes ``__unk__``, so the history encoder must carry
  the preference in the words around the mentions; the spans stay, as the fine level's word units.
* ``pretrain_entity_dropout: p``: each view drops each of its entities independently with probability ``p`` (the
  history view: the mention spans of that entity, its tokens masked as above; the KG view: the context entity; the
  review view: its sentences), drawn from the seeded ``random`` module, so the views no longer share their exact
  sets and a seed repeats the batches.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Set

from crslab_c2crs.errors import ConfigError

Sample = Dict[str, Any]


@dataclass(frozen=True)
class PretrainViews:
    """The pre-training view options of a run (config keys of the same names)."""

    pretrain_mask_mentions: bool = False
    pretrain_entity_dropout: float = 0.0

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any], source: str = "the config") -> "PretrainViews":
        """The options set in ``opt``; missing or null ones take the defaults (the paper's views).

        Raises:
            ConfigError: a value of the wrong type or out of range, naming the key.
        """
        mask = opt.get("pretrain_mask_mentions")
        mask = False if mask is None else mask
        if not isinstance(mask, bool):
            raise ConfigError(f"pretrain_mask_mentions: {mask!r} is not true or false; correct it in {source} or "
                              f"with --set pretrain_mask_mentions=true")
        rate = opt.get("pretrain_entity_dropout")
        rate = 0.0 if rate is None else rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ConfigError(f"pretrain_entity_dropout: {rate!r} is not a probability in [0, 1); correct it in "
                              f"{source} or with --set pretrain_entity_dropout=0.3")
        return cls(mask, float(rate))

    @property
    def active(self) -> bool:
        return self.pretrain_mask_mentions or self.pretrain_entity_dropout > 0.0


def check_pretrain_views(opt: Mapping[str, Any], source: str) -> None:
    """The config check of the two options (C2-CRS registers it)."""
    PretrainViews.from_opt(opt, source)


def movie_token_ids(tok2ind: Mapping[str, int]) -> Set[int]:
    """The ids of the ``@<movieId>`` placeholder tokens of a vocabulary."""
    from crslab_c2crs.data.tokenize import is_movie_token

    return {index for token, index in tok2ind.items() if is_movie_token(token)}


def _kept(entities: Iterable[int], rate: float) -> Set[int]:
    """The entities a view keeps: each independently with probability ``1 - rate`` (seeded ``random``)."""
    return {entity for entity in sorted(set(entities)) if random.random() >= rate}


def pretrain_view(sample: Sample, options: PretrainViews, movie_tokens: Set[int], unk: int) -> Sample:
    """A copy of a C2-CRS sample (``context_seq``, ``context_mentions``, ``context_entities``,
    ``review_sentences``) with the history view masked and the entities of each view dropped as ``options`` say;
    the sample itself is never changed."""
    if not options.active:
        return sample
    mentions: List = list(sample["context_mentions"])
    entities: List[int] = list(sample["context_entities"])
    reviews: List = list(sample["review_sentences"])
    masked_spans: List = []
    rate = options.pretrain_entity_dropout
    if rate > 0.0:
        kept_history = _kept((entity for _, _, entity in mentions), rate)
        kept_kg = _kept(entities, rate)
        kept_review = _kept((entity for entity, _ in reviews), rate)
        masked_spans = [span for span in mentions if span[2] not in kept_history]
        mentions = [span for span in mentions if span[2] in kept_history]
        entities = [entity for entity in entities if entity in kept_kg]
        reviews = [(entity, tokens) for entity, tokens in reviews if entity in kept_review]
    seq = list(sample["context_seq"])
    spans = masked_spans + (mentions if options.pretrain_mask_mentions else [])
    for start, end, _ in spans:
        seq[start:end] = [unk] * (end - start)
    if options.pretrain_mask_mentions:
        seq = [unk if token in movie_tokens else token for token in seq]
    return dict(sample, context_seq=seq, context_mentions=mentions, context_entities=entities,
                review_sentences=reviews)
