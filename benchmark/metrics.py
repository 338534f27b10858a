"""GLT metrics (docs/benchmarks.md §5), computed in one place so every number means the same.

Keys are stable: `acc`, `prec`, `f1`, `acc_<group>` / `prec_<group>` for many/medium/few,
`acc_att<k>` / `prec_att<k>` per attribute, `acc_worst_att`, and `n` (samples). A group or
attribute with no samples gives `None`. `per_class_accuracy` and `bootstrap_ci95` add what the
leaderboard shows beside them: per-class accuracy and percentile-bootstrap 95% intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.manifest import GROUPS

NUM_ATTRIBUTES = 3
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# A class with this many test samples is in every bootstrap resample: it is missing from one with
# chance (1 - n_c/N)^N ≤ e^-n_c ≤ e^-50, so its presence need not be drawn.
ALWAYS_PRESENT = 50


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
    return np.divide(tp, predicted, out=np.zeros(np.shape(tp)), where=predicted > 0)


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


def per_class_accuracy(
    labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, num_classes: int
) -> list[float | None]:
    """Recall of each class id; `None` for a class absent from `labels`."""
    tp, _, support = _counts(*_checked(labels, preds, num_classes), num_classes)
    return [float(t / s) if s else None for t, s in zip(tp.tolist(), support.tolist(), strict=True)]


@dataclass(frozen=True)
class _Cells:
    """The (label, prediction) cells a resample draws from, merged where the metrics cannot tell them apart.

    Categories, in this order: the diagonal cells (class in `diagonal`); the off-diagonal cells of
    always-present classes, merged by predicted class (`merged`); each off-diagonal cell of a rarer
    class (`cell_label`, `cell_pred`), kept apart because it decides whether its class is present.
    """

    counts: np.ndarray
    diagonal: np.ndarray
    merged: np.ndarray
    cell_label: np.ndarray
    cell_pred: np.ndarray
    always: np.ndarray  # per class: in every resample

    @classmethod
    def of(cls, labels: np.ndarray, preds: np.ndarray, num_classes: int) -> _Cells:
        tp, _, support = _counts(labels, preds, num_classes)
        rare = (support > 0) & (support < ALWAYS_PRESENT)
        wrong = labels != preds
        merged = np.bincount(preds[wrong & ~rare[labels]], minlength=num_classes)
        rare_wrong = wrong & rare[labels]
        cells, cell_counts = np.unique(
            labels[rare_wrong] * num_classes + preds[rare_wrong], return_counts=True
        )
        diagonal, merged_classes = np.flatnonzero(tp), np.flatnonzero(merged)
        counts = np.concatenate([tp[diagonal], merged[merged_classes], cell_counts])
        return cls(counts, diagonal, merged_classes, cells // num_classes, cells % num_classes,
                   support >= ALWAYS_PRESENT)  # fmt: skip


def _sum_by(draws: np.ndarray, keys: np.ndarray, num_classes: int) -> np.ndarray:
    """Per resample, the draws summed over the categories sharing a key: (resamples, num_classes)."""
    out = np.zeros((len(draws), num_classes), dtype=np.int64)
    if len(keys):
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        out[:, sorted_keys[starts]] = np.add.reduceat(draws[:, order], starts, axis=1)
    return out


def bootstrap_statistics(
    labels: Sequence[int] | np.ndarray,
    preds: Sequence[int] | np.ndarray,
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """Accuracy, precision and F1 of `resamples` bootstrap resamples of the rows: (resamples, 3).

    A resample of N rows with replacement is a multinomial draw of N over the cells of the
    (label, prediction) confusion matrix, so it is drawn over cells, not rows; its correct count is
    Binomial(N, acc). The metrics read per class TP_c, P_c and whether the class is present, so
    cells are merged where that loses nothing (see `_Cells`).
    """
    labels, preds = _checked(labels, preds, num_classes)
    if not len(labels):
        raise ValueError("cannot bootstrap an empty set")
    cells = _Cells.of(labels, preds, num_classes)
    first_cell = len(cells.diagonal) + len(cells.merged)
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(len(cells.counts), num_classes))
    out = np.empty((resamples, 3))
    for start in range(0, resamples, chunk):
        draws = rng.multinomial(len(labels), cells.counts / len(labels), size=min(chunk, resamples - start))
        tp = np.zeros((len(draws), num_classes), dtype=np.int64)
        tp[:, cells.diagonal] = draws[:, : len(cells.diagonal)]
        rare_cells = draws[:, first_cell:]
        predicted = tp.copy()
        predicted[:, cells.merged] += draws[:, len(cells.diagonal) : first_cell]
        predicted += _sum_by(rare_cells, cells.cell_pred, num_classes)
        present = cells.always | (tp > 0) | (_sum_by(rare_cells, cells.cell_label, num_classes) > 0)
        acc = tp.sum(axis=1) / len(labels)
        prec = (_class_precision(tp, predicted) * present).sum(axis=1) / present.sum(axis=1)
        rows = slice(start, start + len(draws))
        out[rows, 0], out[rows, 1] = acc, prec
        out[rows, 2] = [f1(a, p) for a, p in zip(acc.tolist(), prec.tolist(), strict=True)]
    return out


def bootstrap_ci95(
    labels: Sequence[int] | np.ndarray,
    preds: Sequence[int] | np.ndarray,
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, list[float] | None]:
    """Percentile-bootstrap 95% intervals `[lo, hi]` of acc, prec, F1; `None` without samples or resamples."""
    keys = ("acc_ci95", "prec_ci95", "f1_ci95")
    if not len(labels) or resamples < 1:
        return dict.fromkeys(keys)
    samples = bootstrap_statistics(labels, preds, num_classes, resamples=resamples, seed=seed)
    bounds = np.percentile(samples, [2.5, 97.5], axis=0)
    return {key: [float(lo), float(hi)] for key, lo, hi in zip(keys, *bounds, strict=True)}


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes present (the `val_bacc` selection rule)."""
    tp, _, support = _counts(*_checked(labels, preds, num_classes), num_classes)
    present = support > 0
    return float((tp[present] / support[present]).mean())


