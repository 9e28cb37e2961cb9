"""Weight histograms during soft quantization (soft-quantization paper, Fig. 1).

Claim reproduced: under weight coupling the smooth pretrained distribution of each layer's weights breaks up
into sharp peaks — already visible after the first epoch — and the final weights sit on a few cluster values
(after the 7-bit binning and the merge of clusters below n_min), so clamping moves them little. Backed by one
run (one seed) per figure; it shows the run it is given, it does not average over seeds.

For each chosen layer (default: first conv, a middle conv, the largest layer and the classifier): histograms
on shared bins of the pretrained weights, the checkpoint nearest one epoch, the final fine-tuned (compressed)
weights and the clamped weights (small clusters merged), log counts, with the final cluster values marked.
Writes figures/weight_histograms.png, .csv (layer, series, bin_left, bin_right, count) and .config.json.
The figure itself is landscape.figures.weight_histograms (WeightHistogramsFigure); this script parses the options
into it.

  python analyses/fig_weight_histograms.py --run runs/wc.h5 [--layers all|NAME ...] [--bins 150]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures.weight_histograms import WeightHistogramsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_weight_histograms.py", __doc__)
    p.add_argument("--layers", nargs="+", default=None,
                   help="layer names (e.g. layer2.0.conv1.weight) or 'all' (default: 4 representative "
                        "layers)")
    p.add_argument("--bins", type=cli.positive_int, default=150,
                   help="histogram bins per layer (default: 150)")
    args = p.parse_args(argv)
    run = common.resolve_runs(args, WeightHistogramsFigure)[0]
    spec = WeightHistogramsFigure(**common.figure_fields(args), run=str(run), layers=args.layers, bins=args.bins)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_weight_histograms")
