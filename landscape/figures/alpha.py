"""Does the layer-size power law behind α ≈ 0.66 hold during fine-tuning? (soft-quantization paper, Next check 1;
`analyses/fig_alpha.py`)

Claim tested. The coupling penalty is L_C = Σ_l h_l E_l with E_l = Σ_{i≠j} U_{w_l}(θ_i − θ_j) (ordered pairs, no
normalization: landscape/coupling.py, compress/weight_coupling.py), w_l = w·σ_l and h_l = h·N_l^(−α), α = 0.66,
"an empirical power law from the pretrained unweighted interaction energy" that makes layers of different size
contribute comparably. The paper measured it at the pretrained weights only; its first "next check" asks whether
it stays valid throughout fine-tuning, measured on E_l at several checkpoints.

What α refers to (derivation). Write E_l ∝ N_l^β across layers. Then layer l's penalty is h_l E_l ∝ N_l^(β−α).
The summary says "balanced contribution" without saying balanced per what, and our code fixes only the product
h_l E_l, so two readings:
  (a) every layer's total penalty equal:      β − α = 0  →  β = α = 0.66;
  (b) every weight's share equal (h_l E_l ∝ N_l, i.e. the per-weight energy E_l/N_l ∝ N_l^α; this is what one
      measures if the "unweighted energy" is per weight, e.g. Σ_i V(θ_i) with V the potential of a density
      normalized to 1):                       β − α = 1  →  β = 1 + α = 1.66.
Which one can hold follows from the scale of E_l: with m_l = E_l / (N_l (N_l − 1) w_l) ∈ (0, 1] the mean of
U/w_l over the pairs (a number fixed by the *shape* of the layer's weight distribution in units of σ_l, since
w_l ∝ σ_l; ≈ 0.92 for a Gaussian at w = 0.3),

    log E_l = log N_l(N_l − 1) + log w_l + log m_l   ⇒   β = β_pairs (≈ 2) + β_sigma + β_shape   (exactly:
                                                         least-squares slopes add),

with β_sigma the slope of log σ_l on log N_l (w_l = w σ_l). Reading (a) would need σ_l ∝ N_l^(−4/3) (or a
strongly size-dependent shape); (b) needs σ_l ∝ N_l^(−1/3), close to the adapted ResNet-20's pretrained weights.
So the prediction this figure tests is (b): β = 1 + α at the pretrained state and, if the law "remains valid",
at every checkpoint, the compressed and the clamped state. Reading (a), β = α, is drawn for contrast. During
fine-tuning N_l and w_l (pretrained σ_l) are fixed, so β can move only through β_shape, i.e. if clustering
changes m_l differently in small and large layers; alpha_fit.csv lists the three parts.

What is measured. For every state (pretrained = step 0, each chosen checkpoint, compressed, clamped; for the
clamped state E_l is still defined), each coupled layer's exact E_l (`coupling.layer_energies`: the sorted
estimator, float64; no histogram error) with w_l from the *pretrained* σ_l, as in training; then the ordinary
least-squares fit log E_l = β log N_l + c over the layers (ResNet-20: 20 layers, N_l = 432 … 36,864), β's
standard error, a 95% interval (Student t, n_layers − 2 degrees of freedom) and R². The layers are not random
draws (several share one N_l), so SE and interval describe the layer-to-layer scatter about the line, not a
sampling error of E_l, which is exact.

Seeds: none. Everything is deterministic given the run file (or checkpoint): no training, no sampling. One run
backs the figure (config "seeds": 1, as the other scripts count runs); it does not average over training seeds.

Writes <out_dir>/<stem>_powerlaw.png (left: log-log E_l vs N_l at pretrained, the last checkpoint and clamped,
with fits and the two reference slopes; right: β ± 95% CI vs SGD step, lines at 1 + α and α), <stem>_powerlaw.csv
(state, step, layer, N_l, sigma_l, w_l, E_l, m_l = E_l / (N_l (N_l − 1) w_l), std_l = the state's own std),
<stem>_fit.csv (state, step, beta, beta_se, ci_lo, ci_hi, r2, n_layers, intercept, beta_pairs, beta_sigma,
beta_shape) and <stem>_powerlaw.config.json; stem "alpha" by default (alpha_powerlaw.png, alpha_fit.csv, …).
The source is a run file (`run`: its pretrained state, the chosen checkpoints, compressed and clamped) or a
checkpoint (`checkpoint` and `arch`: the pretrained state only).

    >>> spec = AlphaFigure(run="runs/wc.h5", every=2)
    >>> spec.name, [p.name for p in spec.paths().values()][2]
    ('alpha', 'alpha_fit.csv')
    >>> AlphaFigure(checkpoint="resnet20.pt", arch="resnet20").w is None  # None: the run's own w, else 0.3
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .. import coupling, plots
from ..errors import LandscapeError, RunFileError
from ..outputs import write_csv
from ..params import select_params
from .base import FigureResult, FigureSpec, maker, run_label, write_config

DEFAULT_W, DEFAULT_ALPHA = 0.3, 0.66  # WeightCouplingConfig's defaults, for runs/checkpoints that do not say


def fit_power_law(n, e, level: float = 0.95) -> dict:
    """Least-squares fit log e = beta log n + c over the layers: beta, its standard error, the `level` interval
    (Student t with len(n) - 2 degrees of freedom), R^2, the intercept c and the number of layers. With fewer
    than 3 layers (or all n equal) the slope or its error is undefined: NaN."""
    x, y = np.log(np.asarray(n, dtype=np.float64)), np.log(np.asarray(e, dtype=np.float64))
    k = x.size
    nan = {"beta": math.nan, "beta_se": math.nan, "ci_lo": math.nan, "ci_hi": math.nan, "r2": math.nan,
           "n_layers": int(k), "intercept": math.nan}
    if k < 2 or not np.all(np.isfinite(y)):
        return nan
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx == 0:
        return nan
    beta = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    c = float(y.mean() - beta * x.mean())
    rss = float(np.sum((y - c - beta * x) ** 2))
    tss = float(np.sum((y - y.mean()) ** 2))
    out = {**nan, "beta": beta, "intercept": c, "r2": 1 - rss / tss if tss > 0 else math.nan}
    if k > 2:
        se = math.sqrt(rss / (k - 2) / sxx)
        half = float(stats.t.ppf(0.5 + level / 2, k - 2)) * se
        out.update(beta_se=se, ci_lo=beta - half, ci_hi=beta + half)
    return out


def slope(n, y) -> float:
    """Least-squares slope of log y on log n (the parts of beta in alpha_fit.csv)."""
    return fit_power_law(n, y)["beta"]


def measure(state, names: list[str], w: float, sigmas: dict | None) -> list[coupling.LayerEnergy]:
    return coupling.layer_energies({n: state[n] for n in names}, w, sigmas=sigmas)


def pick_steps(steps: list[int], every: int | None, wanted: list[int] | None) -> list[int]:
    """The checkpoints to measure: `wanted` as given (each must exist), or every `every`-th stored checkpoint
    counting from the first, plus the last; default all."""
    if wanted:
        missing = [s for s in wanted if s not in steps]
        if missing:
            raise RunFileError(f"no complete checkpoint at step {missing[0]}; stored: "
                               f"{', '.join(map(str, steps)) or 'none'}")
        return sorted(set(wanted))
    chosen = steps[:: every or 1]
    return chosen + [steps[-1]] if steps and steps[-1] not in chosen else chosen


def draw(rows: list[dict], fits: list[dict], alpha: float, title: str, path) -> None:
    fig, axes = plots.figure(1, 2, width=6.0, height=4.6)
    ax = axes[0, 0]
    by_state: dict[tuple, list[dict]] = {}
    for r in rows:
        by_state.setdefault((r["state"], r["step"]), []).append(r)
    fit_of = {(f["state"], f["step"]): f for f in fits}
    keys = list(by_state)
    shown = [keys[0]]  # pretrained
    ckpts = [k for k in keys if k[0] == "checkpoint"]
    if ckpts:
        shown.append(ckpts[-1])
    shown += [k for k in keys if k[0] == "clamped"]
    labels = {k: k[0] if k[0] != "checkpoint" else f"checkpoint, step {k[1]}" for k in shown}
    colors = plots.palette([labels[k] for k in shown])
    styles = [("o", "-", 46, 1.0), ("s", "--", 26, 0.0), ("x", ":", 30, 1.0)]
    for k, (marker, line, size, fill) in zip(shown, styles, strict=False):
        n = np.array([r["N_l"] for r in by_state[k]], dtype=float)
        e = np.array([r["E_l"] for r in by_state[k]])
        f, c = fit_of[k], colors[labels[k]]
        colour = {"color": c} if marker == "x" else {"facecolors": c if fill else "none", "edgecolors": c}
        ax.scatter(n, e, s=size, marker=marker, linewidths=1.1, zorder=3, **colour,
                   label=f"{labels[k]}: β = {f['beta']:.3f} ± {f['beta_se']:.3f}")
        grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
        ax.plot(grid, np.exp(f["intercept"]) * grid ** f["beta"], line, color=c, linewidth=1.1)
    # reference slopes through the pretrained layers' centre of mass (in log-log)
    pre = by_state[keys[0]]
    x0 = np.exp(np.mean(np.log([r["N_l"] for r in pre])))
    y0 = np.exp(np.mean(np.log([r["E_l"] for r in pre])))
    grid = np.geomspace(min(r["N_l"] for r in pre) / 1.3, max(r["N_l"] for r in pre) * 1.3, 50)
    ax.plot(grid, y0 * (grid / x0) ** alpha, color="#444444", linewidth=0.9, linestyle=(0, (1, 2)),
            label=f"slope α = {alpha:g}, reading (a)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"layer size $N_l$ (weights)")
    ax.set_ylabel(r"$E_l = \sum_{i \neq j}\, U_{w_l}(\theta_i - \theta_j)$  (weight units)")
    ax.set_title("unweighted coupling energy per layer (exact)")
    ax.legend(fontsize="x-small", loc="upper left")

    ax = axes[0, 1]
    traj = [f for f in fits if f["state"] in ("pretrained", "checkpoint")]
    steps = np.array([f["step"] for f in traj], dtype=float)
    beta = np.array([f["beta"] for f in traj])
    err = np.array([[f["beta"] - f["ci_lo"] for f in traj], [f["ci_hi"] - f["beta"] for f in traj]])
    ax.errorbar(steps, beta, yerr=err, marker="o", markersize=4, capsize=3, linewidth=1.2, color="#2ca02c",
                label="pretrained (step 0) and checkpoints")
    span = max(steps.max(), 1.0) if steps.size else 1.0
    for f, dx, marker in ((next((f for f in fits if f["state"] == "compressed"), None), 0.02, "s"),
                          (next((f for f in fits if f["state"] == "clamped"), None), 0.04, "D")):
        if f is not None:
            x = (f["step"] if f["step"] != "" else span) + dx * span
            ax.errorbar([x], [f["beta"]], yerr=[[f["beta"] - f["ci_lo"]], [f["ci_hi"] - f["beta"]]],
                        marker=marker, markersize=5, capsize=3, linestyle="none",
                        color=plots.COLORS[f["state"]], label=f"{f['state']} (final weights)")
    ax.axhline(1 + alpha, color="black", linewidth=1.0, linestyle="--",
               label=f"prediction (b): β = 1 + α = {1 + alpha:g}")
    ax.axhline(alpha, color="#444444", linewidth=0.9, linestyle=(0, (1, 2)),
               label=f"reading (a): β = α = {alpha:g}")
    ax.set_xlabel("SGD step")
    ax.set_ylabel(r"fitted $\beta$ in $E_l \propto N_l^{\beta}$  (± 95% CI)")
    mean_m = {(r["state"], r["step"]): [] for r in rows}
    for r in rows:
        mean_m[(r["state"], r["step"])].append(r["m_l"])
    first, last = keys[0], shown[1] if len(shown) > 1 else keys[-1]
    ax.text(0.02, 0.1, "layer mean of $m_l = E_l / (N_l (N_l - 1)\\, w_l)$: "
            f"{np.mean(mean_m[first]):.3f} ({first[0]}) → {np.mean(mean_m[last]):.3f} ({labels.get(last, last[0])})",
            transform=ax.transAxes, fontsize="x-small", va="bottom")
    ax.set_title("layer-size exponent during fine-tuning")
    ax.legend(fontsize="x-small", loc="center right")
    fig.suptitle(title, fontsize="medium")
    plots.save(fig, path)


@dataclass(frozen=True)
class AlphaFigure(FigureSpec):
    """The layer-size power law of the exact coupling energies E_l of one run's states (or a checkpoint's
    pretrained state). Reads weights only: `limit`, `batch_size`, `data` and `device` are not used."""

    run: str | None = None  # run file (HDF5) from landscape.train (exactly one of run and checkpoint)
    checkpoint: str | None = None  # checkpoint path, or an arch name for the public weights (pretrained only)
    arch: str = "resnet20"  # the checkpoint's architecture (one of models.ARCHS, or package.module:factory)
    arch_kwargs: dict[str, Any] | None = None  # keyword arguments of the arch's factory (checkpoint only)
    w: float | None = None  # global well width in units of σ_l (None: the run's own w; 0.3 for a checkpoint)
    every: int | None = None  # measure every K-th stored checkpoint, from the first, the last always (None: all)
    steps: tuple[int, ...] | None = None  # measure these checkpoint steps only (not with `every`)

    STEM = "alpha"
    SUFFIXES = ("_powerlaw.png", "_powerlaw.csv", "_fit.csv", "_powerlaw.config.json")

    def __post_init__(self):
        super().__post_init__()
        for name in ("run", "checkpoint"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        if self.steps is not None:
            object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        if self.run and self.checkpoint:
            raise ValueError("give a run (--run) or a checkpoint (--checkpoint), not both")
        if not (self.run or self.checkpoint):
            raise ValueError("give a run file (run) or a checkpoint (checkpoint)")
        if self.checkpoint and (self.every or self.steps):
            raise ValueError("every/steps (--every/--steps) need a run (a checkpoint has only its pretrained state)")
        if self.every is not None and self.steps:
            raise ValueError("give every or steps, not both")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int)
                                       or self.every < 1):
            raise ValueError(f"every must be an integer ≥ 1, got {self.every!r}")
        if self.steps is not None and not self.steps:
            raise ValueError("steps: give at least one step, or None for every checkpoint")
        if self.w is not None and not (math.isfinite(self.w) and self.w > 0):
            raise ValueError(f"w must be a finite number > 0, got {self.w}")


@maker(AlphaFigure)
def make(spec: AlphaFigure) -> FigureResult:
    """Measure every state's E_l, fit the power law, draw both panels, write the PNG, both CSVs and the config
    JSON."""
    out = spec.outputs()
    fit_csv = out["_fit.csv"]
    start = time.perf_counter()

    if spec.checkpoint:
        from ..models import load_model

        model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs)
        which, alpha = "weights", DEFAULT_ALPHA
        w = DEFAULT_W if spec.w is None else spec.w
        names = list(select_params(model, which))
        pretrained = model.state_dict()
        states = [("pretrained", 0, lambda: pretrained)]
        source, label = str(spec.checkpoint), f"{spec.arch}, {spec.checkpoint}"
    else:
        from ..store import Run

        run = Run(spec.run)
        settings = run.config.get("compressor", {}) or {}
        which = settings.get("params", "weights")
        alpha = float(settings.get("alpha", DEFAULT_ALPHA))
        w = float(settings.get("w", DEFAULT_W)) if spec.w is None else spec.w
        names = list(select_params(run.model("pretrained"), which))
        pretrained = run.state("pretrained")
        all_steps = run.steps()
        steps = pick_steps(all_steps, spec.every, list(spec.steps) if spec.steps else None)
        final = all_steps[-1] if all_steps else ""
        states = [("pretrained", 0, lambda: pretrained)]
        states += [("checkpoint", s, lambda s=s: run.state(s)) for s in steps]
        if "final" in run.groups():
            states += [(s, final, lambda s=s: run.state(s)) for s in ("compressed", "clamped")]
        source, label = str(run.path), f"{run_label(run)}, {run.path.name}"
    if not names:
        raise LandscapeError(f"no coupled layers (parameter selection {which!r})")
    spec.log(f"{len(names)} coupled layers, {len(states)} states …")

    reference = measure(pretrained, names, w, None)  # fixes sigma_l, hence w_l, for every state
    sigmas = {le.name: le.sigma for le in reference}
    rows, fits, timing = [], [], []
    for state, step, get in states:
        t0 = time.perf_counter()
        current = get()
        layers = reference if state == "pretrained" else measure(current, names, w, sigmas)
        timing.append(time.perf_counter() - t0)
        n = np.array([le.n for le in layers], dtype=float)
        e = np.array([le.energy for le in layers])
        m = e / (n * (n - 1) * np.array([le.w for le in layers]))
        for le, m_l in zip(layers, m, strict=True):
            rows.append({"state": state, "step": step, "layer": le.name, "N_l": le.n, "sigma_l": le.sigma,
                         "w_l": le.w, "E_l": le.energy, "m_l": float(m_l),
                         "std_l": current[le.name].double().std().item()})
        fit = fit_power_law(n, e)
        fits.append({"state": state, "step": step, **fit, "beta_pairs": slope(n, n * (n - 1)),
                     "beta_sigma": slope(n, [le.sigma for le in layers]), "beta_shape": slope(n, m)})
    elapsed = time.perf_counter() - start

    draw(rows, fits, alpha, f"Layer-size power law of the coupling energy (w = {w:g}, α = {alpha:g}) — {label}",
         out["_powerlaw.png"])
    write_csv(out["_powerlaw.csv"], rows)
    write_csv(fit_csv, fits)
    write_config(out["_powerlaw.config.json"], spec, source=source, w_used=w, alpha=alpha, params=which,
                 layers=names, states=[f"{s}:{t}" for s, t, _ in states], seeds=1,
                 random_draws="none (exact energies: deterministic given the run or checkpoint)",
                 prediction={"b_per_weight": 1 + alpha, "a_per_layer": alpha},
                 seconds_total=round(elapsed, 3), seconds_per_state=[round(t, 4) for t in timing])

    def inside(f, v):
        return bool(f["ci_lo"] <= v <= f["ci_hi"]) if math.isfinite(f["ci_lo"]) else None

    summary = [{"state": f["state"], "step": f["step"], "beta": f["beta"], "beta_se": f["beta_se"],
                "ci": [f["ci_lo"], f["ci_hi"]], "r2": f["r2"], "contains_1+alpha": inside(f, 1 + alpha),
                "contains_alpha": inside(f, alpha)} for f in fits]
    lines = [f"{len(names)} coupled layers, N_l = {min(r['N_l'] for r in rows)} … {max(r['N_l'] for r in rows)}; "
             f"w = {w:g}; prediction (b) β = 1 + α = {1 + alpha:g}, reading (a) β = α = {alpha:g}",
             "  state        step     beta     ± se      95% CI            R²    β_shape"]
    lines += [f"  {f['state']:<11} {f['step']!s:>5}  {f['beta']:7.4f}  {f['beta_se']:7.4f}  "
              f"[{f['ci_lo']:.4f}, {f['ci_hi']:.4f}]  {f['r2']:.4f}  {f['beta_shape']:+.4f}" for f in fits]
    lines.append(f"{len(states)} states in {elapsed:.2f} s; wrote {out['_powerlaw.png']}, {out['_powerlaw.csv']}, "
                 f"{fit_csv}, {out['_powerlaw.config.json']}")
    return FigureResult({"png": str(out["_powerlaw.png"]), "csv": str(out["_powerlaw.csv"]), "fit_csv": str(fit_csv)},
                       {"n_layers": len(names), "w": w, "alpha": alpha, "seconds": round(elapsed, 3),
                        "fits": summary}, lines, flat=True)
