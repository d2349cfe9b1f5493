"""Movie slots in the test pass (crslab_c2crs.movie_slots): hand-made vocabularies and scores, then every model
through run_crslab.py on the tiny data with the counts reported and ``eval_movie_slots`` on."""
from types import SimpleNamespace

import pytest
import torch

from crslab.evaluator.metrics.base import Metrics
from crslab_c2crs.data.movies import Movie
from crslab_c2crs.data.tokenize import movie_id
from crslab_c2crs.movie_slots import ResponseMovies, SlotEvaluation, fill_slots
from tests.test_evaluation_runs import run_with_dump

PAD, END = 0, 2
# ids 10-13 are the movie tokens of movies 101-104 (entities 50-53); movie 105 (entity 54) has no token
IND2TOK = {0: "__pad__", 1: "__start__", 2: "__end__", 3: "__unk__", 4: "have", 5: "you", 6: "seen",
           10: "@101", 11: "@102", 12: "@103", 13: "@104", 14: "@999"}
MOVIES = [Movie(100 + k, 49 + k, f"Film {k}", 2000 + k) for k in range(1, 6)]
ITEMS = [54, 53, 52, 51, 50]  # score columns: entity 54 first


def test_fill_slots_takes_the_candidates_in_order_and_drops_a_slot_left_over():
    assert fill_slots(list("a1b2c3"), str.isdigit, "XY") == list("aXbYc")


def test_response_movies_rank_fill_and_count():
    movies = ResponseMovies(ITEMS, MOVIES)
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])  # entity 54 > 53 > 52 > 51 > 50
    (ranking,) = movies.rankings(scores, [[53, 7, 0]])  # entity 53 (movie 104) is in the context; 7 is no item
    assert ranking == [0, 2, 3, 4]
    assert movies.fill("have you seen @104 or @101".split(), ranking) == "have you seen @105 or @103".split()
    # @101 is in the top 10; @104 was said in the context; @999 is not scored
    assert movies.agreement("@104 @101 @999 ok".split(), ranking) == (3, 1)


def test_slot_evaluation_counts_and_fills(monkeypatch):
    metrics = Metrics()
    system = SimpleNamespace(opt={"eval_movie_slots": False}, vocab={"end": END, "pad": PAD, "ind2tok": IND2TOK},
                             side_data={"item_entity_ids": ITEMS}, evaluator=SimpleNamespace(gen_metrics=metrics))
    generated = torch.tensor([[4, 11, END, PAD], [4, 5, 6, END]])  # @102 (entity 51), no movie
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]] * 2)
    context = torch.tensor([[53, 52, 51], [0, 0, 0]])  # the first row's movie was said already
    assert SlotEvaluation(system, MOVIES)(generated, scores, context) == ["have @102", "have you seen"]
    assert metrics.get("movie_mentions") == pytest.approx(0.5) and metrics.get("mentions_top10_new") == 0.0
    metrics.clear()
    system.opt["eval_movie_slots"] = True
    filled = SlotEvaluation(system, MOVIES)(generated, scores, context)
    assert filled == ["have @105", "have you seen"]  # the best movie not said, token in the vocabulary or not
    assert metrics.get("mentions_top10_new") == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD", "C2CRS"])
def test_every_models_test_pass_counts_and_fills_movie_slots(model, tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = [f"checkpoint_dir=slots_{model}"] if model == "C2CRS" else []
    test, lines = run_with_dump(model, tiny_root, tmp_path, extra + ["eval_movie_slots=true"])
    # the dump holds each response as scored: filled, its first 10 movies are the turn's top 10
    named = [sum(movie_id(token) is not None for token in line["response"].split()) for line in lines]
    assert test["movie_mentions"] == pytest.approx(sum(named) / len(named))
    if sum(named):
        assert test["mentions_top10_new"] == pytest.approx(sum(min(n, 10) for n in named) / sum(named))


def test_eval_movie_slots_needs_redials_movies(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from crslab_c2crs.cli import main

    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parent.parent / "config/c2crs/tgredial.yaml"
    code = main(["-c", str(config), "--data-root", str(tmp_path), "--set", "eval_movie_slots=true"])
    assert code == 2 and "eval_movie_slots: the test pass fills movie slots from ReDial's movies" in \
        capsys.readouterr().err
