"""The evaluation protocol on hand-made cases: repeat-aware recall, context exclusion, coverage, the samples
behind the batches, the test records, the shortcut baselines' rankings and the dump's turn bookkeeping."""
import math

import pytest
import torch

from crslab_c2crs.data.items import ItemCatalog, movie_mentions
from crslab_c2crs.data.shortcuts import ShortcutDataLoader, recent_movies
from crslab_c2crs.evaluator import BatchSamples, C2CRSEvaluator, rank_items, ranking_scores
from crslab_c2crs.model.shortcuts import PopularityRecommender, RepeatContextRecommender
from crslab_c2crs.predictions import merged_turns, sample_turns

# Five items (movies) with entity ids 10..14; entity 99 is not a movie.
ITEMS = [10, 11, 12, 13, 14]
MENTIONS = [5, 0, 9, 1, 3]


def evaluator(catalog=True):
    ev = C2CRSEvaluator("en")
    if catalog:
        ev.items = ItemCatalog(ITEMS, MENTIONS)
    return ev


def sample(context_entities, items=(), context_items=(), role="Recommender", turns=2):
    return {"role": role, "context_entities": list(context_entities), "context_items": list(context_items),
            "items": list(items), "context_tokens": [[1]] * turns}


class FakeLoader:
    """The two methods of a CRSLab loader that the evaluation watches, over hand-made samples."""

    def __init__(self, samples):
        self.dataset = samples

    def rec_process_fn(self):
        return [{"sample": s, "item": m} for s in self.dataset if s["role"] == "Recommender" for m in s["items"]]

    def rec_batchify(self, batch):
        return batch

    def conv_process_fn(self):
        return [s for s in self.dataset if s["role"] == "Recommender"]

    def conv_batchify(self, batch):
        return batch


# ---------------------------------------------------------------------------------------------- metrics
def test_ranking_scores_at_each_cutoff():
    ranks = list(range(60))
    at_0, at_5, missing = ranking_scores(ranks, 0), ranking_scores(ranks, 5), ranking_scores(ranks, 55)
    assert at_0["hit@1"] == at_0["mrr@1"] == at_0["ndcg@1"] == 1.0
    assert at_5["hit@1"] == 0.0 and at_5["hit@10"] == 1.0 and at_5["mrr@10"] == pytest.approx(1 / 6)
    assert at_5["ndcg@50"] == pytest.approx(1 / math.log2(7))
    assert all(value == 0.0 for value in missing.values())  # below the top 50
    assert set(ranking_scores([3, 1], 1, "new_")) == {f"new_{m}@{k}" for m in ("hit", "mrr", "ndcg")
                                                       for k in (1, 10, 50)}


def test_target_in_context_counts_for_all_targets_but_not_for_new_ones():
    ev = evaluator()
    ev.rec_evaluate([2, 0, 1], 2, context={2, 4})   # repeated target, ranked first
    ev.rec_evaluate([2, 0, 1], 0, context={2})      # new target, second
    ev.rec_evaluate([2, 0, 1], 3, context=set())    # empty context: new by definition, missed
    report = ev.report(mode="test")
    assert report["target_in_context"] == pytest.approx(1 / 3)
    assert report["hit@1"] == pytest.approx(1 / 3) and report["hit@10"] == pytest.approx(2 / 3)
    assert report["new_hit@1"] == 0.0 and report["new_hit@10"] == pytest.approx(1 / 2)
    assert report["new_mrr@10"] == pytest.approx((1 / 2 + 0) / 2)


def test_without_contexts_only_crslabs_metrics_are_reported():
    ev = evaluator(catalog=False)
    ev.rec_evaluate([1, 0], 1)  # CRSLab's own call: ranks and label only
    report = ev.report(mode="test")
    assert report["hit@1"] == 1.0
    assert not any(key.startswith("new_") or key in ("target_in_context", "coverage@10") for key in report)


def test_coverage_and_popularity_of_the_top_10_lists():
    ev = evaluator()
    ev.rec_evaluate([0, 2], 0, context=set())
    ev.rec_evaluate([2, 3], 3, context=set())
    report = ev.report(mode="val")
    assert report["coverage@10"] == pytest.approx(3 / 5)                      # items 0, 2, 3 of 5
    assert report["popularity@10"] == pytest.approx((5 + 9 + 9 + 1) / 4)      # mentions of every listed item
    ev.reset_metrics()
    assert "coverage@10" not in ev.report(mode="val")


