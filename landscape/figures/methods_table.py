"""Accuracy after clamping of every compression method under one short fine-tuning budget, on the adapted
ResNet-20 (`analyses/table_methods.py`).

Claim checked (not assumed): the fine-tuning methods (weight-coupling, centroid–weight coupling, DSMM before HEQ,
VQ-QAT) beat the post-training baselines (uniform, HEQ, k-means; zero fine-tuning) at 2, 3 and 4 bits per weight
after a short fine-tune, as the workshop paper's Table 1 reports for CWC on WRN-16. Wherever a method loses to
the best PTQ baseline at the same bits, the lines say so below the table. Bitwise input quantization is a
different axis (bits per input feature, weights in full precision): its rows sit in a second table with the
compression factor against 32-bit float inputs, beside the untrained uniform input quantizer it starts from.

Budget (the same for every method): from the adapted ResNet-20, `epochs` (1) over the first `train_limit`
(20,000) training images, i.e. 156 SGD steps of 128 images, lr 1e-3, Nesterov momentum 0.9, constant schedule,
no weight decay (paper A.1), standard augmentation; seed 0 for data order, augmentation and the compressors'
random draws. Every method keeps its defaults except the bits: centroid K = 2^b; DSMM then HEQ at b bits; VQ
d = 2 with 2b index bits (b/d = b bits per weight), cosine assignment (the paper's) and, as a second row,
euclidean; weight-coupling has no bit setting (paper h = 0.05, w = 0.3): one run, shown in the column within 0.5
of the mean bits it reaches, else under "other bits". Every cell is one `specs.RunSpec` (the method, its settings
and the budget), fine-tuned in memory by `trainer.Trainer` (no run file is written). Accuracy on the full test
split (10,000 images) unless `limit`. Deterministic given the seed on CPU.

Writes methods_table.csv, methods_accuracy_vs_bits.png and methods_table.config.json (each name + `suffix`;
with `stem` S: S.csv, S_accuracy_vs_bits.png, S.config.json); the lines are the tables as markdown.

    >>> spec = MethodsTable(bits=[2, 3], methods=["uniform", "centroid"], train_limit=10000, suffix="_s1")
    >>> sorted(p.name for p in spec.paths().values())
    ['methods_accuracy_vs_bits_s1.png', 'methods_table_s1.config.json', 'methods_table_s1.csv']
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compress import METHODS as COMPRESSORS
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, maker, write_config

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"
PTQ = ("uniform", "heq", "kmeans")
# a fine-tuned row of the table → (the registered method, settings beside its bits, the row's label); the bits
# themselves come from the method's class (Compressor.settings_for_bits), as does what it quantizes
ROWS = {
    "weight-coupling": ("weight-coupling", {}, "weight-coupling"),
    "centroid": ("centroid", {}, "centroid"),
    "dsmm": ("dsmm", {"then": "heq"}, "dsmm → heq"),
    "vq": ("vq", {"assign": "cosine"}, "vq d=2 (cosine)"),
    "vq-euclidean": ("vq", {"assign": "euclidean"}, "vq d=2 (euclidean)"),
    "input-bitwise": ("input-bitwise", {}, "input-bitwise"),
}
FINETUNED = tuple(ROWS)
METHODS = PTQ + FINETUNED
PNG_STEM = "methods_accuracy_vs_bits"


@dataclass(frozen=True)
class MethodsTable(FigureSpec):
    """Every method of `methods` at every bit width of `bits` (weights) or `input_bits` (inputs), fine-tuned
    under one budget or post-training, clamped and evaluated on the test split."""

    limit: int | None = None  # first N test images (class-balanced prefix; None: all 10,000)
    arch: str = "resnet20"  # architecture of `checkpoint` (or package.module:factory)
    arch_kwargs: Mapping[str, Any] | None = None  # keyword arguments of the arch's factory (None: none)
    checkpoint: str = str(DEFAULT_CHECKPOINT)  # pretrained model (default: the adapted ResNet-20)
    bits: tuple[int, ...] = (2, 3, 4)  # bits per weight, each in 1..8
    input_bits: tuple[int, ...] = (1, 2, 3, 4)  # bits per input feature for input-bitwise, each in 1..8
    methods: tuple[str, ...] = METHODS  # table rows, of METHODS (PTQ baselines and fine-tuned methods)
    train_limit: int = 20_000  # fine-tune on the first N training images
    epochs: int = 1  # fine-tuning epochs (passes over the train_limit images)
    lr: float = 1e-3  # SGD learning rate (paper A.1)
    seed: int = 0  # data order, augmentation, compressor draws
    suffix: str = ""  # appended to every output's name, e.g. "_s1" for a second seed beside the first

    STEM = "methods_table"
    SUFFIXES = (".csv", ".png", ".config.json")  # checked in this order, as the script did

    def __post_init__(self):
        super().__post_init__()
        for name in ("bits", "input_bits", "methods"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "checkpoint", str(self.checkpoint))
        if self.arch_kwargs is not None:
            object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        if "/" in self.suffix or "\\" in self.suffix:
            raise ValueError(f"suffix is part of a file name, not a path: {self.suffix!r}")
        if not self.bits or not self.input_bits:
            raise ValueError("give at least one bit width for the weights and one for the inputs")
        if any(not isinstance(b, int) or not 1 <= b <= 8 for b in self.bits + self.input_bits):
            raise ValueError(f"bits must be in 1..8, got {list(self.bits)} and input bits {list(self.input_bits)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be some of {', '.join(METHODS)}, got {list(self.methods)}")
        for name in ("train_limit", "epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def paths(self, suffixes: Iterable[str] | None = None) -> dict[str, Path]:
        """suffix → path: <stem><suffix>.csv and .config.json, and the PNG under its own name
        (methods_accuracy_vs_bits, or <stem>_accuracy_vs_bits with a stem), each + `suffix`."""
        png = f"{self.stem}_accuracy_vs_bits" if self.stem else PNG_STEM
        return {s: Path(self.out_dir) / f"{png if s == '.png' else self.name}{self.suffix}{s}"
                for s in (self.SUFFIXES if suffixes is None else suffixes)}


def variants(methods: list[str], bits: list[int], input_bits: list[int]) -> list[dict]:
    """One entry per table cell: label, --method name, its settings, the target bits, what is quantized. A method
    without a bit setting is one row (its bits are what it reaches); a method that quantizes its inputs also gets
    the untrained quantizer it starts from as a row."""
    out = []
    for m in methods:
        if m in PTQ:
            out += [dict(label=m, method="ptq", settings={"quantizer": m, **COMPRESSORS["ptq"][0].settings_for_bits(b)},
                         bits=b, train=False, quantized="weights") for b in bits]
            continue
        name, extra, label = ROWS[m]
        cls = COMPRESSORS[name][0]
        row = dict(method=name, quantized=cls.quantizes)
        targets = input_bits if cls.quantizes == "inputs" else bits
        if cls.settings_for_bits(targets[0]) is None:
            out.append(dict(row, label=label, settings=dict(extra), bits=None, train=True))
            continue
        for b in targets:
            settings = {**cls.settings_for_bits(b), **extra}
            if cls.quantizes == "inputs":
                out.append(dict(row, label="input uniform, untrained", settings=settings, bits=b, train=False))
            out.append(dict(row, label=label, settings=settings, bits=b, train=True))
    return out


def run_spec(spec: MethodsTable, device: str | None = None, *, method: str = "weight-coupling",
             settings: Mapping[str, Any] | None = None):
    """The RunSpec of one cell: the table's budget (arch, checkpoint resolved and fingerprinted, data, limits,
    TrainConfig on `device`, default the spec's) with `method` and its `settings` — what `landscape train`
    would be given for it."""
    from ..specs import RunSpec
    from ..trainer import TrainConfig

    train = TrainConfig(epochs=spec.epochs, lr=spec.lr, seed=spec.seed, stats_every=10**9,
                        device=spec.device if device is None else device)
    return RunSpec.resolved(spec.checkpoint, arch=spec.arch, method=method, compressor=dict(settings or {}),
                            train=train, arch_kwargs=spec.arch_kwargs or {}, data=spec.data.recorded(None),
                            limit_train=spec.train_limit, limit_test=spec.limit)


def run_variant(v: dict, rs, model, train, test_batches) -> dict:
    """One table cell: the RunSpec `rs` (method, settings, budget) fine-tuned (or only prepared: PTQ and the
    untrained input quantizer) from `model`, clamped and evaluated."""
    from ..metrics import evaluate
    from ..trainer import Trainer

    config = rs.train
    compressor = rs.compressor_instance()
    start = time.perf_counter()
    if v["train"]:
        trainer = Trainer(model, train, config, compressor)
        compressed, steps = trainer.fit(), trainer.step
    else:  # zero fine-tuning: the compressor's module around the pretrained model
        compressed, steps = compressor.prepare(copy.deepcopy(model)), 0
    clamped = compressor.clamp(compressed)
    acc = evaluate(clamped.model, test_batches)
    comp_acc = evaluate(compressed, test_batches)["accuracy"] if v["train"] else None
    mean_bits = clamped.mean_bits()
    return {"method": v["label"], "quantized": v["quantized"], "target_bits": v["bits"],
            "mean_effective_bits": round(mean_bits, 4), "compression_factor": round(32 / mean_bits, 2),
            "epochs": config.epochs if v["train"] else 0, "steps": steps,
            "train_images": len(train) if v["train"] else 0, "accuracy_clamped": acc["accuracy"],
            "loss_clamped": acc["loss"], "accuracy_compressed": comp_acc, "n_test": acc["n"],
            "settings": json.dumps(compressor.config_dict()),
            "stats": json.dumps(compressor.stats(compressed)) if v["train"] else "",  # e.g. VQ used entries
            "seconds": round(time.perf_counter() - start, 1)}


def column(row: dict, bits: list[int]) -> int | None:
    """The bits column of a row: its target, or (weight-coupling) the column within 0.5 of the mean bits it
    reached; None when no column is that close (the row then shows its bits in the last column)."""
    if row["target_bits"] is not None:
        return row["target_bits"]
    near = min(bits, key=lambda b: abs(b - row["mean_effective_bits"]))
    return near if abs(near - row["mean_effective_bits"]) <= 0.5 else None


def markdown(rows: list[dict], quantized: str, bits: list[int]) -> list[str]:
    rows = [r for r in rows if r["quantized"] == quantized]
    heads = [f"{b} bits" if quantized == "weights" else f"{b} input bits (×{32 / b:g})"
             for b in bits]
    lines = ["| method | epochs | " + " | ".join(heads) + " | other bits |",
             "|---|---|" + "---|" * (len(bits) + 1)]
    for label in dict.fromkeys(r["method"] for r in rows):
        cells, epochs = {}, 0
        for r in (r for r in rows if r["method"] == label):
            epochs, acc = r["epochs"], f"{100 * r['accuracy_clamped']:.2f}"
            cell = column(r, bits)
            reached = f" ({r['mean_effective_bits']:.2f} b)" if r["target_bits"] is None else ""
            other = f"{acc} at {r['mean_effective_bits']:.2f} b"
            cells[cell] = f"{acc}{reached}" if cell is not None else other
        row = " | ".join(cells.get(b, "–") for b in [*bits, None])
        lines.append(f"| {label} | {epochs} | {row} |")
    return lines


def verdicts(rows: list[dict], bits: list[int]) -> list[str]:
    """Every fine-tuned weight method that loses to the best PTQ baseline in its bits column."""
    out = []
    ptq = [r for r in rows if r["method"] in PTQ]
    for r in rows:
        b = column(r, bits)
        base = [p for p in ptq if p["target_bits"] == b]
        if r["quantized"] != "weights" or r["method"] in PTQ or not base:
            continue
        best = max(base, key=lambda p: p["accuracy_clamped"])
        if r["accuracy_clamped"] < best["accuracy_clamped"]:
            out.append(f"- {r['method']} at {r['mean_effective_bits']:.2f} bits "
                       f"({100 * r['accuracy_clamped']:.2f}%) loses to PTQ {best['method']} at {b} bits "
                       f"({100 * best['accuracy_clamped']:.2f}%) after {r['epochs']} epoch(s) of "
                       "fine-tuning.")
    return out


def figure(rows: list[dict], full: float, spec: MethodsTable, path: Path) -> None:
    """Accuracy after clamping against bits, weights (left) and inputs (right); seaborn's whitegrid theme, set
    for this figure only (no pyplot, the caller's rcParams restored)."""
    import matplotlib
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid")
        fig = Figure(figsize=(11, 4))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        for ax, quantized in zip(axes, ("weights", "inputs"), strict=True):
            labels = list(dict.fromkeys(r["method"] for r in rows if r["quantized"] == quantized))
            for label in labels:
                pts = sorted((r for r in rows if r["method"] == label and r["quantized"] == quantized),
                             key=lambda r: r["mean_effective_bits"])
                style = "--" if label in PTQ or "untrained" in label else "-"
                ax.plot([r["mean_effective_bits"] for r in pts], [100 * r["accuracy_clamped"] for r in pts],
                        style, marker="o", label=label)
            ax.axhline(100 * full, color="k", ls=":", lw=1, label="full precision")
            ax.set(ylabel="test accuracy after clamping (%)", ylim=(0, 100))
            ax.legend(fontsize=7)
        axes[0].set(xlabel="mean effective bits per weight", title=f"{spec.arch}: weights "
                    f"({spec.epochs} ep. × {spec.train_limit} images; PTQ dashed)")
        axes[1].set(xlabel="bits per input feature (×32/b vs float32)",
                    title="inputs (weights full precision)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)


@maker(MethodsTable)
def make(spec: MethodsTable) -> FigureResult:
    """Fine-tune (or quantize) every cell, evaluate it, write the CSV, config JSON and PNG; the lines are the
    tables as markdown."""
    from ..data import Batches
    from ..distributed import usable_device
    from ..metrics import evaluate
    from ..models import load_model

    out = spec.outputs()  # refuse before any work, not after
    dev = usable_device(spec.device)
    budget = run_spec(spec, str(dev))  # every cell is this spec with its method and settings
    config = budget.train

    model = load_model(budget.arch, budget.checkpoint, budget.arch_kwargs or None).to(dev)
    train, test = spec.data.load()
    train = train.subset(budget.limit_train)
    test_batches = Batches(test.subset(budget.limit_test), spec.batch_size, train=False, device=dev)
    start = time.perf_counter()
    full = evaluate(model, test_batches)
    rows = []
    for v in variants(list(spec.methods), list(spec.bits), list(spec.input_bits)):
        rs = dataclasses.replace(budget, method=v["method"], compressor=v["settings"])
        rows.append(run_variant(v, rs, model, train, test_batches))
        r = rows[-1]
        spec.log(f"{r['method']:>26} {r['quantized']:>7} {r['target_bits']} bits: "
                 f"{100 * r['accuracy_clamped']:6.2f}% (mean bits {r['mean_effective_bits']:.2f}, "
                 f"{r['seconds']:.0f} s)")
    elapsed = time.perf_counter() - start

    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, train=dataclasses.asdict(config), n_train=len(train), n_test=full["n"],
                 accuracy_full_precision=full["accuracy"], seconds=round(elapsed, 1))
    figure(rows, full["accuracy"], spec, out[".png"])

    bits, input_bits = list(spec.bits), list(spec.input_bits)
    losses = verdicts(rows, bits)
    none = "No fine-tuned method loses to the best PTQ baseline at its bits."
    lines = ["", f"{spec.arch} ({spec.checkpoint}): test accuracy (%) after clamping on {full['n']} images; "
             f"full precision {100 * full['accuracy']:.2f}%. Fine-tuning: {spec.epochs} epoch(s) over "
             f"{len(train)} training images (lr {spec.lr}, batch {config.batch_size}, seed {spec.seed}); "
             "PTQ: 0 epochs.", "", *markdown(rows, "weights", bits), "", *(losses or [none])]
    if any(r["quantized"] == "inputs" for r in rows):
        lines += ["", "Input features (weights in full precision); compression factor 32/b against float32 inputs "
                  "(8/b against the 8-bit pixels):", "", *markdown(rows, "inputs", input_bits)]
    lines += ["", f"wrote {out['.csv']}, {out['.png']} ({elapsed:.0f} s)"]
    summary = {"accuracy_full_precision": full["accuracy"], "n_test": full["n"], "n_train": len(train),
               "seconds": round(elapsed, 1), "rows": rows}
    return FigureResult({"csv": str(out[".csv"]), "png": str(out[".png"]), "config": str(out[".config.json"])},
                        summary, lines)
