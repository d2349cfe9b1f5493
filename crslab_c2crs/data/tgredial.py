"""TG-ReDial, CRSLab's Chinese ``pkuseg`` files: ``TGReDial`` for KGSF and KBRD, ``TGReDialReview`` for C2-CRS.

Both read the folder CRSLab's ``tgredial_pkuseg.zip`` unpacks to, ``<data root>/dataset/tgredial/pkuseg``
(resource version 0.3; the files are listed in :data:`CRSLAB_FILES`). Nothing is downloaded: before CRSLab reads
anything, one error names every missing file with the path where CRSLab would have put it.

``TGReDial`` is CRSLab's ``TGReDialDataset``, registered under CRSLab's own name, with that check and nothing
else. ``TGReDialReview`` adds what C2-CRS needs, with the fields and meaning of ``ReDialReview``
(:mod:`crslab_c2crs.data.dataset`): ``context_seq``, ``context_mentions`` and ``review_sentences`` on every
sample; ``token_freq``, ``review_corpus_version``, ``entity_reviews`` and ``copy_mask`` in the side data. Its
review corpus, ``c2crs_reviews.json``, is written by ``python -m crslab_c2crs.data build tgredial --reviews FILE``;
its copy mask is KGSF's (``model/kgsf/TGReDial/copy_mask.npy``), as ``ReDialReview`` uses KGSF's ReDial mask.

TG-ReDial's text has no entity markup (ReDial has ``@<movieId>`` tokens): an utterance lists its movies and
entities by name, and :func:`utterance_mentions` finds them in its tokens. TG-ReDial roles alternate (CRSLab
asserts it), so a context turn is one utterance.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from loguru import logger

from crslab_c2crs.data.dataset import C2CRSFieldsMixin, Mention, response_word_counts, response_word_repeats
from crslab_c2crs.data.layout import COPY_MASK_FILE, REVIEWS_FILE, build_hint, tgredial_dir, tgredial_kgsf_dir
from crslab_c2crs.errors import MissingDataError
from crslab_c2crs.registry import register_dataset

# CRSLab's package __init__ star-imports shadow submodules, so the module is fetched by name.
_tgredial = importlib.import_module("crslab.data.dataset.tgredial.tgredial")

CRSLAB_ZIP = "tgredial_pkuseg.zip"
RESOURCE_VERSION = "0.3"
# file -> what it is; CRSLab's TGReDialDataset opens every one of them.
CRSLAB_FILES: Dict[str, str] = {
    ".built": f"CRSLab's marker, written when it unpacks the release; second line {RESOURCE_VERSION}",
    "train_data.json": "training conversations",
    "valid_data.json": "validation conversations",
    "test_data.json": "test conversations",
    "token2id.json": "token vocabulary",
    "topic2id.json": "topic vocabulary",
    "entity2id.json": "CN-DBpedia entity vocabulary",
    "movie_ids.json": "entity ids of the movies",
    "cn-dbpedia.txt": "CN-DBpedia sub-graph, one 'head<TAB>relation<TAB>tail' line per edge",
    "word2id.json": "HowNet word vocabulary",
    "hownet.txt": "HowNet word graph, one 'word<TAB>relation<TAB>word' line per edge",
    "user2history.json": "interaction history per 'conv_id/local_id'",
    "user2profile.json": "profile sentences per user_id",
}
KGSF_MASK_ZIP = "kgsf_tgredial.zip"
OPEN_TITLE, CLOSE_TITLE = "《", "》"

Named = Tuple[str, Optional[int]]


def check_files(dpath: str, names: Sequence[str], how: Mapping[str, str]) -> None:
    """Raise :class:`MissingDataError` naming, one line each, every file of ``names`` missing from ``dpath``.

    Args:
        dpath: the TG-ReDial folder.
        names: the files needed, relative to ``dpath`` (an absolute path stands for itself).
        how: file -> what it is and where it comes from, shown beside the path.
    """
    missing = [name for name in names if not os.path.isfile(os.path.join(dpath, name))]
    if missing:
        lines = "\n".join(f"  {os.path.join(dpath, name)}: {how[name]}" for name in missing)
        raise MissingDataError(f"TG-ReDial: {len(missing)} file(s) missing (nothing is downloaded):\n{lines}\n"
                               f"{build_hint(dpath)}")


def crslab_file_help() -> Dict[str, str]:
    """What each CRSLab file is, and the release it comes with."""
    return {name: f"{what} (CRSLab's {CRSLAB_ZIP}, resource {RESOURCE_VERSION})"
            for name, what in CRSLAB_FILES.items()}


def plain_title(name: str) -> str:
    """A CN-DBpedia movie name without its trailing disambiguation: ``边界线（2014年日剧）`` -> ``边界线``."""
    name = name.strip()
    if name.endswith(("）", ")")):
        cut = min((i for i in (name.find("（"), name.find("(")) if i > 0), default=-1)
        if cut > 0:
            return name[:cut].strip()
    return name


def surface_key(text: str) -> str:
    """How names are compared with text: without whitespace, lower case."""
    return "".join(text.split()).lower()


def title_spans(tokens: Sequence[str]) -> List[Tuple[int, int]]:
    """``[start, end)`` of the tokens between each ``《`` and the next ``》`` (empty titles skipped)."""
    spans: List[Tuple[int, int]] = []
    opened: Optional[int] = None
    for i, token in enumerate(tokens):
        if token == OPEN_TITLE:
            opened = i + 1
        elif token == CLOSE_TITLE and opened is not None:
            if i > opened:
                spans.append((opened, i))
            opened = None
    return spans


def find_span(tokens: Sequence[str], surface: str, taken: Sequence[bool]) -> Optional[Tuple[int, int]]:
    """The first ``[start, end)`` of whole tokens that spells ``surface`` (see :func:`surface_key`) and
    overlaps no ``taken`` token."""
    target = surface_key(surface)
    if not target:
        return None
    for start in range(len(tokens)):
        text = ""
        for end in range(start, len(tokens)):
            if taken[end]:
                break
            text += surface_key(tokens[end])
            if not target.startswith(text):
                break
            if text == target:
                return start, end + 1
    return None


def utterance_mentions(tokens: Sequence[str], movies: Sequence[Named], entities: Sequence[Named]) -> List[Mention]:
    """``(start, end, entity_id)`` token spans of an utterance's movies and entities, ordered by position.

    TG-ReDial writes movie titles between ``《`` and ``》``; its ``movie`` field names a movie by its CN-DBpedia
    name (``边界线（2014年日剧）``) or, for movies outside CN-DBpedia, by a Douban id. A movie takes the
    bracketed title equal to its name without disambiguation; if the movies left and the brackets left are as
    many, they are paired in order; a movie still left takes its title written without brackets. An entity takes
    the first free token span that spells its name. Names without an id (not in ``entity2id``) still take their
    bracket, so the pairing stays right, but give no mention; names found nowhere give none either.

    Args:
        tokens: the utterance's tokens.
        movies, entities: ``(name, entity id or None)`` in the order of the ``movie`` and ``entity`` fields.
    """
    taken = [False] * len(tokens)
    found: List[Tuple[Tuple[int, int], Optional[int]]] = []

    def take(span: Tuple[int, int], entity_id: Optional[int]) -> None:
        for k in range(*span):
            taken[k] = True
        found.append((span, entity_id))

    brackets = title_spans(tokens)
    left: List[Named] = []
    for name, entity_id in movies:
        keys = {surface_key(name), surface_key(plain_title(name))}
        span = next((s for s in brackets if surface_key("".join(tokens[s[0]:s[1]])) in keys), None)
        if span is None:
            left.append((name, entity_id))
        else:
            brackets.remove(span)
            take(span, entity_id)
    if left and len(left) == len(brackets):
        for (_name, entity_id), span in zip(left, brackets):
            take(span, entity_id)
        left = []
    for name, entity_id in left:
        span = None if name.isdigit() else find_span(tokens, plain_title(name), taken)
        if span is not None:
            take(span, entity_id)
    # longest names first, so "周星驰电影" is not cut into "周星驰"
    for name, entity_id in sorted(entities, key=lambda named: -len(surface_key(named[0]))):
        span = find_span(tokens, name, taken)
        if span is not None:
            take(span, entity_id)
    return sorted((start, end, entity_id) for (start, end), entity_id in found if entity_id is not None)


@register_dataset("TGReDial", language="zh")
class TGReDialDataset(_tgredial.TGReDialDataset):
    """CRSLab's TG-ReDial dataset; a missing file is named (with all others missing) before anything is read."""

    def __init__(self, opt, tokenize, restore=False, save=False):
        if not restore:
            # CRSLab opens the files one by one as it goes: name every missing one before it starts
            self.dpath = str(tgredial_dir(Path(_tgredial.DATASET_PATH).parent, tokenize))
            check_files(self.dpath, *self.required_files())
        super().__init__(opt, tokenize, restore, save)

    def required_files(self) -> Tuple[List[str], Dict[str, str]]:
        """The files this dataset reads and what each is."""
        return list(CRSLAB_FILES), crslab_file_help()


