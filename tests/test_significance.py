"""bench.significance: the paired permutation test on hand-made per-target hits, where the exact p-value is known."""
import pytest

from bench.significance import compare, hits_at, paired_permutation_test, seed_mean_hits


def test_exact_sign_flip_p_value():
    # 6 targets where A hits and B misses, 4 ties: of the 2**6 sign patterns of the non-zero differences only
    # "all +" and "all -" reach |mean difference| >= 0.6, so p = 2 / 64 (the test is exact: 2**10 <= resamples)
    a = [1, 1, 1, 1, 1, 1, 0, 0, 1, 1]
    b = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    test = paired_permutation_test(a, b)
    assert test.n == 10 and test.difference == pytest.approx(0.6)
    assert test.p_value == pytest.approx(2 / 64)
    assert paired_permutation_test(b, a).p_value == pytest.approx(2 / 64)


def test_no_difference_is_p_one_and_opposite_differences_cancel():
    assert paired_permutation_test([1, 0, 1], [1, 0, 1]).p_value == 1.0
    # differences +1 and -1: the observed mean is 0, which every sign pattern reaches
    assert paired_permutation_test([1, 0], [0, 1]).p_value == pytest.approx(1.0)


def test_large_difference_over_many_targets_is_significant():
    a = [1.0] * 300 + [0.0] * 700
    b = [0.0] * 150 + [1.0] * 150 + [0.0] * 700
    test = paired_permutation_test(a, b)
    assert test.difference == pytest.approx(0.15) and test.p_value < 1e-3


def test_hits_are_averaged_over_seeds_and_paired_by_target():
    seeds_a = [{"c1/1/0": 0, "c1/3/0": None, "c2/1/0": 12}, {"c1/1/0": 3, "c1/3/0": 9, "c2/1/0": 60}]
    assert hits_at([0, None, 9, 10], 10).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert seed_mean_hits(seeds_a, 10) == {"c1/1/0": 1.0, "c1/3/0": 0.5, "c2/1/0": 0.0}
    seeds_b = [{"c1/1/0": None, "c1/3/0": None, "c2/1/0": None}]
    test = compare(seeds_a, seeds_b, 10)
    assert (test.n, test.mean_a, test.mean_b) == (3, pytest.approx(0.5), 0.0)


def test_runs_on_other_targets_are_refused():
    with pytest.raises(ValueError, match="different targets"):
        compare([{"a": 0}], [{"b": 0}], 10)
    with pytest.raises(ValueError, match="seeds of one model"):
        seed_mean_hits([{"a": 0}, {"b": 0}], 10)
    with pytest.raises(ValueError, match="1-d arrays"):
        paired_permutation_test([1, 0], [1])
