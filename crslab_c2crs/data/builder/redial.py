"""Build CRSLab's ReDial (``nltk``) dataset, KGSF's copy mask and the C2-CRS side files from raw ReDial.

Outputs (``<data_root>`` is the CRSLab data root)::

    dataset/redial/nltk/   CRSLab ReDial 0.31: {train,valid,test}_data.json, token2id.json, entity2id.json,
                           dbpedia_subkg.json, movie_ids.json, concept2id.json, conceptnet_subkg.txt, .built
                           + c2crs_reviews.json, c2crs_mentions_{split}.json, build_stats.json, manifest
                           + word2vec_redial.npy (CRSLab's KGSF/KBRD word vectors, trained on train dialogs)
    model/kgsf/ReDial/     copy_mask.npy (bool, mask4key + mask4movie clipped to {0, 1}), .built 0.2
"""
from __future__ import annotations

import io
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
from loguru import logger
from tqdm import tqdm

from crslab_c2crs.data.builder import validate
from crslab_c2crs.data.builder.dialogs import DialogVocab, Mention, convert_conversation
from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.builder.output import StagedFolder, check_target, clear_stale_temporaries
from crslab_c2crs.data.builder.reviews import build_review_corpus, load_imdb_reviews
from crslab_c2crs.data.builder.sources import (
    SPLIT_FILES,
    RawLayout,
    check_movie_list,
    check_type,
    iter_jsonl,
    iter_lines,
    read_builtin_pickle,
    read_json,
    read_mask,
    read_movie_meta,
    read_text,
)
from crslab_c2crs.data.builder.stats import agreement, review_stats, split_stats
from crslab_c2crs.data.builder.word2vec import dialog_sentences, train_word_vectors, word2vec_stats
from crslab_c2crs.data.layout import (
    COPY_MASK_FILE,
    LINKER_FILE,
    MOVIES_FILE,
    REVIEWS_FILE,
    STATS_FILE,
    WORD2VEC_FILE,
    mentions_file,
    redial_dir,
    redial_kgsf_dir,
)
from crslab_c2crs.data.linking import DEFAULT_THRESHOLD, EntityLinker, kg_candidates
from crslab_c2crs.data.movies import movie_records, read_movie_csv
from crslab_c2crs.paths import check_writable_dir

REDIAL_VERSION = "0.31"
KGSF_MASK_VERSION = "0.2"
MENTIONS_FORMAT_VERSION = 1


def filter_word_kg(path: Path, concept2id: Mapping[str, int]) -> Tuple[str, int, int]:
    """Keep the ConceptNet edge lines whose both ends are in ``concept2id``, parsed exactly as CRSLab's
    ``_word_kg_process`` does (``line.strip().split('\\t')``, ``kg[i].split('/')[0]``), which raises
    KeyError on any other line. Returns ``(kept text, kept lines, total lines)``."""
    kept = io.StringIO()
    total = n_kept = 0
    for _lineno, line in iter_lines(path):
        if not line.strip():
            continue
        total += 1
        fields = line.strip().split("\t")
        if len(fields) < 3:
            continue
        if fields[1].split("/")[0] in concept2id and fields[2].split("/")[0] in concept2id:
            kept.write(line.rstrip("\n") + "\n")
            n_kept += 1
    return kept.getvalue(), n_kept, total


class _Inputs:
    """Every raw input, loaded and checked."""

    def __init__(self, layout: RawLayout) -> None:
        layout.check_present()
        self.token2id: Dict[str, int] = read_json(layout.token2id, dict)
        validate.check_token2id(self.token2id, layout.token2id)
        self.entity2id: Dict[str, int] = read_json(layout.entity2id, dict)
        self.n_entity = validate.n_entities(self.entity2id, layout.entity2id)
        self.movie_ids: List[int] = read_json(layout.movie_ids, list)
        validate.check_movie_ids(self.movie_ids, self.n_entity, layout.movie_ids)
        self.subkg: Dict[str, list] = read_json(layout.dbpedia_subkg, dict)
        validate.check_subkg(self.subkg, self.n_entity, layout.dbpedia_subkg)
        self.movie2entity: Dict[str, int] = read_json(layout.movie2entity, dict)
        validate.check_movie2entity(self.movie2entity, self.movie_ids, self.n_entity, layout.movie2entity)
        check_movie_list(layout.movie_list, self.movie2entity)
        self.concept2id: Dict[str, int] = read_json(layout.concept2id, dict)
        self.stopwords = set(read_text(layout.stopwords).split())
        mask4key, mask4movie = read_mask(layout.mask4key), read_mask(layout.mask4movie)
        validate.check_mask(len(mask4key), len(self.token2id), layout.mask4key)
        validate.check_mask(len(mask4movie), len(self.token2id), layout.mask4movie)
        # KGSF's decoder multiplies copy logits by mask4key + mask4movie; CRSLab loads the mask as bool
        self.copy_mask = np.clip(mask4key + mask4movie, 0, 1).astype(bool)
        self.id2entity = {idx: name for name, idx in self.entity2id.items()}


def convert_split(layout: RawLayout, split: str, vocab: DialogVocab, linker: EntityLinker
                  ) -> Tuple[List[Dict[str, Any]], Dict[str, List[List[Mention]]]]:
    """Convert every conversation of ``split``; returns (CRSLab conversations, mentions by conv_id)."""
    path = layout.split(split)
    conversations: List[Dict[str, Any]] = []
    mentions: Dict[str, List[List[Mention]]] = {}
    for lineno, record in tqdm(iter_jsonl(path), desc=f"dialogs {split}", unit="conv", mininterval=2):
        conversation, spans = convert_conversation(record, vocab, linker, path, lineno)
        if conversation["conv_id"] in mentions:
            raise DataBuildError(f"{path}, line {lineno}: duplicate conversationId {conversation['conv_id']}")
        conversations.append(conversation)
        mentions[conversation["conv_id"]] = spans
    if not conversations:
        raise DataBuildError(f"{path}: no conversations")
    return conversations, mentions


