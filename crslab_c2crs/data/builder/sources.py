"""The raw ReDial layout the builder reads, and the one reader of every input: each loader turns a missing or
empty file, a non-UTF-8 byte, malformed JSON or a value of the wrong type into a :class:`DataBuildError` that names
the file and the line or record.

The layout is the one of ``shared/data/redial`` (see its ``PROVENANCE.md``): raw ReDial JSONL dialogs, the
CRSLab/C2-CRS vocabularies and DBpedia sub-KG, KGSF's ConceptNet vocabulary and copy masks, a ConceptNet edge
list, IMDB reviews and IMDB metadata.
"""
from __future__ import annotations

import csv
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Tuple

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


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataBuildError(f"missing input file: {path}") from None
    except OSError as err:
        raise DataBuildError(f"{path}: cannot be read ({err.strerror or err})") from None


def _empty(path: Path) -> DataBuildError:
    return DataBuildError(f"{path}: the file is empty; restore it from the raw data")


def _read_bytes(path: Path) -> bytes:
    with _open(path) as handle:
        data = handle.read()
    if not data.strip():
        raise _empty(path)
    return data


def _decode(data: bytes, path: Path, first_line: int = 1) -> str:
    """``data`` as UTF-8; a bad byte names the file and line (``first_line`` is the line ``data`` starts on)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        raise DataBuildError(f"{path}, line {line}: not UTF-8 text (byte {data[err.start]:#04x}); save the file "
                             f"as UTF-8") from None


def read_text(path: Path) -> str:
    """The whole text of a non-empty UTF-8 input file; every fault is a :class:`DataBuildError` naming it."""
    return _decode(_read_bytes(path), path)


def iter_lines(path: Path) -> Iterator[Tuple[int, str]]:
    """``(line number, text)`` of each line of a non-empty UTF-8 input file, decoded one line at a time."""
    content = False
    with _open(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            content = content or bool(raw.strip())
            yield lineno, _decode(raw, path, lineno)
    if not content:
        raise _empty(path)


def read_json(path: Path, expected: type = object) -> Any:
    """Load one JSON document of type ``expected`` (``dict`` or ``list``); a syntax error names the file, line
    and column."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataBuildError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    return check_type(data, expected, str(path))


_TYPE_NAMES = {dict: "a JSON object", list: "a JSON array"}


def check_type(value: Any, expected: type, where: str) -> Any:
    """Return ``value`` if it is an ``expected`` (``dict``, ``list`` or ``object``); else raise naming ``where``."""
    if not isinstance(value, expected):
        raise DataBuildError(f"{where}: expected {_TYPE_NAMES[expected]}, got {type(value).__name__}")
    return value


def iter_jsonl(path: Path) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Yield ``(line number, record)`` for each non-blank line; a bad line names the file and line number."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataBuildError(f"{path}, line {lineno}: malformed JSON line: {err.msg}") from None
        if not isinstance(record, dict):
            raise DataBuildError(f"{path}, line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


MOVIE_LIST_COLUMNS = ("movieId", "movieName", "nbMentions")


def check_movie_list(path: Path, movie_ids: Iterable[str]) -> None:
    """ReDial's ``movies_with_mentions.csv`` must be UTF-8 with the columns :data:`MOVIE_LIST_COLUMNS`, integer
    ids and mention counts, and a row for every movie of ``movie_ids`` (the movie -> entity map): a partial list
    would silently drop movies from the titles interactive mode links and shows."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not set(MOVIE_LIST_COLUMNS) <= set(reader.fieldnames or ()):
        raise DataBuildError(f"{path}, line 1: the header must name the columns {', '.join(MOVIE_LIST_COLUMNS)}, "
                             f"got {reader.fieldnames}")
    listed = set()
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if not (row["movieId"] or "").strip().isdigit() or not (row["nbMentions"] or "0").strip().isdigit():
            raise DataBuildError(f"{where}: movieId and nbMentions must be integers, got {row['movieId']!r} and "
                                 f"{row['nbMentions']!r}")
        if not (row["movieName"] or "").strip():
            raise DataBuildError(f"{where}: movie {row['movieId']} has no movieName")
        listed.add(row["movieId"].strip())
    absent = sorted(set(movie_ids) - listed, key=lambda m: (len(m), m))
    if absent:
        raise DataBuildError(f"{path}: {len(absent)} movies of the movie -> entity map have no row (first: "
                             f"{', '.join(absent[:5])}); restore the complete ReDial movie list")


# The published cfcrs_id2info.json has one stray "f" after a record's closing brace ("...}f, ").
_STRAY_CHAR = "}f, "


def read_movie_meta(path: Path) -> Dict[str, Dict[str, Any]]:
    """Load the IMDB metadata ``{ReDial movieId: {name, genre, plot, director, writer, star, imdb_id}}``.

    The published file is invalid JSON because of one stray character; it is removed in memory (the file
    is never edited) only when the parser stops exactly there.
    """
    text = read_text(path)
    try:
        return check_type(json.loads(text), dict, str(path))
    except json.JSONDecodeError as err:
        stray = err.pos
        if text[stray - 1:stray + 3] != _STRAY_CHAR:
            raise DataBuildError(
                f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    repaired = text[:stray] + text[stray + 1:]
    try:
        return check_type(json.loads(repaired), dict, str(path))
    except json.JSONDecodeError as err:
        raise DataBuildError(f"{path}: malformed JSON at char {err.pos} (after removing the known stray "
                             f"character at char {stray}): {err.msg}") from None


NPY_MAGIC = b"\x93NUMPY"


class _BuiltinsOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: the RevCore files hold only dicts, lists and strings."""

    def find_class(self, module: str, name: str):
        raise DataBuildError(f"refusing to unpickle {module}.{name}: only builtin containers are expected")


def read_builtin_pickle(path: Path) -> Any:
    """Load a pickle that contains only builtin containers and scalars (no class is ever imported)."""
    data = _read_bytes(path)
    try:
        return _BuiltinsOnlyUnpickler(io.BytesIO(data)).load()
    except DataBuildError as err:  # a global was refused: name the file it came from
        raise DataBuildError(f"{path}: {err}; the file is not the expected RevCore data") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise DataBuildError(f"{path}: not a readable pickle: {err or type(err).__name__}") from None


def read_mask(path: Path) -> np.ndarray:
    """Load a 1-D ``.npy`` copy mask."""
    data = _read_bytes(path)
    if not data.startswith(NPY_MAGIC):
        raise DataBuildError(f"{path}: not a valid .npy file (it does not start with the NumPy header); replace it "
                             f"with the copy mask of the raw data")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError):
        # numpy's own message advises loading pickled data, which would run whatever the file holds
        raise DataBuildError(f"{path}: not a valid .npy array of numbers (damaged, or an array of Python objects, "
                             f"which is never loaded); replace it with the copy mask of the raw data") from None
    if array.ndim != 1 or array.size == 0:
        raise DataBuildError(f"{path}: expected a non-empty 1-D mask, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise DataBuildError(f"{path}: expected a numeric mask, got dtype {array.dtype}")
    return array
