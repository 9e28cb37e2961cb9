"""Accuracy after clamping of every compression method under one short fine-tuning budget, on the
adapted ResNet-20.

Claim checked (not assumed): the fine-tuning methods (weight-coupling, centroid–weight coupling, DSMM
before HEQ, VQ-QAT) beat the post-training baselines (uniform, HEQ, k-means; zero fine-tuning) at 2, 3 and
4 bits per weight after a short fine-tune, as the workshop paper's Table 1 reports for CWC on WRN-16.
Wherever a method loses to the best PTQ baseline at the same bits, the script says so below the table.
Bitwise input quantization is a different axis (bits per input feature, weights in full precision): its
rows sit in a second table with the compression factor against 32-bit float inputs, beside the untrained
uniform input quantizer it starts from.

Budget (the same for every method): from the adapted ResNet-20, --epochs (1) over the first --train-limit
(20,000) training images, i.e. 156 SGD steps of 128 images, lr 1e-3, Nesterov momentum 0.9, constant
schedule, no weight decay (paper A.1), standard augmentation; seed 0 for data order, augmentation and the
compressors' random draws. Every method keeps its defaults except the bits: centroid K = 2^b; DSMM then
HEQ at b bits; VQ d = 2 with 2b index bits (b/d = b bits per weight), cosine assignment (the paper's) and,
as a second row, euclidean; weight-coupling has no bit setting (paper h = 0.05, w = 0.3): one run, shown
in the column within 0.5 of the mean bits it reaches, else under "other bits". Accuracy on the full test
split (10,000 images) unless --limit. Deterministic given the seed on CPU.

Writes figures/methods_table.csv, figures/methods_accuracy_vs_bits.png and figures/methods_table.config.json
(each name + --suffix) and prints the tables as markdown.

  python analyses/table_methods.py [--bits 2 3 4] [--input-bits 1 2 3 4] [--train-limit 20000]
                                   [--epochs 1] [--limit N] [--methods ...] [--device cpu]
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from landscape import cli  # noqa: E402
from landscape.compress import METHODS as COMPRESSORS  # noqa: E402
from landscape.compress import make_compressor  # noqa: E402
from landscape.data import Batches, load_cifar10  # noqa: E402
from landscape.metrics import evaluate  # noqa: E402
from landscape.models import load_model  # noqa: E402
from landscape.trainer import TrainConfig, Trainer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"
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


def run_variant(v: dict, model, train, test_batches, config: TrainConfig) -> dict:
    compressor = make_compressor(v["method"], v["settings"], seed=config.seed)
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


def figure(rows: list[dict], full: float, args, path: Path) -> None:
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
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
    axes[0].set(xlabel="mean effective bits per weight", title=f"{args.arch}: weights "
                f"({args.epochs} ep. × {args.train_limit} images; PTQ dashed)")
    axes[1].set(xlabel="bits per input feature (×32/b vs float32)",
                title="inputs (weights full precision)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_methods.py", __doc__)
    p.add_argument("--arch", default="resnet20", help="architecture of --checkpoint (default: resnet20; or "
                   "package.module:factory)")
    p.add_argument("--arch-kwargs", type=cli.json_object, default=None, metavar="JSON",
                   help="keyword arguments of the arch's factory")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="pretrained model (default: the "
                   "adapted ResNet-20, ../shared/models/resnet20-cifar10jpeg.pt)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4],
                   help="bits per weight (default: 2 3 4)")
    p.add_argument("--input-bits", type=int, nargs="+", default=[1, 2, 3, 4],
                   help="bits per input feature for input-bitwise, 1..8 (default: 1 2 3 4)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--train-limit", type=cli.positive_int, default=20_000,
                   help="fine-tune on the first N training images (default: 20000)")
    p.add_argument("--epochs", type=cli.positive_int, default=1, help="fine-tuning epochs (default: 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate (default: 1e-3, paper A.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="data order, augmentation, compressor draws (default: 0)")
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="first N test images (default: all 10,000)")
    p.add_argument("--out-dir", default=str(REPO / "figures"),
                   help="where the CSV/PNG/config go (default: figures/)")
    p.add_argument("--suffix", default="", help="appended to every output's name, e.g. _s1 for a second seed "
                   "beside the first (default: none)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    if "/" in args.suffix or "\\" in args.suffix:
        raise ValueError(f"--suffix is part of a file name, not a path: {args.suffix!r}")
    out = {k: Path(args.out_dir) / f"{stem}{args.suffix}{ext}" for k, (stem, ext) in
           {"csv": ("methods_table", ".csv"), "png": ("methods_accuracy_vs_bits", ".png"),
            "config": ("methods_table", ".config.json")}.items()}
    for path in out.values():
        cli.check_out(path, args.force)  # refuse before any work, not after
    if any(not 1 <= b <= 8 for b in args.bits + args.input_bits):
        raise ValueError(f"bits must be in 1..8, got {args.bits} and input bits {args.input_bits}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = cli.device(args.device)
    config = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, stats_every=10**9,
                         device=str(dev))

    model = load_model(args.arch, args.checkpoint, args.arch_kwargs).to(dev)
    train, test = load_cifar10(args.data, download=args.download)
    train = train.subset(args.train_limit)
    test_batches = Batches(test.subset(args.limit), args.batch_size, train=False, device=dev)
    start = time.perf_counter()
    full = evaluate(model, test_batches)
    rows = []
    for v in variants(args.methods, args.bits, args.input_bits):
        rows.append(run_variant(v, model, train, test_batches, config))
        r = rows[-1]
        print(f"{r['method']:>26} {r['quantized']:>7} {r['target_bits']} bits: "
              f"{100 * r['accuracy_clamped']:6.2f}% (mean bits {r['mean_effective_bits']:.2f}, "
              f"{r['seconds']:.0f} s)", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start

    with open(out["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = {**vars(args), "train": asdict(config), "n_train": len(train), "n_test": full["n"],
                "accuracy_full_precision": full["accuracy"], "seconds": round(elapsed, 1)}
    out["config"].write_text(json.dumps(settings, indent=2) + "\n")
    figure(rows, full["accuracy"], args, out["png"])

    print(f"\n{args.arch} ({args.checkpoint}): test accuracy (%) after clamping on {full['n']} images; "
          f"full precision {100 * full['accuracy']:.2f}%. Fine-tuning: {args.epochs} epoch(s) over "
          f"{len(train)} training images (lr {args.lr}, batch {config.batch_size}, seed {args.seed}); "
          f"PTQ: 0 epochs.\n")
    print("\n".join(markdown(rows, "weights", args.bits)))
    losses = verdicts(rows, args.bits)
    none = "No fine-tuned method loses to the best PTQ baseline at its bits."
    print("\n" + ("\n".join(losses) if losses else none))
    if any(r["quantized"] == "inputs" for r in rows):
        print("\nInput features (weights in full precision); compression factor 32/b against float32 inputs "
              "(8/b against the 8-bit pixels):\n")
        print("\n".join(markdown(rows, "inputs", args.input_bits)))
    print(f"\nwrote {out['csv']}, {out['png']} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main, "table_methods")
