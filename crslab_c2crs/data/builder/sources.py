"""The raw ReDial layout the builder reads, and loaders that report the file and record of any fault.

The layout is the one of ``shared/data/redial`` (see its ``PROVENANCE.md``): raw ReDial JSONL dialogs, the
CRSLab/C2-CRS vocabularies and DBpedia sub-KG, KGSF's ConceptNet vocabulary and copy masks, a ConceptNet edge
list, IMDB reviews and IMDB metadata.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

from crslab_c2crs.data.builder.errors import DataBuildError

# split name -> raw file, relative to the raw root
SPLIT_FILES: Dict[str, str] = {
    "train": "derived/train_subset_union.jsonl",
    "valid": "raw/valid_data.jsonl",
    "test": "raw/test_data.jsonl",
}


@dataclass(frozen=True)
class RawLayout:
    """Paths of every raw input under ``root``."""

    root: Path

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def token2id(self) -> Path:
        return self.path("crslab_nltk/token2id.json")

    @property
    def entity2id(self) -> Path:
        return self.path("crslab_nltk/entity2id.json")

    @property
    def dbpedia_subkg(self) -> Path:
        return self.path("crslab_nltk/dbpedia_subkg.json")

    @property
    def movie_ids(self) -> Path:
        return self.path("crslab_nltk/movie_ids.json")

    @property
    def sample(self) -> Path:
        """CRSLab-format excerpt of the valid split, used only to measure agreement (optional)."""
        return self.path("crslab_nltk/valid_data.sample30.json")

    @property
    def movie2entity(self) -> Path:
        return self.path("derived/redial_context_movie_id2crslab_entityId.json")

    @property
    def concept2id(self) -> Path:
        return self.path("kgsf/key2index_3rd.json")

    @property
    def stopwords(self) -> Path:
        return self.path("kgsf/stopwords.txt")

    @property
    def mask4key(self) -> Path:
        return self.path("kgsf/mask4key.npy")

    @property
    def mask4movie(self) -> Path:
        return self.path("kgsf/mask4movie.npy")

    @property
    def conceptnet_edges(self) -> Path:
        return self.path("conceptnet/shupeili_conceptnet_one_hop_edges.txt")

    @property
    def imdb_reviews(self) -> Path:
        return self.path("reviews/aclimdb_redial_reviews.jsonl")

    @property
    def revcore_helpful(self) -> Path:
        return self.path("reviews/revcore_movie2tokenreview_helpful.pkl")

    @property
    def movie_list(self) -> Path:
        return self.path("raw/movies_with_mentions.csv")

    @property
    def movie_meta(self) -> Path:
        return self.path("movie_meta/cfcrs_id2info.json")

    def split(self, name: str) -> Path:
        return self.path(SPLIT_FILES[name])

    def required(self) -> List[Path]:
        """Every input the build cannot do without (the agreement sample is optional)."""
        return [self.split(name) for name in SPLIT_FILES] + [
            self.token2id, self.entity2id, self.dbpedia_subkg, self.movie_ids, self.movie2entity,
            self.concept2id, self.stopwords, self.mask4key, self.mask4movie, self.conceptnet_edges,
            self.imdb_reviews, self.revcore_helpful, self.movie_meta, self.movie_list,
        ]

    def check_present(self) -> None:
        """Raise :class:`DataBuildError` naming the first missing input file."""
        if not self.root.is_dir():
            raise DataBuildError(f"raw data folder not found: {self.root}")
        for path in self.required():
            if not path.is_file():
                raise DataBuildError(f"missing input file: {path}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataBuildError(f"missing input file: {path}") from None


def read_json(path: Path) -> Any:
    """Load one JSON document; a syntax error names the file, line and column."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataBuildError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


def iter_jsonl(path: Path) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Yield ``(line number, record)`` for each non-blank line; a bad line names the file and line number."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DataBuildError(f"missing input file: {path}") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataBuildError(f"{path}, line {lineno}: malformed JSON line: {err.msg}") from None
            if not isinstance(record, dict):
                raise DataBuildError(f"{path}, line {lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


# The published cfcrs_id2info.json has one stray "f" after a record's closing brace ("...}f, ").
_STRAY_CHAR = "}f, "


def read_movie_meta(path: Path) -> Dict[str, Dict[str, Any]]:
    """Load the IMDB metadata ``{ReDial movieId: {name, genre, plot, director, writer, star, imdb_id}}``.

    The published file is invalid JSON because of one stray character; it is removed in memory (the file
    is never edited) only when the parser stops exactly there.
    """
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        stray = err.pos
        if text[stray - 1:stray + 3] != _STRAY_CHAR:
            raise DataBuildError(
                f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    repaired = text[:stray] + text[stray + 1:]
    try:
        return json.loads(repaired)
    except json.JSONDecodeError as err:
        raise DataBuildError(f"{path}: malformed JSON at char {err.pos} (after removing the known stray "
                             f"character at char {stray}): {err.msg}") from None


class _BuiltinsOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: the RevCore files hold only dicts, lists and strings."""

    def find_class(self, module: str, name: str):
        raise DataBuildError(f"refusing to unpickle {module}.{name}: only builtin containers are expected")


def read_builtin_pickle(path: Path) -> Any:
    """Load a pickle that contains only builtin containers and scalars (no class is ever imported)."""
    try:
        with path.open("rb") as handle:
            return _BuiltinsOnlyUnpickler(handle).load()
    except FileNotFoundError:
        raise DataBuildError(f"missing input file: {path}") from None
    except (pickle.UnpicklingError, EOFError) as err:
        raise DataBuildError(f"{path}: not a readable pickle: {err}") from None


def read_mask(path: Path) -> np.ndarray:
    """Load a 1-D ``.npy`` copy mask."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataBuildError(f"missing input file: {path}") from None
    except ValueError as err:
        raise DataBuildError(f"{path}: not a plain .npy array: {err}") from None
    if array.ndim != 1:
        raise DataBuildError(f"{path}: expected a 1-D mask, got shape {array.shape}")
    return array
