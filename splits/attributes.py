"""Pretext attributes: seeded K-means per class, clusters merged by size rank into 3 attributes.

Clusters are ranked by size (ties to the cluster holding the smallest sample index); attribute a
takes ranks [aK/3, (a+1)K/3); inside an attribute the larger cluster comes first and each cluster's
members are in a seeded random order, so prefixes are random picks per cluster (docs/benchmarks.md).

K-means is our own torch implementation of scikit-learn's algorithm (greedy k-means++ seeding with
2 + ⌊ln K⌋ local trials, Lloyd iterations to the same tolerance, the best of `n_init` runs by
inertia), so it runs on a GPU when one is there. Every class is one fixed computation on one thread
(CPU) or one device (CUDA): classes run in parallel worker processes, never a reduction split over
threads, so the clusters do not depend on the number of threads or processes. The same inputs give
the same clusters on the same device kind; a CPU and a GPU may differ in the last bits and hence,
rarely, in a point's cluster, so the manifest records the device kind.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from multiprocessing import get_context

import numpy as np
import torch
from tqdm import tqdm

NUM_ATTRIBUTES = 3
N_INIT, MAX_ITER, TOL = 10, 300, 1e-4  # scikit-learn's KMeans defaults
KMEANS_DESCRIPTION = "torch k-means, greedy k-means++ seeding, n_init 10, float32, one class per thread"


def _sq_distances(x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared distances of every row to every centre (rows × centres), clipped at 0."""
    c_sq = (centers * centers).sum(dim=1)
    return (x_sq[:, None] - 2.0 * (x @ centers.T) + c_sq[None, :]).clamp_(min=0)


def _kmeans_plus_plus(
    x: torch.Tensor, x_sq: torch.Tensor, k: int, rngs: list[np.random.Generator]
) -> torch.Tensor:
    """Greedy k-means++ seeding (scikit-learn's) of one run per generator, all runs in one batch:
    of 2 + ⌊ln k⌋ candidates drawn ∝ D², each run keeps the one that lowers its potential most.
    Returns runs × k × D centres."""
    n, runs = len(x), len(rngs)
    trials = 2 + int(math.log(k))
    chosen = [[int(rng.integers(n))] for rng in rngs]
    closest = _sq_distances(x, x_sq, x[[c[0] for c in chosen]])  # rows × runs
    for _ in range(1, k):
        potential = closest.sum(dim=0).cpu().numpy()
        cumulative = torch.cumsum(closest, dim=0).cpu().numpy()
        candidates = np.stack(
            [
                np.minimum(np.searchsorted(cumulative[:, r], rng.random(trials) * potential[r]), n - 1)
                for r, rng in enumerate(rngs)
            ]
        )  # runs × trials
        to_candidates = _sq_distances(x, x_sq, x[candidates.reshape(-1)]).view(n, runs, trials)
        to_candidates = torch.minimum(closest[:, :, None], to_candidates)
        best = torch.argmin(to_candidates.sum(dim=0), dim=1).cpu().numpy()  # ties to the first candidate
        for r in range(runs):
            chosen[r].append(int(candidates[r, best[r]]))
        closest = to_candidates[:, torch.arange(runs), torch.from_numpy(best).to(x.device)]
    return x[torch.tensor(chosen, device=x.device)].clone()


