"""Soft-quantization paper, Fig. 3, under every measurement protocol side by side: does the compressor's step
ΔL_task/‖Δθ‖ lie outside the distribution of equal-norm random perturbations?

Outputs (OUT_DIR/STEM…): STEM.png; STEM.csv, one row per run × target × protocol (label, run, seed, target,
split, norm, bn, directions, n_images, displacement_norm, real_slope, real_z, real_percentile, actual_slope,
actual_z, actual_percentile, random_mean, random_std — the last two of the random ΔL/‖Δθ‖ — then name,
direction_seed, limit, base_loss, target_loss, real_delta_loss, actual_delta_loss); STEM_summary.csv (n_seeds
and <column>_mean, <column>_std per label × target × protocol); STEM.config.json.

What it shows, the claim it reproduces and what it writes:
landscape.figures.protocols (ProtocolsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig3_protocols.py --run a.h5 b.h5 c.h5 --labels "h=0.05" "h=0.05" "h=0.05" \\
      [--targets compressed clamped] [--names NAME ...] [--out-dir figures] [--stem fig3_protocols] [--force] [--json]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.errors import LandscapeError
from landscape.figures import make
from landscape.figures.protocols import (  # noqa: F401  (the figure's pieces, importable from the script as before)
    BNS,
    COLUMNS,
    FOOTNOTE,
    NORMS,
    PAPER,
    SPLITS,
    SUMMARY_OF,
    ProtocolsFigure,
    draw,
    no_nan,
    percentile,
    protocol_key,
    protocol_label,
    protocol_of,
    read_rows,
    summarize,
    target_key,
    zscore,
)

STEM = ProtocolsFigure.STEM


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/fig3_protocols.py", common.described(__doc__, figures.ProtocolsFigure))
    p.add_argument("--run", nargs="+", required=True, help="run files holding results of python -m landscape.perturb")
    p.add_argument("--labels", nargs="+", default=None,
                   help="one label per run file; runs with the same label are seeds of one setting (default: the "
                        "run's compressor settings)")
    p.add_argument("--targets", nargs="+", default=None,
                   help="only results for these targets (compressed, clamped, ptq:METHOD:BITS; default: all)")
    p.add_argument("--names", nargs="+", default=None,
                   help="only these stored results (names under /analysis/perturb; default: all)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the outputs go (default: figures/)")
    p.add_argument("--stem", default=STEM, help=f"output file names' stem (default: {STEM})")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    p.add_argument("--json", action="store_true", help="print the output paths and the summary as one JSON object")
    args = p.parse_args(argv)
    if not args.stem or "/" in args.stem:
        raise LandscapeError(f"--stem must be a plain file-name stem, got {args.stem!r}")
    spec = ProtocolsFigure(out_dir=args.out_dir, stem=args.stem, force=args.force, quiet=args.json,
                           runs=tuple(args.run), labels=args.labels, targets=args.targets, names=args.names)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig3_protocols")
