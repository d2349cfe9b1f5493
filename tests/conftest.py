"""Shared test set-up: one torch thread (2-core CI machines; equal results need equal thread counts), and a
tiny ReDial data root built by the real data builder from a tiny raw ReDial folder."""
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