def build_redial(raw: Path, data_root: Path, force: bool = False,
                 threshold: float = DEFAULT_THRESHOLD) -> Dict[str, Any]:
    """Build everything (see the module docstring) and return the statistics written to ``build_stats.json``.

    Args:
        raw: the raw ReDial folder (layout of ``shared/data/redial``).
        data_root: CRSLab data root.
        force: replace existing outputs (they are moved aside, never deleted).
        threshold: fuzzy-match threshold of the entity linker (0-100).

    Raises:
        DataBuildError: on any missing or inconsistent input; nothing is left in the targets then.
    """
    started = time.monotonic()
    raw, data_root = Path(raw), Path(data_root)
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and 0 <= threshold <= 100):
        raise DataBuildError(f"--threshold {threshold}: must be a number from 0 to 100 (the rapidfuzz similarity "
                             f"a fuzzy entity link needs; default {DEFAULT_THRESHOLD})")
    targets = (redial_dir(data_root), redial_kgsf_dir(data_root))
    for target in targets:
        # everything that can refuse the build is checked before the minutes of conversion
        check_target(target, force)
        check_writable_dir(target.parent, f"--data-root {data_root}", "choose a writable data root",
                           DataBuildError)
        clear_stale_temporaries(target)
    layout = RawLayout(raw)
    inputs = _Inputs(layout)
    logger.info(f"loaded vocabularies from {raw}: {len(inputs.token2id)} tokens, {len(inputs.entity2id)} entities")

    linker = EntityLinker(inputs.entity2id, kg_candidates(inputs.subkg, inputs.movie_ids), inputs.stopwords,
                          set(inputs.concept2id), threshold)
    vocab = DialogVocab(inputs.movie2entity, inputs.id2entity, inputs.entity2id, inputs.concept2id)
    splits: Dict[str, List[Dict[str, Any]]] = {}
    mentions: Dict[str, Dict[str, List[List[Mention]]]] = {}
    for split in SPLIT_FILES:
        splits[split], mentions[split] = convert_split(layout, split, vocab, linker)
        logger.info(f"{split}: {len(splits[split])} conversations")

    corpus = build_review_corpus(inputs.movie2entity, inputs.token2id, read_movie_meta(layout.movie_meta),
                                 load_imdb_reviews(layout.imdb_reviews),
                                 check_type(read_builtin_pickle(layout.revcore_helpful), dict,
                                            str(layout.revcore_helpful)))
    movies = read_movie_csv(str(layout.movie_list), inputs.movie2entity)  # checked by _Inputs
    word_kg, kept_edges, total_edges = filter_word_kg(layout.conceptnet_edges, inputs.concept2id)
    logger.info(f"ConceptNet: kept {kept_edges} of {total_edges} edges with both ends in concept2id")
    word_vectors = train_word_vectors(dialog_sentences(splits["train"]), inputs.token2id)

    items = set(inputs.movie_ids)
    mentioned = Counter(eid for split in mentions.values() for conv in split.values()
                        for utt in conv for (_start, _end, eid) in utt if eid in items)
    stats: Dict[str, Any] = {
        "splits": {split: split_stats(convs) for split, convs in splits.items()},
        "reviews": review_stats(corpus, inputs.movie_ids, mentioned),
        "conceptnet_edges_kept": kept_edges,
        "conceptnet_edges_total": total_edges,
        "linker_threshold": threshold,
        "word2vec": word2vec_stats(word_vectors, inputs.token2id),
    }
    if layout.sample.is_file():
        by_id = {conv["conv_id"]: conv for conv in splits["valid"]}
        stats["agreement"] = agreement(by_id, read_json(layout.sample, list), set(inputs.entity2id))
    else:
        logger.warning(f"no agreement figures: reference sample {layout.sample} not found")

    staged: List[StagedFolder] = []
    try:
        for target in targets:
            staged.append(StagedFolder(target, force))
        data, model = staged
        for split, convs in splits.items():
            data.write_json(f"{split}_data.json", convs)
            data.write_json(mentions_file(split), {
                "format_version": MENTIONS_FORMAT_VERSION, "split": split,
                "span_unit": "token positions [start, end) in the utterance's text",
                "conversations": mentions[split]})
        for name, source in (("token2id.json", layout.token2id), ("entity2id.json", layout.entity2id),
                             ("dbpedia_subkg.json", layout.dbpedia_subkg), ("movie_ids.json", layout.movie_ids),
                             ("concept2id.json", layout.concept2id)):
            data.copy(source, name)
        data.write_text("conceptnet_subkg.txt", word_kg)
        data.write_json(REVIEWS_FILE, corpus)
        data.write_json(MOVIES_FILE, movie_records(movies))
        data.write_json(LINKER_FILE, {"format_version": 1, "threshold": threshold,
                                      "stopwords": sorted(inputs.stopwords)})
        np.save(data.path / WORD2VEC_FILE, word_vectors)
        data.files.append(WORD2VEC_FILE)
        np.save(model.path / COPY_MASK_FILE, inputs.copy_mask)
        model.files.append(COPY_MASK_FILE)
        stats["build_seconds"] = round(time.monotonic() - started, 1)
        data.write_json(STATS_FILE, stats, indent=2)
        data.commit(REDIAL_VERSION, raw)
        model.commit(KGSF_MASK_VERSION, raw)
    finally:
        for folder in staged:
            folder.discard()
    return stats
