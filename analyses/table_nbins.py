"""Histogram resolution N_b of the coupling estimator against accuracy, effective bits and time (the
soft-quantization paper's "Next Checks" 2: N_b ∈ {2^10, 2^12, 2^14, 2^16}).

What it shows, the claim it reproduces and what it writes:
landscape.figures.nbins (NbinsTable), whose
description `--help` prints below; this script parses its options into that spec.
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.nbins import (  # noqa: F401  (the table's helpers, importable from the script as before)
    STEM,
    NbinsTable,
    coupled_layers,
    draw,
    estimator_errors,
    grid_bytes,
    interleaved,
    make,
    measure,
    study_settings,
)


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_nbins.py", common.described(__doc__, figures.NbinsTable))
    p.add_argument("--study", required=True, help="the study's name (its grid varies n_bins)")
    p.add_argument("--storage", default=None, help="the study's storage (default: DIR/STUDY/journal.log)")
    p.add_argument("--dir", default="studies", help="folder of the default journal storage (default: studies/)")
    p.add_argument("--repeats", type=cli.positive_int, default=20,
                   help="timed interleaved rounds per N_b, after one untimed (default: 20)")
    p.add_argument("--threads", type=cli.nonnegative_int, default=0,
                   help="torch threads for the timings (default 0: torch's default)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the outputs go (default: figures/)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    p.add_argument("--json", action="store_true", help="print the output paths and rows as one JSON object")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    spec = NbinsTable(out_dir=args.out_dir, force=args.force, batch_size=args.batch_size,
                      data=cli.data_source(args), device=args.device, quiet=args.json, study=args.study,
                      storage=args.storage, dir=args.dir, repeats=args.repeats, threads=args.threads)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "analyses/table_nbins.py")
