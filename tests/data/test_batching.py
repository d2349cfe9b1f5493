"""Length bucketing and batch caps (``crslab_c2crs.data.batching``), used by every model's loader."""
from __future__ import annotations

import random

import pytest

from crslab_c2crs.data.batching import BatchPlan, bucketed_batches, crslab_batches, sample_length

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(1, 200) for _ in range(1000)]


def _padded_tokens(batches, lengths):
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)


def test_every_sample_exactly_once_and_padding_cut():
    random.seed(3)
    batches = bucketed_batches(LENGTHS, 32, shuffle=True, pool_batches=10)
    assert sorted(i for batch in batches for i in batch) == list(range(len(LENGTHS)))
    random.seed(3)
    plain = crslab_batches(len(LENGTHS), 32, shuffle=True)
    assert _padded_tokens(batches, LENGTHS) < 0.7 * _padded_tokens(plain, LENGTHS)


def test_training_order_is_deterministic_under_the_seed_and_varies_with_it():
    def order(seed):
        random.seed(seed)
        return bucketed_batches(LENGTHS, 32, shuffle=True, pool_batches=10)

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_evaluation_order_has_no_randomness():
    state = random.getstate()
    first = bucketed_batches(LENGTHS, 32, shuffle=False, pool_batches=10)
    assert random.getstate() == state
    assert first == bucketed_batches(LENGTHS, 32, shuffle=False, pool_batches=10)


def test_off_switch_reproduces_crslab_get_data_bit_for_bit():
    """CRSLab 0.1.2's BaseDataLoader.get_data: list(range(n)), random.shuffle, consecutive slices."""
    random.seed(7)
    order = list(range(103))
    random.shuffle(order)
    expected = [order[i:i + 10] for i in range(0, 103, 10)]
    random.seed(7)
    plan = BatchPlan("train", bucketing=False, shuffle_train=False)
    assert plan.batches([{}] * 103, 10, True, "rec") == expected
    # CRSLab's KGSF asks for its training data unshuffled: kept so with shuffle_train off
    assert plan.batches([{}] * 103, 10, False, "rec") == [list(range(i, min(i + 10, 103))) for i in range(0, 103, 10)]


def test_caps_per_split_and_stage():
    opt = {"length_bucketing": True, "rec": {"epoch": 1, "max_batches": 2, "test_max_batches": 3},
           "conv": {"epoch": 1, "valid_max_batches": 1}}
    samples = [{"context_seq": [0] * n} for n in LENGTHS[:100]]
    assert len(BatchPlan.from_opt(opt, "train").batches(samples, 10, True, "rec")) == 2
    assert len(BatchPlan.from_opt(opt, "train").batches(samples, 10, True, "conv")) == 10
    assert len(BatchPlan.from_opt(opt, "valid").batches(samples, 10, False, "conv")) == 1
    # an evaluation cap keeps the same first samples with bucketing on and off
    test_on = BatchPlan.from_opt(opt, "test").batches(samples, 10, False, "rec")
    test_off = BatchPlan.from_opt({**opt, "length_bucketing": False}, "test").batches(samples, 10, False, "rec")
    assert sorted(i for b in test_on for i in b) == sorted(i for b in test_off for i in b) == list(range(30))


@pytest.mark.parametrize("sample, length", [
    ({"sample": {"context_seq": [1, 2, 3]}}, 3),
    ({"context_tokens": [[1, 2], [3, 4, 5]], "context_entities": [1]}, 5),
    ({"context_tokens": [], "context_entities": [4, 5], "context_words": [1]}, 3),
    ([1, 2], 0),
])
def test_sample_length_understands_every_loader(sample, length):
    assert sample_length(sample) == length
