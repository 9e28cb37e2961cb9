"""Soft-quantization paper, Fig. 3, under every measurement protocol side by side: does the compressor's step
ΔL_task/‖Δθ‖ lie outside the distribution of equal-norm random perturbations?

Claim. The paper says that ΔL_task/Δθ of soft quantization "falls outside the perturbation distribution": the step
from the pretrained to the compressed (or clamped) weights costs less task loss per unit of weight-space distance
than random Gaussian steps of the same norm. The task loss the method lowers is the training loss.

This script computes nothing: it reads the results `python -m landscape.perturb` stored in one or more run files
(/analysis/perturb/<name>, landscape/analysis/perturbation.py) and draws them all in one figure.

Protocols. A stored result's protocol is (split × norm × bn), read from its attributes:
  split  train | test   the images ΔL is measured on (perturb --split; results without the attribute: test);
  norm   global         ‖δ‖ = ‖Δθ‖ over all weights | per-layer: ‖δ_l‖ = ‖Δθ_l‖ in every layer;
  bn     keep           every state keeps the pretrained BN statistics | recalibrate: every state (pretrained,
                        real, random) gets its statistics re-estimated on the same unaugmented training batches.
The paper's wording supports split = train (the task loss the method lowers) with norm = global (the literal
"random perturbations of equal norm"); marked † in the figure. It does not say how BN statistics are treated,
so both bn modes are consistent with it: keep is the literal "add δ to the weights", recalibrate the fair
comparison (analysis/perturbation.py: stale statistics penalise a structured step more than a random one).

Displacements and points. A displacement is (run label, target: compressed, clamped, ptq:heq:4, …). For each
(displacement, protocol), with ‖Δθ‖ the displacement's norm over the conv/linear weights:
  random         ΔL/‖Δθ‖ of the M random directions (box and dots);
  weight-only Δθ real_slope: θ_pre + Δθ, only the conv/linear weights moved, BN parameters and biases pretrained
                 (with bn=recalibrate its statistics re-estimated like every random state's);
  actual model   (target_loss − base_loss)/‖Δθ‖: the target's full state (its own fine-tuned BN parameters and
                 biases) against the pretrained model, i.e. the compressed/clamped model as trained against the
                 pretrained model, on the same images. Under bn=keep both are exactly the saved models with their
                 own BN running statistics. Under bn=recalibrate base_loss is the *recalibrated* pretrained model
                 and target_loss the target with recalibrated statistics (same batches): the actual models up to
                 their BN running statistics, which both re-estimate. The random ΔL are measured from the same
                 base_loss, so every point of a protocol shares one reference. (A PTQ target's full state differs
                 from the pretrained one in the weights only, so for it the two points coincide.)
Each point's position among the random ones is given as in analysis/perturbation.py: percentile = percent of
random ΔL below it (ties count half), z = (ΔL − mean)/std with std ddof=1 (NaN for M < 2).

Seeds. Several run files given the same --labels entry are training seeds of one setting (their run-file seed is
the `seed` column): every seed's points are drawn, and the summary CSV gives mean ± std (ddof=1) over seeds of
z-scores, percentiles and slopes per label × target × protocol. The random directions' own seed (perturb --seed)
is the `direction_seed` column. Without --labels each run is labelled by its compressor settings
(common.run_label), so runs of equal settings are seeds of one label.

Figure: one panel per target (rows) × protocol (columns), each with its own linear y axis (ΔL/‖Δθ‖); in a
panel one box (quartiles, whiskers over the full range) and the dots of the random directions per run, the
weight-only point (filled circle) and the actual-model point (open diamond) beside it, colour per label; the
tick label under each run gives both z-scores. A panel without a stored result says so.

Outputs (OUT_DIR/STEM…): STEM.png; STEM.csv, one row per run × target × protocol (label, run, seed, target,
split, norm, bn, directions, n_images, displacement_norm, real_slope, real_z, real_percentile, actual_slope,
actual_z, actual_percentile, random_mean, random_std — the last two of the random ΔL/‖Δθ‖ — then name,
direction_seed, limit, base_loss, target_loss, real_delta_loss, actual_delta_loss); STEM_summary.csv (n_seeds
and <column>_mean, <column>_std per label × target × protocol); STEM.config.json.
The figure itself is landscape.figures.protocols (ProtocolsFigure); this script parses the options into it.

  python analyses/fig3_protocols.py --run a.h5 b.h5 c.h5 --labels "h=0.05" "h=0.05" "h=0.05" \\
      [--targets compressed clamped] [--names NAME ...] [--out-dir figures] [--stem fig3_protocols] [--force] [--json]
"""

from __future__ import annotations

import common

from landscape import cli
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
    p = cli.Parser("analyses/fig3_protocols.py", __doc__)
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
