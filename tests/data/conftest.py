"""Fixtures of the data tests: one tiny raw folder and one build of it per session (read-only to tests)."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from crslab_c2crs.data.builder import build_redial
from tests.data.tiny_raw import write_tiny_raw


@pytest.fixture(scope="session")
def tiny_raw_dir(tmp_path_factory) -> Path:
    return write_tiny_raw(tmp_path_factory.mktemp("tiny_raw"))


@pytest.fixture(scope="session")
def tiny_build(tiny_raw_dir, tmp_path_factory):
    """``(data_root, stats)`` of one build of the tiny raw folder."""
    root = tmp_path_factory.mktemp("tiny_root")
    return root, build_redial(tiny_raw_dir, root)


@pytest.fixture
def crslab_at(monkeypatch):
    """Point CRSLab's ReDial loader at a data root for one test."""
    import crslab.config

    redial = importlib.import_module("crslab.data.dataset.redial.redial")

    def relocate(root: Path) -> None:
        monkeypatch.setattr(crslab.config, "DATASET_PATH", str(root / "dataset"))
        monkeypatch.setattr(redial, "DATASET_PATH", str(root / "dataset"))

    return relocate
