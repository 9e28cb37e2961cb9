"""Accuracy vs mean bit-width: soft quantization against histogram-equalized PTQ (soft-quantization paper,
main result; its Pareto figure of accuracy vs bits).

Claim reproduced: the clamped soft-quantization models reach higher test accuracy than HEQ post-training
quantization of the same pretrained model at the same or a lower mean effective bit-width, and the bit-width
they reach differs per layer (mixed precision from two global hyperparameters), while HEQ spends the same
budget on every layer.
Backed by one run (one seed) per soft-quantization point; HEQ is deterministic (one evaluation per bit-width).

Left: test accuracy vs parameter-weighted mean effective bits (log2 K per layer), one marker style per method:
each --run's clamped model, HEQ at --bits, and the full-precision pretrained model as a dashed line. All
models are evaluated here on the same first --limit test images. Right: effective bits per layer of the first
run vs HEQ at the bit-width nearest its mean. Writes figures/accuracy_vs_bits.png, accuracy_vs_bits.csv
(method, label, mean_bits, accuracy, loss, n), accuracy_vs_bits_layers.csv and accuracy_vs_bits.config.json.
The figure itself is landscape.figures.accuracy_vs_bits (AccuracyVsBitsFigure); this script parses the options
into it.

  python analyses/fig_accuracy_vs_bits.py --run runs/wc-a.h5 runs/wc-b.h5 [--bits 2 3 4 5 6]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures.accuracy_vs_bits import AccuracyVsBitsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_accuracy_vs_bits.py", __doc__, run_nargs="+")
    p.add_argument("--bits", type=int, nargs="+", default=list(AccuracyVsBitsFigure.bits),
                   help="HEQ bit-widths (default: 2..6)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run (default: its settings)")
    args = p.parse_args(argv)
    if any(not 1 <= b <= 16 for b in args.bits):
        raise ValueError(f"--bits must be in 1..16, got {args.bits}")
    runs = common.resolve_runs(args, AccuracyVsBitsFigure)
    spec = AccuracyVsBitsFigure(**common.figure_fields(args), runs=tuple(str(r) for r in runs),
                                bits=tuple(args.bits), labels=args.labels)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_accuracy_vs_bits")
