"""GLT metrics (GLT-SPEC §5), computed in one place so every number means the same.

Keys are stable: `acc`, `prec`, `f1`, `acc_<group>` / `prec_<group>` for many/medium/few,
`acc_att<k>` / `prec_att<k>` per attribute, `acc_worst_att`, and `n` (samples). A group or
attribute with no samples gives `None`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.manifest import GROUPS

NUM_ATTRIBUTES = 3


def _checked(labels, preds, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError("labels and predictions must be 1-d arrays of the same length")
    for name, values in (("labels", labels), ("predictions", preds)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes})")
    return labels, preds


def _counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """Per class: true positives, predicted count P_c, label count."""
    correct = labels == preds
    tp = np.bincount(labels[correct], minlength=num_classes)
    predicted = np.bincount(preds, minlength=num_classes)
    support = np.bincount(labels, minlength=num_classes)
    return tp, predicted, support


def _class_precision(tp: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """TP_c / P_c, and 0 where class c was never predicted."""
    return np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float | None:
    return float(np.mean(labels == preds)) if len(labels) else None


def precision(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> float | None:
    """Macro precision over the classes present in `labels` (GLT definition)."""
    if not len(labels):
        return None
    tp, predicted, support = _counts(labels, preds, num_classes)
    present = support > 0
    return float(_class_precision(tp, predicted)[present].mean())


def f1(acc: float | None, prec: float | None) -> float | None:
    """Harmonic mean of the overall accuracy and precision (not a per-class F1 mean)."""
    if acc is None or prec is None:
        return None
    return 0.0 if acc + prec == 0 else 2 * acc * prec / (acc + prec)


def glt_metrics(
    labels: Sequence[int] | np.ndarray,
    preds: Sequence[int] | np.ndarray,
    class_groups: Sequence[str] | np.ndarray,
    attributes: Sequence[int] | np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """All GLT metrics of one evaluated set; `class_groups[c]` is class c's frequency group."""
    class_groups = np.asarray(class_groups)
    num_classes = len(class_groups)
    labels, preds = _checked(labels, preds, num_classes)

    tp, predicted, support = _counts(labels, preds, num_classes)
    class_prec = _class_precision(tp, predicted)
    out: dict[str, float | int | None] = {"n": len(labels)}
    out["acc"] = accuracy(labels, preds)
    out["prec"] = precision(labels, preds, num_classes)
    out["f1"] = f1(out["acc"], out["prec"])

    sample_groups = class_groups[labels]
    for group in GROUPS:
        in_group = sample_groups == group
        out[f"acc_{group}"] = accuracy(labels[in_group], preds[in_group])
        present = (class_groups == group) & (support > 0)
        out[f"prec_{group}"] = float(class_prec[present].mean()) if present.any() else None

    if attributes is not None:
        attributes = np.asarray(attributes, dtype=np.int64)
        if attributes.shape != labels.shape:
            raise ValueError("attributes must have one entry per sample")
        for k in range(NUM_ATTRIBUTES):
            subset = attributes == k
            out[f"acc_att{k}"] = accuracy(labels[subset], preds[subset])
            out[f"prec_att{k}"] = precision(labels[subset], preds[subset], num_classes)
        per_attribute = [out[f"acc_att{k}"] for k in range(NUM_ATTRIBUTES)]
        observed = [value for value in per_attribute if value is not None]
        out["acc_worst_att"] = min(observed) if observed else None
    return out


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes present (the `val_bacc` selection rule)."""
    tp, _, support = _counts(*_checked(labels, preds, num_classes), num_classes)
    present = support > 0
    return float((tp[present] / support[present]).mean())
