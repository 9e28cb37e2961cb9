"""Benchmark the geometry tools (loss surfaces, Hessian spectra) on the adapted ResNet-20 and CIFAR-10 test images,
against bare inference and against the public packages that do the same: `loss-landscapes` and `pyhessian`.

Rows (medians over interleaved repeats; every side gets the same model, data, batches and torch thread count):
  surface_vs_bare
      points/s of landscape.analysis.surface.evaluate_surface (random plane: two filter-normalized Gaussian
      directions, R×R grid + the centre as anchor = R²+1 passes, BN keep, fast forward) over points/s of bare
      `model(x)` + cross-entropy for the same R²+1 passes over the same batches in a model that never changes
      (no state writes). Target ≥ 0.9.
  surface_vs_loss_landscapes
      our whole job (random_plane + evaluate_surface) against loss_landscapes.random_plane(model, metric,
      distance=0.5, steps=R, normalization="filter", deepcopy_model=True) on the same batches (its R² passes), as
      a ratio of wall time per forward pass, i.e. of wall times scaled to the same number of passes. Target ≥ 1.5.
      distance=0.5 because its planes span ‖θ‖/distance along each axis (see below): ±1 filter-normalized step,
      ours. Where its values differ from ours, and why, is measured on every run and printed below the table
      (its grid, its directions, its treatment of 1-D parameters, …), each with the line of its source; one
      extra untimed call of it (after the timed ones) records where every one of its evaluations sits in parameter
      space, and our evaluator re-evaluates a few of its points to show the evaluation itself agrees.
  top_eig_vs_pyhessian, top_eig_rel_diff
      time to the largest Hessian eigenvalue of the loss on the Hessian images (1,000 test images in batches of
      500, model in eval mode), landscape.analysis.hessian (HessianOperator, params="all";
      lanczos.top_eigenvalues: ARPACK Lanczos, tol = ARPACK's relative tolerance) vs PyHessian's
      `hessian(model, criterion, dataloader=batches, cuda=False).eigenvalues(top_n=1, maxIter, tol)` (power
      iteration, stopped when two successive Rayleigh quotients differ by < tol relative) at the same tol. Both
      differentiate the same parameters: PyHessian takes every parameter with requires_grad (weights, biases,
      BN affine), so ours is given params="all" (its default is conv/linear weights only). Ratio = PyHessian
      time / ours (target ≥ 2); rel diff = |λ_PyHessian − λ_ours| / |λ_ours| (target ≤ 0.01). Products used
      and time per product are shown for both. PyHessian 0.1's density() calls the removed torch.eig, so only
      eigenvalues() is compared. Both are seeded (ours: seed 0; PyHessian: torch.manual_seed(0) before).
  hvp_vs_grad
      one Hessian-vector product over one gradient (ours, HessianOperator on the Hessian images, params="all"):
      time ratio (reported, no target). PyHessian's product on the same data and vector is timed beside it.

    python bench/geometry.py [--quick] [--json] [--out FILE] [--threads N] [--device cpu]

Device (--device, default cpu): the model and every batch live there, for every side (PyHessian is constructed
with cuda=True on CUDA, the device made current); every timing synchronizes the device before reading the clock,
at start and at end. --threads sets torch's CPU threads (on CUDA only the host's share of the work). Should
loss-landscapes fail on the device (released versions draw its directions with torch.rand on the CPU), its rows
are null with the error as message. The untimed cross-checks (inspection of its grid, product agreement) are
computed in float64 on the CPU.

Budgets. Full (the default): surfaces on 500 test images in one batch, 9×9 grid (82 of our passes, 81 of
loss-landscapes'), 3 repeats; Hessian on 1,000 test images in batches of 500, tol 1e-3, product/gradient timing 3
repeats, top eigenvalue 1 run per side (each run is tens of products of several seconds; --eig-repeats for more).
About 15 minutes on the idle 2-core machine (an estimate from per-image costs; the JSON records elapsed_s), half
of it the Hessian rows. `--quick`: 5×5 grid on 200 images, Hessian on 200 images, 1 repeat of everything (a few
minutes idle; 12 minutes at load average 5–10: it checks that the script works, its numbers are no measurement).
--resolution, --images, --hessian-images, --repeats, --eig-repeats override a budget.

Output: a table on stdout; with --json one JSON object on stdout instead (the table then goes to stderr) with the
five ratios above and the details: times (medians and every repeat), budgets, versions, threads, the load average
at start and end (`load`: read it before trusting a timing), the list of differences from loss-landscapes.
--out FILE writes the same object to FILE.

Peer packages: `pip install -e '.[bench]'` (pyproject's `bench` extra: loss-landscapes and pyhessian). Their
metadata asks only for `numpy` and `torch`, unversioned, so installing them leaves the installed torch as it is
(checked: torch 2.14.1 before and after); if a future release pins torch, install them with `pip install --no-deps
loss-landscapes pyhessian`. Without one of them its rows are null, with a message saying what to install, and the
rest still runs.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from landscape import cli  # noqa: E402
from landscape.analysis import directions as dirs  # noqa: E402
from landscape.analysis.evaluator import StateEvaluator  # noqa: E402
from landscape.analysis.surface import SurfaceConfig, evaluate_surface, grid_axis, random_plane  # noqa: E402
from landscape.data import Batches, load_cifar10  # noqa: E402
from landscape.models import load_model  # noqa: E402

MODEL = REPO.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"  # the adapted ResNet-20 (88.10% test)
INSTALL = "pip install -e '.[bench]'"
SEED = 0
LL_DISTANCE = 0.5  # loss_landscapes.random_plane spans ±1/(2·distance) filter-normalized steps: ±1, as ours


@dataclass(frozen=True)
class Budget:
    images: int  # surface images (the first N test images)
    batch: int  # surface batch size
    resolution: int  # grid points per axis (odd: ours needs the centre and both ends on the grid)
    repeats: int  # surface rounds (ours, bare, loss-landscapes each once per round)
    hessian_images: int
    hessian_batch: int
    hvp_repeats: int  # rounds of (gradient, our product, PyHessian's product)
    eig_repeats: int  # rounds of (our top eigenvalue, PyHessian's)
    tol: float  # the relative tolerance both eigensolvers get
    max_iter: int  # PyHessian's maxIter (power iterations)


FULL = Budget(500, 500, 9, 3, 1000, 500, 3, 1, 1e-3, 100)
QUICK = Budget(200, 200, 5, 1, 200, 200, 1, 1, 1e-3, 100)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work, not its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device):
    """(wall seconds, result) of fn(), its work on `dev` synchronized before the clock is read at start and end."""
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def rotated(names: list[str], r: int) -> list[str]:
    """Round r's order: rotated by r, so that no side always runs first (or right after another)."""
    k = r % len(names)
    return names[k:] + names[:k]


