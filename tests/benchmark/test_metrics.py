"""Tests for benchmark/metrics.py against docs/benchmarks.md §5 (hand-computed fixtures + scikit-learn)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_score

from benchmark.metrics import accuracy, balanced_accuracy, f1, glt_metrics, precision

# ---------------------------------------------------------------------------------------------
# Hand-computed fixture.
#
# 5 classes; groups: 0,1 many | 2,3 medium | 4 few.
#   sample:     s0 s1 s2 s3 s4 s5 s6 s7
#   label y:     0  0  0  1  1  2  2  3
#   pred ŷ:      0  0  1  1  4  0  2  4
#   attribute:   0  1  0  0  1  1  0  1      (attribute 2 is empty)
#   correct:     ✓  ✓  ✗  ✓  ✗  ✗  ✓  ✗
#
# Over the whole set:
#   P_0 = 3 (s0, s1, s5)   TP_0 = 2
#   P_1 = 2 (s2, s3)       TP_1 = 1
#   P_2 = 1 (s6)           TP_2 = 1
#   P_3 = 0                TP_3 = 0   <- class 3 is in Y but never predicted: adds 0, counts in |Y|
#   P_4 = 2 (s4, s7)       TP_4 = 0   <- class 4 is predicted but absent from Y: not counted
#   Y = {0, 1, 2, 3}, |Y| = 4
#   acc  = 4/8 = 1/2
#   prec = (2/3 + 1/2 + 1/1 + 0) / 4 = (13/6) / 4 = 13/24
#   f1   = 2 · (1/2) · (13/24) / (1/2 + 13/24) = (13/24) / (25/24) = 13/25
#
# Frequency groups (P_c counted over the WHOLE set):
#   many   = {0, 1}: samples s0..s4, correct s0, s1, s3 → acc 3/5
#            prec = (TP_0/P_0 + TP_1/P_1) / 2 = (2/3 + 1/2) / 2 = 7/12
#            (had P_0 been counted inside the group only, P_0 = 2 and prec would be 3/4)
#   medium = {2, 3}: samples s5, s6, s7, correct s6 → acc 1/3
#            prec = (1/1 + 0) / 2 = 1/2
#   few    = {4}: no sample has GT class 4 → acc None, prec None (class 4 ∉ Y)
#
# Attribute-wise (P_c and Y restricted to the subset):
#   att 0 = s0, s2, s3, s6: y = 0 0 1 2, ŷ = 0 1 1 2, correct 3 → acc 3/4
#           P_0 = 1, TP_0 = 1; P_1 = 2, TP_1 = 1; P_2 = 1, TP_2 = 1; Y = {0, 1, 2}
#           prec = (1 + 1/2 + 1) / 3 = 5/6
#           (with the global Y = {0,1,2,3} it would be 5/8)
#   att 1 = s1, s4, s5, s7: y = 0 1 2 3, ŷ = 0 4 0 4, correct 1 → acc 1/4
#           P_0 = 2 (s1, s5), TP_0 = 1; classes 1, 2, 3 never predicted in the subset
#           Y = {0, 1, 2, 3}; prec = (1/2 + 0 + 0 + 0) / 4 = 1/8
#   att 2 = ∅ → acc None, prec None
#   worst-attribute accuracy = min(3/4, 1/4) = 1/4 (the empty attribute is skipped)
# ---------------------------------------------------------------------------------------------
GROUPS = ["many", "many", "medium", "medium", "few"]
LABELS = [0, 0, 0, 1, 1, 2, 2, 3]
PREDS = [0, 0, 1, 1, 4, 0, 2, 4]
ATTRIBUTES = [0, 1, 0, 0, 1, 1, 0, 1]


@pytest.fixture
def hand_metrics() -> dict:
    return glt_metrics(LABELS, PREDS, GROUPS, ATTRIBUTES)


def test_overall_numbers(hand_metrics: dict) -> None:
    assert hand_metrics["n"] == 8
    assert hand_metrics["acc"] == pytest.approx(1 / 2)
    assert hand_metrics["prec"] == pytest.approx(13 / 24)
    assert hand_metrics["f1"] == pytest.approx(13 / 25)


def test_present_never_predicted_class_counts_in_denominator() -> None:
    # Only class 3's membership in Y distinguishes 13/24 (|Y| = 4) from 13/18 (|Y| = 3).
    assert precision(np.array(LABELS), np.array(PREDS), 5) == pytest.approx(13 / 24)


def test_predicted_class_absent_from_labels_is_ignored() -> None:
    # y = 0 0 1, ŷ = 0 2 1: class 2 predicted, never a label.
    # P_0 = 1, TP_0 = 1; P_1 = 1, TP_1 = 1; Y = {0, 1} → prec = (1 + 1)/2 = 1
    # (counting class 2 with 0/1 would give 2/3). acc = 2/3.
    out = glt_metrics([0, 0, 1], [0, 2, 1], ["many", "medium", "few"])
    assert out["prec"] == pytest.approx(1.0)
    assert out["acc"] == pytest.approx(2 / 3)
    assert out["acc_few"] is None and out["prec_few"] is None


def test_frequency_groups(hand_metrics: dict) -> None:
    assert hand_metrics["acc_many"] == pytest.approx(3 / 5)
    assert hand_metrics["prec_many"] == pytest.approx(7 / 12)
    assert hand_metrics["acc_medium"] == pytest.approx(1 / 3)
    assert hand_metrics["prec_medium"] == pytest.approx(1 / 2)


def test_empty_frequency_group_is_none(hand_metrics: dict) -> None:
    assert "acc_few" in hand_metrics and "prec_few" in hand_metrics
    assert hand_metrics["acc_few"] is None
    assert hand_metrics["prec_few"] is None


def test_group_precision_counts_predictions_over_whole_set() -> None:
    # y = 0 1, ŷ = 0 0; groups: class 0 many, class 1 few.
    # P_0 = 2 over the whole set (s1 of the few class predicted as 0), TP_0 = 1 → prec_many = 1/2.
    # (Restricting P_0 to samples of the many group would give 1/1.)
    # few: Y∩few = {1}, P_1 = 0 → prec_few = 0; acc_few = 0.
    out = glt_metrics([0, 1], [0, 0], ["many", "few"])
    assert out["prec_many"] == pytest.approx(0.5)
    assert out["acc_many"] == pytest.approx(1.0)
    assert out["prec_few"] == pytest.approx(0.0)
    assert out["acc_few"] == pytest.approx(0.0)
    assert out["acc_medium"] is None and out["prec_medium"] is None


def test_attribute_wise(hand_metrics: dict) -> None:
    assert hand_metrics["acc_att0"] == pytest.approx(3 / 4)
    assert hand_metrics["prec_att0"] == pytest.approx(5 / 6)
    assert hand_metrics["acc_att1"] == pytest.approx(1 / 4)
    assert hand_metrics["prec_att1"] == pytest.approx(1 / 8)


def test_empty_attribute_is_none_and_skipped_by_worst(hand_metrics: dict) -> None:
    assert hand_metrics["acc_att2"] is None
    assert hand_metrics["prec_att2"] is None
    assert hand_metrics["acc_worst_att"] == pytest.approx(1 / 4)


def test_worst_attribute_is_min_of_three() -> None:
    # y = 0 1 0 1 0 1, ŷ = 0 1 1 1 1 0, attributes 0 0 1 1 2 2
    # att0: s0 ✓ s1 ✓ → 1; att1: s2 ✗ s3 ✓ → 1/2; att2: s4 ✗ s5 ✗ → 0; worst = 0.
    out = glt_metrics([0, 1, 0, 1, 0, 1], [0, 1, 1, 1, 1, 0], ["many", "few"], [0, 0, 1, 1, 2, 2])
    assert [out[f"acc_att{k}"] for k in range(3)] == pytest.approx([1.0, 0.5, 0.0])
    assert out["acc_worst_att"] == pytest.approx(0.0)


def test_no_attribute_keys_without_attributes() -> None:
    out = glt_metrics(LABELS, PREDS, GROUPS)
    assert not any(key.startswith(("acc_att", "prec_att", "acc_worst")) for key in out)


def test_f1_is_harmonic_mean_of_overall_numbers() -> None:
    # acc = 0.5, prec = 0.25 → 2·0.5·0.25/0.75 = 1/3
    assert f1(0.5, 0.25) == pytest.approx(1 / 3)
    assert f1(0.0, 0.0) == 0.0
    assert f1(None, 0.5) is None
    assert f1(0.5, None) is None


def test_f1_is_zero_when_accuracy_and_precision_are_zero() -> None:
    # y = 0 1, ŷ = 1 0: nothing correct → acc 0, prec 0 → f1 0 (not NaN, no ZeroDivisionError).
    out = glt_metrics([0, 1], [1, 0], ["many", "few"])
    assert out["acc"] == 0.0 and out["prec"] == 0.0
    assert out["f1"] == 0.0


def test_f1_is_not_mean_of_per_class_f1() -> None:
    # Per-class F1 of the hand fixture: c0: P=2/3 R=2/3 → 2/3; c1: P=1/2 R=1/2 → 1/2;
    # c2: P=1 R=1/2 → 2/3; c3: 0 → mean = (2/3+1/2+2/3+0)/4 = 11/24 ≠ 13/25.
    out = glt_metrics(LABELS, PREDS, GROUPS)
    assert out["f1"] == pytest.approx(13 / 25)
    assert out["f1"] != pytest.approx(11 / 24)


def test_empty_set() -> None:
    out = glt_metrics([], [], ["many", "few"], [])
    assert out["n"] == 0
    assert out["acc"] is None and out["prec"] is None and out["f1"] is None
    assert out["acc_worst_att"] is None


def test_balanced_accuracy_by_hand() -> None:
    # Recall: c0 2/3, c1 1/2, c2 1/2, c3 0/1 (class 4 is absent from the labels: not averaged)
    # → (2/3 + 1/2 + 1/2 + 0) / 4 = (5/3)/4 = 5/12
    assert balanced_accuracy(np.array(LABELS), np.array(PREDS), 5) == pytest.approx(5 / 12)


def test_standalone_accuracy() -> None:
    assert accuracy(np.array(LABELS), np.array(PREDS)) == pytest.approx(0.5)
    assert accuracy(np.array([], dtype=int), np.array([], dtype=int)) is None


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 12))
    n = int(rng.integers(1, 80))
    # Labels from a random subset of the classes, so some classes are absent from Y.
    present = rng.choice(num_classes, size=int(rng.integers(1, num_classes + 1)), replace=False)
    labels = rng.choice(present, size=n)
    preds = rng.integers(0, num_classes, size=n)
    keep = rng.random(n) < rng.random()  # a random share of correct answers
    preds[keep] = labels[keep]
    return labels, preds, num_classes


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_scikit_learn(seed: int) -> None:
    labels, preds, num_classes = _random_case(seed)
    groups = ["many"] * num_classes
    out = glt_metrics(labels, preds, groups)
    assert out["acc"] == pytest.approx(accuracy_score(labels, preds))
    expected_prec = precision_score(
        labels, preds, labels=sorted(set(labels.tolist())), average="macro", zero_division=0
    )
    assert out["prec"] == pytest.approx(expected_prec)
    assert precision(labels, preds, num_classes) == pytest.approx(expected_prec)
    # One group holding every class: its numbers equal the overall ones.
    assert out["acc_many"] == pytest.approx(out["acc"])
    assert out["prec_many"] == pytest.approx(out["prec"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        expected_bacc = balanced_accuracy_score(labels, preds)
    assert balanced_accuracy(labels, preds, num_classes) == pytest.approx(expected_bacc)


@pytest.mark.parametrize("seed", range(5))
def test_attribute_metrics_agree_with_scikit_learn_on_subsets(seed: int) -> None:
    labels, preds, num_classes = _random_case(100 + seed)
    attributes = np.random.default_rng(seed).integers(0, 3, size=len(labels))
    out = glt_metrics(labels, preds, ["few"] * num_classes, attributes)
    accs = []
    for k in range(3):
        subset = attributes == k
        if not subset.any():
            assert out[f"acc_att{k}"] is None and out[f"prec_att{k}"] is None
            continue
        y, yhat = labels[subset], preds[subset]
        accs.append(accuracy_score(y, yhat))
        assert out[f"acc_att{k}"] == pytest.approx(accs[-1])
        assert out[f"prec_att{k}"] == pytest.approx(
            precision_score(y, yhat, labels=sorted(set(y.tolist())), average="macro", zero_division=0)
        )
    assert out["acc_worst_att"] == pytest.approx(min(accs))


@pytest.mark.parametrize("bad_pred", [5, 7, -1])
def test_out_of_range_prediction_raises(bad_pred: int) -> None:
    preds = list(PREDS)
    preds[3] = bad_pred
    with pytest.raises(ValueError):
        glt_metrics(LABELS, preds, GROUPS)


@pytest.mark.parametrize("bad_label", [5, -1])
def test_out_of_range_label_raises(bad_label: int) -> None:
    labels = list(LABELS)
    labels[0] = bad_label
    with pytest.raises(ValueError):
        glt_metrics(labels, PREDS, GROUPS)


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError):
        glt_metrics(LABELS, PREDS[:-1], GROUPS)
    with pytest.raises(ValueError):
        glt_metrics(LABELS, PREDS, GROUPS, ATTRIBUTES[:-1])
    with pytest.raises(ValueError):
        precision(np.array(LABELS), np.array(PREDS[:-1]), 5)
    with pytest.raises(ValueError):
        accuracy(np.array(LABELS), np.array(PREDS[:-1]))


@pytest.mark.parametrize(
    ("labels", "preds"),
    [
        ([0, 1, 2], [0, 1]),  # mismatched lengths
        ([0, 1, 2], [0, 1, 3]),  # prediction outside [0, 3)
        ([0, 1, 3], [0, 1, 2]),  # label outside [0, 3)
    ],
)
def test_balanced_accuracy_rejects_bad_input(labels: list[int], preds: list[int]) -> None:
    # balanced_accuracy (the val_bacc selection rule) must validate like glt_metrics does,
    # rather than silently scoring an impossible prediction or failing with an IndexError.
    with pytest.raises(ValueError):
        balanced_accuracy(np.array(labels), np.array(preds), 3)
