"""The DPP mathematics of IP-DPP (METHODS.md §16, stage 2): the information-preservable kernel, exact
k-DPP eigenvector selection with elementary symmetric polynomials in log space (Kulesza & Taskar,
ICML 2011), the paper's Algorithm 1 item selection, and the per-class subset of each sampler.

Kernel, per class of N items with true-class probabilities p: S = I − c·P·diag(p) + c·ppᵀ,
P = Σ p_i, c = 1/N (`scale="paper"`) or 1/N² (`scale="code"`, the public code). Its rows sum to 1,
its off-diagonal entries are ≥ 0, so it is a symmetric doubly stochastic PSD matrix with eigenvalues
in [0, 1] (1 for the all-ones vector). It is used directly as the L-ensemble.

Samplers (`SAMPLERS`):
- `exact-k`: eigendecompose S; draw exactly k eigenvectors, J with probability Π_{n∈J} λ_n / e_k(λ);
  then Algorithm 1 picks k items from V = the chosen eigenvectors.
- `paper`: eigenvector n kept with probability λ_n/(λ_n + 1), visiting them in order of decreasing
  λ (glt-bench's order; the paper states none) and stopping once k are kept, then Algorithm 1; may
  return fewer than k items.
- `official`: k items uniformly at random (what the public code effectively does).

Algorithm 1 (the paper's greedy version of the DPP's projection step): repeatedly take the item i
maximising (1/|V|)·Σ_{v∈V}(vᵀe_i)², then replace V by an orthonormal basis of its part orthogonal to
e_i. Σ_v (vᵀe_i)² is the diagonal of the projection K = VVᵀ, and removing e_i's direction from span
V turns K into K − K e_i e_iᵀ K / K_ii, so the selection is an incremental Cholesky factorisation of
K: O(N·|V|) per item, without re-orthonormalising V. Ties go to the smallest index.

Scale: S is diagonal plus rank one, so its spectrum could come from a secular equation without the
dense N×N eigendecomposition; that is not implemented. A dense float64 eigendecomposition (on the
device given) is used for classes of up to `dense_limit` items, and a larger class is a UserError.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmark.errors import UserError

SAMPLERS = ("exact-k", "paper", "official")
SCALES = ("paper", "code")
DENSE_LIMIT = 20_000  # items per class: a float64 N×N eigendecomposition (3.2 GB at the limit)
JITTER = 1e-12  # eigenvalues are clamped to at least this, i.e. L = S + εI where S is rank-deficient


def ipdpp_kernel(p: torch.Tensor, scale: str = "paper") -> torch.Tensor:
    """S = I − c·P·diag(p) + c·ppᵀ for one class's true-class probabilities p (c = 1/N or 1/N²)."""
    if scale not in SCALES:
        raise UserError(f"ipdpp kernel scale must be one of {', '.join(SCALES)}, got {scale!r}")
    p = p.to(torch.float64)
    n = len(p)
    c = 1.0 / n if scale == "paper" else 1.0 / n**2
    kernel = c * torch.outer(p, p)
    kernel.diagonal().add_(1.0 - c * p.sum() * p)
    return kernel


def log_esp(eigenvalues: torch.Tensor, k: int) -> torch.Tensor:
    """log e_l^n, l = 0..k, n = 0..N: the elementary symmetric polynomials of order l of the first n
    eigenvalues, in log space. e_0^n = 1, e_l^0 = 0 (l ≥ 1), e_l^n = e_l^{n−1} + λ_n·e_{l−1}^{n−1}, i.e.
    e_l^n = Σ_{m≤n} λ_m·e_{l−1}^{m−1}: one log-cumulative-sum per order."""
    log_lam = torch.log(eigenvalues.to(torch.float64))
    n = len(log_lam)
    table = torch.full((k + 1, n + 1), -math.inf, dtype=torch.float64, device=eigenvalues.device)
    table[0] = 0.0
    for order in range(1, k + 1):
        table[order, 1:] = torch.logcumsumexp(log_lam + table[order - 1, :-1], dim=0)
    return table


