"""Why VQ-QAT's cosine assignment does or does not help: codebook collapse, assignment churn and reconstruction
error per variant and bit width (issue 26's ablations; `analyses/table_vq_ablation.py`; reproduction row
vq-cosine).

Input: VQ-QAT studies (`--method vq`, a grid over codebook_bits) trained with `layer_stats` on, so that every run
file holds /scalars/layer:<param>:<metric> (compress/vq.py, "Per-layer measurements"): entries, dead, perplexity,
changed, rel_error at every stats step. A study is one variant (its assignment, cosine or euclidean, and its
forward, top-1 STE or DKM-style soft A·C); its label comes from `VQ.label_for`.

Per run and layer, from the last stats step (the end of training; `changed` averaged over every stats step after
the first, the assignment churn of the whole run):

    used        entries / 2^b: the share of the codebook in use (1: no collapse)
    perplexity  exp(H(usage)) / 2^b: how evenly the entries are used (1: uniform; 1/2^b: one entry takes all)
    dead        2^b − entries
    changed     the fraction of sub-vectors whose codeword changed between consecutive stats calls
    rel_error   Σ(θ − q)²/Σθ², the clamp's relative squared reconstruction error

The summary per variant and bit width is the mean over layers (each layer counts once: collapse is a per-layer
event, and the small first and last layers are where it happens) and then over seeds, ± the std over seeds, with
the clamped test accuracy of the runs beside it (`accuracy_clamped` of the study).

Writes <stem>.png (four panels against bits per weight: clamped accuracy, used share, perplexity share, relative
reconstruction error; one line per variant), <stem>.csv (one row per run and layer) and <stem>_summary.csv (one
row per variant and bit width), and <stem>.config.json. Reads the run files only; nothing is re-evaluated.

    >>> spec = VQAblationFigure(studies=("vqa-cosine-ste", "vqa-euclidean-ste"), dir="studies/repro-quick")
    >>> spec.name, spec.paths()[".csv"].name
    ('vq_ablation', 'vq_ablation.csv')
    >>> VQAblationFigure(studies=())
    Traceback (most recent call last):
    ...
    ValueError: give at least one VQ study
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import plots
from ..errors import LandscapeError
from ..outputs import write_csv
from ..store import Run
from .base import FigureResult, FigureSpec, maker, study_runs, write_config

METRICS = ("entries", "dead", "perplexity", "changed", "rel_error")  # vq.usage_stats, per layer


@dataclass(frozen=True)
class VQAblationFigure(FigureSpec):
    """Codebook use and reconstruction per VQ variant (module docstring). Reads run files only: `limit`,
    `batch_size`, `data` and `device` are not used."""

    studies: tuple[str, ...] = ()  # VQ-QAT studies (method vq, grid over codebook_bits) run with layer_stats
    dir: str = "studies"  # folder of the studies' journals (<dir>/<study>/journal.log)

    STEM = "vq_ablation"
    SUFFIXES = (".png", ".csv", "_summary.csv", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "studies", tuple(str(s) for s in self.studies))
        object.__setattr__(self, "dir", str(self.dir))
        if not self.studies:
            raise ValueError("give at least one VQ study")


def layer_rows(run: Run) -> list[dict]:
    """One row per layer of a VQ run file trained with layer_stats: the module docstring's measurements.

    Args:
        run: the run file.

    Returns:
        Rows: layer, codebook_size (2^b), used, perplexity, dead, changed, rel_error; a LandscapeError (one line)
        where the run has no per-layer scalars.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(3)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="vq", codebook_bits=2,
        ...                         dim=2, layer_stats=True, epochs=1, progress=False)
        >>> rows = layer_rows(run)
        >>> [r["layer"] for r in rows], rows[0]["codebook_size"], 0 < rows[0]["used"] <= 1
        (['0.weight', '2.weight'], 4, True)
        >>> tmp.cleanup()
    """
    scalars = run.scalars()
    layers = list(dict.fromkeys(name.split(":")[1] for name in scalars if name.startswith("layer:")))
    if not layers:
        raise LandscapeError(f"{run.path}: no per-layer scalars (train the VQ runs with --layer-stats true)")
    k = 2 ** int(run.config["compressor"]["codebook_bits"])
    rows = []
    for layer in layers:
        series = {m: scalars[f"layer:{layer}:{m}"] for m in METRICS}
        measured = np.flatnonzero(np.isfinite(series["entries"]))
        if not len(measured):
            raise LandscapeError(f"{run.path}: layer {layer} was never measured")
        last = measured[-1]
        churn = series["changed"][measured]
        churn = churn[np.isfinite(churn)]
        rows.append({"layer": layer, "codebook_size": k, "used": float(series["entries"][last]) / k,
                     "perplexity": float(series["perplexity"][last]) / k, "dead": float(series["dead"][last]),
                     "changed": float(churn.mean()) if len(churn) else math.nan,
                     "rel_error": float(series["rel_error"][last])})
    return rows


def _nanmean(values: list[float]) -> float:
    """The mean of the finite values (NaN, without a warning, when there are none: `changed` of a run with one
    stats step)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@maker(VQAblationFigure)