def peer(name: str):
    """The module, or None when the package is not installed."""
    try:
        return __import__(name)
    except ImportError:
        return None


def version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v(dist)
    except PackageNotFoundError:
        return None


def source_line(module, first: str, last: str | None = None, *, after: str | None = None) -> str:
    """'pkg/file.py:N' (or N-M) of the first line containing `first` (and the next one containing `last`) in the
    installed source of `module`, searching from the line containing `after` if given: the evidence for a claim,
    found in the version that was measured."""
    path = Path(inspect.getsourcefile(module))
    rel = module.__name__.replace(".", "/") + ".py"
    lines = path.read_text().splitlines()
    begin = 0 if after is None else next((i for i, line in enumerate(lines) if after in line), len(lines))
    start = next((i for i, line in enumerate(lines[begin:], begin + 1) if first in line), None)
    if start is None:
        return f"{rel} (not found: {first!r})"
    if last is None:
        return f"{rel}:{start}"
    end = next((i for i, line in enumerate(lines[start:], start + 1) if last in line), None)
    return f"{rel}:{start}" if end is None else f"{rel}:{start}-{end}"


# ------------------------------------------------------------------------------------------------------ surfaces


def mean_loss(forward, batches: list) -> float:
    total, n = 0.0, 0
    for x, y in batches:
        total += F.cross_entropy(forward(x), y, reduction="sum").item()
        n += len(y)
    return total / n


def bare(model: nn.Module, batches: list, passes: int) -> list[float]:
    """`passes` passes of model(x) + cross-entropy over the batches, the model never changing."""
    with torch.no_grad():
        return [mean_loss(model, batches) for _ in range(passes)]


def ours_surface(model: nn.Module, centre: dict, batches: list, resolution: int):
    """(plane seconds, surface seconds, plane, result): our random plane and its R×R surface (+ the centre)."""
    dev = device_of(model)
    t_plane, plane = timed(lambda: random_plane(model, centre, "centre", dims=2, seed=SEED), dev)
    config = SurfaceConfig(plane="random", resolution=resolution, range=((-1.0, 1.0),), bn="keep", fast=True)
    t_surface, result = timed(lambda: evaluate_surface(model, plane, batches, config), dev)
    return t_plane, t_surface, plane, result


def ll_metric(batches: list, on_point=None):
    """A loss_landscapes Metric: mean cross-entropy over our batches (its own Loss takes one tensor);
    `on_point(model_wrapper, loss)` is called at every evaluation when given."""
    from loss_landscapes.metrics import Metric

    class BatchedLoss(Metric):
        def __call__(self, model_wrapper) -> float:
            loss = mean_loss(model_wrapper.forward, batches)
            if on_point is not None:
                on_point(model_wrapper, loss)
            return loss

    return BatchedLoss()


def ll_surface(model: nn.Module, batches: list, steps: int, on_point=None) -> np.ndarray:
    import loss_landscapes

    torch.manual_seed(SEED)  # it draws from torch's global generator; no seed argument
    with torch.no_grad():
        return np.asarray(loss_landscapes.random_plane(model, ll_metric(batches, on_point), distance=LL_DISTANCE,
                                                       steps=steps, normalization="filter", deepcopy_model=True))


def flat(tensors) -> torch.Tensor:
    """One float64 CPU vector (the untimed cross-checks run on the CPU whatever the device)."""
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in tensors])


