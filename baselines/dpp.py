"""The DPP mathematics of IP-DPP (docs/methods.md §16, stage 2): the information-preservable kernel, exact
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

Scale: S = D + ρ·ppᵀ with D = diag(1 − c·P·p_i), ρ = c, is diagonal plus rank one. Classes of up to
`dense_limit` items use a dense float64 eigendecomposition (torch.linalg.eigh, on p's device), larger
ones `RankOneSpectrum`, which never forms S (memory O(N·k) plus fixed-size work blocks):
- Deflation: an item with √ρ·p_i ≤ 8·ε·max(max|d|, ρ‖p‖²) keeps eigenvalue d_i with eigenvector e_i
  (p_i = 0 exactly, or negligible). Items with equal d_i (equal p_i) form a group: its weight vector
  p_G/‖p_G‖ = a becomes one representative with weight ‖p_G‖, and the group keeps d_G with multiplicity
  |G| − 1, the eigenvectors being columns 2..|G| of the Householder reflection that maps a to −e_1
  (e_j − (a + e_1)·a_j/(1 + a_1), orthonormal and orthogonal to a).
- Secular equation for the m distinct representatives δ_1 < … < δ_m with weights w = ρ·z²:
  f(λ) = 1 + Σ w_j/(δ_j − λ) = 0 has one root in each (δ_i, δ_{i+1}) and one in (δ_m, δ_m + Σw]. All roots
  are solved at once, in blocks of rows: f at the midpoint of the bracket picks the nearer pole as the
  origin (λ = δ_origin + τ, so δ_j − λ = (δ_j − δ_origin) − τ keeps full relative accuracy near the
  pole); then Li's "middle way" step (a two-pole rational model matching f, ψ' and φ' at the current
  point, as in LAPACK's dlaed4), safeguarded by a bisection bracket, until |f| is at rounding level
  or the step is below 2ε·|τ|; typically 4–5 passes. Each pass costs O(m²) operations, in blocks.
- Eigenvectors are formed only for the chosen roots: y ∝ z/(δ − λ) on the representatives, normalised,
  spread over each group as y_G·a. Gu & Eisenstat's recomputation of z from the roots is not done:
  with the origin-shifted differences the tests find eigenvalues within 1e-13 of torch.linalg.eigh
  (measured ≤ 4e-15), VᵀV = I and SV = VΛ to 1e-12 (measured ≤ 1e-14), on kernels with ties and zeros.
Measured (one CPU thread, k = 100, bench/dpp_scale.py): N = 5,000 in 0.4 s against 44 s dense, 20,000
in 7 s, 61,000 in 55 s (O(N²) work per pass, O(N·k) memory); selections equal the dense path's when p
has no ties. The default `dense_limit` (20,000) still keeps every class the dense solver handled on
that solver, so earlier selections stay as they were: within a repeated eigenvalue (ties in p) the
two paths' eigenvector bases differ, and so may Algorithm 1's picks.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmark.errors import UserError

SAMPLERS = ("exact-k", "paper", "official")
SCALES = ("paper", "code")
DENSE_LIMIT = 20_000  # items per class solved densely (float64 N×N: 3.2 GB at the limit); larger: secular
EPS = float(np.finfo(np.float64).eps)
BLOCK = 1 << 19  # elements of one roots × poles work block of the secular solver (4 MiB in float64)
FAST_STEPS = 12  # middle-way steps before a root's iteration falls back to plain bisection
MAX_STEPS = 200
JITTER = 1e-12  # eigenvalues are clamped to at least this, i.e. L = S + εI where S is rank-deficient


def ipdpp_kernel(p: torch.Tensor, scale: str = "paper") -> torch.Tensor:
    """S = I − c·P·diag(p) + c·ppᵀ for one class's true-class probabilities p (c = 1/N or 1/N²)."""
    p = p.to(torch.float64)
    c = _kernel_scale(len(p), scale)
    kernel = c * torch.outer(p, p)
    kernel.diagonal().add_(1.0 - c * p.sum() * p)
    return kernel


def _kernel_scale(n: int, scale: str) -> float:
    if scale not in SCALES:
        raise UserError(f"ipdpp kernel scale must be one of {', '.join(SCALES)}, got {scale!r}")
    return 1.0 / n if scale == "paper" else 1.0 / n**2


