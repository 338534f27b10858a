"""The paired bootstrap against an exact McNemar test and a brute-force bootstrap over samples, and
Holm's correction against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from leaderboard.significance import ALPHA, Comparison, corrected, holm, paired_bootstrap


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar: the discordant pairs as Binomial(b + c, 1/2)."""
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0


@pytest.mark.parametrize(("shift", "seed"), [(0.0, 0), (0.03, 1), (0.06, 2), (-0.05, 3)])
def test_p_value_agrees_with_exact_mcnemar(shift, seed):
    rng = np.random.default_rng(seed)
    n = 2000
    a = rng.random(n) < 0.7 + shift
    b = np.where(rng.random(n) < 0.5, a, rng.random(n) < 0.7)  # half the samples shared: paired
    result = paired_bootstrap(a.astype(float), b.astype(float))
    assert result.diff == pytest.approx(a.mean() - b.mean())
    assert result.p == pytest.approx(mcnemar_exact(a, b), abs=0.02)
    assert result.ci95[0] <= result.diff <= result.ci95[1]


def test_interval_matches_a_brute_force_bootstrap_of_rows():
    rng = np.random.default_rng(5)
    a, b = rng.random(300) < 0.6, rng.random(300) < 0.5
    d = a.astype(float) - b
    brute = np.array([d[rng.integers(0, 300, 300)].mean() for _ in range(4000)])
    result = paired_bootstrap(a, b)
    assert result.ci95 == pytest.approx(tuple(np.percentile(brute, [2.5, 97.5])), abs=0.01)


def test_seed_averaged_correctness_is_allowed_and_deterministic():
    a = np.array([1, 0.5, 0.5, 1, 0, 1] * 50)
    b = np.array([0.5, 0.5, 0, 1, 0, 0.5] * 50)
    first = paired_bootstrap(a, b)
    assert first == paired_bootstrap(a, b) and first.diff == pytest.approx((a - b).mean())
    assert paired_bootstrap(a, a) == Comparison(0.0, (0.0, 0.0), 1.0)


def test_verdicts_follow_the_corrected_p_value():
    assert Comparison(0.02, (0.01, 0.03), 0.001, 0.004).verdict == "better"
    assert Comparison(-0.02, (-0.03, -0.01), 0.001, 0.004).verdict == "worse"
    assert Comparison(0.02, (0.01, 0.03), 0.01, 2 * ALPHA).verdict == "n.s."


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.3 → ×4, ×3, ×2, ×1 = 0.04, 0.06, 0.08, 0.3 (monotone)
    assert holm([0.04, 0.01, 0.3, 0.02]) == pytest.approx([0.08, 0.04, 0.3, 0.06])
    assert holm([0.5, 0.5]) == [1.0, 1.0] and holm([]) == []
    fixed = corrected([Comparison(0.1, (0, 0.2), 0.01), Comparison(0.1, (0, 0.2), 0.04)])
    assert [c.p_holm for c in fixed] == pytest.approx([0.02, 0.04])


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(np.ones(3), np.ones(4))
