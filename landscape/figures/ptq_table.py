"""Accuracy vs bits of the three post-training quantization baselines on the adapted ResNet-20
(`analyses/table_ptq.py`).

Claim reproduced: per-layer PTQ of the conv/linear weights keeps accuracy at 8 and 4 bits and collapses at 2 bits,
and the ranking of naive uniform, HEQ and k-means (the baselines of the soft-quantization paper and Table 1 of the
workshop paper) on this model. Deterministic: no training, no random draws except k-means' seeded init (seed 0),
so one run backs every number. Every model is evaluated on the first `limit` test images (None: all). Writes
<stem>.csv (method, bits, mean_effective_bits, accuracy, loss, n), <stem without _table>_accuracy_vs_bits.png
(ptq_accuracy_vs_bits.png by default) and <stem>.config.json; its lines are the table as markdown.

    >>> spec = PTQTable(checkpoint="models/resnet20.pt", bits=(2, 4), methods=("heq",), out_dir="figs")
    >>> spec.name, [p.as_posix() for p in spec.paths().values()]
    ('ptq_table', ['figs/ptq_table.csv', 'figs/ptq_accuracy_vs_bits.png', 'figs/ptq_table.config.json'])
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import plots
from ..outputs import write_csv
from ..quantize import QUANTIZERS
from .base import FigureResult, FigureSpec, check_bits, maker, test_batches, write_config


@dataclass(frozen=True)
class PTQTable(FigureSpec):
    """Test accuracy of every PTQ `methods` × `bits` of the model `checkpoint` (an `arch`), and of the model itself."""

    limit: int | None = None  # first N test images (class-balanced prefix; None: all 10,000)
    checkpoint: str = ""  # the model to quantize (a checkpoint file; required)
    arch: str = "resnet20"  # architecture of the checkpoint (a models.ARCHS name, or package.module:factory)
    arch_kwargs: dict | None = None  # keyword arguments of the arch's factory
    bits: tuple[int, ...] = (2, 3, 4, 8)  # bit-widths (2^b levels per layer), each in 1..16
    methods: tuple[str, ...] = tuple(QUANTIZERS)  # PTQ methods (quantize.QUANTIZERS: uniform, heq, kmeans)

    STEM = "ptq_table"
    SUFFIXES = (".csv", ".png", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "checkpoint", str(self.checkpoint))
        if not self.checkpoint:
            raise ValueError("give the checkpoint of the model to quantize")
        if self.arch_kwargs is not None:
            if not isinstance(self.arch_kwargs, dict):
                raise ValueError(f"arch_kwargs must be a dict or None, got {self.arch_kwargs!r}")
            object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        object.__setattr__(self, "bits", tuple(self.bits))
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "bits", check_bits(self.bits, "give at least one bit-width"))
        if not self.methods:
            raise ValueError("give at least one PTQ method")
        unknown = [m for m in self.methods if m not in QUANTIZERS]
        if unknown:
            raise ValueError(f"PTQ method must be one of {', '.join(QUANTIZERS)}, got {unknown[0]!r}")

    def paths(self, suffixes=None) -> dict[str, Path]:
        """As FigureSpec's, but the PNG is <stem without _table>_accuracy_vs_bits.png (ptq_accuracy_vs_bits.png)."""
        out = super().paths(suffixes)
        if ".png" in out:
            out[".png"] = Path(self.out_dir) / f"{self.name.removesuffix('_table')}_accuracy_vs_bits.png"
        return out


@maker(PTQTable)
def make(spec: PTQTable) -> FigureResult:
    """Quantize and evaluate every method × bit-width, write the CSV, config JSON and PNG; the lines are the
    markdown table."""
    from ..compress.ptq import quantize_model
    from ..distributed import usable_device
    from ..metrics import evaluate
    from ..models import load_model

    out = spec.outputs()  # refuse before any work, not after
    dev = usable_device(spec.device)
    model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs).to(dev)
    batches, _ = test_batches(spec)
    start = time.perf_counter()
    full = evaluate(model, batches)
    rows = [{"method": "full precision", "bits": 32, "mean_effective_bits": 32.0, "accuracy": full["accuracy"],
             "loss": full["loss"], "n": full["n"]}]
    for method in spec.methods:
        for bits in spec.bits:
            q = quantize_model(model, method, bits)
            result = evaluate(q.model, batches)
            rows.append({"method": method, "bits": bits, "mean_effective_bits": q.mean_bits(),
                         "accuracy": result["accuracy"], "loss": result["loss"], "n": result["n"]})
            spec.log(f"{method:>8} {bits:2d} bits: {100 * result['accuracy']:6.2f}%")
    elapsed = time.perf_counter() - start

    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, seconds=round(elapsed, 1), n_test=full["n"])

    fig, axes = plots.figure(1, 1, width=6, height=4)  # seaborn whitegrid, without pyplot's global state
    ax = axes[0, 0]
    for method in spec.methods:
        pts = [r for r in rows if r["method"] == method]
        ax.plot([r["bits"] for r in pts], [100 * r["accuracy"] for r in pts], marker="o", label=method)
    ax.axhline(100 * full["accuracy"], color="k", ls="--", lw=1, label="full precision")
    ax.set(xlabel="bits per weight (2^b levels per layer)", ylabel="test accuracy (%)",
           title=f"PTQ of {spec.arch} (CIFAR-10 JPEG, n={full['n']})", xticks=list(spec.bits))
    ax.legend()
    plots.save(fig, out[".png"], dpi=120)

    lines = ["", f"PTQ of {spec.arch} ({spec.checkpoint}), test accuracy (%) on {full['n']} images; "
             f"full precision {100 * full['accuracy']:.2f}%", "",
             "| method | " + " | ".join(f"{b} bits" for b in spec.bits) + " |",
             "|---|" + "---|" * len(spec.bits)]
    for method in spec.methods:
        acc = {r["bits"]: r["accuracy"] for r in rows if r["method"] == method}
        lines.append(f"| {method} | " + " | ".join(f"{100 * acc[b]:.2f}" for b in spec.bits) + " |")
    lines += ["", f"wrote {out['.csv']}, {out['.png']} ({elapsed:.0f} s)"]
    return FigureResult({"csv": str(out[".csv"]), "png": str(out[".png"])},
                        {"rows": rows, "n_test": full["n"], "seconds": round(elapsed, 1)}, lines)
