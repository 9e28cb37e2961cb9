"""DSMM then naive PTQ, at several bit widths from one training (DSMM paper, abstract and Table 1 "Naïve").

What it shows, the claim it reproduces and what it writes:
landscape.figures.dsmm_table (DSMMTable), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/table_dsmm.py --study dsmm dsmm-alpha10 --dir studies [--bits 2 3 4] [--limit 10000]
"""

from __future__ import annotations

import common

from landscape import cli, figures
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
    p = common.parser("analyses/table_dsmm.py", common.described(__doc__, figures.DSMMTable))
    p.add_argument("--study", nargs="+", required=True, help="studies of DSMM runs (method dsmm)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4], help="PTQ bit widths (default: 2 3 4)")
    args = p.parse_args(argv)
    spec = DSMMTable(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir, bits=tuple(args.bits))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "table_dsmm")