@register_dataset("TGReDialReview", language="zh")
class TGReDialReviewDataset(C2CRSFieldsMixin, TGReDialDataset):
    """CRSLab's TG-ReDial with C2-CRS's context spans and review sentences (see module docstring and
    :class:`~crslab_c2crs.data.dataset.C2CRSFieldsMixin` for the options)."""

    def __init__(self, opt, tokenize, restore=False, save=False):
        self._read_c2crs_options(opt)
        super().__init__(opt, tokenize, restore, save)

    def required_files(self) -> Tuple[List[str], Dict[str, str]]:
        names, how = super().required_files()
        how[REVIEWS_FILE] = "C2-CRS review corpus, written by python -m crslab_c2crs.data build tgredial --reviews FILE"
        how[self.copy_mask_path] = (f"KGSF's copy mask, which C2-CRS's copy term uses too (from CRSLab's "
                                    f"{KGSF_MASK_ZIP}, or a stand-in written by python -m crslab_c2crs.data build "
                                    f"tgredial)")
        return names + [REVIEWS_FILE, self.copy_mask_path], how

    @property
    def copy_mask_path(self) -> str:
        # the data root is the parent of CRSLab's dataset folder
        return str(tgredial_kgsf_dir(Path(_tgredial.DATASET_PATH).parent) / COPY_MASK_FILE)

    def _copy_mask(self) -> np.ndarray:
        mask = np.load(self.copy_mask_path).astype(bool)
        if mask.shape != (len(self.tok2ind),):
            raise MissingDataError(f"copy mask {self.copy_mask_path} has shape {mask.shape}, the vocabulary has "
                                   f"{len(self.tok2ind)} tokens. {build_hint(self.copy_mask_path)}")
        return mask

    def _load_other_data(self):
        super()._load_other_data()
        with open(os.path.join(self.dpath, REVIEWS_FILE), encoding="utf-8") as handle:
            self._use_review_corpus(json.load(handle))
        logger.debug(f"[Load {len(self.reviews)} C2-CRS entity review lists from {self.dpath}]")

    def _named(self, names: Sequence[str]) -> List[Named]:
        return [(name, self.entity2id.get(name)) for name in names]

    def _convert_to_id(self, conversation):
        utterances = super()._convert_to_id(conversation)
        for utterance, message in zip(utterances, conversation["messages"], strict=True):
            utterance["mentions"] = utterance_mentions(message["text"], self._named(message["movie"]),
                                                       self._named(message["entity"]))
        return utterances

    def _augment_and_add(self, raw_conv_dict):
        return self._add_c2crs_fields(super()._augment_and_add(raw_conv_dict),
                                      [utterance["text"] for utterance in raw_conv_dict],
                                      [utterance["mentions"] for utterance in raw_conv_dict])

    def _data_preprocess(self, train_data, valid_data, test_data):
        train, valid, test, side_data = super()._data_preprocess(train_data, valid_data, test_data)
        specials = set(self.special_token_idx.values())
        side_data["token_freq"] = response_word_counts(train, len(self.tok2ind), specials)
        side_data["token_repeats"] = response_word_repeats(train, len(self.tok2ind), specials)
        side_data["review_corpus_version"] = self.review_corpus_version
        # interactive mode selects the review sentences of a live conversation from the same ranked lists
        side_data["entity_reviews"] = self.reviews
        side_data["copy_mask"] = self._copy_mask()
        return train, valid, test, side_data
