"""The configuration a VQ/linear search chose (`--method vq-nas`, landscape/compress/vq_nas.py;
`analyses/fig_nas.py`).

What the mixed vector/linear network of Gou & Gupta's NAS looks like after the search: per layer (model order), the
chosen candidate's bits per weight, coloured VQ or linear and labelled with its name, beside a heat map of the final
p_l = softmax(α_l) over the candidates (blank where a candidate was not allowed in that layer; the chosen one
framed). Backed by one finished (or checkpointed) vq-nas run file; nothing is re-evaluated: α is read from the last
complete checkpoint, the choice from /scalars/layer:<param>:choice (`vq_nas.chosen_configuration`).

Writes <stem>.png, <stem>.csv (run, layer, index, n_weights, candidate, kind, bits_per_weight, p, chosen; one row
per layer and allowed candidate) and <stem>.config.json.

    >>> spec = NASAllocationFigure(run="runs/nas.h5", out_dir="figures")
    >>> spec.name, spec.paths()[".csv"].as_posix()
    ('nas_allocation', 'figures/nas_allocation.csv')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.patches import Patch, Rectangle

from .. import plots
from ..compress.vq_nas import chosen_configuration
from ..outputs import write_csv
from ..store import Run
from .base import FigureResult, FigureSpec, maker, write_config

KIND_COLORS = {"vq": "#1f77b4", "lin": "#ff7f0e"}
KIND_NAMES = {"vq": "VQ", "lin": "linear"}


def allocation_rows(run: Run) -> list[dict]:
    """One row per layer and allowed candidate of a vq-nas run file (`vq_nas.chosen_configuration`), in model order.

    Args:
        run: the run file (a vq-nas run with at least one complete checkpoint).

    Returns:
        Rows: run, layer, index, n_weights, candidate, kind, bits_per_weight, p, chosen (0/1).

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="vq-nas", epochs=1,
        ...                         candidates="vq:4x2,lin:3", search_steps=1, progress=False)
        >>> rows = allocation_rows(run)
        >>> len(rows), sum(r["chosen"] for r in rows), rows[0]["candidate"]
        (4, 2, 'vq:4x2')
        >>> tmp.cleanup()
    """
    rows = []
    for index, (name, layer) in enumerate(chosen_configuration(run).items()):
        for candidate, kind, bits, p in zip(layer["candidates"], layer["kinds"], layer["bits"], layer["p"],
                                            strict=True):
            rows.append({"run": str(run.path), "layer": name, "index": index, "n_weights": layer["numel"],
                         "candidate": candidate, "kind": kind, "bits_per_weight": float(bits), "p": float(p),
                         "chosen": int(candidate == layer["choice"])})
    return rows


@dataclass(frozen=True)
class NASAllocationFigure(FigureSpec):
    """The chosen candidate and the final p_l of every layer of one vq-nas run. Reads the run file only: `limit`,
    `batch_size`, `data` and `device` are not used."""

    run: str = ""  # a vq-nas run file (HDF5) with at least one complete checkpoint

    STEM = "nas_allocation"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "run", str(self.run))
        if not self.run:
            raise ValueError("give a vq-nas run file (--run)")


@maker(NASAllocationFigure)
def make(spec: NASAllocationFigure) -> FigureResult:
    """Read the run's configuration and p_l, draw both panels, write the PNG, CSV and config JSON."""
    run = Run(spec.run)
    out = spec.outputs()
    rows = allocation_rows(run)
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    candidates = list(dict.fromkeys(r["candidate"] for r in sorted(rows, key=lambda r: r["kind"] != "vq")))
    chosen = {r["layer"]: r for r in rows if r["chosen"]}
    spec.log(f"{len(layers)} layers, {len(candidates)} candidates")

    heat = np.full((len(layers), len(candidates)), np.nan)
    for r in rows:
        heat[layers.index(r["layer"]), candidates.index(r["candidate"])] = r["p"]
    sizes = np.array([chosen[name]["n_weights"] for name in layers], dtype=float)
    bits = np.array([chosen[name]["bits_per_weight"] for name in layers])
    mean = float((sizes * bits).sum() / sizes.sum())
    vq_share = float(sum(s for s, name in zip(sizes, layers, strict=True) if chosen[name]["kind"] == "vq")
                     / sizes.sum())

    height = max(3.0, 0.32 * len(layers) + 1.5)
    fig, axes = plots.figure(1, 2, width=5.0, height=height)
    y = np.arange(len(layers))
    ax = axes[0, 0]
    ax.barh(y, bits, color=[KIND_COLORS[chosen[name]["kind"]] for name in layers])
    for i, name in enumerate(layers):
        ax.text(bits[i], i, f" {chosen[name]['candidate']}", va="center", fontsize="small")
    ax.set(yticks=y, yticklabels=layers, xlabel="bits per weight (index bits; codebooks not counted)",
           title=f"chosen configuration: {mean:.2f} bits per weight", xlim=(0, max(bits.max() * 1.4, 1.0)))
    ax.set_ylim(len(layers) - 0.5, -0.5)  # top to bottom, row for row with the heat map beside it
    ax.legend(handles=[Patch(color=c, label=KIND_NAMES[k]) for k, c in KIND_COLORS.items()], fontsize="small",
              loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    ax.grid(alpha=0.3, axis="x")
    ax = axes[0, 1]
    image = ax.imshow(np.ma.masked_invalid(heat), aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax.grid(False)
    for i, name in enumerate(layers):
        j = candidates.index(chosen[name]["candidate"])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        for k in range(len(candidates)):
            if np.isfinite(heat[i, k]):
                ax.text(k, i, f"{heat[i, k]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if heat[i, k] > 0.6 else "white")
    ax.set(xticks=np.arange(len(candidates)), yticks=y, yticklabels=[""] * len(layers),
           title="final p_l = softmax(α_l) (chosen framed)")
    ax.set_xticklabels(candidates, rotation=45, ha="right")
    fig.colorbar(image, ax=ax, label="p")
    fig.suptitle(f"VQ/linear search — {run.path.name}: {100 * vq_share:.0f}% of the weights vector-quantized",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, candidates=candidates, method=run.method)
    summary = {"mean_bits": mean, "vq_fraction": vq_share, "layers": len(layers),
               "chosen": {name: chosen[name]["candidate"] for name in layers}}
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary,
                        [f"chosen configuration: {mean:.3f} bits per weight, {100 * vq_share:.0f}% of the weights VQ",
                         f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"])