def _secular_terms(
    delta: torch.Tensor, w: torch.Tensor, lower: torch.Tensor, origin: torch.Tensor, tau: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """f(λ), ψ, φ, ψ', φ' for a block of roots (`lower` ascending: each root's lower pole), at
    λ = δ_origin + τ; ψ sums w_j/(δ_j − λ) over j ≤ lower, φ over j > lower."""
    first, stop = int(lower[0]), int(lower[-1]) + 1  # columns < first lie below every row's split
    inv = delta[None, :] - delta[origin][:, None]
    inv -= tau[:, None]
    inv.reciprocal_()  # 1/(δ_j − λ)
    below = torch.arange(first, stop, device=delta.device)[None, :] <= lower[:, None]
    w_low, w_mid = w[:first], w[first:stop]
    psi = inv[:, :first] @ w_low + (inv[:, first:stop] * below) @ w_mid
    total = inv @ w
    inv.square_()
    dpsi = inv[:, :first] @ w_low + (inv[:, first:stop] * below) @ w_mid
    dtotal = inv @ w
    return 1.0 + total, psi, total - psi, dpsi, dtotal - dpsi


def secular_roots(delta: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The m roots of 1 + Σ_j w_j/(δ_j − λ) = 0 for strictly increasing δ and w > 0, root i in
    (δ_i, δ_{i+1}), the last in (δ_m, δ_m + Σw]. Returned as (origin, τ), λ_i = δ_origin_i + τ_i with
    the nearer pole as origin. Every root starts at the midpoint of its interval, then takes
    safeguarded middle-way steps (see the module docstring) on blocks of at most BLOCK elements."""
    m = len(delta)
    device = delta.device
    lower = torch.arange(m, device=device)
    origin = lower.clone()
    if m == 0:
        return origin, delta.clone()
    last = lower == m - 1
    gap = torch.cat([delta[1:] - delta[:-1], w.sum()[None]])
    tau, lo, hi = gap / 2, torch.zeros_like(gap), gap.clone()
    done = torch.zeros(m, dtype=torch.bool, device=device)
    rows = max(1, BLOCK // m)
    for step in range(MAX_STEPS):
        active = torch.nonzero(~done)[:, 0]
        if len(active) == 0:
            break
        for start in range(0, len(active), rows):
            idx = active[start : start + rows]
            i, o, t, top = lower[idx], origin[idx], tau[idx], last[idx]
            f, psi, phi, dpsi, dphi = _secular_terms(delta, w, i, o, t)
            if step == 0:  # at the midpoint: a root above it is measured from the upper pole
                up = (f < 0) & ~top
                above = (f < 0) & top
                o = torch.where(up, i + 1, o)
                t = torch.where(up, t - gap[idx], t)
                origin[idx] = o
                lo[idx] = torch.where(up | above, t, 0.0)
                hi[idx] = torch.where(up, 0.0, torch.where(above, gap[idx], t))
            else:  # f increases with λ: its sign moves one end of the bracket
                lo[idx] = torch.where(f < 0, torch.maximum(lo[idx], t), lo[idx])
                hi[idx] = torch.where(f > 0, torch.minimum(hi[idx], t), hi[idx])
            # Middle way: f ≈ c + s/(δ_i − x) + S/(δ_{i+1} − x) with f, ψ', φ' matched at λ; its root
            # in (δ_i, δ_{i+1}) is λ + η, η the smaller root of c·η² − a·η + b (one pole for the last).
            base = delta[o]
            d_lo = (delta[i] - base) - t
            d_hi = torch.where(top, torch.inf, (delta[(i + 1).clamp(max=m - 1)] - base) - t)
            s_lo = d_lo * d_lo * dpsi
            s_hi = torch.where(top, 0.0, d_hi * d_hi * dphi)
            c = f - d_lo * dpsi - torch.where(top, 0.0, d_hi * dphi)
            a = c * (d_lo + d_hi) + s_lo + s_hi
            b = d_lo * d_hi * f
            root = torch.sqrt(torch.abs(a * a - 4 * b * c))
            eta = torch.where(a > 0, 2 * b / (a + root), (a - root) / (2 * c))
            eta = torch.where(top, d_lo + s_lo / c, eta)
            low, high = lo[idx], hi[idx]
            new = t + eta
            bad = ~torch.isfinite(new) | (new <= low) | (new >= high) | (step >= FAST_STEPS)
            new = torch.where(bad, (low + high) / 2, new)
            noise = torch.abs(f) <= 2 * EPS * (1.0 + phi - psi)  # |f| at rounding level: λ is a root
            finished = noise | (torch.abs(new - t) <= 2 * EPS * torch.abs(t))
            finished |= (high - low) <= 4 * EPS * torch.maximum(torch.abs(low), torch.abs(high))
            tau[idx] = torch.where(noise, t, new)
            done[idx] = finished
    return origin, tau


class RankOneSpectrum:
    """Eigenvalues (ascending) of S = D + ρ·ppᵀ, and its eigenvectors on demand, without forming S
    (module docstring, "Scale")."""

    def __init__(self, p: torch.Tensor, scale: str = "paper") -> None:
        p = p.to(torch.float64)
        n = len(p)
        self.n, self.device = n, p.device
        rho = _kernel_scale(n, scale)
        d = 1.0 - rho * p.sum() * p
        size = max(float(d.abs().max()), rho * float((p * p).sum())) if n else 0.0
        weighted = math.sqrt(rho) * p.abs() > 8 * EPS * size if n else p.bool()
        self.single = torch.nonzero(~weighted)[:, 0]  # eigenvector e_i, eigenvalue d_i
        kept = torch.nonzero(weighted)[:, 0]
        order = torch.sort(d[kept], stable=True).indices
        self.items = kept[order]  # weighted items, by increasing d
        self.delta, self.group, counts = torch.unique_consecutive(
            d[self.items], return_inverse=True, return_counts=True
        )
        m = len(self.delta)
        z2 = torch.zeros(m, dtype=torch.float64, device=p.device)
        z2.index_add_(0, self.group, p[self.items] ** 2)
        self.z = z2.sqrt()
        self.unit = p[self.items] / self.z[self.group]  # a: each group's unit weight vector
        self.start = torch.cumsum(counts, 0) - counts  # group g = items[start_g : start_g + counts_g]
        self.counts = counts
        self.origin, self.tau = secular_roots(self.delta, rho * z2)
        # the |G| − 1 Householder columns j = 1..|G|−1 of each group: position start_g + j in items
        positions = torch.arange(len(self.items), device=p.device)
        tied = torch.nonzero(positions != self.start[self.group])[:, 0]
        values = torch.cat([d[self.single], self.delta[self.group[tied]], self.delta[self.origin] + self.tau])
        kinds = torch.cat(
            [torch.zeros_like(self.single), torch.ones_like(tied), torch.full_like(self.origin, 2)]
        )
        params = torch.cat([self.single, tied, torch.arange(m, device=p.device)])
        rank = torch.sort(values, stable=True).indices
        self.values = values[rank]
        self.kinds, self.params = kinds[rank].cpu().numpy(), params[rank].cpu().numpy()

    def vectors(self, columns: np.ndarray) -> torch.Tensor:
        """The eigenvectors of the given positions of `values`, as the columns of an N×len(columns)
        matrix (orthonormal)."""
        out = torch.zeros(self.n, len(columns), dtype=torch.float64, device=self.device)
        kinds, params = self.kinds[columns], self.params[columns]
        for col in np.flatnonzero(kinds == 0):
            out[int(params[col]), col] = 1.0
        for col in np.flatnonzero(kinds == 1):
            position = int(params[col])
            g = int(self.group[position])
            first = int(self.start[g])
            members = self.items[first : first + int(self.counts[g])]
            a = self.unit[first : first + int(self.counts[g])]
            column = -a * a[position - first] / (1.0 + a[0])
            column[0] = -a[position - first]
            column[position - first] += 1.0
            out[members, col] = column
        roots = np.flatnonzero(kinds == 2)
        if len(roots):
            r = torch.from_numpy(params[roots]).to(self.device)
            o = self.origin[r]
            y = self.z[:, None] / ((self.delta[:, None] - self.delta[o][None, :]) - self.tau[r][None, :])
            y /= torch.linalg.vector_norm(y, dim=0, keepdim=True)
            out[self.items[:, None], torch.from_numpy(roots).to(self.device)[None, :]] = (
                y[self.group] * self.unit[:, None]
            )
        return out


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
    choice of k (`paper`: at most k). Computed in float64 on p's device; the spectrum of S by dense
    eigendecomposition for N ≤ dense_limit, otherwise by `RankOneSpectrum`."""
    if sampler not in SAMPLERS:
        raise UserError(f"ipdpp sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    n = len(p)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    if sampler == "official":
        return np.sort(rng.choice(n, size=k, replace=False))
    if n <= dense_limit:
        eigenvalues, eigenvectors = torch.linalg.eigh(ipdpp_kernel(p, scale))
        spectrum = None
    else:
        spectrum = RankOneSpectrum(p, scale)
        eigenvalues = spectrum.values
    eigenvalues = eigenvalues.clamp_min(JITTER)
    if sampler == "exact-k":
        columns = sample_k_eigenvectors(eigenvalues, k, rng)
    else:
        columns = paper_eigenvectors(eigenvalues, k, rng)
    if spectrum is None:
        vectors = eigenvectors[:, torch.from_numpy(columns).to(p.device)]
    else:
        vectors = spectrum.vectors(columns)
    return np.sort(greedy_projection_select(vectors))
