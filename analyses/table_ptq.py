"""Accuracy vs bits of the three post-training quantization baselines on the adapted ResNet-20.

Claim reproduced: per-layer PTQ of the conv/linear weights keeps accuracy at 8 and 4 bits and collapses at 2 bits,
and the ranking of naive uniform, HEQ and k-means (the baselines of the soft-quantization paper and Table 1 of the
workshop paper) on this model. Deterministic: no training, no random draws except k-means' seeded init (seed 0),
so one run backs every number. Writes figures/ptq_table.csv, figures/ptq_accuracy_vs_bits.png and
figures/ptq_table.config.json; prints the table as markdown.

  python analyses/table_ptq.py [--checkpoint PATH] [--bits 2 3 4 8] [--limit N] [--device cpu]
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from landscape import cli  # noqa: E402
from landscape.compress.ptq import quantize_model  # noqa: E402
from landscape.data import Batches, load_cifar10  # noqa: E402
from landscape.metrics import evaluate  # noqa: E402
from landscape.models import load_model  # noqa: E402
from landscape.quantize import QUANTIZERS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_ptq.py", __doc__)
    p.add_argument("--arch", default="resnet20", help="architecture of --checkpoint (default: resnet20; or "
                   "package.module:factory)")
    p.add_argument("--arch-kwargs", type=cli.json_object, default=None, metavar="JSON",
                   help="keyword arguments of the arch's factory")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model to quantize (default: the adapted "
                   "ResNet-20, ../shared/models/resnet20-cifar10jpeg.pt)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8], help="bit-widths (default: 2 3 4 8)")
    p.add_argument("--methods", nargs="+", default=list(QUANTIZERS), choices=list(QUANTIZERS))
    p.add_argument("--limit", type=cli.positive_int, default=None, help="first N test images (default: all 10,000)")
    p.add_argument("--out-dir", default=str(REPO / "figures"), help="where the CSV/PNG/config go (default: figures/)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    for name in ("ptq_table.csv", "ptq_accuracy_vs_bits.png", "ptq_table.config.json"):
        cli.check_out(Path(args.out_dir) / name, args.force)  # refuse before any work, not after
    if any(not 1 <= b <= 16 for b in args.bits):
        raise ValueError(f"bits must be in 1..16, got {args.bits}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = cli.device(args.device)

    model = load_model(args.arch, args.checkpoint, args.arch_kwargs).to(dev)
    _, test = load_cifar10(args.data, download=args.download)
    batches = Batches(test.subset(args.limit), args.batch_size, train=False, device=dev)
    start = time.perf_counter()
    full = evaluate(model, batches)
    rows = [{"method": "full precision", "bits": 32, "mean_effective_bits": 32.0, "accuracy": full["accuracy"],
             "loss": full["loss"], "n": full["n"]}]
    for method in args.methods:
        for bits in args.bits:
            q = quantize_model(model, method, bits)
            result = evaluate(q.model, batches)
            rows.append({"method": method, "bits": bits, "mean_effective_bits": q.mean_bits(),
                         "accuracy": result["accuracy"], "loss": result["loss"], "n": result["n"]})
            print(f"{method:>8} {bits:2d} bits: {100 * result['accuracy']:6.2f}%", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start

    with open(out_dir / "ptq_table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = {**{k: v for k, v in vars(args).items()}, "seconds": round(elapsed, 1), "n_test": full["n"]}
    (out_dir / "ptq_table.config.json").write_text(json.dumps(config, indent=2) + "\n")

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in args.methods:
        pts = [r for r in rows if r["method"] == method]
        ax.plot([r["bits"] for r in pts], [100 * r["accuracy"] for r in pts], marker="o", label=method)
    ax.axhline(100 * full["accuracy"], color="k", ls="--", lw=1, label="full precision")
    ax.set(xlabel="bits per weight (2^b levels per layer)", ylabel="test accuracy (%)",
           title=f"PTQ of {args.arch} (CIFAR-10 JPEG, n={full['n']})", xticks=args.bits)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "ptq_accuracy_vs_bits.png", dpi=120)

    header = "| method | " + " | ".join(f"{b} bits" for b in args.bits) + " |"
    print(f"\nPTQ of {args.arch} ({args.checkpoint}), test accuracy (%) on {full['n']} images; "
          f"full precision {100 * full['accuracy']:.2f}%\n")
    print(header)
    print("|---|" + "---|" * len(args.bits))
    for method in args.methods:
        acc = {r["bits"]: r["accuracy"] for r in rows if r["method"] == method}
        print(f"| {method} | " + " | ".join(f"{100 * acc[b]:.2f}" for b in args.bits) + " |")
    print(f"\nwrote {out_dir / 'ptq_table.csv'}, {out_dir / 'ptq_accuracy_vs_bits.png'} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main, "table_ptq")
