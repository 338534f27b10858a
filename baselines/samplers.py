"""The shared training-set samplers of docs/methods.md §0, as plain functions of (labels or weights, rng).

Each returns the dataset indices to visit in one epoch, drawn only from the numpy Generator it is
given, so an epoch's order is a function of the seed. Decoupling's stage 2, BBN, DRO-LT and IFL use
these; no method keeps its own copy.
"""

from __future__ import annotations

import numpy as np


def shuffle(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle sampler: a random permutation of every index."""
    return rng.permutation(len(labels))


def class_aware(labels: np.ndarray, rng: np.random.Generator, per_class: int = 4) -> np.ndarray:
    """ClassAwareSampler (original `data/Sampler_ClassAware.py`).

    Cycle over the classes present in `labels` in a random order, reshuffled at every pass; at each
    visit emit `per_class` consecutive samples from that class's own list, which is shuffled at the
    start and reshuffled whenever it is exhausted (a run may span the reshuffle). Epoch length
    n_max·C, capped at 4N (glt-bench's cap), where C counts the classes present. The cycles restart
    every epoch (the original carried its iterators over).
    """
    labels = np.asarray(labels)
    by_class = np.argsort(labels, kind="stable")
    classes, starts, counts = np.unique(labels[by_class], return_index=True, return_counts=True)
    length = min(int(counts.max()) * len(classes), 4 * len(labels))
    visits = -(-length // per_class)
    passes = -(-visits // len(classes))
    visited = np.concatenate([rng.permutation(len(classes)) for _ in range(passes)])[:visits]
    runs = np.empty((visits, per_class), dtype=np.int64)
    for k, (start, count) in enumerate(zip(starts, counts, strict=True)):
        members = by_class[start : start + count]
        rows = np.flatnonzero(visited == k)
        if not len(rows):  # only when per_class is large enough that a pass is cut short
            continue
        needed = len(rows) * per_class
        stream = np.concatenate([rng.permutation(members) for _ in range(-(-needed // count))])
        runs[rows] = stream[:needed].reshape(len(rows), per_class)
    return runs.reshape(-1)[:length]


def distribution(weights: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """DistributionSampler (original `data/Sampler_MultiEnv.py`): `size` indices drawn with
    replacement, index i with probability w_i / Σw."""
    weights = np.asarray(weights, dtype=np.float64)
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("sampling weights must be non-negative with a positive sum")
    return rng.choice(len(weights), size=size, replace=True, p=weights / weights.sum())
