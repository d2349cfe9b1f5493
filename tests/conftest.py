"""Shared test set-up: one torch thread (2-core CI machines; equal results need equal thread counts), and a
tiny ReDial data root built by the real data builder from a tiny raw ReDial folder."""
import tempfile
from pathlib import Path

import pytest
import torch

from crslab_c2crs.data.builder import build_redial
from tests.data.tiny_raw import write_tiny_raw

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A data root with ``dataset/redial/nltk`` (CRSLab files + C2-CRS side files) and KGSF's copy mask."""
    base = tmp_path_factory.mktemp("tiny")
    build_redial(write_tiny_raw(base / "raw"), base / "root")
    return base / "root"


@pytest.fixture
def refuse_writes_under(monkeypatch):
    """``refuse(folder)``: creating a file in ``folder`` or below fails with PermissionError from then on, as in a
    read-only folder (the tests may run as root, for whom file modes make nothing read-only). Only
    ``tempfile.mkstemp`` is refused: the write probe of :func:`crslab_c2crs.paths.check_writable_dir`."""
    mkstemp = tempfile.mkstemp

    def refuse(folder: Path) -> None:
        def probe(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).is_relative_to(folder):
                raise PermissionError(13, "Permission denied")
            return mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", probe)

    return refuse
