"""What scoring adds for the leaderboard: per-class accuracy, training counts and bootstrap intervals.

The bootstrap draws resamples over confusion-matrix cells; it is checked against the exact bootstrap
distribution (all N^N resamples of a tiny set), against a brute-force bootstrap that resamples rows,
and for coverage.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from benchmark.manifest import Manifest
from benchmark.metrics import (
    ALWAYS_PRESENT,
    accuracy,
    bootstrap_ci95,
    bootstrap_statistics,
    f1,
    per_class_accuracy,
    precision,
)
from leaderboard.predictions import write_predictions
from leaderboard.scoring import score_predictions

# The hand-computed set of tests/benchmark/test_metrics.py: 5 classes, class 4 predicted but absent.
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 3])
PREDS = np.array([0, 0, 1, 1, 4, 0, 2, 4])


def test_per_class_accuracy_by_hand():
    # class 0: 2 of 3 right; 1: 1 of 2; 2: 1 of 2; 3: 0 of 1; 4: no sample.
    assert per_class_accuracy(LABELS, PREDS, 5) == pytest.approx([2 / 3, 1 / 2, 1 / 2, 0.0, None])


def test_intervals_of_perfect_and_hopeless_predictions_are_points():
    labels = np.arange(60) % 3
    assert bootstrap_ci95(labels, labels, 3) == {"acc_ci95": [1.0, 1.0], "prec_ci95": [1.0, 1.0],
                                                 "f1_ci95": [1.0, 1.0]}  # fmt: skip
    assert bootstrap_ci95(labels, (labels + 1) % 3, 3)["acc_ci95"] == [0.0, 0.0]


def test_no_samples_or_no_resamples_give_no_interval():
    assert bootstrap_ci95([], [], 3) == dict.fromkeys(("acc_ci95", "prec_ci95", "f1_ci95"))
    assert bootstrap_ci95(LABELS, PREDS, 5, resamples=0)["prec_ci95"] is None


def test_bootstrap_is_seeded():
    first = bootstrap_ci95(LABELS, PREDS, 5)
    assert first == bootstrap_ci95(LABELS, PREDS, 5)
    assert first != bootstrap_ci95(LABELS, PREDS, 5, seed=1)


def test_resampled_statistics_are_consistent_with_the_metrics():
    draws = bootstrap_statistics(LABELS, PREDS, 5, resamples=200)
    assert draws.shape == (200, 3)
    assert draws[:, 2] == pytest.approx([f1(a, p) for a, p in draws[:, :2]])
    # A resample's correct count is Binomial(N, acc): mean acc, variance acc(1 - acc)/N.
    acc = bootstrap_statistics(LABELS, PREDS, 5, resamples=40_000)[:, 0]
    assert acc.mean() == pytest.approx(0.5, abs=0.003)
    assert acc.var() == pytest.approx(0.25 / 8, rel=0.03)


def test_matches_the_exact_bootstrap_distribution_of_a_tiny_set():
    """All 8^8 resamples are too many; 6 rows (46,656 resamples) with a class that can vanish."""
    labels, preds = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0, 2])
    index = np.array(list(itertools.product(range(6), repeat=6)))
    exact = np.array([precision(labels[i], preds[i], 3) for i in index])
    fast = bootstrap_statistics(labels, preds, 3, resamples=40_000)[:, 1]
    standard_error = exact.std() / np.sqrt(len(fast))
    assert abs(fast.mean() - exact.mean()) < 4 * standard_error
    assert fast.std() == pytest.approx(exact.std(), rel=0.02)


def test_agrees_with_a_brute_force_bootstrap_over_rows():
    """Four classes always present (≥ ALWAYS_PRESENT rows: cells merged), one rare class (cells kept)."""
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(5), [80, 80, 70, 60, 10])
    assert (np.bincount(labels)[:4] >= ALWAYS_PRESENT).all()
    preds = np.where(rng.random(len(labels)) < 0.7, labels, rng.integers(0, 6, len(labels)))
    rows = rng.integers(0, len(labels), (4000, len(labels)))
    brute = np.array([[accuracy(labels[i], preds[i]), precision(labels[i], preds[i], 6)] for i in rows])
    fast = bootstrap_statistics(labels, preds, 6, resamples=4000)[:, :2]
    assert fast.mean(axis=0) == pytest.approx(brute.mean(axis=0), abs=0.003)
    assert fast.std(axis=0) == pytest.approx(brute.std(axis=0), rel=0.08)
    fast_ci, brute_ci = (np.percentile(d, [2.5, 97.5], axis=0) for d in (fast, brute))
    assert fast_ci == pytest.approx(brute_ci, abs=0.01)


def test_accuracy_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    covered = 0
    for trial in range(200):
        labels = rng.integers(0, 4, 200)
        preds = np.where(rng.random(200) < 0.7, labels, (labels + 1) % 4)
        low, high = bootstrap_ci95(labels, preds, 4, resamples=400, seed=trial)["acc_ci95"]
        covered += low <= 0.7 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_a_score_carries_intervals_per_class_data_and_train_counts(tiny_manifest: Manifest, tmp_path: Path):
    truth = tiny_manifest.test_labels("test_cbl")
    preds = truth["label"].to_numpy().copy()
    preds[:2] = (preds[:2] + 1) % 3
    binding = {"benchmark": "tiny", "split": "test_cbl", "manifest_sha256": tiny_manifest.content_hash}
    write_predictions(tmp_path / "p.csv", truth["sample_id"].to_numpy(), preds, binding)
    metrics = score_predictions(tmp_path / "p.csv", tiny_manifest, "clt")
    assert metrics["acc_per_class"] == pytest.approx([3 / 4, 3 / 4, 1.0])
    assert metrics["train_count_per_class"] == [4, 4, 4]
    assert metrics["ci95"] == {"method": "percentile bootstrap", "resamples": 1000, "seed": 0}
    low, high = metrics["acc_ci95"]
    assert low <= metrics["acc"] <= high and metrics["prec_ci95"] and metrics["f1_ci95"]
    unbootstrapped = score_predictions(tmp_path / "p.csv", tiny_manifest, "clt", resamples=0)
    assert unbootstrapped["acc_ci95"] is None and unbootstrapped["acc"] == metrics["acc"]
