"""Seeding, so that a seed flag makes two CPU runs give the same metrics."""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch


def default_threads() -> int:
    """The thread count of a run without ``num_threads``: ``OMP_NUM_THREADS`` when the user set it to a number,
    else the machine's cores."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else os.cpu_count() or 1


def seed_everything(seed: int, num_threads: Optional[int] = None) -> None:
    """Seed Python, numpy and torch, fix torch's intra-op thread count (reductions are summed in a
    thread-dependent order, so equal results need equal thread counts; default: :func:`default_threads`) and use
    torch's deterministic algorithms.

    The last matters on CPU too: with more than one thread, the backward of indexing (``nodes[ids]``, how every
    model here reads its KG node matrix) accumulates duplicate indices with atomic float adds, in a different
    order on every run, and two runs of the same seed drifted apart from their first step. The deterministic
    path accumulates serially (its step time, measured, is within this machine's noise: README); ``warn_only``
    keeps ops that have no deterministic kernel running, with a warning.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(num_threads or default_threads())
    torch.use_deterministic_algorithms(True, warn_only=True)
    # filling every torch.empty with NaN (the deterministic mode's default) costs time and guards nothing here
    torch.utils.deterministic.fill_uninitialized_memory = False
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
