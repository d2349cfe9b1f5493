"""Fixtures of the TG-ReDial tests: one tiny TG-ReDial data root per session, its side files built by the real
builder (read-only to tests), and a way to point CRSLab at a data root."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crslab_c2crs.data.builder.tgredial import build_tgredial
from crslab_c2crs.paths import crslab_paths
from tests.tgredial.tiny_tgredial import write_tiny_tgredial


@pytest.fixture(scope="session")
def tg_root(tmp_path_factory) -> Path:
    """A data root with ``dataset/tgredial/pkuseg`` (CRSLab's files, real vocabularies when shared/data has
    them, plus the plugin's side files) and the stand-in KGSF copy mask."""
    root = write_tiny_tgredial(tmp_path_factory.mktemp("tg") / "root")
    build_tgredial(root, root / "reviews.jsonl")
    return root


@pytest.fixture
def tg_crslab_at(monkeypatch):
    """Point every loaded CRSLab module's path constants at a data root for one test (undone afterwards)."""

    def relocate(root: Path) -> None:
        modules = [module for name, module in list(sys.modules.items())
                   if module is not None and (name == "crslab" or name.startswith("crslab."))]
        for const, value in crslab_paths(root).items():
            for module in (module for module in modules if hasattr(module, const)):
                monkeypatch.setattr(module, const, value)

    return relocate
