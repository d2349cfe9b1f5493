"""Paired significance of a recommendation comparison over the same test targets.

Two models are scored on the same targets (the same protocol gives the same samples to every model). Per target,
each model's hit is averaged over its seeds (a value in [0, 1]); the test asks whether the mean difference of these
paired values could come from swapping the two models' values within pairs: a paired (sign-flip) permutation test,
``scipy.stats.permutation_test`` with ``permutation_type="samples"``, two-sided.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

N_RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedTest:
    """``mean_a - mean_b`` over ``n`` paired targets and its two-sided permutation p-value."""

    n: int
    mean_a: float
    mean_b: float
    p_value: float

    @property
    def difference(self) -> float:
        return self.mean_a - self.mean_b


def hits_at(ranks: Sequence[Optional[int]], k: int) -> np.ndarray:
    """1.0 where the 0-based ``rank`` is below ``k`` (None: not in the top 50), else 0.0; shape ``(len(ranks),)``."""
    return np.array([rank is not None and rank < k for rank in ranks], dtype=float)


def seed_mean_hits(runs: Sequence[Mapping[str, Optional[int]]], k: int) -> Dict[str, float]:
    """Per target key, the hit@k averaged over the seeds ``runs`` (each a mapping target key -> rank).

    Raises:
        ValueError: the runs do not rank the same targets.
    """
    keys = sorted(runs[0])
    for run in runs[1:]:
        if sorted(run) != keys:
            raise ValueError("the seeds of one model rank different targets; were they run under one protocol?")
    hits = np.mean([hits_at([run[key] for key in keys], k) for run in runs], axis=0)
    return dict(zip(keys, hits.tolist()))


def paired_permutation_test(a: Sequence[float], b: Sequence[float], n_resamples: int = N_RESAMPLES,
                            seed: int = 0) -> PairedTest:
    """Two-sided paired permutation test of ``mean(a - b) = 0``; ``a`` and ``b`` are per-target values in the same
    order. With ``n_resamples`` at least the number of sign patterns (2**n) the test is exact."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two non-empty 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if np.array_equal(a, b):
        return PairedTest(int(a.size), float(a.mean()), float(b.mean()), 1.0)
    result = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", vectorized=True,
        n_resamples=n_resamples, alternative="two-sided", random_state=seed, batch=1000)
    return PairedTest(int(a.size), float(a.mean()), float(b.mean()), float(result.pvalue))


def compare(runs_a: Sequence[Mapping[str, Optional[int]]], runs_b: Sequence[Mapping[str, Optional[int]]],
            k: int) -> PairedTest:
    """Model A against model B on hit@k: seed-averaged hits per target, paired over the targets both rank.

    Raises:
        ValueError: the two models rank different targets (another protocol or data).
    """
    hits_a, hits_b = seed_mean_hits(runs_a, k), seed_mean_hits(runs_b, k)
    if hits_a.keys() != hits_b.keys():
        raise ValueError(f"the models rank different targets ({len(hits_a)} and {len(hits_b)}); compare runs of "
                         f"one protocol on one data build")
    keys = sorted(hits_a)
    return paired_permutation_test([hits_a[key] for key in keys], [hits_b[key] for key in keys])
