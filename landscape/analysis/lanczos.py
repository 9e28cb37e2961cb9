"""Spectra of a symmetric linear operator given only as a matrix-vector product (here: the Hessian of the loss,
landscape/analysis/hessian.py): extreme eigenvalues, trace, spectral density. Nothing here knows about models.

`matvec` maps a flat float64 torch vector [n] to the product (float64, same device); `n` is the dimension.

  top_eigenvalues  the k largest ("LA") or smallest ("SA") *algebraic* eigenvalues by scipy's ARPACK Lanczos
                   (`scipy.sparse.linalg.eigsh` on a float64 LinearOperator), from a seeded start vector, with the
                   number of products it took; `ncv` Lanczos vectors per restart (default max(2k + 4, 6),
                   `default_ncv` says why). Not power iteration: stopped on a relative change of |λ|, that returns
                   the eigenvalue of largest *magnitude*, which for a Hessian with a large negative eigenvalue is
                   not the largest one, and a small change per step is no bound on the error. Relative tolerance
                   `tol` (ARPACK's Ritz estimate: each returned eigenvalue to ≈ tol·|λ|), default 1e-3.
                   Dimensions ≤ DENSE_MAX (and k ≥ n − 1, which ARPACK refuses) are solved exactly from the dense
                   matrix (n products, `torch.linalg.eigvalsh`).
  hutchinson       tr(A) ≈ mean of zᵀAz over m Rademacher vectors z (seeded), with its standard error
                   std(ddof=1)/√m; exact (n products with unit vectors, SE 0) when n ≤ m, which costs no more;
                   optionally the traces of diagonal blocks from the same products (`split`).
  lanczos          m steps of Lanczos with full reorthogonalization (Gram–Schmidt twice against every earlier
                   vector, so the Ritz values do not repeat); stops early at an invariant subspace.
  slq              stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019): for each of n_v
                   normalized Rademacher start vectors v, the nodes are the eigenvalues θ_i of the Lanczos
                   tridiagonal T and the weights the *squared first components* of T's eigenvectors, so that
                   Σ_i w_i f(θ_i) = vᵀf(A)v exactly for polynomials f of degree < 2m; averaged over v it estimates
                   (1/n)·tr f(A), i.e. the spectral density. Weights of one vector sum to 1.
  density          that density on a grid by Gaussian broadening: φ(t) = mean_v Σ_i w_i N(t; θ_i, σ²); σ defaults
                   to SIGMA_FRACTION of the span of all nodes. Integrates to 1.

Randomness comes from a CPU torch.Generator seeded with `seed` (one per call), so results do not depend on the
device, and the first m Hutchinson vectors do not depend on how many are drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from torch import Tensor

from ..checks import check_int

MatVec = Callable[[Tensor], Tensor]
WHICH = ("LA", "SA")
DENSE_MAX = 32  # dimensions up to this are solved densely (n products; ARPACK would use ≥ 20 anyway)
SIGMA_FRACTION = 0.01  # default Gaussian broadening of the SLQ density, as a fraction of the nodes' span


class Counted:
    """A matvec that counts its calls (`calls`)."""

    def __init__(self, matvec: MatVec):
        self.matvec, self.calls = matvec, 0

    def __call__(self, v: Tensor) -> Tensor:
        self.calls += 1
        return self.matvec(v)


@dataclass(frozen=True)
class Eigen:
    values: list[float]  # sorted from the extreme inwards: descending for "LA", ascending for "SA"
    products: int  # matrix-vector products used


@dataclass(frozen=True)
class Trace:
    mean: float  # the estimate of tr(A)
    se: float  # its standard error, std(ddof=1)/√m (0 when exact)
    samples: list[float]  # zᵀAz per Rademacher vector (or the diagonal entries when exact)
    exact: bool
    parts: list[Trace] | None = None  # with `split`: the same for each diagonal block, from the same products


def dense(matvec: MatVec, n: int, device: torch.device | str = "cpu") -> Tensor:
    """The n×n matrix (float64), column by column from unit vectors, symmetrized."""
    eye = torch.eye(n, dtype=torch.float64, device=device)
    a = torch.stack([matvec(eye[i]) for i in range(n)], dim=1)
    return (a + a.T) / 2


def default_ncv(k: int, n: int) -> int:
    """ARPACK's number of Lanczos vectors: max(2k + 4, 6), at most n (scipy's default, max(2k + 1, 20), spends ≥ 20
    products before its first convergence test; on ResNet-20 at tol 1e-3, ncv 6 / 8 / 12 took 10 / 13 / 13
    products for λ_max, all converged to < 1e-7)."""
    return min(n, max(2 * k + 4, 6))


def top_eigenvalues(matvec: MatVec, n: int, k: int = 1, *, which: str = "LA", tol: float = 1e-3, seed: int = 0,
                    device: torch.device | str = "cpu", ncv: int | None = None, maxiter: int | None = None) -> Eigen:
    """The k extreme algebraic eigenvalues (module docstring); `ncv` Lanczos vectors (default `default_ncv`)."""
    check_int("k (eigenvalues)", k, 1)
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    counted = Counted(matvec)
    if n <= DENSE_MAX or k >= n - 1:
        values = torch.linalg.eigvalsh(dense(counted, n, device)).cpu().numpy()
    else:
        def mv(x: np.ndarray) -> np.ndarray:
            v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)).to(device)
            return counted(v).cpu().numpy()

        op = scipy.sparse.linalg.LinearOperator((n, n), matvec=mv, dtype=np.float64)
        v0 = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
        values = scipy.sparse.linalg.eigsh(op, k=k, which=which, v0=v0, tol=tol, maxiter=maxiter,
                                           ncv=ncv or default_ncv(k, n), return_eigenvectors=False)
    values = np.sort(values)
    values = values[::-1][:k] if which == "LA" else values[:k]
    return Eigen([float(v) for v in values], counted.calls)


def rademacher(n: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8).to(torch.float64).mul_(2).sub_(1)


def hutchinson(matvec: MatVec, n: int, samples: int, *, seed: int = 0, device: torch.device | str = "cpu",
               split: list[int] | None = None) -> Trace:
    """tr(A) by Hutchinson's estimator with Rademacher vectors, or exactly when n ≤ samples. `split` (sizes summing
    to n) also estimates the trace of each diagonal block A_ll from the same products: z_lᵀ(Az)_l is unbiased for
    tr A_ll (the cross terms z_lᵀA_lm z_m have mean 0), at a larger variance than z_lᵀA_ll z_l would have."""
    check_int("the number of trace samples", samples, 2)
    if n <= samples:
        eye = torch.eye(n, dtype=torch.float64, device=device)
        rows = [[float(matvec(eye[i])[i])] for i in range(n)]
        exact = True
    else:
        g = torch.Generator().manual_seed(seed)
        rows = []
        for _ in range(samples):
            z = rademacher(n, g).to(device)
            terms = z * matvec(z)
            rows.append([float(t.sum()) for t in (terms.split(split) if split else [])] + [float(terms.sum())])
        exact = False

    def trace(values: list[float]) -> Trace:
        x = np.asarray(values)
        if exact:
            return Trace(float(x.sum()), 0.0, values, True)
        return Trace(float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))), values, False)

    if exact:
        diag, bounds = [r[0] for r in rows], np.cumsum([0, *(split or [])])
        parts = [trace(diag[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)] if split else None
        return dataclasses.replace(trace(diag), parts=parts)
    parts = [trace([r[i] for r in rows]) for i in range(len(split))] if split else None
    return dataclasses.replace(trace([r[-1] for r in rows]), parts=parts)


def lanczos(matvec: MatVec, v0: Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(α [m'], β [m'−1]) of the tridiagonal T after m' ≤ steps Lanczos steps from v0 (float64, any norm), with
    full reorthogonalization; m' < steps where the Krylov space became invariant (β ≈ 0)."""
    check_int("Lanczos steps", steps, 1)
    n = v0.numel()
    steps = min(steps, n)
    q = v0.to(torch.float64) / torch.linalg.vector_norm(v0.to(torch.float64))
    basis = torch.empty(steps, n, dtype=torch.float64, device=v0.device)
    alpha, beta = [], []
    for j in range(steps):
        basis[j] = q
        w = matvec(q).to(torch.float64)
        alpha.append(float(torch.dot(q, w)))
        for _ in range(2):  # "twice is enough" (Parlett): orthogonal to every earlier vector to round-off
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(torch.linalg.vector_norm(w))
        if j == steps - 1 or b <= 1e-10 * max(abs(a) for a in alpha + beta + [1e-300]):
            break
        beta.append(b)
        q = w / b
    return np.asarray(alpha), np.asarray(beta)


def quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, weights) of T: its eigenvalues, and the squared first components of its eigenvectors."""
    if len(alpha) == 1:
        return alpha.copy(), np.ones(1)
    theta, s = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return theta, s[0] ** 2


def slq(matvec: MatVec, n: int, steps: int, vectors: int, *, seed: int = 0,
        device: torch.device | str = "cpu") -> tuple[list[list[float]], list[list[float]]]:
    """(nodes [n_v][m], weights [n_v][m]) of stochastic Lanczos quadrature (module docstring); a vector whose
    Lanczos stopped early after m' < m steps is padded with nodes 0.0 of weight 0.0."""
    check_int("SLQ start vectors", vectors, 1)
    g = torch.Generator().manual_seed(seed)
    m = min(steps, n)
    nodes, weights = [], []
    for _ in range(vectors):
        theta, w = quadrature(*lanczos(matvec, rademacher(n, g).to(device), m))
        pad = m - len(theta)
        nodes.append([float(t) for t in theta] + [0.0] * pad)
        weights.append([float(x) for x in w] + [0.0] * pad)
    return nodes, weights


def density(nodes, weights, *, sigma: float | None = None, points: int = 1000,
            grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(grid [G], φ(grid) [G], σ): the SLQ density broadened by Gaussians of width σ (module docstring). The
    default grid spans the nodes ± 5σ in `points` steps."""
    nodes, weights = np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    used = nodes[weights > 0]
    lo, hi = float(used.min()), float(used.max())
    if sigma is None:
        sigma = SIGMA_FRACTION * (hi - lo) if hi > lo else max(1e-3 * abs(hi), 1e-12)
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, points)
    kernel = np.exp(-0.5 * ((grid[:, None] - nodes.reshape(-1)[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    phi = kernel @ weights.reshape(-1) / nodes.shape[0]
    return grid, phi, float(sigma)
