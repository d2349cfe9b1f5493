"""How every model's samples are cut into batches: length bucketing and per-stage batch caps.

CRSLab's ``BaseDataLoader.get_data`` (used by the loaders of KGSF, KBRD and C2-CRS alike) shuffles the samples and
cuts them into batches in that order, so a batch of 256 ReDial contexts is padded to its longest one: about 3x
the real tokens and 6x the real attention work. :class:`BatchPlan` replaces that order, for all three models, by
the torchtext ``BucketIterator`` / fairseq recipe:

* training: shuffle with the seeded ``random`` module, sort by length within pools of ``pool_batches`` batches,
  cut into batches, shuffle the batch order. Every sample is seen exactly once per epoch.
* validation and test: the samples in their dataset order, sorted by length within pools, batches in pool order
  (no randomness). Metrics are sums over samples, so they do not depend on the order.

``length_bucketing: false`` restores CRSLab's order (same calls into ``random``). Training batches are always
drawn by the seeded shuffle, because CRSLab's KGSF system iterates its training data unshuffled (every epoch the
same batches, and under a cap the same first ones); ``shuffle_train: false`` as well reproduces CRSLab's batches
bit for bit.

Caps shorten passes for quick runs and benchmarks, with one rule for every model: in each stage section of the
config, ``max_batches`` caps the training batches of an epoch, ``valid_max_batches`` and ``test_max_batches``
cap evaluation. An evaluation cap keeps the first ``cap * batch_size`` samples of the dataset order *before*
bucketing, so a capped test set holds the same samples with bucketing on or off.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from math import ceil
from typing import Any, Dict, List, Mapping, Optional, Sequence

SPLITS = ("train", "valid", "test")
# The cap key of each split inside a stage section.
CAP_KEYS = {"train": "max_batches", "valid": "valid_max_batches", "test": "test_max_batches"}
# CRSLab's loaders name their collate functions after the stage; KGSF and KBRD stages are named the same.
BATCH_FN_STAGES = {"pretrain_batchify": "pretrain", "rec_batchify": "rec", "conv_batchify": "conv",
                   "policy_batchify": "policy"}
DEFAULT_POOL_BATCHES = 50


def sample_length(sample: Any) -> int:
    """The length a sample is bucketed by: its context tokens (or context entities when it has no tokens).

    Understands C2-CRS entries (``{"sample": ...}`` with ``context_seq``), CRSLab's KGSF/KBRD conversation
    dicts (``context_tokens`` as a list of turns, ``context_entities``, ``context_words``) and anything else
    (length 0, i.e. no reordering).
    """
    if isinstance(sample, Mapping):
        if "sample" in sample:
            return sample_length(sample["sample"])
        if "context_seq" in sample:
            return len(sample["context_seq"])
        tokens = sample.get("context_tokens")
        if tokens:
            return sum(len(turn) for turn in tokens) if isinstance(tokens[0], (list, tuple)) else len(tokens)
        return len(sample.get("context_entities") or ()) + len(sample.get("context_words") or ())
    return 0


def bucketed_batches(lengths: Sequence[int], batch_size: int, shuffle: bool, pool_batches: int,
                     rng: Any = random) -> List[List[int]]:
    """Index batches of similar length.

    Args:
        lengths: length of every sample.
        batch_size: samples per batch (the last batch of a pool may be smaller).
        shuffle: training order (seeded shuffle, pools, shuffled batches) or evaluation order (dataset order,
            pools, batches in pool order).
        pool_batches: batches per sorting pool.
        rng: source of randomness with ``shuffle`` (the ``random`` module, seeded by ``--seed``).

    Returns:
        Lists of sample indices; together they hold every index exactly once.
    """
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    pool = batch_size * pool_batches
    batches: List[List[int]] = []
    for start in range(0, len(order), pool):
        # sorted() is stable, so equal lengths keep their (shuffled) order
        chunk = sorted(order[start:start + pool], key=lambda index: lengths[index])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def crslab_batches(n_samples: int, batch_size: int, shuffle: bool, rng: Any = random) -> List[List[int]]:
    """CRSLab 0.1.2's own batches (``BaseDataLoader.get_data``), with the same calls into ``rng``."""
    order = list(range(n_samples))
    if shuffle:
        rng.shuffle(order)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(ceil(n_samples / batch_size))]


@dataclass
class BatchPlan:
    """The batching rules of one data split (see module docstring).

    Attributes:
        split: ``train``, ``valid`` or ``test``.
        bucketing: length bucketing on (default) or CRSLab's order.
        pool_batches: batches per sorting pool.
        caps: stage name -> most batches of one pass over this split.
        shuffle_train: shuffle the training split even when the system asks for its dataset order.
        stage: the stage being run, when the system sets it (C2-CRS's ``coarse``/``fine`` share one loader
            method); otherwise it is read from the collate function's name.
    """

    split: str
    bucketing: bool = True
    shuffle_train: bool = True
    pool_batches: int = DEFAULT_POOL_BATCHES
    caps: Dict[str, int] = field(default_factory=dict)
    stage: Optional[str] = None

    @classmethod
    def from_opt(cls, opt: Mapping[str, Any], split: str) -> "BatchPlan":
        """Read ``length_bucketing``, ``shuffle_train``, ``bucket_pool_batches`` and every stage section's cap
        for ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        opt = getattr(opt, "opt", opt)  # CRSLab's Config wraps the option dict
        key = CAP_KEYS[split]
        caps = {name: int(section[key]) for name, section in opt.items()
                if isinstance(section, Mapping) and section.get(key) is not None}
        return cls(split, bool(opt.get("length_bucketing", True)), bool(opt.get("shuffle_train", True)),
                   int(opt.get("bucket_pool_batches") or DEFAULT_POOL_BATCHES), caps)

    def stage_of(self, batch_fn: Any) -> Optional[str]:
        return self.stage or BATCH_FN_STAGES.get(getattr(batch_fn, "__name__", ""))

    def batches(self, dataset: Sequence[Any], batch_size: int, shuffle: bool, stage: Optional[str]
                ) -> List[List[int]]:
        """The index batches of one pass over ``dataset`` for ``stage``, capped."""
        cap = self.caps.get(stage) if stage is not None else None
        if self.split == "train":
            shuffle = shuffle or self.shuffle_train
            if not self.bucketing:
                return crslab_batches(len(dataset), batch_size, shuffle)[:cap]
            # never unshuffled: a sorted training order would feed the model its shortest contexts first
            return bucketed_batches([sample_length(s) for s in dataset], batch_size, True,
                                    self.pool_batches)[:cap]
        if not self.bucketing:
            return crslab_batches(len(dataset), batch_size, shuffle)[:cap]
        kept = len(dataset) if cap is None else min(len(dataset), cap * batch_size)
        return bucketed_batches([sample_length(s) for s in dataset[:kept]], batch_size, shuffle,
                                self.pool_batches)
