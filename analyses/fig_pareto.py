"""Accuracy vs mean bits over a whole study: the soft-quantization paper's Fig. 2 (its sweep h ∈ [0.01, 0.25],
w ∈ [0.15, 0.45], accuracy against effective bits, soft quantization against HEQ PTQ), with k-means and uniform
PTQ beside HEQ.

Claim tested: the soft-quantization Pareto front (clamped test accuracy vs mean effective bits) lies above the
HEQ PTQ baseline of the same pretrained model at matched bits; reported as well: where it lies against k-means
PTQ, and how much the training seed moves a point (mean ± std over the study's seeds; the seeds are the study's
--seeds, every run's own seed in the CSV). With `--recalibrate-bn` runs, a second panel compares clamped models
with BN statistics re-estimated, PTQ likewise.

The study is made and run with `python -m landscape.study` (README: "Studies"); this script only reads it and
writes figures/fig2_pareto.png, fig2_pareto-runs.csv, fig2_pareto-points.csv and fig2_pareto.json (the spec, every
run, per-point means, the Pareto front, the PTQ baselines and this script's settings).

  python analyses/fig_pareto.py --study fig2 [--storage postgresql://…] [--dir studies]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.studies import engine, report

STEM = "fig2_pareto"


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/fig_pareto.py", __doc__)
    p.add_argument("--study", required=True, help="the study's name")
    p.add_argument("--storage", default=None, help="the study's storage (default: DIR/STUDY/journal.log)")
    p.add_argument("--dir", default="studies", help="folder of the default journal storage (default: studies/)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the outputs go (default: figures/)")
    p.add_argument("--no-ptq", action="store_true", help="leave out the PTQ baselines")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    p.add_argument("--json", action="store_true", help="print the output paths as one JSON object")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    url = args.storage or f"{args.dir}/{args.study}/journal.log"
    study, spec = engine.open_study(url, args.study)
    result, files = report.write(study, spec, spec.base, args.out_dir, STEM, force=args.force,
                                 ptq=not args.no_ptq, data=args.data, download=args.download,
                                 device=str(cli.device(args.device)),
                                 script="analyses/fig_pareto.py", settings=vars(args))
    if args.json:
        cli.print_json(files)
    else:
        done = f"{result['finished']}/{result['total']}"
        print(f"study {spec.name}: {done} runs; Pareto front of {len(result['pareto_front'])} trial(s); "
              f"{', '.join(files.values())}")
    return 0


if __name__ == "__main__":
    cli.run(main, "analyses/fig_pareto.py")
