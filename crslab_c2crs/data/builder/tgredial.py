"""Build the plugin's TG-ReDial side files from CRSLab's TG-ReDial folder and a user's review file.

Reads ``<data root>/dataset/tgredial/pkuseg`` (CRSLab's files, never modified) and writes beside them::

    c2crs_movies.json     the movie table of interactive mode (entity id, title, year, training mentions, aliases)
    c2crs_reviews.json    with --reviews: the C2-CRS review corpus, in the format of the ReDial one (reviews.py)

and, only where no such folder exists yet, ``model/kgsf/TGReDial/`` (``copy_mask.npy``, ``.built`` 0.2): a
stand-in for the copy mask of CRSLab's ``kgsf_tgredial.zip``, which KGSF needs and C2-CRS uses too. It marks the
tokens that are HowNet words or entity names, the counterpart of KGSF's ReDial mask (ConceptNet words + movie
tokens); it is not CRSLab's file. A folder holding CRSLab's mask is never touched.

Movie titles: a movie's CN-DBpedia name without its disambiguation (``边界线（2014年日剧）`` -> ``边界线``, 2014);
movies named by a Douban id get the title most often written between ``《》`` where the dialogs mention them
(:func:`crslab_c2crs.data.tgredial.utterance_mentions`). Movies with no title are left out of the table.

Review file: one JSON object per line, ``{"movie": ..., "text": "...", "rating": 8}``; ``movie`` is the movie as
the dialogs' ``movie`` field names it (CN-DBpedia name or Douban id), its title, or its CRSLab entity id (int);
``rating`` (optional) ranks a movie's reviews, highest first (the paper pairs an entity with "the most
highly-rated review"), then file order. Reviews are cut into sentences and segmented with jieba
(:mod:`crslab_c2crs.data.jieba_tokenize`); sentences of ``MIN_REVIEW_TOKENS..MAX_REVIEW_TOKENS`` tokens are kept,
at most ``MAX_REVIEW_SENTENCES`` per movie, each token sequence once.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from loguru import logger
from tqdm import tqdm

from crslab_c2crs import atomic
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.output import StagedFolder, is_ours
from crslab_c2crs.data.builder.reviews import (
    FORMAT_VERSION,
    MAX_REVIEW_SENTENCES,
    MAX_REVIEW_TOKENS,
    MIN_REVIEW_TOKENS,
    UNK_ID,
)
from crslab_c2crs.data.builder.sources import iter_jsonl, read_json
from crslab_c2crs.data.jieba_tokenize import ChineseTokenizer, split_sentences
from crslab_c2crs.data.layout import (
    COPY_MASK_FILE,
    REVIEWS_FILE,
    SPLITS,
    TGREDIAL_MOVIES_FILE,
    tgredial_dir,
    tgredial_kgsf_dir,
)
from crslab_c2crs.data.tgredial import CRSLAB_FILES, check_files, crslab_file_help, plain_title, utterance_mentions
from crslab_c2crs.errors import MissingDataError

KGSF_MASK_VERSION = "0.2"
MOVIES_FORMAT_VERSION = 1
YEAR = re.compile(r"((?:18|19|20)\d\d)年")


def copy_mask(tok2ind: Mapping[str, int], word2id: Mapping[str, int], entity2id: Mapping[str, int]) -> np.ndarray:
    """Bool mask over token ids: HowNet words and entity names (special tokens never)."""
    mask = np.zeros(len(tok2ind), dtype=bool)
    for token, index in tok2ind.items():
        mask[index] = (token in word2id or token in entity2id) and not token.startswith("__")
    return mask


def _conversations(path: Path) -> List[Dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataBuildError(f"{path}: expected a JSON list of conversations, got {type(data).__name__}")
    return data


def _messages(path: Path, conversation: Any) -> Iterable[Mapping[str, Any]]:
    """The messages of one conversation, each checked for the fields the movie table reads."""
    conv_id = conversation.get("conv_id") if isinstance(conversation, dict) else None
    messages = conversation.get("messages") if isinstance(conversation, dict) else None
    if not isinstance(messages, list):
        raise DataBuildError(f"{path}: conversation {conv_id}: no 'messages' list (CRSLab's TG-ReDial format)")
    for message in messages:
        if not (isinstance(message, dict) and isinstance(message.get("text"), list)
                and isinstance(message.get("movie"), list)):
            raise DataBuildError(f"{path}: conversation {conv_id}: a message needs a 'text' token list and a "
                                 f"'movie' list")
        yield message


def movie_table(dialogs: Mapping[str, Sequence[Mapping[str, Any]]], paths: Mapping[str, Path],
                entity2id: Mapping[str, int], movie_ids: Sequence[int]) -> List[Dict[str, Any]]:
    """The records of ``c2crs_movies.json``, most mentioned in the training dialogs first.

    Args:
        dialogs: split -> CRSLab TG-ReDial conversations.
        paths: split -> the file it was read from (for error messages).
        entity2id, movie_ids: CRSLab's vocabularies.
    """
    movies = set(movie_ids)
    names = {entity_id: name for name, entity_id in entity2id.items() if entity_id in movies}
    surfaces: Dict[int, Counter] = defaultdict(Counter)
    mentions: Counter = Counter()
    for split, conversations in dialogs.items():
        for conversation in conversations:
            for message in _messages(paths[split], conversation):
                named = [(name, entity2id.get(name)) for name in message["movie"]]
                for start, end, entity_id in utterance_mentions(message["text"], named, []):
                    surfaces[entity_id]["".join(message["text"][start:end])] += 1
                if split == "train":
                    mentions.update(entity_id for _, entity_id in named if entity_id in movies)
    records = []
    for entity_id in movies:
        name = names.get(entity_id, "")
        written = [surface for surface, _ in surfaces[entity_id].most_common()]
        title = plain_title(name) if name and not name.isdigit() else (written[0] if written else "")
        if not title:
            continue
        year = YEAR.search(name[len(title):])
        records.append({"entity_id": entity_id, "title": title, "year": int(year.group(1)) if year else None,
                        "mentions": mentions[entity_id], "aliases": [s for s in written if s != title]})
    records.sort(key=lambda record: (-record["mentions"], record["entity_id"]))
    return records


def review_movie(value: Any, entity2id: Mapping[str, int], movie_ids: set,
                 by_title: Mapping[str, Optional[int]]) -> Optional[int]:
    """The entity id a review's ``movie`` value names (see the module docstring), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in movie_ids else None
    if not isinstance(value, str):
        return None
    entity_id = entity2id.get(value)
    if entity_id in movie_ids:
        return entity_id
    return by_title.get(value.strip())


