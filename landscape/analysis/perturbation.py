"""Equal-norm random-perturbation baseline (soft-quantization paper, Mechanism 3 / Fig. 3): is the
displacement a compressor made special, or would any step of the same size have cost as little loss?

For a displacement Δθ = θ_target − θ_pre over the compressed parameters (`params`, default the conv/linear
weights of `params.select_params`), draw M Gaussian directions over the same parameters and scale each to
Δθ's size:
  norm="global"     ‖δ‖ = ‖Δθ‖ over all selected parameters together;
  norm="per-layer"  ‖δ_l‖ = ‖Δθ_l‖ for every layer l (a layer Δθ leaves unchanged gets δ_l = 0), so the random
                    step spends its budget in the same layers as the real one.
For each, ΔL = L(θ_pre + δ) − L(θ_pre) and the slope ΔL/‖Δθ‖ (nats per unit of weight-space distance); the
same for δ = Δθ itself. The real displacement's percentile among the random ones (percent of random ΔL below
it) and z-score ((ΔL_real − mean)/std, std with ddof=1) say where it falls.

BN statistics (the fairness decision). A perturbed state's BN running statistics must come from somewhere.
Keeping the pretrained ones for every state (bn="keep") looks neutral but is not: a structured step such as
the compressor's (weights pulled onto clusters, layer scales shifting) moves the per-channel activation
statistics, while a random Gaussian step of the same norm largely averages out in them, so stale statistics
penalise the real displacement far more than the random ones. Measured on ResNet-20 after one epoch of soft
quantization (500 test images, M = 10): real ΔL 0.210 vs random 0.065 ± 0.026 with kept statistics, 0.023 vs
0.017 ± 0.016 with recalibrated ones. Giving only the real step the target's own statistics would favour it
instead (they were adapted during fine-tuning, which random steps never get). So the default is
bn="recalibrate" for *every* state — θ_pre, θ_pre + Δθ and each θ_pre + δ: statistics reset and re-estimated
(cumulative average) on the same unaugmented training batches, so each state is judged with statistics that
match its own weights and the comparison is about the weights alone. BN affine parameters and biases stay
pretrained everywhere (they are not part of Δθ). The target's full state (its fine-tuned BN parameters, biases
and, with "keep", its own statistics) is evaluated too and reported separately as `target_loss`. Cost:
recalibration forwards `bn_data` once per state; bn="keep" costs one evaluation pass per direction and nothing
else.

Randomness (analysis/directions.py). Directions come from a CPU torch.Generator seeded with `seed`, drawn
layer by layer in model order (one `randn` per layer and direction): the same seed gives the same directions
on every device, and direction i does not depend on M. Directions are regenerated, never stored.

Stored results (`write_perturb` / `read_perturb`), group /analysis/perturb/<name> of a run file:
  random_delta_loss [M], random_slope [M], random_accuracy [M], layer_norms [L] (‖Δθ_l‖), and, when a scan was
  asked for, scan_alpha [A], scan_real_loss [A], scan_random_loss [A] (direction 0), scan_real_accuracy,
  scan_random_accuracy; attrs: target, norm, directions, seed, params, bn, split (the data evaluated on,
  "train" | "test", or the caller's label; results written before the attribute existed are test), limit, n,
  layers (JSON), displacement_norm, base_loss, base_accuracy, real_delta_loss, real_slope, real_accuracy,
  target_loss, target_accuracy, percentile, zscore, created. base_loss is θ_pre's loss with its own BN statistics
  (bn="keep") or with statistics re-estimated on bn_data (bn="recalibrate"); target_loss likewise for the
  target's full state.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch.nn as nn
from torch import Tensor

from ..bn import check_bn_mode
from ..checks import check_int
from ..distributed import World
from ..errors import LandscapeError
from ..metrics import LossFn
from ..params import check_selection, select_params
from ..specs import PerturbSpec
from .directions import NORMS, Directions, displacement, global_norm, tensor_norm
from .engine import Analysis, register
from .evaluator import StateEvaluator, check_states
from .storage import new_result, open_result, set_attrs, stored
from .sweep import Journal, run_sweep

GROUP = "analysis/perturb"


@dataclass(frozen=True)
class PerturbConfig:
    """How the perturbation test is run (`perturbation_test`, `specs.PerturbSpec.config`): units beside each field.

    Examples:
        >>> config = PerturbConfig(directions=50, norm="per-layer", alphas=(0.5, 1.0))
        >>> config.bn, config.params
        ('recalibrate', 'weights')
        >>> PerturbConfig(norm="l1")
        Traceback (most recent call last):
        ...
        ValueError: norm must be one of global, per-layer, got 'l1'
    """

    directions: int = 20  # M random directions (≥ 1); the percentile is resolved to 100/M percent
    norm: str = "global"  # "global": ‖δ‖ = ‖Δθ‖; "per-layer": ‖δ_l‖ = ‖Δθ_l‖ for every layer l
    seed: int = 0  # seed of the CPU torch.Generator that draws the directions
    params: str = "weights"  # which parameters are displaced (params.select_params): conv/linear weights
    alphas: tuple[float, ...] = ()  # 1-D scan positions in units of the step (α = 1: a step of norm ‖Δθ‖)
    bn: str = "recalibrate"  # BN statistics of every state: re-estimated on bn_data | "keep": pretrained
    bn_batches: int = 4  # recalibrate: training batches per state the caller draws bn_data from (4 × 500 images)
    fast: bool = True  # BN-folded channels-last forward (paths.StateEvaluator); False: the model as is

    def __post_init__(self):
        check_int("the number of random directions M", self.directions, 1)
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        check_selection(self.params)
        check_bn_mode(self.bn)
        check_int("bn_batches", self.bn_batches, 1)
        if not all(isinstance(a, (int, float)) and math.isfinite(a) for a in self.alphas):
            raise ValueError(f"scan alphas must be finite numbers, got {self.alphas!r}")


@dataclass(frozen=True)
class Scan:
    alpha: np.ndarray  # [A] positions, in units of the step
    real: dict[str, np.ndarray]  # {"loss": [A] nats, "accuracy": [A]} along Δθ
    random: dict[str, np.ndarray]  # the same along random direction 0


@dataclass(frozen=True)
class PerturbResult:
    displacement_norm: float  # ‖Δθ‖ over the selected parameters
    layer_norms: dict[str, float]  # ‖Δθ_l‖ per selected parameter
    base: dict  # evaluation of θ_pre: {"loss", "accuracy", "n"}
    real: dict  # θ_pre + Δθ (selected weights only): {"loss", "accuracy", "delta_loss", "slope"}
    target: dict  # the target's full state (its BN parameters, biases; BN stats per config.bn): loss, acc.
    random_delta_loss: np.ndarray  # [M] ΔL of each random direction, nats
    random_accuracy: np.ndarray  # [M]
    scan: Scan | None = None
    extra: dict = field(default_factory=dict)

    @property
    def random_slope(self) -> np.ndarray:
        return self.random_delta_loss / self.displacement_norm if self.displacement_norm > 0 else \
            np.full_like(self.random_delta_loss, np.nan)

    @property
    def percentile(self) -> float:
        """Percent of random directions whose ΔL is below the real displacement's (ties count half)."""
        r, x = self.random_delta_loss, self.real["delta_loss"]
        return float(100 * (np.sum(r < x) + 0.5 * np.sum(r == x)) / len(r))

    @property
    def zscore(self) -> float:
        """(ΔL_real − mean ΔL_random) / std ΔL_random (ddof=1); NaN for M < 2 or zero spread."""
        r = self.random_delta_loss
        if len(r) < 2 or np.std(r, ddof=1) == 0:
            return math.nan
        return float((self.real["delta_loss"] - r.mean()) / np.std(r, ddof=1))

    def summary(self) -> dict:
        r = self.random_delta_loss
        out = {"displacement_norm": self.displacement_norm, "base_loss": self.base["loss"],
               "base_accuracy": self.base["accuracy"], "n": self.base["n"],
               "real_delta_loss": self.real["delta_loss"], "real_slope": self.real["slope"],
               "real_accuracy": self.real["accuracy"], "target_loss": self.target["loss"],
               "target_accuracy": self.target["accuracy"], "random_delta_loss_mean": float(r.mean()),
               "random_delta_loss_std": float(np.std(r, ddof=1)) if len(r) > 1 else math.nan,
               "random_slope": self.random_slope.tolist(), "random_delta_loss": r.tolist(),
               "percentile": self.percentile, "zscore": self.zscore}
        if self.scan is not None:
            out["scan"] = {"alpha": self.scan.alpha.tolist(),
                           "real_loss": self.scan.real["loss"].tolist(),
                           "random_loss": self.scan.random["loss"].tolist()}
        return out


