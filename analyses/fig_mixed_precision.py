"""Mixed precision from two global hyperparameters (soft-quantization paper, Mechanism 2 and abstract).

Claim tested: with one global (h, w) — scaled per layer as h_l = h·N_l^(−α), w_l = w·σ_l — soft quantization ends
with layer-dependent effective bit widths b_l = log2 K_l (mixed precision), not one width for all layers. Shown:
each layer's effective bits against its size N_l (log axis), one series per run (seeds of one setting), and the
bits by layer position. Backed by the runs given (the reproduction report passes the headline setting's seeds);
nothing is re-evaluated: clusters and bits are read from the run files.

Writes figures/mixed_precision.png, mixed_precision.csv (run, seed, layer, index, n_weights, clusters, bits,
storage_bits) and mixed_precision.config.json.
The figure itself is landscape.figures.mixed_precision (MixedPrecisionFigure); this script parses the options into it.

  python analyses/fig_mixed_precision.py --run runs/a.h5 runs/b.h5 [--out-dir figures]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures import make
from landscape.figures.mixed_precision import MixedPrecisionFigure, layer_rows  # noqa: F401  (layer_rows: as before)

STEM = MixedPrecisionFigure.STEM


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_mixed_precision.py", __doc__, run_nargs="+")
    args = p.parse_args(argv)
    spec = MixedPrecisionFigure(**common.figure_fields(args),
                                runs=tuple(str(r) for r in common.resolve_runs(args, MixedPrecisionFigure, STEM)))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_mixed_precision")