def inspect_ll(model: nn.Module, centre: dict, batches: list, steps: int, plane, ours) -> dict:
    """One untimed loss_landscapes.random_plane call that records, at every evaluation, where the model it evaluates
    sits: its two directions are rebuilt with its own functions from the same seed (before its scaling, i.e. in
    filter-normalized units), every evaluated parameter vector is projected onto them (coordinates + residual),
    and the BN buffers are compared with the centre's. Then the differences from our plane, each measured."""
    import loss_landscapes.main as ll_main
    from loss_landscapes.model_interface import model_parameters as ll_params
    from loss_landscapes.model_interface import model_wrapper as ll_wrapper

    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    # its directions, exactly as random_plane draws them (main.py: rand_u_like, orthogonal_to, filter_normalize_)
    start = ll_wrapper.wrap_model(copy.deepcopy(model)).get_module_parameters()
    torch.manual_seed(SEED)
    u1 = ll_params.rand_u_like(start)
    u2 = ll_params.orthogonal_to(u1)
    cos_raw = u1.dot(u2) / (u1.model_norm() * u2.model_norm())
    u1.filter_normalize_(start)
    u2.filter_normalize_(start)
    theta, d1, d2 = flat(start.parameters), flat(u1.parameters), flat(u2.parameters)
    gram = torch.tensor([[d1 @ d1, d1 @ d2], [d2 @ d1, d2 @ d2]], dtype=torch.float64)
    buffers0 = {k: v.detach().cpu().clone() for k, v in model.named_buffers() if v.is_floating_point()}
    records: list[tuple[float, float, float, float, float]] = []  # (loss, x, y, residual, buffer drift)

    def on_point(wrapper, loss: float) -> None:
        delta = flat(wrapper.get_module_parameters().parameters) - theta
        x, y = torch.linalg.solve(gram, torch.stack([d1 @ delta, d2 @ delta])).tolist()
        residual = float(torch.linalg.vector_norm(delta - x * d1 - y * d2))
        drift = max(float((b.cpu() - buffers0[k]).abs().max()) for k, b in wrapper.modules[0].named_buffers()
                    if k in buffers0)
        records.append((loss, x, y, residual, drift))

    grid = ll_surface(model, batches, steps, on_point)
    # call k evaluated column i = k // steps; even columns are walked upwards, odd ones downwards and stored
    # reversed (main.py: data_column.insert(0, …)), so call k is element (i, j) with j = r or steps − 1 − r
    coords = np.zeros((steps, steps, 2))
    residual, drift, order_ok = 0.0, 0.0, True
    for k, (loss, x, y, res, dr) in enumerate(records):
        i, r = divmod(k, steps)
        j = r if i % 2 == 0 else steps - 1 - r
        coords[i, j] = (x, y)
        order_ok &= loss == grid[i, j]
        residual, drift = max(residual, res), max(drift, dr)
    theta_norm = float(torch.linalg.vector_norm(theta))

    one_d = [k for k, n in enumerate(names) if model.get_parameter(n).dim() <= 1]
    multi = [k for k in range(len(names)) if k not in one_d]
    parts1, parts2 = d1.split(sizes), d2.split(sizes)
    abs_theta_gap = max(float((parts1[k] - theta.split(sizes)[k].abs()).abs().max()) for k in one_d)
    share_1d = sum(float(parts1[k] @ parts1[k]) for k in one_d) / float(d1 @ d1)
    ours_axes = [flat([a[n] for n in names]) for a in plane.axes]
    ours_parts = [a.split(sizes) for a in ours_axes]

    def without_1d(d: torch.Tensor) -> torch.Tensor:
        return torch.cat([t.mul(0) if k in one_d else t for k, t in enumerate(d.split(sizes))])

    # its points re-evaluated by our evaluator (BN folded, BN keep): the corners and the one nearest the centre;
    # beside, the same coordinates with its directions' 1-D entries zeroed, and along our directions
    ev = StateEvaluator(model)

    def loss_at(x: float, y: float, a: torch.Tensor, b: torch.Tensor) -> float:
        point = (theta + x * a + y * b).split(sizes)
        ev.load_(centre)
        ev.load_({n: t.view_as(centre[n]).to(centre[n].device, centre[n].dtype)
                  for n, t in zip(names, point, strict=True)})
        return ev.evaluate(batches)["loss"]

    picks = {(0, 0), (0, steps - 1), (steps - 1, 0), (steps - 1, steps - 1)}
    near = np.unravel_index(np.argmin(np.hypot(coords[..., 0], coords[..., 1])), (steps, steps))
    picks.add((int(near[0]), int(near[1])))
    e1, e2 = without_1d(d1), without_1d(d2)
    cross = []
    for i, j in sorted(picks):
        x, y = (float(c) for c in coords[i, j])
        cross.append({"index": [i, j], "x": x, "y": y, "theirs": float(grid[i, j]), "ours": loss_at(x, y, d1, d2),
                      "its_directions_1d_zeroed": loss_at(x, y, e1, e2),
                      "our_directions": loss_at(x, y, *ours_axes)})
    max_cross = max(abs(c["theirs"] - c["ours"]) / max(1.0, abs(c["theirs"])) for c in cross)
    worst = max(cross, key=lambda c: c["theirs"])

    def positive(parts) -> float:
        return float(sum((parts[k] > 0).sum() for k in multi) / sum(sizes[k] for k in multi))

    def offset(parts) -> float:  # Σ_filters n·mean² / Σ d² over the conv/linear weights
        rows = [parts[k].view(model.get_parameter(names[k]).shape[0], -1) for k in multi]
        return float(sum(r.mean(1).square().sum() * r.shape[1] for r in rows) / sum(r.square().sum() for r in rows))

    ours_cos = dirs.dot(plane.axes[0], plane.axes[1]) / math.sqrt(dirs.dot(plane.axes[0], plane.axes[0])
                                                                   * dirs.dot(plane.axes[1], plane.axes[1]))
    cos_after = float(d1 @ d2) / float(torch.linalg.vector_norm(d1) * torch.linalg.vector_norm(d2))
    x_cols = coords[:, 0, 0]
    step = 1.0 / (LL_DISTANCE * steps)  # its step in filter-normalized units
    ours_x = grid_axis(-1.0, 1.0, steps)
    nearest = float(np.min(np.hypot(coords[..., 0], coords[..., 1])))
    r4 = lambda v: [round(float(a), 4) for a in v]  # noqa: E731

    mp, mw = ll_params, ll_wrapper

    def in_plane(first: str, last: str | None = None) -> str:  # a line of main.py's random_plane
        return source_line(ll_main, first, last, after="def random_plane(")

    differences = [
        {"id": "grid", "difference":
            f"Its grid has `steps` points per axis, 1/(distance·steps) apart, starting at the low end of the first "
            f"axis: x_i = −1/(2·distance) + i/(distance·steps), i = 0…steps−1, so x never reaches the high end, and "
            f"for odd steps the centre is not a grid point (the nearest of its {steps}² points is "
            f"{nearest / step:.2f} steps from it); ours puts R points from −1 to 1, centre and both ends exact.",
         "measured": f"its x per column {r4(x_cols)} vs ours {r4(ours_x)}",
         "source": in_plane("dir_one.mul_(steps / 2)", "start_point.add_(dir_one)")},
        {"id": "zigzag", "difference":
            "It walks even columns upwards and odd ones downwards, storing the odd ones reversed, so odd columns sit "
            "one step lower than even ones: y_j = −1/(2·distance) + (j+1)·step in even columns (from one step "
            "above the low end to the high end), + j·step in odd ones (from the low end to one step below the "
            "high end); a row of its array is not at one y.",
         "measured": f"its y in column 0 {r4(coords[0, :, 1])}, column 1 {r4(coords[1, :, 1])}",
         "source": in_plane("if i % 2 == 0:", "data_column.insert(0, metric(model_start_wrapper))")},
        {"id": "uniform", "difference":
            "Its directions are drawn from U[0, 1) (torch.rand), not N(0, 1): every entry of the first direction is "
            "≥ 0, after filter normalization too, and most of its length is a constant added to every weight of a "
            "filter (U[0, 1) has mean 1/2: 3/4 of E[u²]); ours are Gaussian, zero-mean.",
         "measured": f"share of positive entries (conv/linear weights), first / second direction: its "
                     f"{positive(parts1):.3f} / {positive(parts2):.3f}, ours {positive(ours_parts[0]):.3f} / "
                     f"{positive(ours_parts[1]):.3f}; share of ‖d‖² (weights) in per-filter constants: its "
                     f"{offset(parts1):.3f} / {offset(parts2):.3f}, ours {offset(ours_parts[0]):.4f} / "
                     f"{offset(ours_parts[1]):.4f}",
         "source": source_line(mp, "new_vector.append(torch.rand(size=param.size()")},
        {"id": "orthogonality", "difference":
            "It makes the second direction orthogonal to the first *before* filter normalization, which undoes it; "
            "ours orthogonalizes after normalization.",
         "measured": f"cos(d1, d2): its {cos_raw:.2e} before normalization, {cos_after:.3f} after (its plane); "
                     f"ours {ours_cos:.1e}",
         "source": f"{in_plane('dir_two = orthogonal_to(dir_one)')}, "
                   f"{in_plane('dir_one.filter_normalize_(start_point)', 'dir_two.filter_normalize_')}"},
        {"id": "biases_bn", "difference":
            "It moves biases and BN weights/biases too: filter_normalize_ normalizes a 1-D tensor as a whole and "
            "then treats every element as a filter, so each entry becomes ±|θ_i| (the first direction is |θ| "
            "there, to float32 round-off: BN scales grow along it). Ours zeroes 1-D tensors (ignore='biasbn', "
            "Li et al. 2018).",
         "measured": f"max | d1 − |θ| | over 1-D tensors {abs_theta_gap:.1e}; their share of ‖d1‖² "
                     f"{share_1d:.2%}; ours 0",
         "source": source_line(mp, "if len(self.parameters[l].size()) == 1:",
                               "self.parameters[l][f] *= ref_point.filter_norm")},
        {"id": "distance", "difference":
            "It rescales each direction to ‖θ‖/(distance·steps) per step over all parameters, so an axis spans "
            "‖θ‖/distance: a larger `distance` gives a smaller plane (its docstring calls it the maximum distance "
            "from the start point). Filter-normalized directions have ‖d‖ = ‖θ‖, so in our units its plane spans "
            "±1/(2·distance); this benchmark passes distance=0.5 for our ±1.",
         "measured": f"‖d1‖/‖θ‖ = {float(torch.linalg.vector_norm(d1)) / theta_norm:.6f}; its x from "
                     f"{coords[..., 0].min():.4f} to {coords[..., 0].max():.4f}, step {x_cols[1] - x_cols[0]:.4f} "
                     f"(1/(distance·steps) = {step:.4f})",
         "source": in_plane("dir_one.mul_(((start_point.model_norm() / distance) / steps)")},
        {"id": "bn_statistics", "difference":
            "Only parameters move (the wrapper's module.parameters()); BN running statistics stay the centre's. "
            "This is what our BN 'keep' does on a random plane: not a difference.",
         "measured": f"max |Δ BN buffer| over its {len(records)} points: {drift:.1e}",
         "source": source_line(mw, "return ModelParameters([p for module in self.modules")},
        {"id": "in_place_walk", "difference":
            "It reaches each point from the previous one by in-place float32 additions, so round-off accumulates "
            "along its walk; ours writes every point as centre + x·d1 + y·d2.",
         "measured": f"max ‖θ_point − (θ + x·d1 + y·d2)‖/‖θ‖ = {residual / theta_norm:.1e}",
         "source": in_plane("start_point.sub_(dir_one)", "start_point.add_(dir_one)")},
        {"id": "seed", "difference":
            "No seed argument: its directions come from torch's global generator (the benchmark calls "
            "torch.manual_seed(0) first); ours take seed= (a private CPU generator).",
         "measured": "its directions rebuilt from torch.manual_seed(0) match every evaluated point to the residual "
                     "above",
         "source": source_line(mp, "new_vector.append(torch.rand(size=param.size()")},
        {"id": "evaluation", "difference":
            "At its own points (its directions, the recovered coordinates) our evaluator (BN folded, BN keep) "
            "gives its losses: the values differ because the planes and grids differ, not the evaluation.",
         "measured": f"max |Δ loss|/max(1, loss) at {len(cross)} of its points: {max_cross:.1e}",
         "source": "this benchmark"},
        {"id": "values", "difference":
            "Its losses away from the centre are not comparable with ours at the same coordinates: its plane is "
            "another plane. Measured at its point of highest loss among those re-evaluated: its loss, the same "
            "coordinates with the 1-D entries of its directions zeroed (biases and BN affine left at θ), and our "
            "directions at the same coordinates.",
         "measured": f"at its point {tuple(worst['index'])} = ({worst['x']:.3f}, {worst['y']:.3f}): its loss "
                     f"{worst['theirs']:.4g}, 1-D zeroed {worst['its_directions_1d_zeroed']:.4g}, "
                     f"our directions {worst['our_directions']:.4g} nats",
         "source": "this benchmark"},
    ]
    centre_ours = ours.anchors[0][2]
    ni, nj = int(near[0]), int(near[1])
    values = {"ours_centre_loss": centre_ours, "ours_grid_centre_loss": float(ours.loss[steps // 2, steps // 2]),
              "theirs_nearest_centre": {"index": [ni, nj], "x": float(coords[ni, nj, 0]),
                                        "y": float(coords[ni, nj, 1]), "loss": float(grid[ni, nj])},
              "ours_grid": {"min": float(np.min(ours.loss)), "mean": float(np.mean(ours.loss)),
                            "max": float(np.max(ours.loss))},
              "theirs_grid": {"min": float(np.min(grid)), "mean": float(np.mean(grid)), "max": float(np.max(grid))},
              "cross_check": cross}
    return {"differences": differences, "values": values, "recorded_order_ok": bool(order_ok),
            "coords_x": coords[..., 0].tolist(), "coords_y": coords[..., 1].tolist(), "loss": grid.tolist()}


def bench_surfaces(model: nn.Module, batches: list, budget: Budget, ll_available: bool, log,
                   messages: dict | None = None) -> dict:
    """The surface rows; off the CPU, a loss-landscapes warm-up that fails turns its rows off (the error goes to
    `messages`)."""
    dev = device_of(model)
    centre = {k: v.clone() for k, v in model.state_dict().items()}
    R = budget.resolution
    passes = R * R + 1  # evaluate_surface: R² grid points + the centre (anchor)
    log(f"surfaces: {R}×{R} grid (+ centre) on {budget.images} images, {budget.repeats} repeat(s)")
    # warm-up (oneDNN primitives, allocator, code paths): each side once on a 3×3 grid / 10 passes, untimed
    ours_surface(model, centre, batches, 3)
    bare(model, batches, 10)
    if ll_available:
        try:
            ll_surface(model, batches, 3)
        except RuntimeError as e:  # e.g. directions drawn on the CPU for a CUDA model
            if dev.type == "cpu":
                raise
            ll_available = False
            message = f"loss-landscapes failed on {dev}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            log(message)
            if messages is not None:
                messages["loss_landscapes"] = message
    times: dict[str, list[float]] = {"plane": [], "surface": [], "bare": [], "loss_landscapes": []}
    sides = ["ours", "bare"] + ["loss_landscapes"] * ll_available
    for r in range(budget.repeats):
        for side in rotated(sides, r):
            log(f"  repeat {r + 1}/{budget.repeats}: {side}")
            if side == "ours":
                t_plane, t_surface, plane, ours = ours_surface(model, centre, batches, R)
                times["plane"].append(t_plane)
                times["surface"].append(t_surface)
            elif side == "bare":
                times["bare"].append(timed(lambda: bare(model, batches, passes), dev)[0])
            else:
                times["loss_landscapes"].append(timed(lambda: ll_surface(model, batches, R), dev)[0])
    inspection = None
    if ll_available:
        log("loss-landscapes: one more call, untimed, recording where each of its points lies")
        inspection = inspect_ll(model, centre, batches, R, plane, ours)
    med = {k: median(v) for k, v in times.items()}
    rate = {"surface": passes / med["surface"], "bare": passes / med["bare"],
            "ours_job": passes / (med["plane"] + med["surface"]),
            "loss_landscapes": R * R / med["loss_landscapes"] if ll_available else None}
    return {"resolution": R, "passes_ours": passes, "passes_loss_landscapes": R * R, "images": budget.images,
            "times_s": times, "median_s": med, "points_per_s": rate,
            "surface_vs_bare": rate["surface"] / rate["bare"],
            "surface_vs_loss_landscapes": rate["ours_job"] / rate["loss_landscapes"] if ll_available else None,
            "ours_centre_loss": ours.anchors[0][2], "inspection": inspection}


# ------------------------------------------------------------------------------------------------------- Hessian


def pyhessian_model(model: nn.Module) -> nn.Module:
    """PyHessian differentiates every parameter with requires_grad: all of them here, as ours with params="all"."""
    return copy.deepcopy(model).eval().requires_grad_(True)


def pyhessian_top(model: nn.Module, batches: list, tol: float, max_iter: int) -> tuple[float, int]:
    """(λ, products) from pyhessian's power iteration, constructed and run as its README does (cuda=False on the
    CPU; cuda=True, which means the current CUDA device, on CUDA)."""
    from pyhessian import hessian

    torch.manual_seed(SEED)  # its start vector comes from torch's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backward(create_graph=True) reference-cycle warning, once per product
        h = hessian(pyhessian_model(model), nn.CrossEntropyLoss(), dataloader=batches,
                    cuda=device_of(model).type == "cuda")
        product, count = h.dataloader_hv_product, [0]

        def counted(v):
            count[0] += 1
            return product(v)

        h.dataloader_hv_product = counted
        values, _ = h.eigenvalues(top_n=1, maxIter=max_iter, tol=tol)
    return float(values[0]), count[0]


def ours_top(model: nn.Module, batches: list, tol: float, keep_graph: bool = False) -> tuple[float, int]:
    from landscape.analysis import lanczos
    from landscape.analysis.hessian import HessianOperator

    op = HessianOperator(model, batches, params="all", keep_graph=keep_graph)
    e = lanczos.top_eigenvalues(op, op.dim, 1, tol=tol, seed=SEED, device=op.device)
    return e.values[0], e.products


def bench_hessian(model: nn.Module, batches: list, budget: Budget, pyh_available: bool, log) -> dict:
    from landscape.analysis.hessian import HessianOperator

    dev = device_of(model)
    op = HessianOperator(model, batches, params="all")
    # drawn on the CPU (the same vector on every device), used on the device
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    v = (v / torch.linalg.vector_norm(v)).to(dev)
    h = pv = None
    if pyh_available:
        from pyhessian import hessian

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = hessian(pyhessian_model(model), nn.CrossEntropyLoss(), dataloader=batches, cuda=dev.type == "cuda")
        pv = [p.view_as(t).to(t.device, torch.float32) for p, t in zip(v.split([t.numel() for t in h.params]),
                                                                       h.params, strict=True)]
        if sum(t.numel() for t in h.params) != op.dim:
            raise RuntimeError(f"PyHessian differentiates {sum(t.numel() for t in h.params)} parameters, ours {op.dim}")

    def pyh_product():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return h.dataloader_hv_product(pv)[1]

    work = {"gradient": op.loss_and_gradient, "product": lambda: op(v), "pyhessian_product": pyh_product}
    sides = ["gradient", "product"] + ["pyhessian_product"] * pyh_available
    log(f"Hessian: {budget.hessian_images} images, dim {op.dim}; gradient/product warm-up")
    for side in sides:
        work[side]()
    times: dict[str, list[float]] = {k: [] for k in work}
    for r in range(budget.hvp_repeats):
        for side in rotated(sides, r):
            log(f"  repeat {r + 1}/{budget.hvp_repeats}: {side}")
            times[side].append(timed(work[side], dev)[0])
    # the same vector in both: our product vs PyHessian's (float32) — a check that both differentiate one thing
    agree = None
    if pyh_available:
        ours_hv = op(v).cpu()
        theirs_hv = flat(pyh_product())
        agree = float(torch.linalg.vector_norm(ours_hv - theirs_hv) / torch.linalg.vector_norm(ours_hv))
    h = pv = None  # frees PyHessian's model copy and graph before the eigenvalue runs

    eig = {"ours": [], "ours_keep_graph": [], "pyhessian": []}
    result = {"ours": None, "ours_keep_graph": None, "pyhessian": None}
    for r in range(budget.eig_repeats):
        for side in rotated(["ours", "ours_keep_graph"] + ["pyhessian"] * pyh_available, r):
            log(f"  top eigenvalue, repeat {r + 1}/{budget.eig_repeats}: {side} (tol {budget.tol})")
            if side.startswith("ours"):  # keep_graph: each batch's gradient graph kept between the products
                t, result[side] = timed(lambda s=side: ours_top(model, batches, budget.tol, s == "ours_keep_graph"),
                                        dev)
            else:
                t, result["pyhessian"] = timed(lambda: pyhessian_top(model, batches, budget.tol, budget.max_iter),
                                               dev)
            eig[side].append(t)
    med = {k: median(v) for k, v in {**times, **{f"top_{k}": v for k, v in eig.items()}}.items()}
    lam, products = result["ours"]
    out = {"images": budget.hessian_images, "dim": op.dim, "params": "all", "tol": budget.tol,
           "max_iter_pyhessian": budget.max_iter, "times_s": {**times, **{f"top_{k}": v for k, v in eig.items()}},
           "median_s": med, "hvp_vs_grad": med["product"] / med["gradient"],
           "product_rel_diff_vs_pyhessian": agree,
           "ours": {"lambda_max": lam, "products": products, "s_per_product": med["top_ours"] / products},
           "ours_keep_graph": {"lambda_max": result["ours_keep_graph"][0], "products": result["ours_keep_graph"][1],
                               "s_per_product": med["top_ours_keep_graph"] / result["ours_keep_graph"][1]},
           "pyhessian": None, "top_eig_vs_pyhessian": None, "top_eig_vs_pyhessian_keep_graph": None,
           "top_eig_rel_diff": None}
    if pyh_available:
        lam_p, products_p = result["pyhessian"]
        out["pyhessian"] = {"lambda_max": lam_p, "products": products_p,
                            "s_per_product": med["top_pyhessian"] / products_p}
        out["top_eig_vs_pyhessian"] = med["top_pyhessian"] / med["top_ours"]
        out["top_eig_vs_pyhessian_keep_graph"] = med["top_pyhessian"] / med["top_ours_keep_graph"]
        out["top_eig_rel_diff"] = abs(lam_p - lam) / abs(lam)
    return out


# ------------------------------------------------------------------------------------------------------- output


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "null"
    return f"{value:.{digits}g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.{digits - 1}f}"


def table(result: dict, file) -> None:
    def p(*a):
        print(*a, file=file)

    b, s, h = result["budget"], result["surface"], result["hessian"]
    load = result["load"]
    p(f"\ndevice: {result['device']} ({result['device_name']})")
    p(f"ResNet-20 ({MODEL.name}), torch {result['versions']['torch']}, {result['threads']} threads, load average "
      f"{load['start'][0]:.2f} at start, {load['end'][0]:.2f} at end"
      + (" — a --quick run: not a measurement" if result["quick"] else "") + "\n")
    p("| quantity | value | target | detail |\n|---|---|---|---|")
    rate, med = s["points_per_s"], s["median_s"]
    p(f"| surface_vs_bare | {fmt(result['surface_vs_bare'])} | ≥ 0.9 | evaluate_surface {fmt(rate['surface'])} "
      f"points/s ({b['resolution']}×{b['resolution']} + centre = {s['passes_ours']} passes over {b['images']} "
      f"images, median of {b['repeats']}), bare model(x) {fmt(rate['bare'])} points/s |")
    if result["surface_vs_loss_landscapes"] is None:
        p(f"| surface_vs_loss_landscapes | null | ≥ 1.5 | {result['messages']['loss_landscapes']} |")
    else:
        p(f"| surface_vs_loss_landscapes | {fmt(result['surface_vs_loss_landscapes'])} | ≥ 1.5 | ours (random_plane "
          f"{fmt(med['plane'])} s + surface {fmt(med['surface'])} s) {fmt(rate['ours_job'])} passes/s, "
          f"loss_landscapes.random_plane {fmt(rate['loss_landscapes'])} passes/s ({s['passes_loss_landscapes']} "
          f"passes, {fmt(med['loss_landscapes'])} s) |")
    o = h["ours"]
    if result["top_eig_vs_pyhessian"] is None:
        p(f"| top_eig_vs_pyhessian | null | ≥ 2 | ours λ_max {fmt(o['lambda_max'], 6)} in "
          f"{fmt(h['median_s']['top_ours'])} s; {result['messages']['pyhessian']} |")
        p("| top_eig_rel_diff | null | ≤ 0.01 | |")
    else:
        q = h["pyhessian"]
        p(f"| top_eig_vs_pyhessian | {fmt(result['top_eig_vs_pyhessian'])} | ≥ 2 | {h['images']} images, "
          f"dim {h['dim']} (all parameters), tol {h['tol']}: ours {fmt(h['median_s']['top_ours'])} s "
          f"({o['products']} products, {fmt(o['s_per_product'])} s each), PyHessian "
          f"{fmt(h['median_s']['top_pyhessian'])} s ({q['products']} products, {fmt(q['s_per_product'])} s each) |")
        k = h["ours_keep_graph"]
        p(f"| top_eig_vs_pyhessian, ours with keep_graph | {fmt(result['top_eig_vs_pyhessian_keep_graph'])} | ≥ 2 | "
          f"ours {fmt(h['median_s']['top_ours_keep_graph'])} s ({k['products']} products, "
          f"{fmt(k['s_per_product'])} s each; λ_max {k['lambda_max']:.6g}) |")
        p(f"| top_eig_rel_diff | {fmt(result['top_eig_rel_diff'])} | ≤ 0.01 | λ_max ours {o['lambda_max']:.6g}, "
          f"PyHessian {q['lambda_max']:.6g} (a Rayleigh quotient: ≤ λ_max when λ_max has the largest magnitude) |")
    pyh = (f"; PyHessian's product {fmt(h['median_s']['pyhessian_product'])} s (relative difference of the two "
           f"products {fmt(h['product_rel_diff_vs_pyhessian'])})" if h["median_s"].get("pyhessian_product") else "")
    p(f"| hvp_vs_grad | {fmt(result['hvp_vs_grad'])} | (report) | one Hessian-vector product "
      f"{fmt(h['median_s']['product'])} s, one gradient {fmt(h['median_s']['gradient'])} s{pyh} |")
    ins = s["inspection"]
    if ins is None:
        return
    p("\nWhere loss_landscapes.random_plane's values differ from ours, and why (measured in this run; lines of the "
      f"installed loss-landscapes {result['versions']['loss_landscapes']}):\n")
    p("| | difference | measured | source |\n|---|---|---|---|")
    for d in ins["differences"]:
        p(f"| {d['id']} | {d['difference']} | {d['measured']} | {d['source']} |")
    v = ins["values"]
    near = v["theirs_nearest_centre"]
    p("\n| loss (nats) | ours | loss-landscapes |\n|---|---|---|")
    p(f"| at the centre θ | {v['ours_centre_loss']:.4f} (anchor; grid centre {v['ours_grid_centre_loss']:.4f}) | "
      f"not on its grid; nearest point ({near['x']:.3f}, {near['y']:.3f}): {near['loss']:.4g} |")
    for k in ("min", "mean", "max"):
        p(f"| grid {k} | {v['ours_grid'][k]:.4g} | {v['theirs_grid'][k]:.4g} |")
    p("\nIts points re-evaluated (coordinates in filter-normalized steps): its loss, our evaluator on its plane, "
      "its plane with biases/BN affine left at θ (1-D entries of its directions zeroed), our plane:\n")
    p("| its point (i, j) | (x, y) | loss-landscapes | ours, its plane | its plane, 1-D zeroed | our plane |\n"
      "|---|---|---|---|---|---|")
    for c in v["cross_check"]:
        p(f"| {tuple(c['index'])} | ({c['x']:.3f}, {c['y']:.3f}) | {c['theirs']:.7g} | {c['ours']:.7g} | "
          f"{c['its_directions_1d_zeroed']:.4g} | {c['our_directions']:.4g} |")


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("bench/geometry.py", __doc__)
    p.add_argument("--quick", action="store_true", help="5×5 grid on 200 images, Hessian on 200 images, 1 repeat")
    p.add_argument("--json", action="store_true", help="print one JSON object (the table goes to stderr)")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.add_argument("--threads", type=cli.positive_int, default=torch.get_num_threads(),
                   help=f"torch threads for every side (default: torch's, here {torch.get_num_threads()})")
    p.add_argument("--resolution", type=cli.positive_int, default=None, help="grid points per axis (odd, ≥ 3)")
    p.add_argument("--images", type=cli.positive_int, default=None, help="surface images (one batch)")
    p.add_argument("--hessian-images", type=cli.positive_int, default=None,
                   help="Hessian images (batches of up to 500)")
    p.add_argument("--repeats", type=cli.positive_int, default=None, help="surface and product/gradient repeats")
    p.add_argument("--eig-repeats", type=cli.positive_int, default=None, help="top-eigenvalue runs per side")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: see landscape.data)")
    p.add_argument("--device", default="cpu",
                   help="torch device the timed work runs on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    args = p.parse_args(argv)
    dev = cli.device(args.device)
    budget = QUICK if args.quick else FULL
    if args.resolution is not None:
        if args.resolution < 3 or args.resolution % 2 == 0:
            p.error(f"--resolution must be odd and ≥ 3, got {args.resolution}")
        budget = replace(budget, resolution=args.resolution)
    if args.images is not None:
        budget = replace(budget, images=args.images, batch=args.images)
    if args.hessian_images is not None:
        budget = replace(budget, hessian_images=args.hessian_images,
                         hessian_batch=min(args.hessian_images, FULL.hessian_batch))
    if args.repeats is not None:
        budget = replace(budget, repeats=args.repeats, hvp_repeats=args.repeats)
    if args.eig_repeats is not None:
        budget = replace(budget, eig_repeats=args.eig_repeats)
    t0 = time.perf_counter()

    def log(*a):
        print(f"[{time.perf_counter() - t0:6.0f} s]", *a, file=sys.stderr, flush=True)

    load_start = os.getloadavg()
    torch.set_num_threads(args.threads)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # PyHessian's cuda=True means "the current CUDA device"
    messages = {}
    ll_available = peer("loss_landscapes") is not None
    pyh_available = peer("pyhessian") is not None
    if not ll_available:
        messages["loss_landscapes"] = f"loss-landscapes is not installed: {INSTALL}"
    if not pyh_available:
        messages["pyhessian"] = f"pyhessian is not installed: {INSTALL}"
    for m in messages.values():
        log(m)

    model = load_model("resnet20", MODEL).to(dev).eval()
    _, test = load_cifar10(args.data)
    surface_batches = list(Batches(test.subset(budget.images), budget.batch, train=False, device=dev))
    hessian_batches = list(Batches(test.subset(budget.hessian_images), budget.hessian_batch, train=False,
                                   device=dev))
    surface = bench_surfaces(model, surface_batches, budget, ll_available, log, messages)
    hessian = bench_hessian(model, hessian_batches, budget, pyh_available, log)

    result = {
        "surface_vs_bare": surface["surface_vs_bare"],
        "surface_vs_loss_landscapes": surface["surface_vs_loss_landscapes"],
        "top_eig_vs_pyhessian": hessian["top_eig_vs_pyhessian"],
        "top_eig_vs_pyhessian_keep_graph": hessian["top_eig_vs_pyhessian_keep_graph"],
        "top_eig_rel_diff": hessian["top_eig_rel_diff"],
        "hvp_vs_grad": hessian["hvp_vs_grad"],
        "targets": {"surface_vs_bare": ">= 0.9", "surface_vs_loss_landscapes": ">= 1.5",
                    "top_eig_vs_pyhessian": ">= 2", "top_eig_rel_diff": "<= 0.01", "hvp_vs_grad": "reported"},
        "loss_landscapes_differences": (surface["inspection"] or {}).get("differences"),
        "messages": messages,
        "quick": args.quick,
        "budget": asdict(budget),
        "model": MODEL.name,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        "versions": {"torch": torch.__version__, "loss_landscapes": version("loss-landscapes"),
                     "pyhessian": version("pyhessian"), "numpy": np.__version__, "scipy": version("scipy"),
                     "python": platform.python_version()},
        "load": {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]},
        "elapsed_s": time.perf_counter() - t0,
        "surface": surface,
        "hessian": hessian,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        cli.print_json(result)
        table(result, sys.stderr)
    else:
        table(result, sys.stdout)
    return 0


if __name__ == "__main__":
    cli.run(main, "bench/geometry.py")