# ---------------------------------------------------------------------------------------------- evaluation


def sweep_keys(config: PerturbConfig) -> list[str]:
    """The evaluations of a perturbation test, as sweep keys (analysis/sweep.py): base (θ_pre), target (its full
    state), real (θ_pre + Δθ), random/i (θ_pre + δ_i) and, for a scan, scan/real/a and scan/random/a (index a of
    config.alphas; α = 0 is θ_pre itself and is not evaluated again)."""
    keys = ["base", "target", "real"] + [f"random/{i}" for i in range(config.directions)]
    for side in ("real", "random"):
        keys += [f"scan/{side}/{a}" for a, alpha in enumerate(config.alphas) if alpha != 0]
    return keys


def perturbation_test(model: nn.Module, target: Mapping[str, Tensor], batches: Iterable,
                      config: PerturbConfig = PerturbConfig(), *, bn_data: Iterable | None = None,
                      progress: bool = False, world: World = World(),
                      journal: Journal | None = None, loss_fn: LossFn | None = None) -> PerturbResult | None:
    """Real displacement (model → target over the selected parameters) against M equal-norm random ones, on
    `batches`. `model` is the pretrained model (architecture and θ_pre); neither it nor `target` is
    modified.

    Every evaluation (`sweep_keys`) writes the whole state first, so under torchrun (`world`) they are shared out
    over the ranks, and evaluations already in `journal` are skipped (analysis/sweep.py); the result is returned
    on rank 0 only (None elsewhere)."""
    evaluator = StateEvaluator(model, bn=config.bn, bn_data=bn_data, fast=config.fast, loss_fn=loss_fn)
    check_states(evaluator.live, [target], ["the target state"])
    dev = evaluator.device
    pre = {k: v.detach().clone() for k, v in evaluator.live.items()}  # θ_pre, all entries, on the device
    names = list(select_params(evaluator.work, config.params))
    if not names:
        raise LandscapeError(f"the model has no parameters of the selection {config.params!r}")
    full_target = {k: v.to(dev) for k, v in target.items()}
    delta = displacement(pre, full_target, names)
    norm = global_norm(delta)
    if norm == 0:
        raise LandscapeError("the target's selected weights equal the pretrained ones (‖Δθ‖ = 0): "
                             "nothing to compare")
    direction = Directions(delta, config.seed, config.norm)

    def evaluate(key: str) -> dict:
        kind, _, index = key.partition("/")
        if kind == "target":
            evaluator.load_(full_target)
            return evaluator.evaluate(batches)
        evaluator.load_(pre)
        if kind == "real":
            evaluator.add_(pre, delta)
        elif kind == "random":
            evaluator.add_(pre, direction(int(index)))
        elif kind == "scan":
            side, a = index.split("/")
            evaluator.add_(pre, delta if side == "real" else direction(0), float(config.alphas[int(a)]))
        return evaluator.evaluate(batches)

    values = run_sweep(sweep_keys(config), evaluate, world=world, journal=journal, progress=progress,
                       desc="perturb", unit="eval")
    if values is None:
        return None
    base = values["base"]
    real = values["real"]
    real = {"loss": real["loss"], "accuracy": real["accuracy"], "delta_loss": real["loss"] - base["loss"],
            "slope": (real["loss"] - base["loss"]) / norm}
    randoms = [values[f"random/{i}"] for i in range(config.directions)]
    result_scan = None
    if config.alphas:
        def along(side: str) -> dict[str, np.ndarray]:
            rows = [base if alpha == 0 else values[f"scan/{side}/{a}"] for a, alpha in enumerate(config.alphas)]
            return {m: np.array([r[m] for r in rows], dtype=np.float64) for m in ("loss", "accuracy")}

        result_scan = Scan(np.asarray(config.alphas, dtype=np.float64), along("real"), along("random"))
    return PerturbResult(displacement_norm=norm, layer_norms={k: tensor_norm(v) for k, v in delta.items()},
                         base=base, real=real,
                         target={"loss": values["target"]["loss"], "accuracy": values["target"]["accuracy"]},
                         random_delta_loss=np.array([r["loss"] - base["loss"] for r in randoms], dtype=np.float64),
                         random_accuracy=np.array([r["accuracy"] for r in randoms], dtype=np.float64),
                         scan=result_scan)


