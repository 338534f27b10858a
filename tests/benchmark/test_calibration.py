"""Calibration metrics against independent implementations: scikit-learn's log loss and Brier score,
and an ECE written as a plain loop over samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from benchmark.metrics import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    negative_log_likelihood,
    probabilities,
    reliability_bins,
)


def random_case(seed: int, n: int = 500, classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, classes))
    labels = np.where(rng.random(n) < 0.6, logits.argmax(axis=1), rng.integers(0, classes, n))
    return logits, labels


def loop_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE the textbook way: assign each sample to its bin one by one."""
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for row, label in zip(probs.tolist(), labels.tolist(), strict=True):
        confidence = max(row)
        index = min(max(math.ceil(confidence * bins) - 1, 0), bins - 1)
        members[index].append((confidence, row.index(confidence) == label))
    total = 0.0
    for bucket in members:
        if bucket:
            mean_conf = sum(c for c, _ in bucket) / len(bucket)
            acc = sum(ok for _, ok in bucket) / len(bucket)
            total += len(bucket) * abs(acc - mean_conf)
    return total / len(labels)


@pytest.mark.parametrize("seed", range(5))
def test_calibration_matches_independent_implementations(seed):
    logits, labels = random_case(seed)
    probs, read_as = probabilities(logits)
    assert read_as == "softmax of logits"
    classes = list(range(logits.shape[1]))
    assert negative_log_likelihood(probs, labels) == pytest.approx(log_loss(labels, probs, labels=classes),
                                                                   rel=1e-12)  # fmt: skip
    # scikit-learn's multiclass Brier score: mean over samples of the summed squared errors.
    assert brier_score(probs, labels) == pytest.approx(brier_score_loss(labels, probs, labels=classes),
                                                       rel=1e-12)  # fmt: skip
    assert expected_calibration_error(probs, labels) == pytest.approx(loop_ece(probs, labels), abs=1e-12)


def test_hand_computed_ece_and_probability_detection():
    # Two samples at confidence 0.9 (one right), two at 0.6 (both right): bins 14 and 9.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert probabilities(probs)[1] == "probabilities"
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    bins = reliability_bins(probs, labels)
    assert bins["count"][13] == 2 and bins["count"][8] == 2 and sum(bins["count"]) == 4
    assert bins["accuracy"][13] == pytest.approx(0.5) and bins["confidence"][8] == pytest.approx(0.6)
    assert bins["accuracy"][0] is None
    # Brier of one sample [0.9, 0.1] with label 1: 0.81 + 0.81.
    assert brier_score(probs[1:2], labels[1:2]) == pytest.approx(1.62)
    assert negative_log_likelihood(probs[:1], labels[:1]) == pytest.approx(-math.log(0.9))


def test_a_zero_probability_on_the_truth_gives_a_finite_nll():
    probs = np.array([[1.0, 0.0]])
    assert math.isfinite(negative_log_likelihood(probs, np.array([1])))


def test_per_group_and_per_attribute_keys():
    logits, labels = random_case(7, n=300, classes=6)
    groups = np.array(["many", "many", "medium", "medium", "few", "few"])
    attributes = np.arange(300) % 2  # attribute 2 is empty
    out = calibration_metrics(labels, logits, groups, attributes)
    probs, _ = probabilities(logits)
    few = np.isin(labels, [4, 5])
    assert out["ece_few"] == pytest.approx(loop_ece(probs[few], labels[few]), abs=1e-12)
    assert out["nll_att1"] == pytest.approx(negative_log_likelihood(probs[1::2], labels[1::2]))
    assert out["brier_att2"] is None and out["ece_att2"] is None
    assert out["calibration"] == {"bins": 15, "scores": "softmax of logits"}
    assert sum(out["reliability"]["count"]) == 300


def test_a_scored_file_with_scores_carries_its_calibration(tiny_manifest, tmp_path):
    from leaderboard.predictions import write_predictions
    from leaderboard.scoring import score_predictions

    truth = tiny_manifest.test_labels("test_cbl")
    labels = truth["label"].to_numpy()
    probs = np.full((len(labels), 3), 0.1)
    probs[np.arange(len(labels)), labels] = 0.8
    order = np.arange(len(labels))[::-1]  # rows in another order than the listing: scores follow their ids
    binding = {"benchmark": "tiny", "split": "test_cbl", "manifest_sha256": tiny_manifest.content_hash}
    write_predictions(tmp_path / "p.csv", truth["sample_id"].to_numpy()[order], labels[order], binding,
                      scores=probs[order])  # fmt: skip
    metrics = score_predictions(tmp_path / "p.csv", tiny_manifest, "clt", resamples=0)
    assert metrics["ece"] == pytest.approx(0.2) and metrics["nll"] == pytest.approx(-math.log(0.8))
    assert metrics["brier"] == pytest.approx(0.04 + 0.01 + 0.01)
    assert metrics["calibration"]["scores"] == "probabilities"
    no_scores = tmp_path / "q.csv"
    write_predictions(no_scores, truth["sample_id"].to_numpy(), labels, binding)
    assert "ece" not in score_predictions(no_scores, tiny_manifest, "clt", resamples=0)
