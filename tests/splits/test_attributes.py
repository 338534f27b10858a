"""Tests for splits/attributes.py: size-rank merging of clusters (docs/benchmarks.md §3, §7(a), §7(l))."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from splits.attributes import attribute_lists, cluster_class, cluster_classes, kmeans

# Cluster sizes: c2 = 10, c1 = 7, c4 = 7, c0 = 5, c3 = 3, c5 = 2 (34 members).
# c1 and c4 tie at 7; c4 holds the smallest sample index of the class, so c4 ranks before c1,
# and the tie falls across the attribute boundary (ranks 1 | 2).
# Ranks: 0 c2, 1 c4, 2 c1, 3 c0, 4 c3, 5 c5 → attribute 0 = c2 + c4, 1 = c1 + c0, 2 = c3 + c5.
SIZES = {0: 5, 1: 7, 2: 10, 3: 3, 4: 7, 5: 2}
RANKED = [2, 4, 1, 0, 3, 5]


def make_class() -> tuple[np.ndarray, np.ndarray]:
    """Sample indices (ascending, with gaps) and their cluster ids, shuffled, c4 at the front."""
    multiset = np.concatenate([np.full(size, k) for k, size in SIZES.items()])
    rest = list(multiset)
    rest.remove(4)
    rest.remove(1)
    clusters = np.concatenate([[4, 1], np.random.default_rng(3).permutation(rest)])
    samples = 1000 + 3 * np.arange(len(clusters))
    return samples, clusters


def members(samples: np.ndarray, clusters: np.ndarray, k: int) -> np.ndarray:
    return samples[clusters == k]


def test_merge_by_size_rank() -> None:
    samples, clusters = make_class()
    lists = attribute_lists(samples, clusters, 6, seed=25, class_id=0)
    assert len(lists) == 3
    for attribute in range(3):
        first, second = RANKED[2 * attribute], RANKED[2 * attribute + 1]
        a, b = members(samples, clusters, first), members(samples, clusters, second)
        got = lists[attribute]
        assert len(got) == len(a) + len(b)
        # The larger (earlier-ranked) cluster comes first, then the other one.
        assert sorted(got[: len(a)]) == sorted(a)
        assert sorted(got[len(a) :]) == sorted(b)
    assert [len(x) for x in lists] == [17, 12, 5]


def test_size_tie_goes_to_cluster_with_smallest_sample_index() -> None:
    samples, clusters = make_class()
    lists = attribute_lists(samples, clusters, 6, seed=25, class_id=0)
    # c4 (holds sample 1000) beats c1 (holds 1003) for rank 1 → c4 is in attribute 0.
    assert samples[0] in lists[0]
    assert set(members(samples, clusters, 4)) <= set(lists[0])
    assert set(members(samples, clusters, 1)) <= set(lists[1])
    # Swap which of the tied clusters holds the smallest index: the outcome swaps too.
    swapped = np.where(clusters == 4, 1, np.where(clusters == 1, 4, clusters))
    lists = attribute_lists(samples, swapped, 6, seed=25, class_id=0)
    assert set(members(samples, swapped, 1)) <= set(lists[0])
    assert set(members(samples, swapped, 4)) <= set(lists[1])


def test_ranking_ignores_cluster_ids() -> None:
    # Relabel the clusters arbitrarily: the attribute lists hold the same sample sets.
    samples, clusters = make_class()
    relabel = np.array([3, 5, 0, 1, 2, 4])
    a = attribute_lists(samples, clusters, 6, seed=1, class_id=0)
    b = attribute_lists(samples, relabel[clusters], 6, seed=1, class_id=0)
    assert [sorted(x) for x in a] == [sorted(x) for x in b]


def test_every_member_exactly_once() -> None:
    samples, clusters = make_class()
    lists = attribute_lists(samples, clusters, 6, seed=25, class_id=2)
    everything = np.concatenate(lists)
    assert len(everything) == len(samples)
    np.testing.assert_array_equal(np.sort(everything), samples)


def test_within_cluster_order_is_seeded_permutation() -> None:
    samples, clusters = make_class()
    a = attribute_lists(samples, clusters, 6, seed=25, class_id=0)
    b = attribute_lists(samples, clusters, 6, seed=25, class_id=0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    other = attribute_lists(samples, clusters, 6, seed=26, class_id=0)
    assert [sorted(x) for x in other] == [sorted(x) for x in a]
    assert any(not np.array_equal(x, y) for x, y in zip(a, other, strict=True))
    # The order is random, not the listing order.
    assert not np.array_equal(a[0][:10], np.sort(a[0][:10]))


def test_within_cluster_order_depends_on_class_id() -> None:
    samples, clusters = make_class()
    a = attribute_lists(samples, clusters, 6, seed=25, class_id=0)
    b = attribute_lists(samples, clusters, 6, seed=25, class_id=1)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_permutation_generator_per_spec() -> None:
    # docs/benchmarks.md §7(a): numpy Generator from SeedSequence([seed, class_id, cluster_rank]),
    # permuting the cluster's members in sorted sample order.
    samples, clusters = make_class()
    seed, class_id = 25, 7
    lists = attribute_lists(samples, clusters, 6, seed=seed, class_id=class_id)
    for attribute in range(3):
        expected = []
        for rank in (2 * attribute, 2 * attribute + 1):
            rng = np.random.default_rng(np.random.SeedSequence([seed, class_id, rank]))
            expected.append(rng.permutation(members(samples, clusters, RANKED[rank])))
        np.testing.assert_array_equal(lists[attribute], np.concatenate(expected))


def test_nine_clusters_three_per_attribute() -> None:
    # K = 9: attribute a takes size ranks [3a, 3a + 3).
    sizes = [9, 8, 7, 6, 5, 4, 3, 2, 1]  # cluster k has size sizes[k] → rank k
    clusters = np.random.default_rng(0).permutation(np.repeat(np.arange(9), sizes))
    samples = np.arange(len(clusters))
    lists = attribute_lists(samples, clusters, 9, seed=0, class_id=0)
    assert [len(x) for x in lists] == [9 + 8 + 7, 6 + 5 + 4, 3 + 2 + 1]
    assert set(lists[2]) == set(samples[clusters >= 6])


def test_unsorted_samples_rejected() -> None:
    samples, clusters = make_class()
    with pytest.raises(ValueError):
        attribute_lists(samples[::-1], clusters, 6, seed=0, class_id=0)


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(6, 8))
    truth = np.repeat(np.arange(6), 15)
    features = centres[truth] + rng.normal(scale=0.5, size=(len(truth), 8))
    return features.astype(np.float32), truth


@pytest.mark.parametrize("k", [1, 2, 4, 5, 7])
def test_cluster_class_rejects_k_not_multiple_of_3(k: int) -> None:
    features, _ = blobs()
    with pytest.raises(ValueError):
        cluster_class(features, k, seed=0)


def test_cluster_class_same_seed_same_labels() -> None:
    features, truth = blobs()
    a = cluster_class(features, 6, seed=25)
    b = cluster_class(features, 6, seed=25)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (len(features),)
    assert set(a.tolist()) == set(range(6))
    # Well-separated blobs are recovered: the cluster id is constant within each blob and distinct.
    mapping = {int(t): {int(x) for x in a[truth == t]} for t in range(6)}
    assert all(len(ids) == 1 for ids in mapping.values())
    assert len({next(iter(ids)) for ids in mapping.values()}) == 6


def relu_blobs(rows: int = 600, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Overlapping non-negative blobs of unequal sizes, like pooled CNN features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.8, size=(6, dim))
    truth = rng.choice(6, size=rows, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    return np.maximum(centres[truth] + rng.normal(size=(rows, dim)), 0).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_objective_matches_scikit_learn(seed: int) -> None:
    """Same algorithm (k-means++ seeding, Lloyd, best of 10): the inertia is within 1% of
    scikit-learn's, and no worse than 1% above it."""
    from sklearn.cluster import KMeans

    features = relu_blobs(seed=seed)
    labels, inertia = kmeans(features, 6, seed=25)
    reference = KMeans(n_clusters=6, n_init=10, random_state=25).fit(features).inertia_
    centred = features - features.mean(axis=0)
    recomputed = sum(
        ((centred[labels == k] - centred[labels == k].mean(axis=0)) ** 2).sum() for k in range(6)
    )
    assert inertia == pytest.approx(recomputed, rel=1e-3)
    assert inertia <= reference * 1.01
    assert set(labels.tolist()) == set(range(6))


