"""Handing the C heap's free memory back to the operating system between training steps (``trim_memory``).

glibc keeps a freed block below its dynamic mmap threshold (which grows up to 32 MiB as large blocks are freed) in
its heaps for reuse. Training steps allocate activations of many sizes (length-bucketed batches), so the free
blocks fragment and the resident set of a pass grows well past the memory its longest step needs (docs/benchmark.md,
"Memory"). ``malloc_trim(0)`` returns every free page of every arena to the system; the next step faults in what it
needs again. On a C library without ``malloc_trim`` (macOS, musl) :func:`trim_heap` does nothing.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Callable, Optional


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):
        return None


def can_trim() -> bool:
    """Whether this process's C library has ``malloc_trim`` (glibc)."""
    return _malloc_trim() is not None


def trim_heap() -> bool:
    """Return the free pages of every heap arena to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