def test_rank_items_is_stable_on_ties_and_drops_excluded_items():
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]])
    ranks, values = rank_items(scores)
    assert ranks == [[1, 2, 4, 0, 3]] and values == [[3.0, 3.0, 3.0, 1.0, 0.0]]
    ranks, _ = rank_items(scores, exclude=[{2, 0}])
    assert ranks == [[1, 4, 3]]  # fewer candidates than 50: only the remaining ones
    ranks, _ = rank_items(scores, exclude=[set()])
    assert ranks == [[1, 2, 4, 0, 3]]


# ---------------------------------------------------------------------------------------------- batches
def test_item_scores_are_scored_against_the_contexts_of_the_batch_samples():
    turns = [sample([99, 12], items=[12]),        # target in the context (a repeat)
             sample([11], items=[10, 13]),        # two new targets, one context movie
             sample([], items=[14])]              # empty context
    loader = FakeLoader(turns)
    ev = evaluator()
    ev.batch_samples = BatchSamples()
    ev.batch_samples.watch(loader)
    entries = loader.rec_process_fn()
    scores = torch.tensor([[0.0, 0.0, 5.0, 0.0, 0.0],   # ranks the repeated item 2 first
                           [4.0, 9.0, 0.0, 0.0, 0.0],   # item 1 (context) first, then target 0
                           [4.0, 9.0, 0.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0, 1.0]])
    loader.rec_batchify(entries[:2])
    ev.evaluate_item_scores(scores[:2], [2, 0])
    loader.rec_batchify(entries[2:])
    ev.evaluate_item_scores(scores[2:], [3, 4])
    report = ev.report(mode="val")
    assert report["target_in_context"] == pytest.approx(1 / 4)
    assert report["hit@1"] == pytest.approx(2 / 4)        # the repeat and the empty-context target
    assert report["new_hit@1"] == pytest.approx(1 / 3)
    assert report["new_hit@10"] == 1.0


def test_excluding_the_context_removes_its_movies_from_the_candidates():
    turns = [sample([99, 12, 11], items=[10, 12])]
    loader = FakeLoader(turns)
    ev = evaluator()
    ev.batch_samples, ev.exclude_context, ev.record_test = BatchSamples(), True, True
    ev.batch_samples.watch(loader)
    loader.rec_batchify(loader.rec_process_fn())
    ev.evaluate_item_scores(torch.tensor([[1.0, 9.0, 8.0, 0.0, 2.0]] * 2), [0, 2])
    report = ev.report(mode="test")
    new, repeated = (prediction for _, prediction in ev.test_records["rec"])
    assert [item for item, _ in new.top] == [4, 0, 3]      # items 1 and 2 were in the context
    assert new.rank == 1 and new.in_context is False
    assert repeated.rank is None and repeated.in_context is True   # a repeated target cannot be hit
    assert report["hit@10"] == pytest.approx(1 / 2) and report["new_hit@1"] == 0.0


def test_watched_loaders_keep_their_function_names():
    # the batch plan (crslab_c2crs.data.batching) finds a pass's stage, hence its batch caps, by these names
    from crslab_c2crs.data.batching import BatchPlan

    loader = FakeLoader([])
    BatchSamples().watch(loader)
    assert [BatchPlan("test").stage_of(fn) for fn in (loader.rec_batchify, loader.conv_batchify)] == ["rec", "conv"]


def test_a_label_that_is_not_the_batch_samples_target_is_an_error():
    loader = FakeLoader([sample([], items=[10])])
    ev = evaluator()
    ev.batch_samples = BatchSamples()
    ev.batch_samples.watch(loader)
    loader.rec_batchify(loader.rec_process_fn())
    with pytest.raises(RuntimeError, match="out of step"):
        ev.evaluate_item_scores(torch.zeros(1, 5), [3])
    with pytest.raises(RuntimeError, match="out of step"):
        ev.evaluate_item_scores(torch.zeros(1, 5), [0])  # the batch was used up


