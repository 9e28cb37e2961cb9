"""Today's QAT methods as baselines: every method at 2, 3 and 4 bits under one fine-tuning budget, against the PTQ
baselines of the same pretrained model (issue 25; `analyses/table_comparison.py`; reproduction rows sq-qat,
bl-parq, dsmm-qat and sq-fig2-qat).

Rows:
  * trained methods: one study per method (`landscape.study`, a grid over its bit setting × seeds); every run
    starts from the same checkpoint, has the same data order and augmentation for a seed, the same optimizer,
    learning rate and epochs, and the same evaluation (the run's clamped model on the study's test images);
  * PTQ of the pretrained model, no training: uniform, HEQ, k-means (landscape/quantize.py) and GPTQ
    (compress/gptq.py, calibrated on the first `calibration_images` unaugmented training images) at each of `bits`;
  * k-means at matched bits: for every run of the `matched` study (soft quantization, whose bits per layer emerge),
    k-means PTQ of the pretrained model with that run's number of clusters K_l in every layer
    (compress/ptq.py `matched_ptq`), so the same mean bits and the same per-layer budget.

Bit columns: a point (one grid point of a study, mean over its seeds) sits in column ⌈mean effective bits⌉, the
smallest integer bit width it does not exceed (rounded to 1e-6 first): a 3.6-bit soft-quantization point is set
against the 4-bit methods, so the table never gives a method fewer bits than a rival in its column. Points above
the largest of `bits` are drawn but in no column. Per method and column the table shows the most accurate point
(mean ± std over seeds, and its mean bits); the CSV has every point.

Wall time per epoch: a run's training seconds (the run file's train_seconds attribute: `Trainer.fit` alone, no
evaluation) over its epochs, the mean over the method's runs (NaN for run files written before train_seconds
was stored). Every run of one comparison should be trained on the same machine, one at a time, for these to
compare; PTQ rows have none.

Where the studies differ in epochs (the longer budget beside the short one), every row's label says its epochs.

Writes <stem>.png (accuracy vs mean bits, every method; PTQ dashed), <stem>.csv (one row per point) and
<stem>.config.json; its lines are the table as markdown.

    >>> spec = Comparison(studies=("cmp-lsq", "cmp-sq"), dir="studies/repro-quick", matched="cmp-sq")
    >>> spec.name, spec.bits, spec.ptq
    ('comparison', (2, 3, 4), ('uniform', 'heq', 'kmeans', 'gptq'))
    >>> Comparison(studies=())
    Traceback (most recent call last):
    ...
    ValueError: give at least one study
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .. import plots
from ..errors import LandscapeError
from ..outputs import write_csv
from ..quantize import QUANTIZERS
from .base import FigureResult, FigureSpec, check_bits, maker, study_runs, test_batches, write_config

PTQ_LABELS = {"uniform": "uniform PTQ", "heq": "HEQ PTQ", "kmeans": "k-means PTQ", "gptq": "GPTQ"}
MATCHED_LABEL = "k-means PTQ, matched K_l"


@dataclass(frozen=True)
class Comparison(FigureSpec):
    """The comparison table and figure of the trained methods' `studies` and the PTQ baselines (module docstring)."""

    studies: tuple[str, ...] = ()  # one study per trained method (≥ 1), all from the same checkpoint
    dir: str = "studies"  # folder of the studies' journals (<dir>/<study>/journal.log)
    bits: tuple[int, ...] = (2, 3, 4)  # the table's bit columns and the PTQ baselines' bits, each in 1..16
    ptq: tuple[str, ...] = ("uniform", "heq", "kmeans", "gptq")  # PTQ baselines of the pretrained model
    matched: str | None = None  # study whose runs get k-means PTQ at their own K_l (None: no such rows)
    calibration_images: int = 1024  # GPTQ: unaugmented training images it is calibrated on
    limit: int | None = None  # first N test images (None: all), the runs' own test images

    STEM = "comparison"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "studies", tuple(str(s) for s in self.studies))
        object.__setattr__(self, "dir", str(self.dir))
        object.__setattr__(self, "ptq", tuple(self.ptq))
        if not self.studies:
            raise ValueError("give at least one study")
        object.__setattr__(self, "bits", check_bits(tuple(self.bits), "give at least one bit width"))
        known = (*QUANTIZERS, "gptq")
        unknown = [m for m in self.ptq if m not in known]
        if unknown:
            raise ValueError(f"PTQ baselines must be among {', '.join(known)}, got {unknown[0]!r}")
        if self.matched is not None and self.matched not in self.studies:
            raise ValueError(f"matched study {self.matched!r} is not one of the studies")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be ≥ 1, got {self.calibration_images}")


