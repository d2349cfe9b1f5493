"""``run_crslab.py --dump-predictions FILE``: the test set as JSON lines, one per Recommender turn and per other
turn that holds rec targets under the run's protocol (``rec_targets``: a Seeker turn naming a movie under ``all``).

Each line holds the conversation id and the turn's index among the conversation's turns (CRSLab merges
consecutive messages of one speaker into a turn; turn 0 opens the conversation and is never a target), the
context (one ``"Role: text"`` string per turn, ``@<movieId>`` written as the movie's title), the target movies
(ReDial and KG ids, title, the target's 0-based rank in the model's ranking or null below the top 50, and
whether the context mentioned it), the turn's role, the top-10 movies with their scores, and the generated and
the reference response exactly as the evaluator scored them (null where the test pass did not score the turn: a
turn without target movies has no ranking, a model without a decoder no response, a capped conv test only its
first batches).

The records come from the real test passes (:class:`~crslab_c2crs.evaluator.C2CRSEvaluator` with
``record_test``), each with the position of its sample in the pass's list of entries; the loaders list the
entries in dataset order (Recommender turns for the decoder; for recommendation one entry per target movie of the
protocol's target turns, :func:`~crslab_c2crs.data.targets.rec_entries`), which is how positions are mapped back
to turns here. The file is written atomically.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import crslab.config
from crslab_c2crs.atomic import atomic_write
from crslab_c2crs.data.layout import REDIAL_DATASETS, redial_dir
from crslab_c2crs.data.movies import Movie, load_movies
from crslab_c2crs.data.targets import RecTargets, is_target_turn
from crslab_c2crs.errors import ConfigError, MissingDataError
from crslab_c2crs.evaluator import C2CRSEvaluator, GenPrediction, RecPrediction


def check_supported(opt: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` before a run whose predictions cannot be dumped."""
    if opt.get("dataset") not in REDIAL_DATASETS:
        raise ConfigError(f"--dump-predictions: supported for the datasets {', '.join(REDIAL_DATASETS)}, "
                          f"not {opt.get('dataset')!r}")


def merged_turns(dialog: Sequence[Mapping[str, Any]]) -> List[Tuple[str, List[str]]]:
    """(role, tokens) of each turn, consecutive messages of one role merged as CRSLab merges them."""
    turns: List[Tuple[str, List[str]]] = []
    for utterance in dialog:
        if turns and turns[-1][0] == utterance["role"]:
            turns[-1][1].extend(utterance["text"])
        else:
            turns.append((utterance["role"], list(utterance["text"])))
    return turns


def sample_turns(conversations: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]]
                 ) -> List[Tuple[str, List[Tuple[str, List[str]]]]]:
    """Per sample, (conversation id, the turns up to and including its response turn).

    CRSLab emits one sample per turn after the first, conversation by conversation; the sample of turn ``k``
    has ``k`` context turns and the turn's role, which is checked.
    """
    located = []
    for conversation in conversations:
        turns = merged_turns(conversation["dialog"])
        for k in range(1, len(turns)):
            located.append((str(conversation["conv_id"]), turns[:k + 1]))
    if len(located) != len(samples):
        raise MissingDataError(f"test_data.json has {len(located)} turns after the first but the test set "
                               f"{len(samples)} samples; rebuild the data")
    for (conv_id, turns), sample in zip(located, samples):
        if len(sample["context_tokens"]) != len(turns) - 1 or sample["role"] != turns[-1][0]:
            raise MissingDataError(f"test sample of conversation {conv_id}, turn {len(turns) - 1} does not match "
                                   f"test_data.json; rebuild the data")
    return located


def _movie_fields(entity: int, movies: Mapping[int, Movie]) -> Dict[str, Any]:
    movie = movies.get(entity)
    return {"movie_id": movie.movie_id if movie else None, "entity_id": entity,
            "title": movie.display if movie else None}


def _render(tokens: Sequence[str], titles: Mapping[str, str]) -> str:
    return " ".join(titles.get(token, token) for token in tokens)


def prediction_lines(system: Any) -> Iterator[Dict[str, Any]]:
    """The dump's records of ``system`` after its test passes (see the module docstring), in dataset order."""
    evaluator = system.evaluator
    if not isinstance(evaluator, C2CRSEvaluator) or not evaluator.record_test or evaluator.items is None:
        raise RuntimeError("the evaluator did not record the test set; attach(system, record_test=True) first")
    dpath = str(redial_dir(Path(crslab.config.DATASET_PATH).parent, system.opt["tokenize"]))
    with open(os.path.join(dpath, "test_data.json"), encoding="utf-8") as handle:
        conversations = json.load(handle)
    samples = system.test_dataloader.dataset
    located = sample_turns(conversations, samples)
    table = load_movies(dpath)
    movies = {movie.entity_id: movie for movie in table}
    titles = {f"@{movie.movie_id}": movie.display for movie in table}
    items = evaluator.items

    protocol = RecTargets.from_opt(system.opt).eval
    turn_of_rec: List[Tuple[int, int]] = []   # rec entry position -> (sample index, target index in the turn)
    recommender_turns: List[int] = []         # conv entry position -> sample index
    lines: List[int] = []                     # the samples that get a line
    for index, sample in enumerate(samples):
        target = is_target_turn(sample, protocol)
        if sample["role"] == "Recommender":
            recommender_turns.append(index)
        if target:
            turn_of_rec.extend((index, position) for position in range(len(sample["items"])))
        if target or sample["role"] == "Recommender":
            lines.append(index)
    ranked: Dict[Tuple[int, int], RecPrediction] = {}
    for position, prediction in evaluator.test_records["rec"]:
        index, target = turn_of_rec[position]
        if items.index_of(samples[index]["items"][target]) != prediction.label:
            raise RuntimeError(f"recorded recommendation {position} does not belong to test sample {index}")
        ranked[index, target] = prediction
    generated: Dict[int, GenPrediction] = {recommender_turns[position]: prediction
                                           for position, prediction in evaluator.test_records["conv"]}

    for index in lines:
        sample = samples[index]
        conv_id, turns = located[index]
        predictions = [ranked.get((index, target)) for target in range(len(sample["items"]))]
        first = next((p for p in predictions if p is not None), None)
        reply: Optional[GenPrediction] = generated.get(index)
        yield {
            "conv_id": conv_id,
            "turn": len(turns) - 1,
            "role": sample["role"],
            "context": [f"{role}: {_render(tokens, titles)}" for role, tokens in turns[:-1]],
            "targets": [dict(_movie_fields(entity, movies), rank=p.rank if p else None,
                             in_context=p.in_context if p else None)
                        for entity, p in zip(sample["items"], predictions)],
            # every target of a turn shares its context, hence its ranking
            "top10": None if first is None else [
                dict(_movie_fields(items.entity_ids[item], movies), score=round(score, 6))
                for item, score in first.top],
            "response": reply.hypothesis if reply else None,
            "reference": reply.reference if reply else None,
        }


def write_predictions(system: Any, path: str | Path) -> int:
    """Write :func:`prediction_lines` of ``system`` to ``path`` as JSON lines, atomically; returns the count."""
    lines = [json.dumps(line, ensure_ascii=False) + "\n" for line in prediction_lines(system)]
    atomic_write(path, lambda stream: stream.write("".join(lines).encode("utf-8")))
    return len(lines)
