"""Turn raw ReDial conversations into CRSLab-format conversations plus mention spans.

One CRSLab utterance per raw message, as in CRSLab's own files (CRSLab merges same-role turns itself when
loading). Per utterance: ``utt_id`` (message index), ``role``, ``text`` (tokens), ``movies`` (DBpedia keys of
the ``@`` mentions that have one, in order, repeated if repeated), ``entity`` (linked non-``@`` entities, in order, no
repeats), ``word`` (tokens in the ConceptNet vocabulary, case-sensitive, as CRSLab's files have them).

Mention spans ``[start, end, entity_id]`` are token positions inside the utterance's ``text``; they go to
a side file so the CRSLab json keeps exactly the keys CRSLab expects.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

from crslab_c2crs.data.builder.errors import DataBuildError
from crslab_c2crs.data.linking import EntityLinker, is_dbpedia
from crslab_c2crs.data.tokenize import is_movie_token, tokenize

SEEKER = "Seeker"
RECOMMENDER = "Recommender"

Mention = Tuple[int, int, int]


@dataclass(frozen=True)
class DialogVocab:
    """The look-ups needed to annotate dialogs.

    Attributes:
        movie2entity: ReDial movieId (str) -> CRSLab entity id.
        id2entity: CRSLab entity id -> entity2id key.
        entity2id: entity2id key -> CRSLab entity id.
        concept2id: ConceptNet word -> id (CRSLab ``concept2id.json``).
    """

    movie2entity: Mapping[str, int]
    id2entity: Mapping[int, str]
    entity2id: Mapping[str, int]
    concept2id: Mapping[str, int]


def _role(message: Mapping[str, Any], record: Mapping[str, Any], where: str) -> str:
    sender = message.get("senderWorkerId")
    if sender == record.get("initiatorWorkerId"):
        return SEEKER
    if sender == record.get("respondentWorkerId"):
        return RECOMMENDER
    raise DataBuildError(f"{where}: senderWorkerId {sender!r} is neither the initiator nor the respondent")


def convert_conversation(record: Mapping[str, Any], vocab: DialogVocab, linker: EntityLinker,
                         path: Path, lineno: int) -> Tuple[Dict[str, Any], List[List[Mention]]]:
    """Convert one raw ReDial record.

    Args:
        record: a raw ReDial conversation (``conversationId``, ``messages`` [{text, senderWorkerId}], worker ids).
        vocab: look-ups, see :class:`DialogVocab`.
        linker: the entity linker for non-``@`` mentions.
        path, lineno: where the record comes from, for error messages.

    Returns:
        ``({"conv_id": str, "dialog": [utterance, ...]}, mentions)`` where ``mentions[i]`` lists the
        ``(start, end, entity_id)`` token spans of utterance ``i``, ordered by position.
    """
    conv_id = record.get("conversationId")
    where = f"{path}, line {lineno} (conversation {conv_id})"
    messages = record.get("messages")
    if conv_id is None or not isinstance(messages, list):
        raise DataBuildError(f"{where}: a conversation needs 'conversationId' and a 'messages' list")
    dialog: List[Dict[str, Any]] = []
    mentions: List[List[Mention]] = []
    for utt_id, message in enumerate(messages):
        at = f"{where}, message {utt_id}"
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            raise DataBuildError(f"{at}: a message needs a 'text' string")
        role = _role(message, record, at)
        tokens = tokenize(message["text"])
        movies: List[str] = []
        spans: List[Mention] = []
        for position, token in enumerate(tokens):
            if not is_movie_token(token):
                continue
            entity_id = vocab.movie2entity.get(token[1:])
            if entity_id is None:
                raise DataBuildError(f"{at}: unknown movie id {token} (not in the movie -> entity map)")
            entity = vocab.id2entity[entity_id]
            # Like CRSLab's files, only movies linked to DBpedia are annotated; the 812 unlinked ones
            # (kept in entity2id under their raw ReDial id) stay plain tokens.
            if is_dbpedia(entity):
                movies.append(entity)
                spans.append((position, position + 1, entity_id))
        entities: List[str] = []
        for link in linker.link(tokens, exclude=movies):
            spans.append((link.start, link.end, vocab.entity2id[link.entity]))
            if link.entity not in entities:
                entities.append(link.entity)
        dialog.append({
            "utt_id": utt_id,
            "role": role,
            "text": tokens,
            "movies": movies,
            "entity": entities,
            "word": [token for token in tokens if token in vocab.concept2id],
        })
        mentions.append(sorted(spans))
    return {"conv_id": str(conv_id), "dialog": dialog}, mentions
