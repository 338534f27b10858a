"""Pretext attributes: seeded K-means per class, clusters merged by size rank into 3 attributes.

docs/benchmarks.md §3 and §7(a): clusters are ranked by size (ties to the cluster holding the smallest sample
index); attribute a takes ranks [aK/3, (a+1)K/3); inside an attribute the larger cluster comes first
and each cluster's members are in a seeded random order, so prefixes are random picks per cluster.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

NUM_ATTRIBUTES = 3


def cluster_class(features: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """K-means cluster id of each row (rows in sorted sample order)."""
    if num_clusters % NUM_ATTRIBUTES:
        raise ValueError(f"the number of clusters must be a multiple of 3, got {num_clusters}")
    kmeans = KMeans(n_clusters=num_clusters, n_init=10, random_state=seed)
    return kmeans.fit_predict(np.asarray(features, dtype=np.float32))


def attribute_lists(
    samples: np.ndarray, clusters: np.ndarray, num_clusters: int, seed: int, class_id: int
) -> list[np.ndarray]:
    """The 3 ordered attribute lists of one class from its members' cluster ids.

    `samples` are the class's sample indices in ascending order; `clusters[i]` belongs to `samples[i]`.
    """
    samples = np.asarray(samples)
    if np.any(np.diff(samples) <= 0):
        raise ValueError("samples must be strictly ascending")
    sizes = np.bincount(clusters, minlength=num_clusters)
    first = np.array(
        [samples[clusters == k].min() if sizes[k] else np.iinfo(np.int64).max for k in range(num_clusters)]
    )
    ranked = np.lexsort((first, -sizes))  # largest first; ties to the smallest sample index
    per_attribute = num_clusters // NUM_ATTRIBUTES
    lists = []
    for attribute in range(NUM_ATTRIBUTES):
        parts = []
        for rank in range(attribute * per_attribute, (attribute + 1) * per_attribute):
            members = samples[clusters == ranked[rank]]
            rng = np.random.default_rng(np.random.SeedSequence([seed, class_id, rank]))
            parts.append(rng.permutation(members))
        lists.append(np.concatenate(parts))
    return lists
