"""Consistency checks on the vocabularies and the KG before anything is written.

Each check raises :class:`DataBuildError` naming the file and the offending record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

from crslab_c2crs.data.builder.errors import DataBuildError

SPECIAL_TOKENS = {"__pad__": 0, "__start__": 1, "__end__": 2, "__unk__": 3}


def check_token2id(token2id: Mapping[str, int], path: Path) -> None:
    """CRSLab's special ids must be pad 0, start 1, end 2, unk 3, and ids must be 0..n-1."""
    for token, idx in SPECIAL_TOKENS.items():
        if token2id.get(token) != idx:
            raise DataBuildError(f"{path}: special token {token!r} must have id {idx}, got {token2id.get(token)!r}")
    ids = sorted(token2id.values())
    if ids != list(range(len(ids))):
        raise DataBuildError(f"{path}: token ids must be exactly 0..{len(ids) - 1}")


def check_entity_id(entity_id: object, n_entity: int, path: Path, record: str) -> int:
    """Return ``entity_id`` if it is an int in ``1..n_entity-1`` (0 is CRSLab's pad entity)."""
    if isinstance(entity_id, bool) or not isinstance(entity_id, int) or not 0 < entity_id < n_entity:
        raise DataBuildError(f"{path}, {record}: entity id {entity_id!r} out of range 1..{n_entity - 1}")
    return entity_id


def n_entities(entity2id: Mapping[str, int], path: Path) -> int:
    """CRSLab's ``n_entity`` (max id + 1) after checking every id is a positive int."""
    if not entity2id:
        raise DataBuildError(f"{path}: empty entity vocabulary")
    for name, idx in entity2id.items():
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 1:
            raise DataBuildError(f"{path}, entity {name!r}: id {idx!r} must be a positive int (0 is padding)")
    return max(entity2id.values()) + 1


def check_movie_ids(movie_ids: List[int], n_entity: int, path: Path) -> None:
    for i, entity_id in enumerate(movie_ids):
        check_entity_id(entity_id, n_entity, path, f"item {i}")


def check_movie2entity(movie2entity: Dict[str, int], movie_ids: List[int], n_entity: int, path: Path) -> None:
    """Every ReDial movie must map to an in-range entity that CRSLab treats as an item (movie_ids.json)."""
    items = set(movie_ids)
    for movie, entity_id in movie2entity.items():
        check_entity_id(entity_id, n_entity, path, f"movie {movie}")
        if entity_id not in items:
            raise DataBuildError(f"{path}, movie {movie}: entity id {entity_id} is not in movie_ids.json")


def check_subkg(subkg: Dict[str, list], n_entity: int, path: Path) -> None:
    """Heads and tails of ``{head: [[relation, tail], ...]}`` must be in range (CRSLab indexes id2entity) and
    relations non-negative integers (CRSLab renumbers them through a dict, so ``"69"`` and ``69`` would become
    two relations, and the R-GCN indexes its weights with them)."""
    for head, edges in subkg.items():
        if not head.isdigit():
            raise DataBuildError(f"{path}, head {head!r}: head must be a decimal entity id")
        check_entity_id(int(head), n_entity, path, f"head {head}")
        if not isinstance(edges, list):
            raise DataBuildError(f"{path}, head {head}: edges must be a list of [relation, tail], got {edges!r}")
        for edge in edges:
            if not (isinstance(edge, list) and len(edge) == 2):
                raise DataBuildError(f"{path}, head {head}: edge {edge!r} must be [relation, tail]")
            relation = edge[0]
            if isinstance(relation, bool) or not isinstance(relation, int) or relation < 0:
                raise DataBuildError(f"{path}, head {head}, edge {edge}: relation {relation!r} must be a "
                                     f"non-negative integer")
            check_entity_id(edge[1], n_entity, path, f"head {head}, edge {edge}")


def check_mask(length: int, vocab_size: int, path: Path) -> None:
    if length != vocab_size:
        raise DataBuildError(f"{path}: copy mask has {length} entries, token2id.json has {vocab_size} tokens")