def column(mean_bits: float) -> int:
    """The bit column of a point: ⌈mean bits⌉ after rounding to 1e-6 (module docstring).

    Args:
        mean_bits: the point's mean effective bits per weight.

    Returns:
        The column's bit width.

    >>> column(3.6), column(3.0), column(2.9999999), column(1.98)
    (4, 3, 3, 2)
    """
    return math.ceil(round(mean_bits, 6))


def _points(label: str, study: str, rows: list[dict], parameters: list[str]) -> list[dict]:
    """Mean ± std over seeds of each grid point's runs."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[p] for p in parameters), []).append(r)
    out = []
    for point, members in sorted(groups.items()):
        acc = np.array([m["accuracy_clamped"] for m in members], dtype=float)
        bits = np.array([m["mean_bits"] for m in members], dtype=float)
        per_epoch = [m.get("train_seconds", math.nan) / m["epochs"] for m in members]
        out.append({"kind": "trained", "method": label, "study": study,
                    "setting": " ".join(f"{p}={v:g}" for p, v in zip(parameters, point, strict=True)),
                    "column": column(bits.mean()), "seeds": len(members), "accuracy": acc.mean(),
                    "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0, "mean_bits": bits.mean(),
                    "mean_bits_std": bits.std(ddof=1) if len(bits) > 1 else 0.0,
                    "train_seconds_per_epoch": float(np.mean(per_epoch)), "n_test": members[0]["n_test"]})
    return out


def best_per_column(points: list[dict], bits: tuple[int, ...]) -> dict[str, dict[int, dict]]:
    """method → bit column → its most accurate point in that column.

    Args:
        points: the CSV's rows (or the same dicts).
        bits: the columns.

    Returns:
        The nested mapping (a method without a point in a column has no entry for it).

    >>> pts = [{"method": "a", "column": 3, "accuracy": 0.8}, {"method": "a", "column": 3, "accuracy": 0.85}]
    >>> best_per_column(pts, (2, 3))["a"][3]["accuracy"]
    0.85
    """
    best: dict[str, dict[int, dict]] = {}
    for p in points:
        col = int(p["column"])
        if col in bits and float(p["accuracy"]) > best.setdefault(p["method"], {}).get(col, {}).get("accuracy",
                                                                                                      -1.0):
            best[p["method"]][col] = p
    return best


def _cell(p: dict | None) -> str:
    if p is None:
        return "–"
    std = f" ± {100 * float(p['accuracy_std']):.2f}" if int(p["seeds"]) > 1 else ""
    return f"{100 * float(p['accuracy']):.2f}{std} ({float(p['mean_bits']):.2f} b)"


@maker(Comparison)
def make(spec: Comparison) -> FigureResult:
    """Read every study's runs, quantize the pretrained model by every PTQ baseline, draw and write."""
    from ..api import evaluate_model, open_run
    from ..compress.gptq import GPTQConfig, gptq_quantize
    from ..compress.ptq import matched_ptq, quantize_model
    from ..training import calibration_batches

    out = spec.outputs()
    points, pretrained, source, matched_runs = [], None, None, []
    studies = {name: study_runs(name, spec.dir, finished=True) for name in spec.studies}
    mixed_epochs = len({study.base.train.epochs for study, _ in studies.values()}) > 1
    for name, (study, rows) in studies.items():
        first = open_run(rows[0]["run"])
        settings = first.config
        checkpoint = settings.get("checkpoint_sha256") or settings.get("checkpoint")
        if source is None:
            source, pretrained = (checkpoint, name), first.model("pretrained")
        elif checkpoint != source[0]:
            raise LandscapeError(f"study {name!r} starts from another checkpoint than study {source[1]!r}")
        from ..compress import METHODS

        epochs = study.base.train.epochs
        label = METHODS[study.method][0].label_for(study.base.compressor) + (f", {epochs} epoch{'s' * (epochs > 1)}"
                                                                             if mixed_epochs else "")
        points += _points(label, name, [{**r, "epochs": epochs} for r in rows], list(study.parameters))
        if name == spec.matched:
            matched_runs = sorted(rows, key=lambda r: (tuple(r[p] for p in study.parameters), r["seed"]))
    batches, dev = test_batches(spec)
    n_test = len(batches.split)
    if any(p["n_test"] != n_test for p in points):
        raise LandscapeError(f"the runs were evaluated on other test images than these {n_test:,} (set limit to "
                             "their limit_test)")
    pretrained = pretrained.to(dev)
    full_precision = evaluate_model(pretrained, batches)["accuracy"]
    jobs = [(m, b) for m in spec.ptq for b in spec.bits]
    calibration = None
    for method, b in tqdm(jobs, desc="PTQ baselines", unit="model", disable=spec.quiet):
        if method == "gptq":
            if calibration is None:
                train, _ = spec.data.load()
                calibration = calibration_batches(train, spec.calibration_images, spec.batch_size, dev)
            q = gptq_quantize(pretrained, calibration, GPTQConfig(bits=b, calibration_images=spec.calibration_images))
        else:
            q = quantize_model(pretrained, method, b)
        points.append({"kind": "ptq", "method": PTQ_LABELS[method], "study": "", "setting": f"bits={b}",
                       "column": column(q.mean_bits()), "seeds": 1, "accuracy": evaluate_model(q.model, batches)[
                           "accuracy"], "accuracy_std": 0.0, "mean_bits": q.mean_bits(), "mean_bits_std": 0.0,
                       "train_seconds_per_epoch": math.nan, "n_test": n_test})
    for r in tqdm(matched_runs, desc="k-means at matched K_l", unit="run", disable=spec.quiet):
        q = matched_ptq(pretrained, r["run"])
        points.append({"kind": "matched", "method": MATCHED_LABEL, "study": spec.matched,
                       "setting": f"run {r['run'].rsplit('/', 1)[-1]} seed {r['seed']}",
                       "column": column(q.mean_bits()), "seeds": 1,
                       "accuracy": evaluate_model(q.model, batches)["accuracy"], "accuracy_std": 0.0,
                       "mean_bits": q.mean_bits(), "mean_bits_std": 0.0, "train_seconds_per_epoch": math.nan,
                       "n_test": n_test})

    best = best_per_column(points, spec.bits)
    methods = list(dict.fromkeys(p["method"] for p in points))
    per_epoch = {m: np.nanmean([p["train_seconds_per_epoch"] for p in points if p["method"] == m] or [math.nan])
                 if any(math.isfinite(p["train_seconds_per_epoch"]) for p in points if p["method"] == m) else math.nan
                 for m in methods}
    header = "| method | " + " | ".join(f"{b} bits" for b in spec.bits) + " | s / epoch |"
    table = [header, "|---" * (len(spec.bits) + 2) + "|"]
    summary = []
    for m in methods:
        cells = [_cell(best.get(m, {}).get(b)) for b in spec.bits]
        secs = f"{per_epoch[m]:.0f}" if math.isfinite(per_epoch[m]) else "–"
        table.append(f"| {m} | " + " | ".join(cells) + f" | {secs} |")
        summary.append({"method": m, **{f"{b} bits": c for b, c in zip(spec.bits, cells, strict=True)},
                        "seconds_per_epoch": per_epoch[m]})
    table.append(f"| full precision | {100 * full_precision:.2f} (32 b) |" + " |" * len(spec.bits))

    colors = plots.palette(methods)
    markers = "osD^vP*XhP<>"
    fig, axes = plots.figure(1, 2, width=6.0, height=5.0)
    top = max(100 * p["accuracy"] for p in points)
    for i, ax in enumerate(axes[0]):
        for j, m in enumerate(methods):
            pts = sorted((p for p in points if p["method"] == m), key=lambda p: p["mean_bits"])
            x = [p["mean_bits"] for p in pts]
            y = [100 * p["accuracy"] for p in pts]
            if pts[0]["kind"] == "trained":
                ax.errorbar(x, y, yerr=[100 * p["accuracy_std"] for p in pts], marker=markers[j % len(markers)],
                            capsize=3, color=colors[m], label=m)
            else:
                ax.plot(x, y, linestyle="--" if pts[0]["kind"] == "ptq" else "none",
                        marker="x" if pts[0]["kind"] == "ptq" else "+", markersize=8, color=colors[m], label=m)
        ax.axhline(100 * full_precision, color="black", linewidth=0.8, linestyle=":", label="full precision")
        ax.set(xlabel="mean effective bits per weight", ylabel=f"clamped test accuracy (%, {n_test:,} images)")
        if i == 1:  # the top of the table, where the trained methods sit close together
            ax.set(ylim=(top - 15, 100 * full_precision + 1), xlim=(min(spec.bits) - 0.25, max(spec.bits) + 0.25),
                   title="zoom: the top 15 points, the table's columns")
    axes[0, 0].set_title("every method and point (PTQ dashed)")
    axes[0, 0].legend(fontsize="x-small", ncol=2)
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], points)
    write_config(out[".config.json"], spec, full_precision=full_precision, n_test=n_test)
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary,
                        [*table, f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"])
