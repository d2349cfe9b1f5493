"""Where CRSLab reads data and writes models: a project data root instead of site-packages.

CRSLab 0.1.2 derives every path from the folder holding the installed package (``<site-packages>/data``,
``<site-packages>/save``). Its modules read the constants of ``crslab.config`` at call time, so rebinding
them there and in every loaded ``crslab.*`` module that imported them relocates everything.

The data root is, in order of priority: ``--data-root``, ``$CRSLAB_DATA_ROOT``, ``./data``.
Saved systems go to ``<data root>/save``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Optional


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


def relocate(data_root: Path) -> Dict[str, str]:
    """Point every CRSLab path constant, in ``crslab.config`` and in each loaded ``crslab.*`` module, at
    ``data_root``. Modules imported later copy the new values from ``crslab.config``."""
    import crslab.config

    paths = crslab_paths(Path(data_root))
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "crslab" or name.startswith("crslab.")):
            continue
        for const, value in paths.items():
            if hasattr(module, const):
                setattr(module, const, value)
    for const, value in paths.items():
        setattr(crslab.config, const, value)
    os.environ[ENV_VAR] = str(data_root)
    return paths


def current_data_root() -> Path:
    """The data root CRSLab currently uses."""
    import crslab.config

    return Path(crslab.config.DATA_PATH)


def build_hint(dpath: str) -> str:
    """Tell the user which command builds the resource expected at ``dpath``."""
    path = Path(dpath)
    anchor = next((p for p in path.parents if p.name in ("dataset", "model")), None)
    if anchor is not None and ("redial" in path.parts or "kgsf" in path.parts):
        return (f"Build it offline from raw ReDial with: python -m crslab_c2crs.data build redial "
                f"--raw {DEFAULT_RAW} --data-root {anchor.parent}")
    return ("This plugin only builds ReDial (python -m crslab_c2crs.data build redial); place the resource "
            f"there yourself, or point --data-root / ${ENV_VAR} at a data root that has it.")
