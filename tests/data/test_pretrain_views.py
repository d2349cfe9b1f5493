"""Pre-training views that ids cannot match (crslab_c2crs.data.pretrain_views): a masked history view holds no
movie token and no mention token, entity dropout is seeded and per view, the rec and conv batches never change."""
import random

import pytest
import torch

from crslab_c2crs.data.pretrain_views import PretrainViews, pretrain_view
from crslab_c2crs.errors import ConfigError

UNK, MOVIE_A, MOVIE_B = 3, 50, 51
SAMPLE = {"context_seq": [10, MOVIE_A, 11, 12, 13, 2, 14, MOVIE_B, 15, 2],
          # @a (a movie), "tom hanks" (an actor) and an unlinked @b
          "context_mentions": [(1, 2, 101), (3, 5, 201)],
          "context_entities": [101, 201, 301],
          "review_sentences": [(101, [20, 21]), (201, [22]), (301, [23, 24])],
          "items": [101], "role": "Recommender"}


def test_a_masked_history_view_holds_no_movie_and_no_mention_token():
    view = pretrain_view(SAMPLE, PretrainViews(pretrain_mask_mentions=True), {MOVIE_A, MOVIE_B}, UNK)
    assert view["context_seq"] == [10, UNK, 11, UNK, UNK, 2, 14, UNK, 15, 2]
    assert not {MOVIE_A, MOVIE_B, 12, 13} & set(view["context_seq"])
    assert view["context_mentions"] == SAMPLE["context_mentions"]  # the fine level's word units stay
    assert view["context_entities"] == SAMPLE["context_entities"]
    assert SAMPLE["context_seq"][1] == MOVIE_A  # the sample itself is never changed


def test_entity_dropout_is_seeded_and_independent_per_view():
    options = PretrainViews(pretrain_entity_dropout=0.5)
    views = []
    for _ in range(2):
        random.seed(7)
        views.append([pretrain_view(SAMPLE, options, set(), UNK) for _ in range(20)])
    assert views[0] == views[1]  # one seed, one draw
    history = [{entity for _, _, entity in view["context_mentions"]} for view in views[0]]
    kg = [set(view["context_entities"]) for view in views[0]]
    assert any(h != k & {101, 201} for h, k in zip(history, kg))  # the views drop independently
    for view in views[0]:
        dropped = [span for span in SAMPLE["context_mentions"] if span not in view["context_mentions"]]
        for start, end, _ in dropped:  # a dropped mention's tokens no longer name it
            assert view["context_seq"][start:end] == [UNK] * (end - start)


def test_the_paper_views_are_the_samples_themselves():
    assert pretrain_view(SAMPLE, PretrainViews(), set(), UNK) is SAMPLE


@pytest.mark.parametrize("opt, message", [({"pretrain_mask_mentions": "yes"}, "pretrain_mask_mentions: 'yes'"),
                                          ({"pretrain_entity_dropout": 1.0}, "pretrain_entity_dropout: 1.0"),
                                          ({"pretrain_entity_dropout": float("nan")}, "pretrain_entity_dropout")])
def test_bad_values_are_named(opt, message):
    with pytest.raises(ConfigError, match=message):
        PretrainViews.from_opt(opt)


def test_only_pretraining_batches_change(tiny_build, crslab_at):
    from crslab_c2crs.data.dataloader import C2CRSDataLoader
    from crslab_c2crs.data.dataset import ReDialReviewDataset

    root, _stats = tiny_build
    crslab_at(root)
    dataset = ReDialReviewDataset({}, "nltk")
    plain = C2CRSDataLoader({}, dataset.train_data, dataset.vocab)
    masked = C2CRSDataLoader({"pretrain_mask_mentions": True}, dataset.train_data, dataset.vocab)
    entries = masked.pretrain_process_fn()[:16]
    batch = masked.pretrain_batchify(entries)
    movie_ids = [index for token, index in dataset.vocab["tok2ind"].items() if token.startswith("@")]
    assert not torch.isin(batch["context"], torch.tensor(movie_ids)).any() and bool(batch["history_ids_hidden"])
    assert torch.isin(plain.pretrain_batchify(entries)["context"], torch.tensor(movie_ids)).any()
    rec = masked.rec_process_fn()[:16]
    assert torch.equal(masked.rec_batchify(rec)["context"], plain.rec_batchify(rec)["context"])