# ------------------------------------------------------------------------------------------------- storage


def write_perturb(path: str | os.PathLike, name: str, result: PerturbResult, attrs: Mapping, *,
                  force: bool = False) -> str:
    """Store under /analysis/perturb/<name> of a run file, all at once or not at all (paths.open_for_update).
    Returns the group key."""
    with new_result(path, GROUP, name, force=force) as (g, key):
        g.create_dataset("random_delta_loss", data=result.random_delta_loss)
        g.create_dataset("random_slope", data=result.random_slope)
        g.create_dataset("random_accuracy", data=result.random_accuracy)
        g.create_dataset("layer_norms", data=np.array(list(result.layer_norms.values())))
        if result.scan is not None:
            g.create_dataset("scan_alpha", data=result.scan.alpha)
            for side, values in (("real", result.scan.real), ("random", result.scan.random)):
                for metric, v in values.items():
                    g.create_dataset(f"scan_{side}_{metric}", data=v)
        s = result.summary()
        g.attrs.update({k: v for k, v in s.items() if not isinstance(v, (list, dict))})
        g.attrs["layers"] = json.dumps(list(result.layer_norms))
        set_attrs(g, attrs)
    return key


def read_perturb(path: str | os.PathLike, name: str) -> tuple[dict[str, np.ndarray], dict]:
    """(datasets, attrs) of /analysis/perturb/<name>."""
    with h5py.File(path, "r") as f:
        g = open_result(f, GROUP, name, path)
        return {k: np.array(v) for k, v in g.items()}, dict(g.attrs)