def build_review_corpus(path: Path, tokenize: ChineseTokenizer, token2id: Mapping[str, int],
                        entity2id: Mapping[str, int], movie_ids: Sequence[int],
                        movies: Sequence[Mapping[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """The review corpus document of the reviews in ``path`` and counts of what was read.

    Raises:
        DataBuildError: a line that is not a JSON object with a ``movie`` and a string ``text``, or a ``rating``
            that is not a number.
    """
    title_owners: Dict[str, set] = defaultdict(set)
    for record in movies:
        title_owners[record["title"]].add(record["entity_id"])
    # a title shared by several movies names none of them
    by_title = {title: next(iter(owners)) if len(owners) == 1 else None for title, owners in title_owners.items()}
    known = set(movie_ids)
    by_movie: Dict[int, List[Tuple[float, int, str]]] = defaultdict(list)
    counts = Counter()
    for lineno, record in iter_jsonl(path):
        text, rating, value = record.get("text"), record.get("rating", 0), record.get("movie")
        if value is None or not isinstance(text, str):
            raise DataBuildError(f"{path}, line {lineno}: a review needs a 'movie' and a string 'text'")
        if not isinstance(rating, (int, float)) or isinstance(rating, bool):
            raise DataBuildError(f"{path}, line {lineno}: 'rating' must be a number, got {rating!r}")
        entity_id = review_movie(value, entity2id, known, by_title)
        counts["reviews"] += 1
        if entity_id is None:
            counts["reviews_of_unknown_movies"] += 1
            continue
        by_movie[entity_id].append((-float(rating), lineno, text))
    if counts["reviews"] == 0:
        raise DataBuildError(f"{path}: no reviews")
    entities: Dict[str, List[Dict[str, Any]]] = {}
    for entity_id in tqdm(sorted(by_movie), desc="review corpus", unit="movie", mininterval=2):
        seen, ranked = set(), []
        for _rank, _lineno, text in sorted(by_movie[entity_id]):
            for sentence in split_sentences(text):
                tokens = tokenize(sentence)
                if not MIN_REVIEW_TOKENS <= len(tokens) <= MAX_REVIEW_TOKENS or tuple(tokens) in seen:
                    continue
                seen.add(tuple(tokens))
                ranked.append({"source": "review", "ids": [token2id.get(token, UNK_ID) for token in tokens]})
                if len(ranked) == MAX_REVIEW_SENTENCES:
                    break
            if len(ranked) == MAX_REVIEW_SENTENCES:
                break
        if ranked:
            entities[str(entity_id)] = ranked
    counts["movies_with_sentences"] = len(entities)
    counts["sentences"] = sum(len(sentences) for sentences in entities.values())
    corpus = {"format_version": FORMAT_VERSION, "token_vocab": "token2id.json", "unk_id": UNK_ID,
              "sources": ["review"], "entities": entities}
    return corpus, dict(counts)


def _write_kgsf_mask(data_root: Path, mask: np.ndarray, source: Path, force: bool) -> str:
    """Write the stand-in KGSF copy mask where no mask folder exists (or ours, with ``force``); say what happened."""
    target = tgredial_kgsf_dir(data_root)
    if target.exists() and not (force and is_ours(target)):
        return f"kept the existing {target}" + ("" if is_ours(target) else " (not built by this command)")
    staged = StagedFolder(target, force)
    try:
        np.save(staged.path / COPY_MASK_FILE, mask)
        staged.files.append(COPY_MASK_FILE)
        staged.commit(KGSF_MASK_VERSION, source)
    finally:
        staged.discard()
    return f"wrote the stand-in KGSF copy mask {target / COPY_MASK_FILE} ({int(mask.sum())} of {len(mask)} tokens)"


def build_tgredial(data_root: Path, reviews: Optional[Path] = None, force: bool = False) -> Dict[str, Any]:
    """Write the side files (see the module docstring) and return statistics.

    Args:
        data_root: CRSLab data root holding ``dataset/tgredial/pkuseg``.
        reviews: the review file; None writes no review corpus (C2-CRS then cannot run, KGSF and KBRD can).
        force: replace side files (and a stand-in mask) written by an earlier run.

    Raises:
        MissingDataError: CRSLab's files are not all there (every missing one is named).
        DataBuildError: a malformed input, or side files that exist without ``force``.
    """
    data_root = Path(data_root)
    dpath = tgredial_dir(data_root)
    check_files(str(dpath), list(CRSLAB_FILES), crslab_file_help())
    outputs = [dpath / TGREDIAL_MOVIES_FILE] + ([dpath / REVIEWS_FILE] if reviews is not None else [])
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not force:
        raise DataBuildError(f"{', '.join(existing)} already exist(s); pass --force to rebuild")
    if reviews is not None and not Path(reviews).is_file():
        raise MissingDataError(f"review file {reviews} not found (one JSON object per line: movie, text, rating)")
    token2id: Dict[str, int] = read_json(dpath / "token2id.json")
    entity2id: Dict[str, int] = read_json(dpath / "entity2id.json")
    word2id: Dict[str, int] = read_json(dpath / "word2id.json")
    movie_ids: List[int] = read_json(dpath / "movie_ids.json")
    paths = {split: dpath / f"{split}_data.json" for split in SPLITS}
    movies = movie_table({split: _conversations(path) for split, path in paths.items()}, paths, entity2id, movie_ids)
    stats: Dict[str, Any] = {"movies": len(movie_ids), "movies_with_title": len(movies)}
    atomic.write_json(dpath / TGREDIAL_MOVIES_FILE, {"format_version": MOVIES_FORMAT_VERSION, "movies": movies})
    logger.info(f"wrote {dpath / TGREDIAL_MOVIES_FILE}: {len(movies)} of {len(movie_ids)} movies have a title")
    if reviews is not None:
        tokenize = ChineseTokenizer(sorted(token2id, key=token2id.get))
        corpus, counts = build_review_corpus(Path(reviews), tokenize, token2id, entity2id, movie_ids, movies)
        stats.update(counts)
        atomic.write_json(dpath / REVIEWS_FILE, corpus)
        logger.info(f"wrote {dpath / REVIEWS_FILE}: {counts['sentences']} sentences for "
                    f"{counts['movies_with_sentences']} movies ({counts.get('reviews_of_unknown_movies', 0)} of "
                    f"{counts['reviews']} reviews name no known movie)")
    stats["kgsf_copy_mask"] = _write_kgsf_mask(data_root, copy_mask(token2id, word2id, entity2id), dpath, force)
    logger.info(stats["kgsf_copy_mask"])
    return stats
