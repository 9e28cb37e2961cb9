"""Histogram resolution N_b of the coupling estimator against accuracy, effective bits and time (the
soft-quantization paper's "Next Checks" 2: N_b ∈ {2^10, 2^12, 2^14, 2^16}).

Claim checked: the paper computes the coupling energy from a cloud-in-cell histogram of N_b = 2^14 bins and says
N_b = 2^14 "balances approximation quality vs. memory": fewer bins should cost accuracy or bits, more bins cost
memory and time without a gain.

Input: a study whose grid varies n_bins (read-only; the runs are trained by `python -m landscape.study`):
  python -m landscape.study create nbins --grid n_bins=1024,4096,16384,65536 h=0.05 w=0.3 --seeds 0,1 \\
      --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --epochs 1
  python -m landscape.study run nbins
  python analyses/table_nbins.py --study nbins [--repeats 20]

Per point of the grid (N_b, with the other varied settings if any), one CSV row:
- from the study's finished runs: clamped and compressed test accuracy (fractions) and mean effective bits,
  mean and std over the study's seeds (ddof 1; std 0 with one seed; `seeds` = runs averaged).
- measured by this script on the study's model (its --arch/--checkpoint, pretrained weights) with the study's
  coupling settings at that N_b, on --device at --threads torch threads:
  penalty_s: the coupling penalty Σ_l h_l E_l forward + backward over all coupled layers (`WeightCoupling.penalty`,
  the batched histogram estimator training runs); step_s: one whole training step (`Trainer.train_step`:
  forward, loss + penalty, backward, SGD) on the first unaugmented training images, one batch of the study's
  train batch size, eager (runs of ≥ 100 steps train the model's forward compiled; the penalty is never
  compiled); plain_step_s the same step without coupling. Medians of --repeats interleaved rounds (every N_b
  and the plain step once per round, the order rotated each round) after one untimed round.
  energy_rel_err, force_rel_err: the histogram estimator on the float32 pretrained layers against the exact
  sorted estimator (float64, same values), for the whole penalty: |ΔE|/|E| and ‖ΔF‖/‖F‖ with F its gradient
  over every coupled weight; *_max_layer: the worst layer's |ΔE_l|/|E_l| and ‖ΔF_l‖/‖F_l‖.
  grid_bytes: the histogram's density rows (layers × zero-padded FFT length × 4 bytes), computed, not measured.
Timings and errors do not depend on the seed (pretrained weights, one fixed batch). Timings are measurements
only when the machine is otherwise idle (check `loadavg` in the config JSON); on a shared machine they are
indications.

Writes figures/nbins.png (accuracy and bits vs N_b on a log2 axis; step and penalty time; estimator error),
nbins.csv and nbins.config.json.
The figure itself is landscape.figures.nbins (NbinsTable); this script parses the options into it.
"""

from __future__ import annotations

import common

from landscape import cli
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
    p = cli.Parser("analyses/table_nbins.py", __doc__)
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
