"""Where a built dataset lives under a data root: every folder and side-file name that the data builder writes
and the datasets, the runner and the chat read. A name changes here and nowhere else.

The names of CRSLab's own files inside these folders (``token2id.json``, ``<split>_data.json``...) are CRSLab's:
its datasets open them by those names.
"""
from __future__ import annotations

from pathlib import Path

from crslab_c2crs.paths import DEFAULT_RAW, ENV_VAR

SPLITS = ("train", "valid", "test")
# The CRSLab datasets read from the ReDial folder (dataset/redial/<tokenize>/): its samples, movies and side files
REDIAL_DATASETS = ("ReDial", "ReDialReview")

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


def build_hint(dpath: str) -> str:
    """Tell the user which command builds the resource expected at ``dpath``."""
    path = Path(dpath)
    anchor = next((p for p in path.parents if p.name in ("dataset", "model")), None)
    if anchor is not None and ("tgredial" in path.parts or "TGReDial" in path.parts):
        # TG-ReDial's dialogs and graphs are CRSLab's own release; the plugin only builds side files from them
        return (f"Put CRSLab's TG-ReDial files in {anchor.parent / 'dataset' / 'tgredial' / 'pkuseg'}, then build "
                f"the plugin's side files (movie table, review corpus, stand-in KGSF copy mask) with: python -m "
                f"crslab_c2crs.data build tgredial --data-root {anchor.parent} --reviews REVIEWS.jsonl")
    if anchor is not None and ("redial" in path.parts or "kgsf" in path.parts):
        root = anchor.parent
        # The builder writes both folders and refuses existing ones without --force (which moves them aside).
        partial = [folder for folder in (redial_dir(root), redial_kgsf_dir(root)) if folder.exists()]
        force = (f" --force (this moves the existing {', '.join(map(str, partial))} aside, nothing is deleted)"
                 if partial else "")
        return (f"Build it offline from raw ReDial with: python -m crslab_c2crs.data build redial "
                f"--raw {DEFAULT_RAW} --data-root {root}{force}")
    return ("This plugin only builds ReDial (python -m crslab_c2crs.data build redial); place the resource "
            f"there yourself, or point --data-root / ${ENV_VAR} at a data root that has it.")