def make(spec: VQAblationFigure) -> FigureResult:
    """Read every study's run files, summarise per variant and bit width, draw and write."""
    from ..compress import METHODS

    out = spec.outputs()
    rows, summary = [], []
    for name in spec.studies:
        study, runs = study_runs(name, spec.dir, method="vq", finished=True)
        label = METHODS["vq"][0].label_for(study.base.compressor)
        per_bits: dict[int, list[dict]] = {}
        for r in runs:
            run = Run(r["run"])
            bits = int(run.config["compressor"]["codebook_bits"])
            layers = layer_rows(run)
            for layer in layers:
                rows.append({"variant": label, "study": name, "codebook_bits": bits, "seed": r["seed"],
                             "run": r["run"], "accuracy_clamped": r["accuracy_clamped"],
                             "mean_bits": r["mean_bits"], **layer})
            per_bits.setdefault(bits, []).append({"accuracy": r["accuracy_clamped"], "bits": r["mean_bits"],
                                                  **{m: _nanmean([lr[m] for lr in layers])
                                                     for m in ("used", "perplexity", "dead", "changed",
                                                               "rel_error")}})
        for bits, seeds in sorted(per_bits.items()):
            row = {"variant": label, "study": name, "codebook_bits": bits, "seeds": len(seeds)}
            for key in ("accuracy", "bits", "used", "perplexity", "dead", "changed", "rel_error"):
                row[key], row[f"{key}_std"] = _mean_std([s[key] for s in seeds])
            summary.append(row)
        spec.log(f"{name}: {len(runs)} runs")

    variants = list(dict.fromkeys(r["variant"] for r in summary))
    colors = plots.palette(variants)
    panels = (("accuracy", 100, "clamped test accuracy (%)"), ("used", 100, "codebook entries in use (% of 2^b)"),
              ("perplexity", 100, "usage perplexity (% of 2^b)"), ("rel_error", 1, "relative reconstruction error"))
    fig, axes = plots.figure(1, len(panels), width=4.0, height=3.6)
    for ax, (key, scale, ylabel) in zip(axes[0], panels, strict=True):
        for v in variants:  # the soft forward dashed with square markers: it can lie on its STE twin
            pts = [r for r in summary if r["variant"] == v]
            soft = "soft" in v
            ax.errorbar([r["bits"] for r in pts], [scale * r[key] for r in pts],
                        yerr=[scale * r[f"{key}_std"] for r in pts], marker="s" if soft else "o",
                        linestyle="--" if soft else "-", markersize=7 if soft else 5, capsize=3, color=colors[v],
                        label=v)
        ax.set(xlabel="mean effective bits per weight", ylabel=ylabel)
    axes[0, 3].set_yscale("log")
    axes[0, 0].legend(fontsize="x-small")
    fig.suptitle("VQ-QAT variants: mean over layers, then seeds (± std over seeds)")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_csv(out["_summary.csv"], summary)
    write_config(out[".config.json"], spec)
    table = ["| variant | b (bits/weight) | accuracy | entries used | perplexity | changed / stats step | rel. error |",
             "|---|---|---|---|---|---|---|"]
    for r in summary:
        table.append(f"| {r['variant']} | {r['codebook_bits']} ({r['bits']:.2f}) | {100 * r['accuracy']:.2f}% | "
                     f"{100 * r['used']:.1f}% | {100 * r['perplexity']:.1f}% | {r['changed']:.4f} | "
                     f"{r['rel_error']:.4f} |")
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": str(out["_summary.csv"])},
                        summary, [*table, f"wrote {out['.png']}, {out['.csv']}, {out['_summary.csv']}"])
