"""DKM (Cho et al. 2022, "DKM: Differentiable K-Means Clustering Layer for Neural Network Compression"): every
layer's weights are clustered by a differentiable k-means layer in each training forward, and the forward uses
the soft reconstruction, not a straight-through estimator.

Per layer, k = 2^b centroids C ([k, d]; d = `dim`, 1 = scalar weights) and, in every training forward, the
paper's Algorithm 1 on the layer's (sub-)vectors W ([n, d]):

    C̃ ← C;  repeat:  A = softmax(−D(W, C̃)/τ) (rows over the k centroids);  C ← (AᵀW)/(Aᵀ1)
                      stop if max|C − C̃| < ε or after `iters` iterations;  C̃ ← C
    W̃ = A·C         the layer's weights in this forward

Gradients flow through every iteration (to the latent weights W, through A and C), so the gradient is not the
identity of an STE. The last C is kept (detached) as the next forward's start, as the paper does. At the end
(`codebooks`, `clamp`) every (sub-)vector is hard-assigned, argmin_j D(w_i, c_j), to the kept centroids and
replaced by its centroid: at most 2^b distinct values (codewords) per layer.

Choices where the paper leaves details out (or that differ from it), and why:
  distance   D = ‖w − c‖ (Euclidean, not squared; |w − c| for scalars) by default, as in the paper's
             d_ij = −f(w_i, c_j) with f the Euclidean distance; its gradient at w = c (0/0 for d > 1) is taken as
             0. `distance="squared"` gives ‖w − c‖², what Apple's coremltools DKMPalettizer uses (then τ is in
             units of σ_l²). The hard assignment is the same under both.
  τ, ε units τ and ε are given in units of the layer's pretrained weight standard deviation σ_l (fixed in
             `prepare`): the paper uses one absolute τ per network, tuned by grid search; the layers of
             ResNet-20 differ in scale by about an order of magnitude, so one absolute τ would be near-hard in
             some layers and near-uniform in others. Default τ = 0.05 σ_l (a 16-level 1-D codebook of a
             Gaussian layer has spacings ≈ 0.2–0.5 σ_l: soft between neighbours, hard beyond), ε = 1e-4 σ_l.
  iterations `iters` = 5 at most per forward (the paper: until convergence, "a few"); warm-started from the
             previous forward, they usually stop after one or two.
  init       k-means on the pretrained weights: for d = 1 `quantize.kmeans` (deterministic, converged; a layer
             with ≤ 2^b distinct values gets one centroid per value, so fewer than 2^b), for d > 1 VQ's seeded
             Lloyd init (`vq.init_codebook`, euclidean). So right after `prepare` the clamp is k-means PTQ, and
             as τ → 0 the training forward is that k-means reconstruction (a converged Lloyd fixed point).
  empty      a centroid whose attention mass Aᵀ1 underflows (no weight near it) keeps its value in the update
             instead of 0/0.
  sub-vectors d > 1: consecutive weights in flattened order, the last one zero-padded (VQ's `subvectors`); the
             padded sub-vector is assigned and reconstructed (padding dropped) but gets weight 0 in the
             centroid update, so the padding zeros do not pull a centroid. Bits per weight: b/d (VQ's
             `VectorCodebook`); d = 1 gives a plain `Codebook`.
  precision  the clustering runs in float32 (float64 for float64 weights) with autocast off (bf16 training
             only changes the conv/linear arithmetic), like the penalty and the clamp of the other methods.
  centroids  are state, not learnable parameters: they move only by the k-means iterations (the paper's C is
             the layer's output of the iterations, not trained by SGD). So `param_groups`/`learnable` are empty,
             and `state_dict` holds the centroids (and σ_l) for resume. Under torchrun the centroids stay equal
             on every rank: the iterations see only the weights, which DDP keeps equal, never the batch.
  penalty    none (the paper adds no loss): 0, a scalar on the weights' device.
  compile    the early stop is a data-dependent branch: under torch.compile it breaks the graph, so the
             clustering runs as several small graphs (checked on the tiny model: same loss, gradients within
             4e-6 and centroids within 1e-6 of eager; dynamo may hit its recompile limit and run some in eager).

Training forward / eval. As in VQ, `prepare(model)` replaces the forward of every conv/linear module of the
trainer's own copy: in training mode it uses W̃ (and advances the centroids); in eval mode it is the plain
network with its latent weights, so the state dict and run file stay those of the plain network. The quantized
network is `clamp(model)`, a copy with the plain forward back. The trainer is untouched.

Memory and cost: A is [⌈N/d⌉, 2^b] per layer and autograd keeps one per iteration, so about
⌈N/d⌉·2^b·(iters + 2) floats per layer per step: ResNet-20's largest layer (36,864 weights) at b = 4, d = 1,
5 iterations is ≈ 4.1 M floats (16 MB); b is capped at 8 (2^8 entries: 64× that) for this reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..quantize import Codebook, kmeans
from .base import Clamped, Compressor, check_finite, mean_bits
from .forward import layer_forward, patch, quantized_modules, unpatch
from .vq import VectorCodebook, init_codebook, subvectors

DISTANCES = ("euclidean", "squared")
MAX_BITS = 8  # 2^8 centroids: the attention matrix costs ⌈N/d⌉·2^b floats per layer per iteration
INIT_ITERS = 50  # Lloyd iterations of the d > 1 initialisation (d = 1 uses quantize.kmeans, run to convergence)


@dataclass(frozen=True)
class DKMConfig:
    bits: int = 4  # b: 2^b centroids per layer, 1..8; a (sub-)vector stores a b-bit index, b/dim bits per weight
    dim: int = 1  # d: consecutive weights (flattened order) per clustered sub-vector, 1..64 (1: scalar weights)
    tau: float = 0.05  # τ: softmax temperature, in units of the layer's pretrained weight std σ_l (σ_l² if squared)
    distance: str = "euclidean"  # D(w, c): "euclidean" ‖w − c‖ (the paper) | "squared" ‖w − c‖² (coremltools)
    iters: int = 5  # most k-means iterations per training forward (gradients flow through all of them), 1..100
    eps: float = 1e-4  # ε: stop iterating when no centroid moves more than this, in units of σ_l (0: all iters)
    params: str = "weights"  # which weights are clustered: conv/linear weights (a selection: landscape/params.py)

    def __post_init__(self):
        check_int("bits", self.bits, 1, MAX_BITS)
        check_int("dim", self.dim, 1, 64)
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau (the DKM temperature τ) must be a finite number > 0, got {self.tau}")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}")
        check_int("iters", self.iters, 1, 100)
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps (the DKM stopping tolerance, in units of σ_l) must be a finite number ≥ 0, "
                             f"got {self.eps}")

    @property
    def bits_per_weight(self) -> float:
        return self.bits / self.dim


def distance(v: Tensor, c: Tensor, how: str = "euclidean") -> Tensor:
    """[n, k] distances of sub-vectors v [n, d] to centroids c [k, d]: Euclidean ‖v_i − c_j‖ (its gradient at a
    zero distance taken as 0: |·| for d = 1, a guarded square root otherwise) or its square."""
    if how == "squared":
        return ((v[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    if v.shape[1] == 1:
        return (v - c.T).abs()
    sq = ((v[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    pos = sq > 0
    return torch.where(pos, sq.where(pos, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def attention(v: Tensor, c: Tensor, tau: float, how: str = "euclidean") -> Tensor:
    """The DKM attention A = softmax(−D(v, c)/τ), [n, k], every row summing to 1."""
    return torch.softmax(-distance(v, c, how) / tau, dim=1)


def refine(v: Tensor, c: Tensor, tau: float, iters: int, eps: float, weight: Tensor | None = None,
           how: str = "euclidean") -> tuple[Tensor, Tensor, int]:
    """The paper's iterative differentiable k-means from the centroids c [k, d] (used as given, so detach them
    to start fresh): returns (A, C, iterations done), C = (AᵀW)/(Aᵀ1) the attention-weighted means under the
    returned A; stops when max|ΔC| < eps. `weight` [n] (0/1) weights the sub-vectors in the update (padding);
    a centroid with no attention mass keeps its value."""
    w = weight[:, None] if weight is not None else None
    done = 0
    for done in range(1, iters + 1):  # noqa: B007 (the count is returned)
        a = attention(v, c, tau, how)
        aw = a if w is None else a * w
        mass = aw.sum(0)
        means = (aw.T @ v) / mass.clamp_min(torch.finfo(v.dtype).tiny)[:, None]
        new = torch.where((mass > 0)[:, None], means, c)
        moved = (new - c).abs().max()
        c = new
        if moved < eps:
            break
    return a, c, done


@dataclass(eq=False)
class LayerDKM:
    """One layer's centroids and settings. A plain object, not a Module: the centroids stay out of the model's
    state dict (they are the compressor's state)."""

    centroids: Tensor  # [k, d], float32, no grad: the last iteration's C (the next forward's start)
    dim: int
    scale: float  # σ_l, the pretrained weights' std: τ and ε are in these units
    tau: float
    iters: int
    eps: float
    how: str = "euclidean"  # the distance D
    last_iters: int = 0  # iterations the last training forward took

    def vectors(self, theta: Tensor) -> tuple[Tensor, Tensor | None]:
        """The [⌈N/d⌉, d] sub-vectors of `theta` (float32, or float64 if `theta` is) and the update weight of each
        (None: no padding)."""
        flat = theta.flatten()
        flat = flat if flat.dtype == torch.float64 else flat.float()
        v = subvectors(flat, self.dim)
        if flat.numel() % self.dim == 0:
            return v, None
        weight = torch.ones(len(v), device=v.device, dtype=v.dtype)
        weight[-1] = 0.0
        return v, weight

    def soft(self, theta: Tensor, *, update: bool = True) -> Tensor:
        """W̃ = A·C of `theta` (any shape, its dtype), differentiable in `theta` through every iteration;
        `update` keeps the new centroids (detached) as the next start."""
        with torch.autocast(theta.device.type, enabled=False):
            v, weight = self.vectors(theta)
            tau = self.tau * (self.scale**2 if self.how == "squared" else self.scale)
            start = self.centroids.to(v.dtype, copy=True)  # a copy: autograd may save it, the update below is in place
            a, c, done = refine(v, start, tau, self.iters, self.eps * self.scale, weight, self.how)
            out = (a @ c).flatten()[: theta.numel()].view_as(theta).to(theta.dtype)
        if update:
            with torch.no_grad():
                self.centroids.copy_(c)
            self.last_iters = done
        return out

    @torch.no_grad()
    def assign(self, theta: Tensor) -> Tensor:
        """Hard assignment argmin_j D(w_i, c_j) of every sub-vector to the kept centroids (ties: lower index)."""
        v = self.vectors(theta)[0]
        return distance(v, self.centroids.to(v.dtype), self.how).argmin(1)

    @torch.no_grad()
    def hard(self, theta: Tensor) -> Tensor:
        """The clamped [N] weights: every sub-vector replaced by its nearest centroid."""
        return self.centroids[self.assign(theta)].flatten()[: theta.numel()]


def _dkm_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The forward `DKM.prepare` installs on a conv/linear module: the soft reconstruction while training."""
    w = module._dkm.soft(module.weight) if module.training else module.weight
    return layer_forward(module, x, w)


@torch.no_grad()
def init_centroids(theta: Tensor, bits: int, dim: int, generator: torch.Generator) -> Tensor:
    """k-means of the pretrained weights (see the module docstring): [k, d] float32, k ≤ 2^bits."""
    if dim == 1:
        return kmeans(theta.flatten().float(), bits).values.float()[:, None].clone()
    v = subvectors(theta.flatten().float(), dim)
    return init_codebook(v, 2**bits, "euclidean", INIT_ITERS, generator)


class DKM(Compressor):
    name = "dkm"
    label = "DKM"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}

    def __init__(self, config: DKMConfig = DKMConfig(), *, seed: int = 0):
        self.config, self.seed, self.params = config, seed, config.params
        self.layers: dict[str, LayerDKM] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        """Initial centroids (k-means of the pretrained weights), and the soft forward on each clustered module."""
        cfg, generator = self.config, torch.Generator().manual_seed(self.seed)
        selected = self.selected(model)
        owners = quantized_modules(model, selected, "dkm")  # the soft reconstruction lives in the module's forward
        self.layers = {}
        for name, p in selected.items():
            theta = p.detach()
            check_finite(f"pretrained parameter {name}", theta)
            scale = float(theta.float().std()) if theta.numel() > 1 else 0.0
            scale = scale if scale > 0 else max(float(theta.abs().max()), 1.0)  # constant layer: any unit works
            centroids = init_centroids(theta, cfg.bits, cfg.dim, generator).to(theta.device)
            layer = self.layers[name] = LayerDKM(centroids, cfg.dim, scale, cfg.tau, cfg.iters, cfg.eps, cfg.distance)
            patch(owners[name], "_dkm", layer, _dkm_forward)
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.layers):
            raise RuntimeError("DKM.prepare(model) must be called first")
        return params

    def penalty(self, model: nn.Module) -> Tensor:
        """No compression loss (the paper's DKM has none): 0 on the weights' device."""
        params = self._check_prepared(model)
        return torch.zeros((), device=next(iter(params.values())).device) if params else torch.zeros(())

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """Hard assignment to the kept centroids; neither the model nor the centroids change."""
        books: dict[str, Codebook] = {}
        with torch.no_grad():
            for name, p in self._check_prepared(model).items():
                layer = self.layers[name]
                index = layer.assign(p.detach())
                q = layer.centroids[index].flatten()[: p.numel()].to(p.dtype)
                values, inverse, counts = torch.unique(q, return_inverse=True, return_counts=True)
                if layer.dim == 1:
                    books[name] = Codebook(values, inverse, counts)
                else:
                    books[name] = VectorCodebook(values, inverse, counts, entries=int(torch.unique(index).numel()),
                                                 n_sub=len(index))
        return books

    def clamp(self, model: nn.Module) -> Clamped:
        """Hard assignment on a copy, which gets the plain forward back."""
        clamped = super().clamp(model)
        return Clamped(unpatch(clamped.model, "_dkm"), clamped.codebooks)

    def stats(self, model: nn.Module) -> dict[str, float]:
        """mean_clusters: centroids in use per layer; nominal_bits: b/d; assignment_distance: mean squared
        distance weight ↔ its centroid; soft_hard_gap: mean squared distance of the soft reconstruction to the
        hard one (→ 0 as τ → 0); mean_iters: k-means iterations of the last training forward, layer mean."""
        books = self.codebooks(model)
        params = self.selected(model)
        n = max(sum(p.numel() for p in params.values()), 1)
        with torch.no_grad():
            sq = sum(((p.detach().flatten() - books[k].apply()) ** 2).sum().item() for k, p in params.items())
            gap = sum(((self.layers[k].soft(p.detach(), update=False).flatten() - books[k].apply()) ** 2).sum().item()
                      for k, p in params.items())
        entries = [b.entries if isinstance(b, VectorCodebook) else b.k for b in books.values()]
        return {"mean_clusters": sum(entries) / max(len(books), 1),
                "mean_bits": mean_bits(books),
                "nominal_bits": self.config.bits_per_weight,
                "assignment_distance": sq / n,
                "soft_hard_gap": gap / n,
                "mean_iters": sum(layer.last_iters for layer in self.layers.values()) / max(len(self.layers), 1)}

    def state_dict(self) -> dict:
        return {"centroids": {k: v.centroids.clone() for k, v in self.layers.items()},
                "scales": {k: v.scale for k, v in self.layers.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restores the centroids (and σ_l) in place; `prepare` must have run."""
        for name, value in state["centroids"].items():
            check_finite(f"DKM centroids of {name}", value)
            if name not in self.layers or self.layers[name].centroids.shape != value.shape:
                raise ValueError(f"DKM state has centroids for {name} {tuple(value.shape)} that do not fit")
            self.layers[name].centroids.copy_(value.detach())
        for name, value in state.get("scales", {}).items():
            if name in self.layers:
                self.layers[name].scale = float(value)