def stored_perturbs(path: str | os.PathLike) -> list[str]:
    return stored(path, GROUP)


def default_name(target: str, norm: str, split: str = "test") -> str:
    """TARGET_NORM (test split, the name results had before the split was a setting), TARGET_NORM_train (train)."""
    return f"{target.replace(':', '-')}_{norm}" + ("" if split == "test" else f"_{split}")


# -------------------------------------------------------------------------------------- the engine's analysis


@register(PerturbSpec)
class PerturbAnalysis(Analysis):
    """`landscape perturb`: the real displacement against equal-norm random ones (specs.PerturbSpec;
    analysis/engine.py). No figure: analyses/fig3_protocols.py draws stored results side by side."""

    kind, group = "perturb", GROUP

    def default_name(self) -> str:
        return default_name(self.spec.target, self.spec.config.norm, self.spec.split)

    def prepare(self, model: nn.Module) -> list:
        from .states import load_state_spec

        self.target = load_state_spec(self.run, self.spec.target)
        return [model.state_dict(), self.target]

    def settings(self) -> dict:
        s, c = self.spec, self.spec.config
        return {"target": s.target, "norm": c.norm, "directions": c.directions, "seed": c.seed, "params": c.params,
                "alphas": list(c.alphas), "bn": c.bn, "bn_batches": c.bn_batches, "fast": c.fast, "split": s.split,
                "limit": s.limit, "batch_size": s.batch_size}

    def compute(self, ctx) -> PerturbResult | None:
        return perturbation_test(ctx.model, self.target, ctx.batches(), self.spec.config,
                                 bn_data=ctx.bn_data(self.spec.config), progress=ctx.progress, world=ctx.world,
                                 journal=ctx.journal, loss_fn=ctx.loss_fn)

    def result_attrs(self, result: PerturbResult) -> dict:
        return {"alphas": list(self.spec.config.alphas) or None}

    def write(self, file, name: str, result: PerturbResult, attrs: Mapping) -> str:
        return write_perturb(file, name, result, attrs, force=self.spec.force)

    def summary(self, result: PerturbResult) -> dict:
        return result.summary()
