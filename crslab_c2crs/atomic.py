"""Atomic file writes: a file is either its old content or its complete new content, never half written.

Every writer puts the bytes into a temporary file beside the target (same folder, hence same file system), flushes
them to disk and renames the file over the target with :func:`os.replace`, which is atomic on POSIX and Windows.
A crash or ``kill -9`` in the middle leaves the previous target untouched; only an exception (not a kill) lets
the temporary file be removed. A left-over ``.<name>.<pid>.*.tmp`` is never read by anything, and
:func:`clear_stale_temporaries` removes those whose process is gone (a checkpoint's is hundreds of MB).

The new file gets the permissions the user's umask gives (``mkstemp`` creates 0600 files), and a failed write (a
full disk, a read-only folder) is one :class:`~crslab_c2crs.errors.PluginError` line naming the file.

Used for stage checkpoints, saved systems, results JSON, prediction dumps and the data builder's single files.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, List, Optional, Union

from crslab_c2crs.errors import PluginError

PathLike = Union[str, "os.PathLike[str]"]
TEMPORARY_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"\..+\.([0-9]+)\.[^.]+\.tmp")


class WriteError(PluginError, OSError):
    """A file could not be written (a full disk, a read-only folder); the previous file is untouched."""


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Create or replace ``path`` with what ``write`` writes into the binary handle it is given.

    The parent folder must exist. Returns the target as a :class:`Path`.
    """
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.",
                                             suffix=TEMPORARY_SUFFIX)
    except OSError as err:
        raise WriteError(f"cannot write {target}: {err.strerror}") from None
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException as err:
        # KeyboardInterrupt too: the temporary file is ours and useless without the rename
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(err, OSError) or isinstance(err.__context__, OSError):
            # torch.save wraps the OSError of a full disk in a RuntimeError, chained
            cause = err if isinstance(err, OSError) else err.__context__
            raise WriteError(f"cannot write {target}: {cause.strerror or cause} (nothing was replaced; free space "
                             f"or choose another folder)") from None
        raise
    return target


def _umask() -> int:
    """The process's umask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale_temporaries(folder: PathLike) -> List[Path]:
    """Remove the ``.<name>.<pid>.*.tmp`` files in ``folder`` whose writing process is gone (killed mid-write);
    returns them."""
    removed = []
    for path in sorted(Path(folder).glob(f".*{TEMPORARY_SUFFIX}")) if Path(folder).is_dir() else ():
        match = _TEMPORARY.fullmatch(path.name)
        if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


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
