"""ReDialReview: mention offsets across merged turns and truncation, review selection, CRSLab parity."""
import importlib
import json

import pytest

from crslab_c2crs.data.dataset import ReDialReviewDataset, merge_turn_mentions, recent_entities, truncate_context
from crslab_c2crs.data.layout import redial_dir
from crslab_c2crs.errors import MissingDataError

END = 2


def test_merged_same_role_turn_offsets():
    dialog = [{"role": "Seeker", "text": ["hi", "@1"]},
              {"role": "Seeker", "text": ["and", "tom", "hanks", "too"]},
              {"role": "Recommender", "text": ["try", "@2"]},
              {"role": "Seeker", "text": ["ok"]}]
    mentions = [[[1, 2, 10]], [[1, 3, 20]], [[1, 2, 30]], []]
    assert merge_turn_mentions(dialog, mentions) == [[(1, 2, 10), (3, 5, 20)], [(1, 2, 30)], []]


def test_truncation_drops_cut_mentions_and_rebases_the_rest():
    turns = [[11, 12, 13, 14], [21, 22, 23], [31, 32]]
    mentions = [[(0, 1, 100), (2, 4, 101)], [(1, 3, 200)], [(0, 2, 300)]]
    seq, kept = truncate_context(turns, mentions, END, limit=8)
    # full: 11 12 13 14 2 | 21 22 23 2 | 31 32 2  (12 ids) -> keep last 8, cut = 4
    assert seq == [2, 21, 22, 23, 2, 31, 32, 2]
    # (2, 4, 101) covered ids 2..3, before the cut; (1, 3, 200) -> full 6..8 -> 2..4
    assert kept == [(2, 4, 200), (5, 7, 300)]
    for start, end, _entity in kept:
        assert 0 <= start < end <= len(seq)


def test_truncation_drops_a_partly_cut_mention():
    seq, kept = truncate_context([[1, 2, 3, 4]], [[(1, 3, 7)]], END, limit=3)
    assert seq == [3, 4, 2] and kept == []  # the span started at full position 1, cut = 2


def test_truncation_keeps_a_mention_starting_exactly_at_the_cut():
    seq, kept = truncate_context([[5, 6, 7, 8]], [[(2, 4, 9)]], END, limit=3)
    assert seq == [7, 8, 2] and kept == [(0, 2, 9)]


def test_recent_entities_most_recent_first():
    assert recent_entities([[(0, 1, 5), (2, 3, 6)], [(0, 1, 5)]], [3, 1]) == [5, 6]


@pytest.fixture
def review_dataset(tiny_build, crslab_at):
    root, _stats = tiny_build
    crslab_at(root)
    return root, ReDialReviewDataset({"context_truncate": 20, "review_entity_limit": 2, "nb_review": 2,
                                      "info_truncate": 5}, "nltk")


def test_samples_match_crslab_and_carry_c2crs_fields(review_dataset):
    root, dataset = review_dataset
    stock = importlib.import_module("crslab.data.dataset.redial.redial").ReDialDataset({}, "nltk")
    token2id = json.loads((redial_dir(root) / "token2id.json").read_text())
    id2tok = {v: k for k, v in token2id.items()}
    for ours_split, stock_split in ((dataset.train_data, stock.train_data), (dataset.test_data, stock.test_data)):
        assert len(ours_split) == len(stock_split)
        for ours, theirs in zip(ours_split, stock_split, strict=True):
            assert {k: ours[k] for k in theirs} == theirs
            seq = ours["context_seq"]
            flat = [t for turn in theirs["context_tokens"] for t in turn + [END]]
            assert seq == flat[-20:]
            for start, end, entity in ours["context_mentions"]:
                assert 0 <= start < end <= len(seq)
                assert entity in ours["context_entities"]
                if end - start == 1 and id2tok[seq[start]].startswith("@"):
                    assert entity in ours["context_items"]
            assert len({e for e, _ids in ours["review_sentences"]}) <= 2
            assert all(1 <= len(ids) <= 5 for _e, ids in ours["review_sentences"])


def test_truncation_happens_and_mentions_survive(review_dataset):
    _root, dataset = review_dataset
    long_samples = [s for s in dataset.train_data if sum(len(t) + 1 for t in s["context_tokens"]) > 20]
    assert long_samples and all(len(s["context_seq"]) == 20 for s in long_samples)
    assert any(s["context_mentions"] for s in long_samples)


def test_review_selection_is_most_recent_first(review_dataset):
    _root, dataset = review_dataset
    sample = next(s for s in dataset.train_data if len({e for e, _ in s["review_sentences"]}) == 2)
    entities = [e for e, _ids in sample["review_sentences"]]
    assert entities[0] == entities[1]  # nb_review = 2: two sentences per entity, grouped
    order = [e for i, e in enumerate(entities) if i == 0 or entities[i - 1] != e]
    last_item = sample["context_items"][-1]
    if last_item in dataset.reviews:
        assert order[0] == last_item


def test_side_data(review_dataset):
    _root, dataset = review_dataset
    freq = dataset.side_data["token_freq"]
    assert len(freq) == len(dataset.tok2ind)
    # words of the responses the conv stage learns (Recommender turns); special tokens are not words (weight 1)
    special = set(dataset.special_token_idx.values())
    assert all(freq[idx] == 0 for idx in special) and freq[END] == 0
    recommender = [s for s in dataset.train_data if s["role"] == "Recommender"]
    assert 0 < len(recommender) < len(dataset.train_data)
    assert sum(freq) == sum(sum(t not in special for t in s["response"]) for s in recommender)
    repeats = dataset.side_data["token_repeats"]
    assert len(repeats) == len(freq) and all(repeats[idx] == 0 for idx in special)
    assert sum(repeats) == sum(sum(a == b and a not in special for a, b in zip(s["response"], s["response"][1:]))
                               for s in recommender)
    mask = dataset.side_data["copy_mask"]
    assert mask.dtype == bool and mask.shape == (len(dataset.tok2ind),) and 0 < mask.sum() < len(mask)
    assert dataset.side_data["review_corpus_version"] == 1


def test_missing_side_file_names_file_and_command(tiny_build, crslab_at, tmp_path):
    import shutil

    root, _stats = tiny_build
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    (redial_dir(copy) / "c2crs_reviews.json").unlink()
    crslab_at(copy)
    with pytest.raises(MissingDataError, match=r"c2crs_reviews\.json not found.*crslab_c2crs\.data build redial"):
        ReDialReviewDataset({}, "nltk")


def test_registered_in_crslab():
    import crslab.data

    assert crslab.data.dataset_register_table["ReDialReview"] is ReDialReviewDataset
    assert crslab.data.dataset_language_map["ReDialReview"] == "en"


def test_response_word_repeats_on_hand_made_samples():
    from crslab_c2crs.data.dataset import response_word_repeats

    samples = [{"role": "Recommender", "response": [1, 5, 5, 5, 6, 2]},
               {"role": "Seeker", "response": [1, 6, 6, 2]},  # not a response the conv stage learns
               {"role": "Recommender", "response": [1, 6, 7, 6, 6, 2, 2]}]
    assert response_word_repeats(samples, 8, {0, 1, 2, 3}) == [0, 0, 0, 0, 0, 2, 1, 0]
