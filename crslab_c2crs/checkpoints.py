"""Model states on disk (stage checkpoints and saved systems): written atomically, read with one-line errors.

A missing file is a :class:`~crslab_c2crs.errors.MissingDataError`, a damaged one (truncated, not a torch file) or
one that does not fit the configured model (other sizes, other model) a
:class:`~crslab_c2crs.errors.CheckpointError`; each message names the file and ends with what to do.

A model with a serialisable config (``model.config.to_dict()``, e.g. C2-CRS's) is saved with it under
:data:`MODEL_CONFIG_KEY` (:func:`with_model_config`), so a file says which hyper-parameters made it; files
without it (saved before) load as before.
"""
from __future__ import annotations

import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from crslab_c2crs import atomic
from crslab_c2crs.errors import CheckpointError, MissingDataError

# What torch.load raises on a truncated, emptied or foreign file.
_UNREADABLE = (EOFError, RuntimeError, pickle.UnpicklingError, OSError, ValueError, zipfile.BadZipFile,
               AttributeError, KeyError, IndexError)


MODEL_CONFIG_KEY = "model_config"
MB = 2 ** 20


def with_model_config(state: Mapping[str, Any], model: Optional[torch.nn.Module]) -> Dict[str, Any]:
    """``state`` plus ``model``'s config as a plain dict under :data:`MODEL_CONFIG_KEY`, when the model has a
    serialisable config; else ``state`` as it is."""
    config = getattr(model, "config", None)
    if not hasattr(config, "to_dict"):
        return dict(state)
    return {**state, MODEL_CONFIG_KEY: config.to_dict()}


def _reason(err: BaseException) -> str:
    """The first sentence of ``err``: torch's messages run to several lines of advice."""
    if isinstance(err, EOFError):
        return "the file ends early"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.split(". ")[0][:160]


def save_state(state: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``state`` to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.torch_save(state, path)


def load_state(path: Union[str, Path], device: Any, remedy: str) -> Dict[str, Any]:
    """Read the state dict saved at ``path`` onto ``device``; ``remedy`` ends every error message."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} does not exist: {remedy}")
    try:
        state = torch.load(path, map_location=device)
    except _UNREADABLE as err:
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({_reason(err)}): {remedy}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this plugin (it holds a {type(state).__name__}): "
                              f"{remedy}")
    return state


def load_into(module: torch.nn.Module, state: Dict[str, Any], key: str, path: Union[str, Path],
              remedy: str) -> None:
    """Load ``state[key]`` into ``module``; a missing key or any shape or name mismatch is one line."""
    if key not in state:
        raise CheckpointError(f"{path} has no {key!r} (it holds {sorted(state)}): {remedy}")
    try:
        module.load_state_dict(state[key])
    except RuntimeError as err:
        # torch lists every mismatch on its own tab-indented line after a header line
        details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = details[0].split(". ")[0][:160] if details else _reason(err)
        more = f" and {len(details) - 1} more" if len(details) > 1 else ""
        raise CheckpointError(f"{path} does not fit the configured model ({first}{more}): {remedy}") from None


def check_stored(state: Mapping[str, Any], path: Union[str, Path], stage: Optional[str],
                 model: Optional[torch.nn.Module], remedy: str) -> None:
    """Refuse a checkpoint written by another stage than ``stage`` (a renamed file), or by a model whose config
    differs from ``model``'s in the fields the model lists as ``checked_config_fields`` (e.g. another
    ``kg_aggregation``: the weights fit, the function does not), naming both values. Files without the record
    (written before it existed) pass."""
    stored_stage = state.get("stage")
    if stage is not None and stored_stage is not None and stored_stage != stage:
        raise CheckpointError(f"{path} holds the {stored_stage} stage, not the {stage} stage (was it renamed?): "
                              f"{remedy}")
    config = getattr(model, "config", None)
    config = config.to_dict() if hasattr(config, "to_dict") else {}
    stored = state.get(MODEL_CONFIG_KEY) or {}
    for field in getattr(model, "checked_config_fields", ()):
        if field in stored and field in config and stored[field] != config[field]:
            raise CheckpointError(f"{path} was trained with {field}={stored[field]!r}, this run has "
                                  f"{field}={config[field]!r}: set --set {field}={stored[field]} or retrain")


def check_free_space(folder: Union[str, Path], module: torch.nn.Module, what: str) -> None:
    """Refuse to start work whose checkpoint of ``module`` cannot be written into ``folder`` (an atomic write needs
    the whole file beside the one it replaces), naming the folder and both sizes."""
    needed = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    existing = Path(folder)
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise atomic.WriteError(f"{folder}: {free / MB:.0f} MB free, but {what} writes a checkpoint of "
                                f"{needed / MB:.0f} MB there; free space or set checkpoint_dir to a folder on another "
                                f"disk")
