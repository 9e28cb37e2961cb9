"""Drawing functions: each takes arrays it is given and an Axes, draws, labels, and returns the Axes. No model
evaluation, no statistics, no file reading here (histogram counts come in precomputed, so the CSV a figure
script writes is exactly what is drawn).

Figures are made with `figure(...)`: a matplotlib Figure on the Agg canvas (no display, no pyplot state), in
seaborn's "whitegrid" style; `save(fig, path)` writes a PNG atomically (temporary name, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE = "whitegrid"
CONTEXT = "notebook"
# One colour per series name, so the same state looks the same in every figure.
COLORS = {"pretrained": "#7f7f7f", "compressed": "#1f77b4", "clamped": "#d62728", "soft": "#d62728",
          "ptq": "#9467bd", "heq": "#9467bd", "random": "#555555", "epoch": "#2ca02c"}
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def palette(names: Sequence[str]) -> dict[str, str]:
    """Stable colours: a name containing a key of COLORS (pretrained, compressed, clamped, ptq/heq, random,
    epoch; first match in that order) gets its colour unless another name of the same plot took it; the rest
    seaborn's 'deep' palette in turn, or, when more names need a colour than 'deep' has, evenly spaced 'husl'
    hues (so no two series of one plot share a colour)."""
    deep = [c for c in sns.color_palette("deep").as_hex() if c not in COLORS.values()]
    fixed, taken = {}, set()
    for name in names:
        c = next((c for key, c in COLORS.items() if key in name.lower()), None)
        if c is not None and c not in taken:
            fixed[name] = c
            taken.add(c)
    rest = [name for name in names if name not in fixed]
    cycle = deep if len(rest) <= len(deep) else sns.color_palette("husl", len(rest)).as_hex()
    free = iter(cycle)
    return {name: fixed[name] if name in fixed else next(free) for name in names}


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.0, squeeze: bool = False,
           **kwargs) -> tuple[Figure, np.ndarray]:
    """(fig, axes [nrows, ncols]) in the seaborn style; width/height per panel, in inches."""
    with sns.axes_style(STYLE), sns.plotting_context(CONTEXT, font_scale=0.85):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)
    return fig, axes


def save(fig: Figure, path: str | os.PathLike, dpi: int = 130) -> Path:
    """Write a PNG atomically (a crash leaves no truncated image)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------ weight histograms