def test_kmeans_uses_its_seed() -> None:
    features = relu_blobs()
    a, _ = kmeans(features, 6, seed=1, n_init=1)
    b, _ = kmeans(features, 6, seed=2, n_init=1)
    c, _ = kmeans(features, 6, seed=1, n_init=1)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


def test_cluster_classes_same_for_any_workers_and_threads() -> None:
    import torch

    classes = [relu_blobs(rows=200 + 50 * c, seed=c) for c in range(4)]
    threads = torch.get_num_threads()
    one = cluster_classes(classes.__getitem__, 4, 6, seed=7, workers=1)
    torch.set_num_threads(2)
    try:
        two = cluster_classes(classes.__getitem__, 4, 6, seed=7, workers=2)
    finally:
        torch.set_num_threads(threads)
    for (labels_a, digest_a), (labels_b, digest_b), features in zip(one, two, classes, strict=True):
        np.testing.assert_array_equal(labels_a, labels_b)
        assert digest_a == digest_b == hashlib.sha256(features.tobytes()).hexdigest()
    assert torch.get_num_threads() == threads


def test_cluster_class_with_fewer_rows_than_clusters_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot form 6 clusters"):
        cluster_class(np.zeros((4, 3), dtype=np.float32), 6, seed=0)


def test_an_empty_cluster_takes_the_point_farthest_from_its_centre() -> None:
    import torch

    from splits.attributes import _lloyd

    x = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [50.0]])
    centers = torch.tensor([[[0.0], [10.0], [1000.0]]])  # nothing is near 1000: cluster 2 starts empty
    labels, inertia = _lloyd(x, (x * x).sum(dim=1), centers, tol=0.0, max_iter=50)
    assert labels[:, 0].tolist() == [0, 0, 0, 1, 1, 2]
    assert float(inertia[0]) == pytest.approx(0.02 + 0.005, abs=1e-5)
