"""IP-DPP mathematics (docs/methods.md §16): the kernel, k-DPP eigenvector selection against brute-force
enumeration, Algorithm 1, and the per-class selection preferring informative samples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from baselines.dpp import (
    RankOneSpectrum,
    greedy_projection_select,
    ipdpp_kernel,
    log_esp,
    paper_eigenvectors,
    sample_k_eigenvectors,
    select_items,
)
from benchmark.errors import UserError


def test_kernel_by_hand_for_both_scales():
    p = torch.tensor([0.5, 1.0])  # N = 2, P = 1.5
    # 1/N: diagonal 1 − P·p_i/2 + p_i²/2, off-diagonal p_i·p_j/2.
    assert torch.allclose(ipdpp_kernel(p), torch.tensor([[0.75, 0.25], [0.25, 0.75]], dtype=torch.float64))
    # 1/N² = 1/4.
    code = torch.tensor([[0.875, 0.125], [0.125, 0.875]], dtype=torch.float64)
    assert torch.allclose(ipdpp_kernel(p, "code"), code)
    with pytest.raises(UserError, match="paper, code"):
        ipdpp_kernel(p, "other")


@pytest.mark.parametrize("scale", ["paper", "code"])
def test_kernel_rows_sum_to_one_and_it_is_psd_with_eigenvalues_in_0_1(scale):
    g = torch.Generator().manual_seed(0)
    for p in (torch.rand(9, generator=g), torch.ones(6), torch.tensor([1.0, 0.0, 1.0, 0.0])):
        kernel = ipdpp_kernel(p, scale)
        assert torch.allclose(kernel.sum(1), torch.ones(len(p), dtype=torch.float64))
        assert torch.equal(kernel, kernel.T)
        eigenvalues = torch.linalg.eigvalsh(kernel)
        assert eigenvalues.min() >= -1e-12 and eigenvalues.max() <= 1 + 1e-12
        assert math.isclose(float(eigenvalues.max()), 1.0, abs_tol=1e-12)  # the all-ones vector


def _brute_force_esp(kernel: torch.Tensor, k: int) -> float:
    """Σ over k-subsets Y of det(L_Y), the k-DPP's normaliser."""
    n = len(kernel)
    return sum(float(torch.det(kernel[list(y)][:, list(y)])) for y in itertools.combinations(range(n), k))


def test_esp_recursion_matches_brute_force_enumeration_of_k_subsets():
    p = torch.tensor([0.9, 0.2, 0.55, 0.7, 0.05])
    kernel = ipdpp_kernel(p)
    eigenvalues = torch.linalg.eigvalsh(kernel)
    table = log_esp(eigenvalues, 5)
    for k in range(6):
        assert math.isclose(math.exp(table[k, -1]), _brute_force_esp(kernel, k), rel_tol=1e-9)
    # e_l^n for a prefix too: the first three eigenvalues, l = 2.
    lam = eigenvalues[:3].tolist()
    assert math.isclose(math.exp(table[2, 3]), lam[0] * lam[1] + lam[0] * lam[2] + lam[1] * lam[2])