def _lloyd(
    x: torch.Tensor, x_sq: torch.Tensor, centers: torch.Tensor, tol: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations of every run (runs × k × D centres) batched, each run stopping on its own
    when no label changes or its summed squared centre shift is at most `tol`; a step computes only
    the runs still moving (which runs those are depends on the data alone, so the computation is
    fixed for given inputs). An empty cluster takes the point farthest from its centre, as
    scikit-learn relocates them. Returns (rows × runs labels, runs inertias) of the final centres."""
    n, (runs, k, dim) = len(x), centers.shape
    centers = centers.clone()
    labels = torch.full((n, runs), -1, dtype=torch.long, device=x.device)
    moving = torch.arange(runs, device=x.device)
    for _ in range(max_iter):
        current = centers[moving]
        distances = _sq_distances(x, x_sq, current.reshape(-1, dim)).view(n, len(moving), k)
        new_labels = torch.argmin(distances, dim=2)
        changed = (new_labels != labels[:, moving]).any(dim=0)  # unchanged: strict convergence
        labels[:, moving] = new_labels
        one_hot = torch.nn.functional.one_hot(new_labels, k).to(x.dtype).reshape(n, -1)
        counts = one_hot.sum(dim=0)
        new_centers = (one_hot.T @ x) / counts.clamp(min=1)[:, None]
        for slot in torch.nonzero(counts == 0)[:, 0].tolist():
            run, cluster = divmod(slot, k)
            own = distances[:, run].gather(1, new_labels[:, run, None])[:, 0]
            taken = int((torch.nonzero(counts[run * k : run * k + cluster] == 0)).shape[0])
            far = torch.argsort(own, descending=True, stable=True)[taken]
            new_centers[slot] = x[far]
        new_centers = new_centers.view(len(moving), k, dim)
        shift = ((new_centers - current) ** 2).sum(dim=(1, 2))
        centers[moving] = torch.where(changed[:, None, None], new_centers, current)
        moving = moving[changed & (shift > tol)]
        if not len(moving):
            break
    distances = _sq_distances(x, x_sq, centers.reshape(runs * k, dim)).view(n, runs, k)
    labels = torch.argmin(distances, dim=2)
    inertia = distances.gather(2, labels[:, :, None])[:, :, 0].sum(dim=0)
    return labels, inertia


def kmeans(
    features: np.ndarray,
    num_clusters: int,
    seed: int,
    *,
    device: str = "cpu",
    n_init: int = N_INIT,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> tuple[np.ndarray, float]:
    """Cluster ids of the rows and the inertia of the best of `n_init` seeded runs (float32, like
    scikit-learn on float32 data), the runs computed side by side in one batch. Run `r` draws from
    numpy's `SeedSequence([seed, r])`; ties in inertia go to the earlier run."""
    data = torch.from_numpy(np.array(features, dtype=np.float32)).to(device)  # a writable copy
    data = data - data.mean(dim=0)  # scikit-learn centres the data too, for precision
    data_sq = (data * data).sum(dim=1)
    scaled_tol = float(data.var(dim=0, unbiased=False).mean()) * tol
    rngs = [np.random.default_rng(np.random.SeedSequence([seed, run])) for run in range(n_init)]
    centers = _kmeans_plus_plus(data, data_sq, num_clusters, rngs)
    labels, inertia = _lloyd(data, data_sq, centers, scaled_tol, max_iter)
    best = int(torch.argmin(inertia))
    return labels[:, best].cpu().numpy().astype(np.int64), float(inertia[best])


def cluster_class(features: np.ndarray, num_clusters: int, seed: int, device: str = "cpu") -> np.ndarray:
    """K-means cluster id of each row (rows in sorted sample order)."""
    if num_clusters % NUM_ATTRIBUTES:
        raise ValueError(f"the number of clusters must be a multiple of 3, got {num_clusters}")
    if len(features) < num_clusters:
        raise ValueError(f"{len(features)} rows cannot form {num_clusters} clusters")
    return kmeans(features, num_clusters, seed, device=device)[0]


_JOB: tuple[Callable[[int], np.ndarray], int, int] | None = None  # set before forking the workers


def _cluster_one(index: int, device: str = "cpu") -> tuple[np.ndarray, str]:
    source, num_clusters, seed = _JOB
    features = np.ascontiguousarray(source(index), dtype=np.float32)
    digest = hashlib.sha256(features.tobytes()).hexdigest()
    return cluster_class(features, num_clusters, seed, device), digest


def cluster_classes(
    source: Callable[[int], np.ndarray],
    count: int,
    num_clusters: int,
    seed: int,
    *,
    device: str = "cpu",
    workers: int = 1,
) -> list[tuple[np.ndarray, str]]:
    """Per class 0..count−1 its cluster ids and the sha256 of its float32 features, `source(i)`
    giving class i's features, with a progress bar.

    CUDA: one class after another on the device. CPU: `workers` forked processes, each class on one
    thread, so the result is the same for any `workers` and any OMP_NUM_THREADS."""
    global _JOB
    _JOB = (source, num_clusters, seed)
    threads = torch.get_num_threads()
    workers = max(1, min(workers, count, os.cpu_count() or 1)) if device == "cpu" else 1
    try:
        with tqdm(total=count, unit="class", desc=f"k-means ({device})", mininterval=2) as bar:
            torch.set_num_threads(1)
            results = []
            if workers == 1:
                for index in range(count):
                    results.append(_cluster_one(index, device))
                    bar.update()
                return results
            with get_context("fork").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                for result in pool.imap(_cluster_one, range(count)):
                    results.append(result)
                    bar.update()
            return results
    finally:
        _JOB = None
        torch.set_num_threads(threads)


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
