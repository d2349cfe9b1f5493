"""Where a built dataset lives under a data root: every folder and side-file name that the data builder writes
and the datasets, the runner and the chat read. A name changes here and nowhere else.

The names of CRSLab's own files inside these folders (``token2id.json``, ``<split>_data.json``...) are CRSLab's:
its datasets open them by those names.
"""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "valid", "test")

# Side files beside CRSLab's dataset files
REVIEWS_FILE = "c2crs_reviews.json"         # ranked review sentences per entity (both datasets)
MOVIES_FILE = "movies.json"                 # the ReDial movie table
TGREDIAL_MOVIES_FILE = "c2crs_movies.json"  # the TG-ReDial movie table
LINKER_FILE = "c2crs_linker.json"           # the entity linker's settings, for the chat
WORD2VEC_FILE = "word2vec_redial.npy"       # the word vectors of CRSLab's ReDial configs of KGSF and KBRD
STATS_FILE = "build_stats.json"             # the ReDial build's statistics
MANIFEST_FILE = "c2crs_build_manifest.json"  # marks a folder as written by this builder
# Beside KGSF's model files
COPY_MASK_FILE = "copy_mask.npy"


def mentions_file(split: str) -> str:
    """Name of the mention side file of ``split`` (one of :data:`SPLITS`)."""
    return f"c2crs_mentions_{split}.json"


def redial_dir(data_root: Path, tokenize: str = "nltk") -> Path:
    """CRSLab's ReDial folder, with the C2-CRS side files."""
    return Path(data_root) / "dataset" / "redial" / tokenize


def redial_kgsf_dir(data_root: Path) -> Path:
    """Where CRSLab's KGSF keeps its ReDial copy mask."""
    return Path(data_root) / "model" / "kgsf" / "ReDial"


def tgredial_dir(data_root: Path, tokenize: str = "pkuseg") -> Path:
    """CRSLab's TG-ReDial folder, with the C2-CRS side files."""
    return Path(data_root) / "dataset" / "tgredial" / tokenize


def tgredial_kgsf_dir(data_root: Path) -> Path:
    """Where CRSLab's KGSF keeps its TG-ReDial copy mask (resource version 0.2)."""
    return Path(data_root) / "model" / "kgsf" / "TGReDial"
