"""DSMM then naive PTQ, at several bit widths from one training (DSMM paper, abstract and Table 1 "Naïve";
`analyses/table_dsmm.py`).

Claim checked (not assumed): fine-tuning with the differentiable soft min-max loss (Kundu et al., eq. 1) trims
each layer's weight range, so naive uniform min–max PTQ of the fine-tuned weights keeps more accuracy at low
bits than PTQ of the same fine-tuning without the loss (λ = 0).

DSMM's loss does not depend on the bit width (the bits only choose the PTQ applied after it), so one training per
(λ, α₀, seed) serves every bit width: this applies uniform PTQ at each of `bits` to the fine-tuned ("compressed")
weights of each run — BN statistics as trained, exactly the run's own clamp step — and evaluates on the first
`limit` test images. Runs of a study that differ only in `bits` are one training; the first is used, and its
stored clamped accuracy is printed beside this PTQ at its bits as a check.

Two panels: accuracy after uniform PTQ against bits (mean ± std over seeds per setting; uniform PTQ of the
pretrained model dashed) and the per-layer weight range after fine-tuning relative to the pretrained range
(first seed of each setting) — what the loss is meant to change.

Writes <stem>.png, <stem>.csv (one row per run and bit width) and <stem>.config.json (stem: dsmm_ptq).

    >>> spec = DSMMTable(studies=["dsmm", "dsmm-alpha10"], dir="studies/repro-quick", bits=[2, 3, 4], limit=10000)
    >>> spec.name, spec.bits, spec.paths()[".csv"].name
    ('dsmm_ptq', (2, 3, 4), 'dsmm_ptq.csv')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from .. import plots
from ..outputs import write_csv
from ..params import select_params
from .base import FigureResult, FigureSpec, check_bits, maker, study_runs, test_batches, write_config

STEM = "dsmm_ptq"


@dataclass(frozen=True)
class DSMMTable(FigureSpec):
    """Uniform PTQ at `bits` of the fine-tuned weights of every DSMM training of `studies`."""

    studies: tuple[str, ...] = ()  # names of studies of DSMM runs (method dsmm), ≥ 1
    dir: str = "studies"  # folder of the studies' journals (<dir>/<study>/journal.log)
    bits: tuple[int, ...] = (2, 3, 4)  # PTQ bit widths per weight, each in 1..16

    STEM = STEM

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "studies", tuple(str(s) for s in self.studies))
        object.__setattr__(self, "dir", str(self.dir))
        object.__setattr__(self, "bits", tuple(self.bits))
        if not self.studies:
            raise ValueError("give at least one study")
        object.__setattr__(self, "bits", check_bits(self.bits, "give at least one bit width"))


def training_key(row: dict) -> tuple:
    """What decides a DSMM run's training: its settings except the bits — (λ, α₀, α's step size) — and the seed."""
    from ..api import open_run

    c = open_run(row["run"]).config["compressor"]
    return (float(c["strength"]), float(c["alpha_init"]), c.get("alpha_lr")), int(row["seed"])


def setting_label(setting: tuple) -> str:
    strength, alpha0, alpha_lr = setting
    return f"λ={strength:g}, α₀={alpha0:g}" + ("" if alpha_lr is None else f", α step {alpha_lr:g}")


def layer_ranges(model, which: str) -> dict[str, float]:
    """max − min of every parameter DSMM regularises and PTQ quantizes (the run's `params` selection)."""
    return {k: (v.max() - v.min()).item() for k, v in select_params(model, which).items()}


def ptq_accuracy(model, bits: int, batches) -> float:
    from ..api import clamp, evaluate_model

    return evaluate_model(clamp(model, bits=bits, quantizer="uniform").model, batches)["accuracy"]


@maker(DSMMTable)
def make(spec: DSMMTable) -> FigureResult:
    """PTQ every training of the studies at every bit width, draw both panels, write the PNG, CSV and config."""
    from ..api import open_run

    out = spec.outputs()
    trainings: dict[tuple, dict] = {}
    for name in spec.studies:
        study, rows = study_runs(name, spec.dir, method="dsmm", finished=True)
        for r in sorted(rows, key=lambda r: r.get("bits", 0)):
            trainings.setdefault(training_key(r), {**r, "study": name})
    batches, _ = test_batches(spec)
    bits = list(spec.bits)

    table, ranges, checks = [], {}, []
    first = open_run(next(iter(trainings.values()))["run"])
    which = first.config["compressor"]["params"]
    pretrained = first.model("pretrained")
    base = {b: ptq_accuracy(pretrained, b, batches) for b in bits}
    base_ranges = layer_ranges(pretrained, which)
    for (setting, seed), r in tqdm(trainings.items(), desc="PTQ of DSMM runs", unit="run", disable=spec.quiet):
        run = open_run(r["run"])
        model = run.model("compressed")
        fine_ranges = layer_ranges(model, which)
        ranges.setdefault(setting, fine_ranges)
        evals = run.evals()
        fine = evals.get("compressed", {}).get("accuracy", float("nan"))
        own_bits, own = int(run.config["compressor"]["bits"]), evals.get("clamped", {})
        own_acc = own.get("accuracy") if own.get("n") == len(batches.split) else None  # same test images only
        strength, alpha0, alpha_lr = setting
        for b in bits:
            acc = ptq_accuracy(model, b, batches)
            table.append({"study": r["study"], "strength": strength, "alpha_init": alpha0, "alpha_lr": alpha_lr,
                          "seed": seed, "bits": b, "accuracy": acc, "accuracy_pretrained_ptq": base[b],
                          "accuracy_finetuned": fine,
                          "run_clamped_accuracy": own_acc if b == own_bits and own_acc is not None else "",
                          "mean_range": float(np.mean(list(fine_ranges.values()))),
                          "mean_range_pretrained": float(np.mean(list(base_ranges.values()))), "run": r["run"]})
            if b == own_bits and own_acc is not None:
                checks.append(f"check {setting_label(setting)}, seed {seed}: PTQ here {100 * acc:.2f}% vs the run's "
                              f"own clamp {100 * own_acc:.2f}% at {b} bits")

    settings = sorted(ranges, key=lambda s: (s[0], s[1], s[2] or 0.0))
    colors = plots.palette([f"{s}" for s in settings])
    fig, axes = plots.figure(1, 2, width=5.4, height=4.0)
    summary = []
    for s in settings:
        label = setting_label(s)
        accs = 100 * np.array([[t["accuracy"] for t in table if (t["strength"], t["alpha_init"], t["alpha_lr"]) == s
                                 and t["bits"] == b] for b in bits])  # bits × seeds
        mean, std = accs.mean(1), accs.std(1, ddof=1) if accs.shape[1] > 1 else np.zeros(len(bits))
        summary.append({"setting": label, **{f"{b} bits": f"{m:.2f} ± {e:.2f}" for b, m, e in
                                             zip(bits, mean, std, strict=True)}})
        axes[0, 0].errorbar(bits, mean, yerr=std, marker="o", capsize=3, color=colors[f"{s}"],
                            label=f"{label} ({accs.shape[1]} seed{'s' * (accs.shape[1] > 1)})")
        names = list(base_ranges)
        axes[0, 1].plot(range(len(names)), [ranges[s][n] / base_ranges[n] for n in names], marker=".",
                        color=colors[f"{s}"], label=label)
    axes[0, 0].plot(bits, [100 * base[b] for b in bits], "k--", marker="x", label="pretrained, uniform PTQ")
    axes[0, 0].set(xlabel="bits per weight (uniform PTQ, per layer)", ylabel="test accuracy (%)", xticks=bits,
                   title="naive PTQ after fine-tuning")
    axes[0, 0].legend(fontsize="x-small")
    axes[0, 1].axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[0, 1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 1].set(xlabel="layer (model order)", ylabel="weight range after / before fine-tuning",
                   title="per-layer range (max − min), first seed")
    axes[0, 1].legend(fontsize="x-small")
    fig.suptitle(f"DSMM then uniform PTQ ({len(batches.split):,} test images)", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], table)
    write_config(out[".config.json"], spec, trainings=len(trainings))
    lines = [*checks, *(" | ".join(f"{k}: {v}" for k, v in s.items()) for s in summary),
             f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary, lines)
