"""The shared samplers of docs/methods.md §0: shuffle, ClassAwareSampler, DistributionSampler."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.samplers import class_aware, distribution, shuffle


def _labels(counts: list[int], seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)


def test_shuffle_is_a_seeded_permutation():
    labels = _labels([3, 2])
    order = shuffle(labels, np.random.default_rng(1))
    assert sorted(order) == list(range(5))
    assert np.array_equal(order, shuffle(labels, np.random.default_rng(1)))


def test_class_aware_epoch_is_n_max_times_classes_with_balanced_classes_in_runs_of_four():
    labels = _labels([10, 3, 1])  # n_max·C = 30 ≤ 4N = 56
    order = class_aware(labels, np.random.default_rng(0))
    assert len(order) == 30
    per_class = np.bincount(labels[order], minlength=3)
    assert np.all(np.abs(per_class - 30 / 3) <= 4)
    runs = labels[order][:28].reshape(-1, 4)  # 30 = 7 full runs + a cut-off one
    assert np.all(runs == runs[:, :1])


def test_class_aware_reshuffles_each_class_list_when_it_is_exhausted():
    labels = _labels([10, 3, 1])
    order = class_aware(labels, np.random.default_rng(2))
    stream = order[labels[order] == 1]  # class 1's samples in the order emitted
    members = sorted(np.flatnonzero(labels == 1))
    for start in range(0, len(stream) - 2, 3):  # every pass through its list visits each member once
        assert sorted(stream[start : start + 3]) == members
    assert set(order[labels[order] == 2]) == {int(np.flatnonzero(labels == 2)[0])}


def test_class_aware_length_is_capped_at_four_n():
    labels = _labels([100, 1, 1, 1, 1, 1])  # n_max·C = 600 > 4N = 420
    order = class_aware(labels, np.random.default_rng(0))
    assert len(order) == 420
    assert np.all(np.abs(np.bincount(labels[order]) - 420 / 6) <= 4)


def test_class_aware_is_deterministic_given_the_seed():
    labels = _labels([7, 4, 2])
    first = class_aware(labels, np.random.default_rng(5))
    assert np.array_equal(first, class_aware(labels, np.random.default_rng(5)))
    assert not np.array_equal(first, class_aware(labels, np.random.default_rng(6)))


def test_distribution_frequencies_follow_the_weights():
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    draws = distribution(weights, np.random.default_rng(0), 200_000)
    frequencies = np.bincount(draws, minlength=5) / len(draws)
    assert np.allclose(frequencies, weights / weights.sum(), atol=0.005)
    assert frequencies[4] == 0


def test_distribution_is_deterministic_and_rejects_bad_weights():
    weights = np.array([0.5, 0.5, 2.0])
    first = distribution(weights, np.random.default_rng(3), 50)
    assert np.array_equal(first, distribution(weights, np.random.default_rng(3), 50))
    for bad in (np.zeros(3), np.array([1.0, -1.0, 1.0])):
        with pytest.raises(ValueError, match="non-negative"):
            distribution(bad, np.random.default_rng(0), 5)