def test_records_are_kept_for_test_passes_only_with_their_positions():
    turns = [sample([], items=[10]), sample([], role="Seeker"), sample([11], items=[13])]
    loader = FakeLoader(turns)
    ev = evaluator()
    ev.batch_samples, ev.record_test = BatchSamples(), True
    ev.batch_samples.watch(loader)
    for mode in ("val", "test"):
        ev.reset_metrics()
        entries = loader.rec_process_fn()
        loader.rec_batchify([entries[1], entries[0]])  # batches may come in any order (length bucketing)
        ev.evaluate_item_scores(torch.zeros(2, 5), [3, 0])
        conv = loader.conv_process_fn()
        loader.conv_batchify([conv[1], conv[0]])
        ev.gen_evaluate("", ["b"])  # an empty hypothesis still gets its record
        ev.gen_evaluate("a", ["c"])
        ev.report(mode=mode)
    assert [(position, p.label) for position, p in ev.test_records["rec"]] == [(1, 3), (0, 0)]
    assert [(position, g.hypothesis, g.reference) for position, g in ev.test_records["conv"]] == [
        (1, "", "b"), (0, "a", "c")]


# ---------------------------------------------------------------------------------------------- items, baselines
def test_movie_mentions_count_every_turn_once():
    first = {"context_tokens": [[1]], "context_items": [10, 12], "items": [12]}
    second = {"context_tokens": [[1], [2]], "context_items": [10, 12, 12], "items": []}
    third = {"context_tokens": [[1], [2], [3]], "context_items": [10, 12, 12], "items": [10, 14]}
    assert movie_mentions([first, second, third]) == {10: 2, 12: 2, 14: 1}
    catalog = ItemCatalog.from_data([14, 10, 11], [first, second, third])
    assert catalog.train_mentions == [1, 2, 0]
    assert catalog.items_among([99, 11, 14, 11]) == [2, 0]


def test_recent_movies_puts_the_last_mentioned_first():
    turn = sample(context_entities=[10, 99, 12, 13], context_items=[10, 12, 10])
    assert recent_movies(turn) == [10, 12, 13, 99]  # 13 and 99 only linked in plain text; 99 is no movie


def shortcut_batch(*contexts):
    loader = ShortcutDataLoader({}, [sample([], items=[10], context_items=c) for c in contexts], {})
    return loader.rec_batchify(loader.rec_process_fn())


def test_popularity_ranks_by_training_mentions_whatever_the_context():
    model = PopularityRecommender({}, torch.device("cpu"), {}, {"item_entity_ids": ITEMS})
    model.fit(MENTIONS)
    ranks, _ = rank_items(model.recommend(shortcut_batch([], [13, 11]), "test"))
    assert ranks == [[2, 0, 4, 3, 1]] * 2


def test_repeat_context_ranks_the_context_most_recent_first_then_popularity():
    model = RepeatContextRecommender({}, torch.device("cpu"), {}, {"item_entity_ids": ITEMS})
    model.fit(MENTIONS)
    ranks, scores = rank_items(model.recommend(shortcut_batch([], [13, 11, 13]), "test"))
    assert ranks[0] == [2, 0, 4, 3, 1]                       # empty context: the popularity list
    assert ranks[1] == [3, 1, 2, 0, 4]                       # 13 (latest), 11, then by popularity
    assert scores[1][:2] == [9.0 + 2, 9.0 + 1]


# ---------------------------------------------------------------------------------------------- dump bookkeeping
def test_turns_are_merged_per_speaker_and_matched_to_samples():
    dialog = [{"role": "Seeker", "text": ["hi"]}, {"role": "Seeker", "text": ["there"]},
              {"role": "Recommender", "text": ["@1"]}, {"role": "Seeker", "text": ["thanks"]}]
    assert merged_turns(dialog) == [("Seeker", ["hi", "there"]), ("Recommender", ["@1"]), ("Seeker", ["thanks"])]
    samples = [sample([], role="Recommender", turns=1), sample([], role="Seeker", turns=2)]
    located = sample_turns([{"conv_id": 7, "dialog": dialog}], samples)
    assert [(conv, len(turns) - 1) for conv, turns in located] == [("7", 1), ("7", 2)]
    from crslab_c2crs.errors import MissingDataError

    with pytest.raises(MissingDataError, match="rebuild"):
        sample_turns([{"conv_id": 7, "dialog": dialog}], samples[:1])