def weight_histograms(ax: Axes, edges: np.ndarray, counts: Mapping[str, np.ndarray], *,
                      clusters: tuple[np.ndarray, np.ndarray] | None = None, cluster_label: str = "clamped",
                      title: str = "", xlabel: str = "weight value", legend: bool = True) -> Axes:
    """One layer's weight distributions: step histograms sharing `edges` ([B+1]), one per series (`counts`
    label → [B]; the first is drawn filled), log-scaled counts, empty bins left blank. `clusters` = (values
    [K], members [K]) of the clamped layer, drawn as stems at the cluster values (height: weights per
    cluster)."""
    colors = palette(list(counts) + ([cluster_label] if clusters is not None else []))
    for i, (label, c) in enumerate(counts.items()):
        c = np.asarray(c, dtype=float)
        ax.stairs(np.where(c > 0, c, np.nan), edges, label=label, color=colors[label], fill=i == 0,
                  alpha=0.35 if i == 0 else 0.95, linewidth=1.1)
    if clusters is not None and len(clusters[0]):
        values, members = (np.asarray(a, dtype=float) for a in clusters)
        ax.vlines(values, 0.8, members, color=colors[cluster_label], linewidth=1.0, alpha=0.8)
        ax.plot(values, members, "v", color=colors[cluster_label], markersize=3.5,
                label=f"{cluster_label} (stems: weights per cluster value)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.set(title=title, xlabel=xlabel, ylabel="weights per bin (log scale)")
    if legend:
        ax.legend(fontsize="x-small", loc="upper right")
    return ax


# ---------------------------------------------------------------------------------------- perturbation test


def perturbation_distribution(ax: Axes, random: np.ndarray, real: Mapping[str, float], *, title: str = "",
                              xlabel: str = "ΔL / ‖Δθ‖  (nats per unit weight norm)", bins: int = 20) -> Axes:
    """Histogram of the random directions' values with each real displacement (label → value) as a
    vertical line."""
    random = np.asarray(random, dtype=float)
    lo = min([random.min()] + list(real.values()))
    hi = max([random.max()] + list(real.values()))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    sns.histplot(x=random, bins=edges, ax=ax, color="#8c8c8c", alpha=0.6,
                 label=f"random directions (M={len(random)})")
    colors = palette(list(real))
    for label, value in real.items():
        ax.axvline(value, color=colors[label], linewidth=2, linestyle="-", label=label)
    ax.axvline(0, color="black", linewidth=0.6, linestyle=":")
    ax.set(title=title, xlabel=xlabel, ylabel="random directions (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole numbers
    ax.set_ylim(top=1.35 * ax.get_ylim()[1])  # headroom, so the legend does not cover the tallest bars
    ax.legend(fontsize="x-small", loc="upper left")
    return ax


def scan_curves(ax: Axes, alpha: np.ndarray, curves: Mapping[str, np.ndarray], *, title: str = "",
                ylabel: str = "test loss (nats)") -> Axes:
    """1-D scans: value vs step size α along each direction (label → [A])."""
    colors = palette(list(curves))
    for label, values in curves.items():
        ax.plot(alpha, values, marker="o", markersize=3, color=colors[label], label=label)
    ax.axvline(0, color="black", linewidth=0.6, linestyle=":")
    ax.set(title=title, xlabel="α  (step in units of ‖Δθ‖)", ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax


# ------------------------------------------------------------------------------------------------ path curves


def path_curves(ax: Axes, alpha: np.ndarray, curves: Mapping[str, np.ndarray], *, knots: Sequence[str],
                ylabel: str, title: str = "", percent: bool = False) -> Axes:
    """Values along a piecewise-linear path (label → [T], one line per path, e.g. per run), at positions
    `alpha` (state k at alpha = k); the states are marked by vertical lines and named by `knots`."""
    colors = palette(list(curves))
    for label, values in curves.items():
        values = np.asarray(values, dtype=float) * (100 if percent else 1)
        ax.plot(alpha, values, marker="o", markersize=3, linewidth=1.6, label=label, color=colors[label])
    for k in range(len(knots)):
        ax.axvline(k, color="black", linewidth=0.7, linestyle="--", alpha=0.6)
    ax.set_xticks(range(len(knots)), list(knots))
    ax.set(title=title, xlabel="position along the path (segments; states at the dashed lines)",
           ylabel=ylabel)
    if len(curves) > 1:
        ax.legend(fontsize="x-small")
    return ax


# ---------------------------------------------------------------------------------------------- bits, Pareto


def bits_per_layer(ax: Axes, layers: Sequence[str], bits: Mapping[str, np.ndarray], *, title: str = "",
                   ylabel: str = "effective bits per weight (log2 K)") -> Axes:
    """Grouped bars: one group per layer, one bar per series (label → [L])."""
    x = np.arange(len(layers))
    width = 0.8 / max(len(bits), 1)
    colors = palette(list(bits))
    for i, (label, values) in enumerate(bits.items()):
        ax.bar(x + (i - (len(bits) - 1) / 2) * width, values, width, label=label, color=colors[label])
    top = max((float(np.max(v)) for v in bits.values() if len(v)), default=1.0)
    ax.set_ylim(0, 1.3 * top if top > 0 else 1.0)  # head room for the legend
    ax.set_xticks(x, [name.removesuffix(".weight") for name in layers], rotation=60, ha="right",
                  fontsize="x-small")
    ax.set(title=title, xlabel="layer", ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax


def pareto(ax: Axes, points: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "",
           reference: float | None = None, notes: Mapping[str, Sequence[str]] | None = None,
           xlabel: str = "mean effective bits per weight", ylabel: str = "test accuracy (%)") -> Axes:
    """Accuracy vs mean bits, one marker style per method (label → (bits [P], accuracy fraction [P])), the
    points of a method joined in the given order; `notes` (label → [P] texts) annotates single points;
    `reference`: full-precision accuracy (fraction), dashed."""
    colors = palette(list(points))
    for i, (label, (b, acc)) in enumerate(points.items()):
        acc = 100 * np.asarray(acc, dtype=float)
        ax.plot(b, acc, marker=MARKERS[i % len(MARKERS)], markersize=8,
                linestyle="-" if len(b) > 1 else "none",
                linewidth=1, color=colors[label], label=label, zorder=3 + len(points) - i)  # first on top
        for x, y, text in zip(b, acc, (notes or {}).get(label, ()), strict=False):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, -10), fontsize="x-small",
                        color=colors[label])
    if reference is not None:
        ax.axhline(100 * reference, color="black", linewidth=1, linestyle="--", label="full precision")
    ax.margins(y=0.12)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax


def study_front(ax: Axes, runs: tuple[np.ndarray, np.ndarray], means: tuple[np.ndarray, np.ndarray, np.ndarray,
                np.ndarray], front: tuple[np.ndarray, np.ndarray], baselines: Mapping[str, tuple[np.ndarray,
                np.ndarray]], *, title: str = "", reference: float | None = None, label: str = "soft quantization",
                notes: Sequence[str] = (), xlabel: str = "mean effective bits per weight",
                ylabel: str = "test accuracy (%)", scale: float = 100.0) -> Axes:
    """A study: every run as a small point (bits [R], accuracy fraction [R]); per point of the study its mean over
    seeds with the seed spread as error bars (bits, accuracy, std bits, std accuracy [P]), annotated with `notes`
    [P] (e.g. its settings); the Pareto front as a step line (bits, accuracy [F], ascending bits); baselines
    (name → (bits, accuracy)) as lines. Values are drawn × `scale` (100: fractions as percent; 1 for a loss)."""
    colors = palette([label, *baselines])
    c = colors[label]
    ax.scatter(runs[0], scale * np.asarray(runs[1]), s=12, color=c, alpha=0.35, linewidths=0, zorder=3,
               label=f"{label}: runs")
    b, acc, sb, sacc = (np.asarray(v, dtype=float) for v in means)
    ax.errorbar(b, scale * acc, xerr=sb, yerr=scale * sacc, fmt="o", markersize=5, color=c, ecolor=c, elinewidth=1,
                capsize=2, zorder=4, label=f"{label}: mean ± std over seeds")
    for x, y, text in zip(b, acc, notes, strict=False):
        ax.annotate(text, (x, scale * y), textcoords="offset points", xytext=(4, 4), fontsize="xx-small", color=c)
    if len(front[0]):
        ax.step(front[0], scale * np.asarray(front[1]), where="post", color=c, linewidth=1.5, zorder=5,
                label="Pareto front")
    for i, (name, (bb, aa)) in enumerate(baselines.items()):
        ax.plot(bb, scale * np.asarray(aa), marker=MARKERS[(i + 1) % len(MARKERS)], markersize=5, linewidth=1,
                color=colors[name], label=name, zorder=2)
    if reference is not None:
        ax.axhline(scale * reference, color="black", linewidth=1, linestyle="--", label="full precision")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="x-small", loc="lower right" if scale == 100.0 else "upper right")
    return ax


# -------------------------------------------------------------------------------------------------- surfaces


def loss_levels(loss: np.ndarray, n: int = 24) -> np.ndarray:
    """`n` log-spaced contour levels spanning the finite positive values of `loss` (a surface's minimum is
    resolved as finely as its walls)."""
    finite = np.asarray(loss, dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:
        return np.array([0.0, 1.0])
    lo, hi = float(finite.min()), float(finite.max())
    return np.geomspace(lo, hi * (1 + 1e-9), n) if hi > lo else np.array([lo * 0.99, lo * 1.01])


def surface_contour(ax: Axes, x: np.ndarray, y: np.ndarray, loss: np.ndarray, *,
                    anchors: Sequence[tuple[str, Sequence[float]]] = (), path: bool = False, title: str = "",
                    xlabel: str = "x", ylabel: str = "y", equal_aspect: bool = False,
                    colorbar_label: str = "loss (nats, log-spaced levels)") -> Axes:
    """Filled contours of loss [len(x), len(y)] (indexing='ij': loss[i, j] at (x_i, y_j)) with log-spaced
    levels; non-finite values left blank. `anchors` (label, (x, y)) are marked and named; `path` joins them in
    order (the straight segments of a piecewise-linear path lying in the plane). `equal_aspect`: one unit is
    as long on both axes (parameter-distance axes drawn at true aspect)."""
    from matplotlib.colors import BoundaryNorm

    z = np.ma.masked_invalid(np.asarray(loss, dtype=float).T)  # contourf wants [y, x]
    levels = loss_levels(loss)
    cmap = sns.color_palette("rocket_r", as_cmap=True)
    filled = ax.contourf(x, y, z, levels=levels, cmap=cmap, norm=BoundaryNorm(levels, cmap.N), extend="neither")
    ax.contour(x, y, z, levels=levels[::3], colors="white", linewidths=0.4, alpha=0.6)
    cbar = ax.figure.colorbar(filled, ax=ax, shrink=0.85)
    cbar.set_label(colorbar_label)
    ticks = levels[:: max(1, len(levels) // 6)]
    cbar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    if anchors:
        colors = palette([a for a, _ in anchors])
        xy = np.array([c for _, c in anchors], dtype=float)
        if path and len(anchors) > 1:
            ax.plot(xy[:, 0], xy[:, 1], color="black", linewidth=1.4, linestyle="--", zorder=4,
                    label="interpolation path")
        for (label, _), (px, py) in zip(anchors, xy, strict=True):
            ax.plot(px, py, marker="o", markersize=7, color=colors[label], markeredgecolor="white", zorder=5,
                    linestyle="none", label=label)
        ax.legend(fontsize="x-small", loc="best", framealpha=0.8)
    if equal_aspect:
        ax.set_aspect("equal", adjustable="box")
    ax.grid(False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def surface_3d(ax, x: np.ndarray, y: np.ndarray, loss: np.ndarray, *, title: str = "", xlabel: str = "x",
               ylabel: str = "y", zlabel: str = "loss (nats)") -> object:
    """The same surface in 3-D (`ax` made with projection='3d'), log-coloured like the contours."""
    from matplotlib.colors import LogNorm

    X, Y = np.meshgrid(x, y, indexing="ij")
    z = np.asarray(loss, dtype=float)
    finite = z[np.isfinite(z) & (z > 0)]
    norm = LogNorm(finite.min(), finite.max()) if finite.size and finite.max() > finite.min() else None
    ax.plot_surface(X, Y, np.where(np.isfinite(z), z, np.nan), cmap=sns.color_palette("rocket_r", as_cmap=True),
                    norm=norm, linewidth=0, antialiased=True, rcount=len(x), ccount=len(y))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, zlabel=zlabel)
    return ax


def line_scan(ax: Axes, x: np.ndarray, loss: np.ndarray, *, anchors: Sequence[tuple[str, float, float]] = (),
              title: str = "", xlabel: str = "x", ylabel: str = "loss (nats)") -> Axes:
    """A 1-D scan: loss along one direction; `anchors` (label, x, loss) marked."""
    ax.plot(x, loss, marker="o", markersize=3, color=COLORS["random"])
    colors = palette([a for a, *_ in anchors])
    for label, px, py in anchors:
        ax.plot(px, py, marker="o", markersize=7, color=colors[label], linestyle="none", label=label)
    if anchors:
        ax.legend(fontsize="x-small")
    ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


# --------------------------------------------------------------------------------------------------- Hessian


def spectral_density(ax: Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "",
                     xlabel: str = "Hessian eigenvalue", ylabel: str = "density (log scale)",
                     floor: float = 1e-6) -> Axes:
    """Spectral densities (label → (grid [G], density [G])), log-scaled; values below `floor` × the peak are
    clipped there so the empty stretches between outliers stay visible."""
    colors = palette(list(curves))
    peak = max((float(np.max(d)) for _, d in curves.values()), default=1.0)
    for label, (grid, dens) in curves.items():
        ax.plot(grid, np.maximum(np.asarray(dens, dtype=float), floor * peak), color=colors[label], linewidth=1.3,
                label=label)
    ax.axvline(0, color="black", linewidth=0.6, linestyle=":")
    ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax


def hessian_bars(ax: Axes, groups: Sequence[str], values: Mapping[str, Sequence[float]], *,
                 errors: Mapping[str, Sequence[float]] | None = None, title: str = "", ylabel: str = "",
                 xlabel: str = "layer", log: bool = False) -> Axes:
    """Grouped bars: one group per entry of `groups` (e.g. layers), one bar per series (label → [len(groups)]),
    optional error bars (label → [len(groups)]); `log`: log-scaled y (non-positive values are not drawn)."""
    x = np.arange(len(groups))
    width = 0.8 / max(len(values), 1)
    colors = palette(list(values))
    for i, (label, v) in enumerate(values.items()):
        v = np.asarray(v, dtype=float)
        err = None if errors is None or label not in errors else np.asarray(errors[label], dtype=float)
        ax.bar(x + (i - (len(values) - 1) / 2) * width, np.where(v > 0, v, np.nan) if log else v, width,
               yerr=err, capsize=2 if err is not None else 0, label=label, color=colors[label])
    if log:
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, [g.removesuffix(".weight") for g in groups], rotation=60 if len(groups) > 4 else 0,
                  ha="right" if len(groups) > 4 else "center", fontsize="x-small")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax


def clamp_cost(ax: Axes, layers: Mapping[str, tuple[float, float]], *, whole: tuple[float, float] | None = None,
               title: str = "", xlabel: str = "predicted ΔL = gᵀδ + ½ δᵀHδ  (nats)",
               ylabel: str = "measured ΔL  (nats)") -> Axes:
    """Predicted vs measured loss change: one point per layer clamped alone (name → (predicted, measured)),
    the whole model clamped as a star, and the diagonal where prediction = measurement."""
    points = list(layers.values()) + ([whole] if whole is not None else [])
    if layers:
        p, m = np.array(list(layers.values()), dtype=float).T
        ax.scatter(p, m, s=18, color=COLORS["compressed"], label="one layer clamped", zorder=3)
        for (name, (px, py)) in layers.items():
            ax.annotate(name.removesuffix(".weight"), (px, py), textcoords="offset points", xytext=(3, 2),
                        fontsize="xx-small", color=COLORS["compressed"])
    if whole is not None:
        ax.scatter([whole[0]], [whole[1]], s=90, marker="*", color=COLORS["clamped"], label="whole model clamped",
                   zorder=4)
    if points:
        lo, hi = float(np.min(points)), float(np.max(points))
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1e-6)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=0.8, linestyle="--",
                label="prediction = measurement")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="x-small")
    return ax
