"""Movie slots: the movies a generated reply names, taken from the recommender's own ranking (the NTRD idea, Liang
et al. 2021), and how often a reply's movies agree with that ranking.

The decoders write movie tokens (``@<movieId>``) on their own, so a reply may name a movie the user has just named,
or one the recommender does not rank at all. Filling every movie token of a reply, in order, with the best-ranked
movie not yet said nor already placed makes the reply and the recommendations agree. The chat does this with
``movie_slots`` (default on, :mod:`crslab_c2crs.interactive.chat`); the test pass with ``eval_movie_slots``
(default off: its figures score the raw decoder), where every generated response is also counted against its
turn's ranking: ``movie_mentions`` (movies named per response) and ``mentions_top10_new`` (the share of those that
are in the turn's top 10 and not in its context), so the two settings can be compared on the same test set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

import torch

from crslab_c2crs.data.layout import REDIAL_DATASETS
from crslab_c2crs.data.movies import Movie
from crslab_c2crs.data.tokenize import movie_id

T = TypeVar("T")
TOP_K = 10  # the list a reply's movies are checked against, as the chat shows its top recommendations


def fill_slots(tokens: Sequence[T], is_slot: Callable[[T], bool], candidates: Iterable[T]) -> List[T]:
    """``tokens`` with every slot replaced by the next of ``candidates`` (best first); a slot left when the
    candidates run out is dropped."""
    filled, queue = [], iter(candidates)
    for token in tokens:
        if not is_slot(token):
            filled.append(token)
            continue
        candidate = next(queue, None)
        if candidate is not None:
            filled.append(candidate)
    return filled


class ResponseMovies:
    """The movie tokens of generated responses against the item columns of a recommender's scores.

    Args:
        item_entity_ids: the entity id of each score column (``side_data['item_entity_ids']``).
        movies: the ReDial movies (their ``@<movieId>`` token and entity id).
    """

    def __init__(self, item_entity_ids: Sequence[int], movies: Iterable[Movie]) -> None:
        self.column_of_entity = {entity: column for column, entity in enumerate(item_entity_ids)}
        self.column_of_movie: Dict[int, int] = {}
        self.token_of_column: Dict[int, str] = {}
        for movie in movies:
            column = self.column_of_entity.get(movie.entity_id)
            if column is not None:
                self.column_of_movie[movie.movie_id] = column
                self.token_of_column.setdefault(column, f"@{movie.movie_id}")

    def rankings(self, scores: torch.Tensor, context_entities: Sequence[Sequence[int]]) -> List[List[int]]:
        """Per row of ``scores`` ``(batch, n_items)``, the item columns best first without the movies of the row's
        context (``context_entities``: entity ids, padding and non-items ignored)."""
        rankings = []
        for row, entities in zip(scores.argsort(dim=1, descending=True).tolist(), context_entities):
            said = {self.column_of_entity[e] for e in entities if e in self.column_of_entity}
            rankings.append([column for column in row if column not in said])
        return rankings

    def fill(self, tokens: Sequence[str], ranking: Sequence[int]) -> List[str]:
        """``tokens`` with each movie token replaced by the next movie of ``ranking`` (item columns, best first)."""
        return fill_slots(tokens, lambda token: movie_id(token) is not None,
                          (self.token_of_column[c] for c in ranking if c in self.token_of_column))

    def agreement(self, tokens: Sequence[str], ranking: Sequence[int]) -> Tuple[int, int]:
        """(movies named in ``tokens``, how many of them are in the top :data:`TOP_K` of ``ranking``)."""
        top = set(ranking[:TOP_K])
        named = [movie_id(token) for token in tokens if movie_id(token) is not None]
        return len(named), sum(self.column_of_movie.get(movie) in top for movie in named)


class SlotEvaluation:
    """The test pass's side of movie slots for one system: counts each generated response's movies against its
    turn's ranking (``movie_mentions``, ``mentions_top10_new``) and, with ``eval_movie_slots``, fills them from it
    before the response is scored.

    Args:
        system: a CRSLab system (its ``opt``, ``vocab``, ``side_data`` and, when called, ``evaluator``).
        movies: the ReDial movies.
    """

    def __init__(self, system, movies: Iterable[Movie]) -> None:
        self.system = system
        self.enabled = bool(system.opt.get("eval_movie_slots", False))
        self.movies = ResponseMovies(list(system.side_data["item_entity_ids"]), movies)

    def __call__(self, generated: torch.Tensor, scores: torch.Tensor, context_entities: torch.Tensor) -> List[str]:
        """The hypotheses (space-joined tokens up to END) of ``generated`` ``(batch, T)``, each counted against the
        ranking of its row of ``scores`` ``(batch, n_items)`` without the movies of ``context_entities``
        ``(batch, L)``; filled from that ranking with ``eval_movie_slots``."""
        from crslab.evaluator.metrics.base import AverageMetric
        from crslab.system.utils.functions import ind2txt

        vocab, metrics = self.system.vocab, self.system.evaluator.gen_metrics
        rankings = self.movies.rankings(scores.detach().cpu(), context_entities.tolist())
        hypotheses = []
        for row, ranking in zip(generated.tolist(), rankings):
            tokens = ind2txt(row, vocab["ind2tok"], vocab["end"]).split()
            if self.enabled:
                tokens = self.movies.fill(tokens, ranking)
            named, in_top = self.movies.agreement(tokens, ranking)
            metrics.add("movie_mentions", AverageMetric(named))
            metrics.add("mentions_top10_new", AverageMetric(in_top, named))
            hypotheses.append(" ".join(tokens))
        return hypotheses


def slot_evaluation(system) -> Optional[SlotEvaluation]:
    """The test pass's :class:`SlotEvaluation` of ``system``; None for a dataset without ReDial's movies."""
    if system.opt.get("dataset") not in REDIAL_DATASETS:
        return None
    import crslab.config
    from crslab_c2crs.data.layout import redial_dir
    from crslab_c2crs.data.movies import load_movies

    folder = redial_dir(Path(crslab.config.DATASET_PATH).parent, system.opt["tokenize"])
    return SlotEvaluation(system, load_movies(str(folder)))
