"""Seeding, so that a seed flag makes two CPU runs give the same metrics."""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch


def seed_everything(seed: int, num_threads: Optional[int] = None) -> None:
    """Seed Python, numpy and torch, and fix torch's intra-op thread count (reductions are summed in a
    thread-dependent order, so equal results need equal thread counts; default: the machine's cores)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(num_threads or os.cpu_count() or 1)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