def sample_k_eigenvectors(eigenvalues: torch.Tensor, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices J of k eigenvectors drawn with P(J) ∝ Π_{n∈J} λ_n (Kulesza & Taskar's Algorithm 8):
    from n = N down, keep n with probability λ_n·e_{l−1}^{n−1}/e_l^n, l the number still to keep."""
    table = log_esp(eigenvalues, k).cpu().numpy()
    log_lam = torch.log(eigenvalues.to(torch.float64)).cpu().numpy()
    if not np.isfinite(table[k, -1]):
        raise ValueError(f"a k-DPP of size {k} needs at least {k} positive eigenvalues")
    kept: list[int] = []
    remaining = k
    for n in range(len(log_lam), 0, -1):
        if remaining == 0:
            break
        log_keep = log_lam[n - 1] + table[remaining - 1, n - 1] - table[remaining, n]
        if rng.random() < math.exp(min(log_keep, 0.0)):
            kept.append(n - 1)
            remaining -= 1
    return np.array(sorted(kept), dtype=np.int64)


def paper_eigenvectors(eigenvalues: torch.Tensor, k: int, rng: np.random.Generator) -> np.ndarray:
    """The paper's step: eigenvector n kept with probability λ_n/(λ_n + 1), in order of decreasing λ,
    until k are kept (fewer if the pass ends first)."""
    lam = eigenvalues.to(torch.float64).cpu().numpy()
    kept: list[int] = []
    for n in np.argsort(-lam, kind="stable"):
        if len(kept) == k:
            break
        if rng.random() < lam[n] / (lam[n] + 1.0):
            kept.append(int(n))
    return np.array(sorted(kept), dtype=np.int64)


def greedy_projection_select(vectors: torch.Tensor) -> np.ndarray:
    """Algorithm 1 on orthonormal columns V (N×m): m items, each the argmax of Σ_{v∈V}(vᵀe_i)² over the
    items not yet taken, after removing the taken items' directions from span V."""
    vectors = vectors.to(torch.float64)
    n, m = vectors.shape
    scores = (vectors**2).sum(1)  # diag K, K = VVᵀ
    factors = torch.zeros(m, n, dtype=torch.float64, device=vectors.device)
    taken = torch.zeros(n, dtype=torch.bool, device=vectors.device)
    chosen: list[int] = []
    for t in range(m):
        i = int(torch.where(taken, -math.inf, scores).argmax())
        column = vectors @ vectors[i] - factors[:t].T @ factors[:t, i]  # K e_i with taken directions removed
        factors[t] = column / math.sqrt(max(float(scores[i]), 1e-300))
        scores = (scores - factors[t] ** 2).clamp_min(0.0)
        taken[i] = True
        chosen.append(i)
    return np.array(chosen, dtype=np.int64)


def select_items(
    p: torch.Tensor,
    k: int,
    sampler: str,
    rng: np.random.Generator,
    scale: str = "paper",
    dense_limit: int = DENSE_LIMIT,
) -> np.ndarray:
    """Positions (into p) of the items one class keeps: all of them if N ≤ k, otherwise the sampler's
    choice of k (`paper`: at most k). Computed in float64 on p's device."""
    if sampler not in SAMPLERS:
        raise UserError(f"ipdpp sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    n = len(p)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if sampler == "official":
        return np.sort(rng.choice(n, size=k, replace=False))
    if n > dense_limit:
        raise UserError(
            f"IP-DPP: a class has {n} training items, above the dense eigendecomposition limit of "
            f"{dense_limit} (the secular-equation solver for larger classes is not implemented); "
            "raise dense_limit if memory allows, or use sampler=official"
        )
    eigenvalues, eigenvectors = torch.linalg.eigh(ipdpp_kernel(p, scale))
    eigenvalues = eigenvalues.clamp_min(JITTER)
    if sampler == "exact-k":
        columns = sample_k_eigenvectors(eigenvalues, k, rng)
    else:
        columns = paper_eigenvectors(eigenvalues, k, rng)
    picked = greedy_projection_select(eigenvectors[:, torch.from_numpy(columns).to(p.device)])
    return np.sort(picked)
