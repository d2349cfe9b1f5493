"""Where CRSLab reads data and writes models: a project data root instead of site-packages.

CRSLab 0.1.2 derives every path from the folder holding the installed package (``<site-packages>/data``,
``<site-packages>/save``). This module computes the values under the data root (:func:`crslab_paths`);
:func:`crslab_c2crs.compat.relocate` rebinds CRSLab's constants to them.

The data root is, in order of priority: ``--data-root``, ``$CRSLAB_DATA_ROOT``, ``./data``.
Everything a run saves (stage checkpoints, the ``-ss`` saved system) goes to ``<data root>/save/<checkpoint_dir>``
(:func:`checkpoint_dir`); :func:`check_writable_dir` and :func:`check_output_file` let a run refuse an unwritable
place before it starts instead of failing after hours of training.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Type

from crslab_c2crs.errors import ConfigError

ENV_VAR = "CRSLAB_DATA_ROOT"
PATH_NAMES = ("DATA_PATH", "DATASET_PATH", "MODEL_PATH", "PRETRAIN_PATH", "EMBEDDING_PATH", "SAVE_PATH")
DEFAULT_RAW = Path("..") / "shared" / "data" / "redial"


def resolve_data_root(cli_value: Optional[str] = None) -> Path:
    """Return the absolute data root: ``cli_value``, else ``$CRSLAB_DATA_ROOT``, else ``./data``."""
    value = cli_value or os.environ.get(ENV_VAR) or "data"
    return Path(value).expanduser().resolve()


def crslab_paths(data_root: Path) -> Dict[str, str]:
    """The values of CRSLab's path constants under ``data_root``."""
    return {
        "DATA_PATH": str(data_root),
        "DATASET_PATH": str(data_root / "dataset"),
        "MODEL_PATH": str(data_root / "model"),
        "PRETRAIN_PATH": str(data_root / "model" / "pretrain"),
        "EMBEDDING_PATH": str(data_root / "embedding"),
        "SAVE_PATH": str(data_root / "save"),
    }


def current_data_root() -> Path:
    """The data root CRSLab currently uses."""
    import crslab.config

    return Path(crslab.config.DATA_PATH)


def checkpoint_dir(opt: Mapping[str, Any]) -> Path:
    """``<save>/<checkpoint_dir>``: the folder of one run's stage checkpoints and saved system (default: the
    model's name, so runs of different models never overwrite each other)."""
    import crslab.config
    from crslab_c2crs.config import model_name_of

    return Path(crslab.config.SAVE_PATH) / (opt.get("checkpoint_dir") or model_name_of(opt))


def saved_system_file(opt: Mapping[str, Any]) -> Path:
    """Where ``-ss`` saves and ``-rs`` restores the system: CRSLab's ``model_file`` (relative to ``<save>``) when
    set, else ``<checkpoint_dir>/<model>.pth``."""
    import crslab.config
    from crslab_c2crs.config import model_name_of

    if opt.get("model_file"):
        return Path(crslab.config.SAVE_PATH) / opt["model_file"]
    return checkpoint_dir(opt) / f"{model_name_of(opt)}.pth"


def check_writable_dir(folder: Path, what: str, fix: str, error: Type[Exception] = ConfigError) -> None:
    """Raise ``error`` unless ``folder`` exists as, or can be created as, a folder this process can write into.
    Nothing is created: the nearest existing ancestor is probed with a temporary file (permission bits say
    nothing for root or read-only file systems).

    Args:
        folder: the folder that will be written into.
        what: the setting that names it, for the message (e.g. ``"checkpoint_dir"``).
        fix: what the user should do, ending the message.
        error: the exception class to raise (the data builder raises its own).
    """
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{what}: {existing} is a file, so {folder} cannot be a folder; {fix}")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".write-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise error(f"{what}: cannot write into {existing} ({err.strerror or err}); {fix}") from None


def check_output_file(path: Path, flag: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` can be written as a file (it is not a folder and its folder is
    writable)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file path, e.g. {flag} {path / 'results.json'}")
    check_writable_dir(path.parent, f"{flag} {path}", f"give {flag} a file in a writable folder")