# Calibration of the class scores a predictions file may carry (ECE, NLL, Brier): see docs/formats.md.
ECE_BINS = 15
PROBABILITY_TOLERANCE = 1e-4  # rows within this of summing to 1 (and non-negative) are probabilities
CALIBRATION_CHUNK = 4096  # rows turned into probabilities at a time: memory stays O(N) + a chunk


def _read_as(scores: np.ndarray) -> str:
    """'probabilities' when every row is non-negative and sums to 1 (within the tolerance), else
    'softmax of logits'; decided over the whole array, a chunk of rows at a time."""
    if scores.ndim != 2 or not len(scores):
        raise ValueError("scores must be a non-empty N×C array")
    for start in range(0, len(scores), CALIBRATION_CHUNK):
        chunk = np.asarray(scores[start : start + CALIBRATION_CHUNK], dtype=np.float64)
        if (chunk < 0).any() or np.abs(chunk.sum(axis=1) - 1).max() > PROBABILITY_TOLERANCE:
            return "softmax of logits"
    return "probabilities"


def _as_probabilities(chunk: np.ndarray, read_as: str) -> np.ndarray:
    """A chunk of rows as probabilities: "as given", renormalised "probabilities", or a softmax."""
    chunk = np.asarray(chunk, dtype=np.float64)
    if read_as == "as given":
        return chunk
    if read_as == "probabilities":
        return chunk / chunk.sum(axis=1, keepdims=True)
    exp = np.exp(chunk - chunk.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def probabilities(scores: np.ndarray) -> tuple[np.ndarray, str]:
    """Class probabilities from a file's scores, and how they were read.

    Non-negative rows that sum to 1 (within `PROBABILITY_TOLERANCE`) are probabilities as given;
    anything else is taken as logits and passed through a softmax.
    """
    scores = np.asarray(scores)
    read_as = _read_as(scores)
    return _as_probabilities(scores, read_as), read_as


@dataclass(frozen=True)
class _PerSample:
    """What every calibration metric needs of each sample, so a subset costs O(its size)."""

    confidence: np.ndarray  # top-class probability
    correct: np.ndarray  # 1.0 where the top class is the label
    p_true: np.ndarray  # probability of the label
    brier: np.ndarray  # Σ_c (p_c − 1[c = label])²

    def __getitem__(self, subset: np.ndarray) -> _PerSample:
        return _PerSample(
            self.confidence[subset], self.correct[subset], self.p_true[subset], self.brier[subset]
        )


def _per_sample(scores: np.ndarray, labels: np.ndarray, read_as: str) -> _PerSample:
    parts = []
    for start in range(0, len(labels), CALIBRATION_CHUNK):
        probs = _as_probabilities(scores[start : start + CALIBRATION_CHUNK], read_as)
        rows, label = np.arange(len(probs)), labels[start : start + CALIBRATION_CHUNK]
        p_true = probs[rows, label]
        # Σ_c p_c² − 2 p_y + 1 = Σ_c (p_c − 1[c = y])²
        parts.append((probs.max(axis=1), (probs.argmax(axis=1) == label).astype(np.float64), p_true,
                      np.einsum("ij,ij->i", probs, probs) - 2 * p_true + 1))  # fmt: skip
    return _PerSample(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _reliability(sample: _PerSample, bins: int = ECE_BINS) -> dict[str, list]:
    index = np.clip(np.ceil(sample.confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=sample.confidence, minlength=bins)
    correct_sum = np.bincount(index, weights=sample.correct, minlength=bins)
    return {
        "count": count.tolist(),
        "confidence": [float(s / n) if n else None for s, n in zip(conf_sum, count, strict=True)],
        "accuracy": [float(s / n) if n else None for s, n in zip(correct_sum, count, strict=True)],
    }


def _ece(sample: _PerSample, bins: int = ECE_BINS) -> float:
    table = _reliability(sample, bins)
    total = sum(table["count"])
    return float(
        sum(n * abs(a - c) for n, a, c in zip(table["count"], table["accuracy"], table["confidence"],
                                               strict=True) if n) / total
    )  # fmt: skip


def _nll(sample: _PerSample) -> float:
    return float(-np.log(np.clip(sample.p_true, np.finfo(np.float64).eps, None)).mean())


def _brier(sample: _PerSample) -> float:
    return float(sample.brier.mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list]:
    """Per equal-width confidence bin ((k/bins, (k+1)/bins], the first closed at 0): sample count,
    mean top-class confidence and accuracy of the top class (`None` for an empty bin)."""
    return _reliability(_per_sample(probs, np.asarray(labels), "as given"), bins)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)| over equal-width bins of top-class confidence."""
    return _ece(_per_sample(probs, np.asarray(labels), "as given"), bins)


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(true class), probabilities clipped below at float64's machine epsilon."""
    return _nll(_per_sample(probs, np.asarray(labels), "as given"))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of Σ_c (p_c − 1[c = label])², in [0, 2]."""
    return _brier(_per_sample(probs, np.asarray(labels), "as given"))


def calibration_metrics(
    labels: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    class_groups: Sequence[str] | np.ndarray,
    attributes: Sequence[int] | np.ndarray | None = None,
) -> dict[str, object]:
    """ECE (15 bins), NLL and Brier overall, per many/medium/few group and per attribute (`None` for
    an empty subset), the overall reliability bins and how the scores were read (`calibration`).

    Scores are turned into probabilities a chunk of rows at a time, so memory beyond the scores
    themselves is a few floats per sample.
    """
    class_groups = np.asarray(class_groups)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or scores.shape != (len(labels), len(class_groups)):
        raise ValueError("scores must have one row per sample and one column per class")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_groups)):
        raise ValueError(f"labels must lie in [0, {len(class_groups)})")
    read_as = _read_as(scores)
    sample = _per_sample(scores, labels, read_as)
    subsets: dict[str, np.ndarray | slice] = {"": slice(None)}
    subsets.update({f"_{group}": class_groups[labels] == group for group in GROUPS})
    if attributes is not None:
        attributes = np.asarray(attributes, dtype=np.int64)
        subsets.update({f"_att{k}": attributes == k for k in range(NUM_ATTRIBUTES)})
    out: dict[str, object] = {}
    for suffix, subset in subsets.items():
        part = sample[subset]
        for key, metric in (("ece", _ece), ("nll", _nll), ("brier", _brier)):
            out[f"{key}{suffix}"] = metric(part) if len(part.p_true) else None
    out["reliability"] = _reliability(sample)
    out["calibration"] = {"bins": ECE_BINS, "scores": read_as}
    return out
