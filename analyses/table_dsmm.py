"""DSMM then naive PTQ, at several bit widths from one training (DSMM paper, abstract and Table 1 "Naïve").

Claim checked (not assumed): fine-tuning with the differentiable soft min-max loss (Kundu et al., eq. 1) trims
each layer's weight range, so naive uniform min–max PTQ of the fine-tuned weights keeps more accuracy at low
bits than PTQ of the same fine-tuning without the loss (λ = 0).

DSMM's loss does not depend on the bit width (the bits only choose the PTQ applied after it), so one training per
(λ, α₀, seed) serves every bit width: this script applies uniform PTQ at each of --bits to the fine-tuned
("compressed") weights of each run — BN statistics as trained, exactly the run's own clamp step — and evaluates
on the first --limit test images. Runs of a study that differ only in `bits` are one training; the first is
used, and its stored clamped accuracy is printed beside this script's PTQ at its bits as a check.

Two panels: accuracy after uniform PTQ against bits (mean ± std over seeds per setting; uniform PTQ of the
pretrained model dashed) and the per-layer weight range after fine-tuning relative to the pretrained range
(first seed of each setting) — what the loss is meant to change.

Writes figures/dsmm_ptq.png, dsmm_ptq.csv (one row per run and bit width) and dsmm_ptq.config.json.
The figure itself is landscape.figures.dsmm_table (DSMMTable); this script parses the options into it.

  python analyses/table_dsmm.py --study dsmm dsmm-alpha10 --dir studies [--bits 2 3 4] [--limit 10000]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures.dsmm_table import (  # noqa: F401  (the table's helpers, importable from the script as before)
    STEM,
    DSMMTable,
    layer_ranges,
    make,
    ptq_accuracy,
    setting_label,
    training_key,
)


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/table_dsmm.py", __doc__)
    p.add_argument("--study", nargs="+", required=True, help="studies of DSMM runs (method dsmm)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4], help="PTQ bit widths (default: 2 3 4)")
    args = p.parse_args(argv)
    spec = DSMMTable(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir, bits=tuple(args.bits))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "table_dsmm")
