"""The C allocator a run uses (``--allocator``): the C library's own (``system``), or tcmalloc or jemalloc.

PyTorch's CPU tensors come from ``malloc``. glibc keeps a freed block below its dynamic mmap threshold (which grows
up to 32 MiB as large blocks are freed) in its heaps for reuse; a training pass over length-bucketed batches
allocates activations of many sizes, those free blocks fragment, and the pass's resident set grows far past what its
longest step needs (docs/benchmark.md#memory). tcmalloc (gperftools) and jemalloc keep size-class pools instead. An
allocator must be in place before the process starts, so :func:`preload` starts the process again with the library in
``LD_PRELOAD`` (Linux); the libraries come from the system's packages (``apt install libtcmalloc-minimal4`` /
``libjemalloc2``).
"""
from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

from crslab_c2crs.errors import ConfigError

# --allocator choice -> the library names find_library knows it by (the first one found is preloaded)
LIBRARIES: Dict[str, Tuple[str, ...]] = {"tcmalloc": ("tcmalloc_minimal", "tcmalloc"), "jemalloc": ("jemalloc",)}
PACKAGES = {"tcmalloc": "libtcmalloc-minimal4", "jemalloc": "libjemalloc2"}
CHOICES = ("system", *LIBRARIES)
_STARTED_WITH = "CRSLAB_C2CRS_ALLOCATOR"  # set in the started-again process: it must not start itself again


def in_use() -> str:
    """The allocator this process runs on: a :data:`LIBRARIES` key whose library is mapped, else ``system``."""
    maps = Path("/proc/self/maps")
    text = maps.read_text(encoding="utf-8", errors="replace") if maps.exists() else ""
    return next((choice for choice in LIBRARIES if f"lib{choice}" in text), "system")


def library(choice: str) -> str:
    """The shared library of ``choice`` as the dynamic linker finds it (a soname such as
    ``libtcmalloc_minimal.so.4``).

    Raises:
        ConfigError: not installed.
    """
    found = next((name for name in map(ctypes.util.find_library, LIBRARIES[choice]) if name), None)
    if found is None:
        raise ConfigError(f"--allocator {choice}: its library is not installed; install it (Debian/Ubuntu: apt "
                          f"install {PACKAGES[choice]}) or leave --allocator out")
    return found


def preload(choice: str, argv: Optional[list] = None) -> None:
    """Return when ``choice`` is the allocator in use; else start this process again (same interpreter and
    arguments) with its library first in ``LD_PRELOAD``. ``argv``: the arguments of an in-process call of the
    command line (a test, a notebook), which cannot be started again.

    Raises:
        ConfigError: ``choice`` is unknown, not installed, not loadable by ``LD_PRELOAD``, or not preloaded in an
            in-process call.
    """
    if choice not in CHOICES:
        raise ConfigError(f"--allocator {choice}: choose one of {', '.join(CHOICES)}")
    if choice == "system" or in_use() == choice:
        return
    if not sys.platform.startswith("linux"):
        raise ConfigError(f"--allocator {choice}: preloading an allocator is done here on Linux only")
    name = library(choice)
    if os.environ.get(_STARTED_WITH) == choice:
        raise ConfigError(f"--allocator {choice}: started again with LD_PRELOAD={os.environ.get('LD_PRELOAD')}, "
                          f"but {name} did not load (see the dynamic linker's message above)")
    if argv is not None:
        raise ConfigError(f"--allocator {choice} starts the process again, which an in-process call cannot; run "
                          f"run_crslab.py from the shell, or set LD_PRELOAD={name} before Python starts")
    env = dict(os.environ, LD_PRELOAD=" ".join(filter(None, [name, os.environ.get("LD_PRELOAD")])),
               **{_STARTED_WITH: choice})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)
