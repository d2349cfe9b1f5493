"""Atomic file writes: a file is either its old content or its complete new content, never half written.

Every writer puts the bytes into a temporary file beside the target (same folder, hence same file system), flushes
them to disk and renames the file over the target with :func:`os.replace`, which is atomic on POSIX and Windows.
A crash or ``kill -9`` in the middle leaves the previous target untouched; only an exception (not a kill) lets
the temporary file be removed, and a left-over ``.<name>.*.tmp`` is never read by anything.

Used for stage checkpoints, saved systems, results JSON and the data builder's single files.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Create or replace ``path`` with what ``write`` writes into the binary handle it is given.

    The parent folder must exist. Returns the target as a :class:`Path`.
    """
    target = Path(path)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        # KeyboardInterrupt too: the temporary file is ours and useless without the rename
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return target


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda stream: stream.write(data))


def write_text(path: PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path`` as UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, data: Any, indent: Optional[int] = None, **dump_kwargs: Any) -> Path:
    """Atomically write ``data`` as JSON (UTF-8, non-ASCII kept) to ``path``; ``dump_kwargs`` go to ``json.dumps``."""
    return write_text(path, json.dumps(data, ensure_ascii=False, indent=indent, **dump_kwargs))


def torch_save(obj: Any, path: PathLike) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path`` (a checkpoint is hundreds of MB: a crash mid-write is likely)."""
    import torch

    return atomic_write(path, lambda stream: torch.save(obj, stream))
