"""Paired significance of two rows scored on the same test split, with Holm's correction.

The test is a paired bootstrap over test samples of the difference in per-sample correctness. For a
row with several seeds a sample's correctness is the fraction of its seeds that got it right, so the
statistic is the difference in mean-over-seeds accuracy. A resample of N samples with replacement is
a multinomial draw of N over the distinct per-sample differences (at most (s_a+1)(s_b+1) values), so
10,000 resamples cost the same for 60,000 samples as for 600. The p-value is two-sided, from the
bootstrap distribution shifted to the null (mean difference 0): (1 + #{|D* − D| ≥ |D|}) / (1 + R).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
SEED = 0
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Row A against row B: mean accuracy difference A − B, its 95% interval and the p-values."""

    diff: float
    ci95: tuple[float, float]
    p: float
    p_holm: float | None = None  # set once the comparisons of one table are corrected together

    @property
    def verdict(self) -> str:
        """`better`, `worse` or `n.s.` at ALPHA after Holm's correction (uncorrected if not corrected)."""
        p = self.p if self.p_holm is None else self.p_holm
        if p >= ALPHA or self.diff == 0:
            return "n.s."
        return "better" if self.diff > 0 else "worse"


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Comparison:
    """Paired bootstrap of mean(correct_a − correct_b) over samples (per-sample correctness in [0, 1])."""
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired correctness must be two non-empty 1-d arrays of one length")
    values, counts = np.unique(np.round(a - b, 12), return_counts=True)
    n = len(a)
    diff = float(values @ counts / n)
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    means = draws @ values / n
    lo, hi = np.percentile(means, [2.5, 97.5])
    extreme = np.count_nonzero(np.abs(means - diff) >= abs(diff) - 1e-12) if diff else resamples
    return Comparison(diff, (float(lo), float(hi)), float((1 + extreme) / (1 + resamples)))


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input's order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def corrected(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons with `p_holm` set, corrected together."""
    adjusted = holm([c.p for c in comparisons])
    return [Comparison(c.diff, c.ci95, c.p, p) for c, p in zip(comparisons, adjusted, strict=True)]
