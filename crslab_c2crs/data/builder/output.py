"""Write a build into a temporary folder beside its target, then swap it in with one rename.

A target therefore never holds a half-written build with a ``.built`` marker. Nothing already there is ever
deleted: an existing target is refused unless ``force``; with ``force`` it is moved aside, to
``<name>.old-<timestamp>`` if this builder made it (our manifest), else to ``<name>.bak-<timestamp>`` (a user may
have added files to either). The temporary folder ``.<name>.tmp-<pid>-<timestamp>`` of a build that was killed
is removed by the next build, once its process is gone. Two builds into one data root at once are refused up
front (:func:`build_lock`).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, List, Optional

from filelock import FileLock, Timeout
from loguru import logger

from crslab_c2crs.atomic import process_alive
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.layout import MANIFEST_FILE

BUILDER_ID = "crslab_c2crs.data.builder"
LOCK_FILE = ".build.lock"


def is_ours(folder: Path) -> bool:
    """True if ``folder`` holds a manifest written by this builder."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("builder") == BUILDER_ID
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def check_target(target: Path, force: bool) -> None:
    """Refuse an existing, non-empty ``target`` unless ``force`` (called before the long build starts)."""
    if target.exists() and not target.is_dir():
        raise DataBuildError(f"target {target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        state = "a built dataset" if (target / ".built").exists() else "files"
        raise DataBuildError(f"target {target} already holds {state}; pass --force to replace it "
                             f"(the existing folder is moved aside, never deleted)")


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


@contextlib.contextmanager
def build_lock(data_root: Path) -> Iterator[None]:
    """Hold ``<data_root>/.build.lock`` while a build runs; a second build into the same root fails at once
    instead of converting everything and then finding the first build's output.

    Raises:
        DataBuildError: another build holds the lock.
    """
    data_root = Path(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(data_root / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DataBuildError(f"another build is running into {data_root} (it holds {lock.lock_file}); wait for it "
                             f"to finish") from None
    try:
        yield
    finally:
        lock.release()


def clear_stale_temporaries(target: Path) -> None:
    """Remove the temporary folders of ``target`` left by builds that were killed (their process is gone).

    Raises:
        DataBuildError: a build that is still running writes into the same target.
    """
    if not target.parent.is_dir():
        return
    prefix = _temporary_prefix(target)
    for folder in sorted(target.parent.glob(f"{prefix}*")):
        pid_text = folder.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or not folder.is_dir():
            continue
        pid = int(pid_text)
        if pid != os.getpid() and process_alive(pid):
            raise DataBuildError(f"another build (process {pid}) is writing {target} in {folder}; wait for it to "
                                 f"finish, or remove {folder} if no build is running")
        shutil.rmtree(folder)
        logger.warning(f"removed {folder}, left by a build that was stopped (process {pid})")


def _aside(target: Path, suffix: str) -> Path:
    """A free name ``<target>.<suffix>-<timestamp>[-n]`` beside ``target``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = target.parent / f"{target.name}.{suffix}-{stamp}"
    counter = 1
    while aside.exists():
        aside = target.parent / f"{target.name}.{suffix}-{stamp}-{counter}"
        counter += 1
    return aside


def write_built_marker(folder: Path, version: str) -> None:
    """CRSLab's marker: first line a timestamp, second line the resource version."""
    (folder / ".built").write_text(f"{datetime.datetime.now()}\n{version}", encoding="utf-8")


class StagedFolder:
    """A temporary folder that becomes ``target`` on :meth:`commit`, or vanishes on :meth:`discard`.

    Args:
        target: the final folder.
        force: replace an existing target (see the module docstring).
    """

    def __init__(self, target: Path, force: bool) -> None:
        check_target(target, force)
        self.target = target
        self.force = force
        target.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = target.parent / f"{_temporary_prefix(target)}{os.getpid()}-{stamp}"
        self.path.mkdir()
        self.files: List[str] = []

    def write_json(self, name: str, data: Any, indent: Optional[int] = None) -> None:
        with (self.path / name).open("w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=indent)
        self.files.append(name)

    def write_text(self, name: str, text: str) -> None:
        (self.path / name).write_text(text, encoding="utf-8")
        self.files.append(name)

    def copy(self, source: Path, name: str) -> None:
        """Byte-exact copy of an input file."""
        shutil.copyfile(source, self.path / name)
        self.files.append(name)

    def commit(self, version: str, raw: Path) -> None:
        """Write the manifest and ``.built`` marker, then move the folder into place."""
        manifest = {"builder": BUILDER_ID, "created": datetime.datetime.now().isoformat(timespec="seconds"),
                    "raw": str(raw), "files": sorted(self.files), "crslab_version": version}
        (self.path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        write_built_marker(self.path, version)
        check_target(self.target, self.force)
        if self.target.is_dir():
            if not any(self.target.iterdir()):
                self.target.rmdir()
            else:
                ours = is_ours(self.target)
                aside = _aside(self.target, "old" if ours else "bak")
                self.target.rename(aside)
                logger.warning(f"moved the existing {self.target} aside to {aside} "
                               f"({'an earlier build' if ours else 'not built by this command'}; delete it "
                               f"yourself once you no longer need it)")
        self.path.rename(self.target)
        logger.info(f"wrote {self.target}")

    def discard(self) -> None:
        """Remove the temporary folder (created by us)."""
        if self.path.exists():
            shutil.rmtree(self.path)