def test_k_eigenvectors_are_drawn_with_probability_proportional_to_their_eigenvalue_product():
    eigenvalues = torch.tensor([0.1, 0.3, 0.5, 0.8, 1.0], dtype=torch.float64)
    k, draws = 2, 4000
    rng = np.random.default_rng(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(draws):
        chosen = sample_k_eigenvectors(eigenvalues, k, rng)
        assert len(chosen) == k
        counts[tuple(chosen)] = counts.get(tuple(chosen), 0) + 1
    lam = eigenvalues.tolist()
    pairs = list(itertools.combinations(range(5), 2))
    normaliser = sum(lam[a] * lam[b] for a, b in pairs)
    for a, b in pairs:
        assert abs(counts.get((a, b), 0) / draws - lam[a] * lam[b] / normaliser) < 0.025


def test_too_few_positive_eigenvalues_for_k_is_an_error():
    with pytest.raises(ValueError, match="at least 2 positive"):
        sample_k_eigenvectors(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 2, np.random.default_rng(0))


def test_paper_eigenvector_step_keeps_at_most_k_by_lambda_over_lambda_plus_one():
    eigenvalues = torch.tensor([1e-9, 1e-9, 1.0, 1e9, 1e9], dtype=torch.float64)
    rng = np.random.default_rng(0)
    for _ in range(50):
        kept = paper_eigenvectors(eigenvalues, 2, rng)
        assert list(kept) == [3, 4]  # kept with probability ≈ 1, visited first (largest λ)
    sizes = [len(paper_eigenvectors(eigenvalues[:3], 3, rng)) for _ in range(200)]
    assert max(sizes) <= 2 and 0 in sizes and 1 in sizes  # λ = 1 kept half the time, 1e-9 never


def test_algorithm_1_by_hand():
    # V = {(1, 0, 0), (0, 0.6, 0.8)}: diag VVᵀ = (1, 0.36, 0.64) → item 0; removing e_0 leaves (0, 0.6, 0.8)
    # → item 2.
    v = torch.tensor([[1.0, 0.0], [0.0, 0.6], [0.0, 0.8]], dtype=torch.float64)
    assert list(greedy_projection_select(v)) == [0, 2]
    assert list(greedy_projection_select(v[:, 1:])) == [2]


def _algorithm_1_reference(v: torch.Tensor) -> list[int]:
    """Algorithm 1 literally: argmax (1/|V|)Σ(vᵀe_i)², then an orthonormal basis of V ⟂ e_i (by SVD)."""
    chosen = []
    while v.shape[1]:
        i = int(((v**2).sum(1) / v.shape[1]).argmax())
        chosen.append(i)
        # {Vx : (Vx)_i = 0}: x in the null space of the row V[i].
        null = torch.linalg.svd(v[i : i + 1]).Vh[1:].T
        v = torch.linalg.qr(v @ null).Q
    return chosen


def test_algorithm_1_matches_explicit_reorthonormalisation():
    g = torch.Generator().manual_seed(3)
    v = torch.linalg.qr(torch.randn(12, 5, generator=g, dtype=torch.float64)).Q
    assert list(greedy_projection_select(v)) == _algorithm_1_reference(v)


def test_selection_has_exact_size_k_is_deterministic_and_keeps_small_classes_whole():
    p = torch.rand(30, generator=torch.Generator().manual_seed(1))
    for sampler in ("exact-k", "official"):
        first = select_items(p, 7, sampler, np.random.default_rng(5))
        assert len(first) == 7 and len(set(first)) == 7 and first.max() < 30
        assert np.array_equal(first, select_items(p, 7, sampler, np.random.default_rng(5)))
    assert len(select_items(p, 7, "paper", np.random.default_rng(5))) <= 7
    assert np.array_equal(select_items(p[:7], 7, "exact-k", np.random.default_rng(0)), np.arange(7))
    assert np.array_equal(select_items(p[:3], 7, "paper", np.random.default_rng(0)), np.arange(3))


def test_selection_prefers_low_confidence_high_information_samples_unlike_uniform():
    # 30 confident (p = 0.99) and 10 uncertain (p = 0.05) items, k = 10. The kernel's diagonal is 0.28 vs
    # 0.96, and confident items are similar to each other (off-diagonal p_i·p_j/N = 0.025) while
    # uncertain ones are nearly orthogonal to everything. Uniform sampling keeps 2.5 uncertain items on
    # average; IP-DPP keeps about 4.6 (exact-k: the k-DPP's eigenvector draw weighs the 9 eigenvalues
    # 0.96 of the uncertain block against the 29 of 0.25 of the confident one) or more (`paper`).
    p = torch.tensor([0.99] * 30 + [0.05] * 10)
    uncertain: dict[str, list[int]] = {"exact-k": [], "paper": [], "official": []}
    for seed in range(40):
        for sampler, counts in uncertain.items():
            picked = select_items(p, 10, sampler, np.random.default_rng(seed))
            counts.append(int((picked >= 30).sum()))
    assert np.mean(uncertain["exact-k"]) >= 4 and np.mean(uncertain["paper"]) >= 4
    assert np.mean(uncertain["official"]) < 3.2


def _structured_test_vectors(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(len(kind))
    if kind == "distinct":
        return torch.rand(300, generator=g, dtype=torch.float64)
    if kind == "ties":  # 9 distinct values among 400 items
        return torch.round(torch.rand(400, generator=g, dtype=torch.float64) * 8) / 8
    p = torch.rand(250, generator=g, dtype=torch.float64)  # zeros, negligible weights and a tie group
    p[::5], p[1::7] = 0.0, 1e-14
    return torch.where(p > 0.9, torch.tensor(0.5, dtype=torch.float64), p)


@pytest.mark.parametrize("kind", ["distinct", "ties", "zeros"])
@pytest.mark.parametrize("scale", ["paper", "code"])
def test_structured_spectrum_matches_dense_eigh(kind, scale):
    p = _structured_test_vectors(kind)
    kernel = ipdpp_kernel(p, scale)
    eigenvalues, eigenvectors = torch.linalg.eigh(kernel)
    spectrum = RankOneSpectrum(p, scale)
    assert torch.allclose(spectrum.values, eigenvalues, rtol=0, atol=1e-13)
    v = spectrum.vectors(np.arange(len(p)))
    assert torch.allclose(v.T @ v, torch.eye(len(p), dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(kernel @ v, v * spectrum.values, rtol=0, atol=1e-12)
    # simple eigenvalues: the same vector up to sign; repeated ones: the same eigenspace projector, both
    # to within the eigenvectors' conditioning (Davis–Kahan: rounding / gap to the rest of the spectrum)
    values = [*eigenvalues.tolist(), math.inf]
    start = 0
    while start < len(p):
        stop = start + 1
        while stop < len(p) and values[stop] - values[stop - 1] < 1e-9:
            stop += 1
        separation = min(
            values[start] - values[start - 1] if start else math.inf, values[stop] - values[stop - 1]
        )
        ours, theirs = v[:, start:stop], eigenvectors[:, start:stop]
        tolerance = max(1e-10, 1e-14 / separation)
        assert torch.allclose(ours @ ours.T, theirs @ theirs.T, rtol=0, atol=tolerance)
        start = stop


def test_structured_spectrum_forms_only_the_chosen_vectors():
    p = _structured_test_vectors("ties")
    spectrum = RankOneSpectrum(p)
    chosen = np.array([399, 0, 57])
    # Two code paths (the norms of 3 columns vs of 400): equal up to float64 rounding. Each entry is a
    # few flops divided by a norm summed over N = 400 terms, so it may differ by about N·eps ≈ 1e-13.
    tolerance = 10 * 400 * torch.finfo(torch.float64).eps
    assert torch.allclose(
        spectrum.vectors(chosen), spectrum.vectors(np.arange(400))[:, chosen], rtol=0.0, atol=tolerance
    )


@pytest.mark.parametrize("sampler", ["exact-k", "paper"])
def test_structured_path_selects_what_the_dense_path_selects(sampler):
    p = torch.rand(600, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for seed in range(3):
        dense = select_items(p, 60, sampler, np.random.default_rng(seed))
        structured = select_items(p, 60, sampler, np.random.default_rng(seed), dense_limit=0)
        assert np.array_equal(dense, structured)


def test_above_the_dense_limit_selection_uses_the_structured_solver():
    p = torch.rand(11, generator=torch.Generator().manual_seed(2))
    picked = select_items(p, 3, "exact-k", np.random.default_rng(0), dense_limit=10)
    assert len(picked) == 3 and len(set(picked)) == 3
    assert len(select_items(p, 3, "official", np.random.default_rng(0), dense_limit=10)) == 3
    with pytest.raises(UserError, match="exact-k, paper, official"):
        select_items(p, 3, "greedy", np.random.default_rng(0))
