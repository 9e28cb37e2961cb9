"""Does the layer-size power law behind α ≈ 0.66 hold during fine-tuning? (soft-quantization paper, Next check 1)

Claim tested. The coupling penalty is L_C = Σ_l h_l E_l with E_l = Σ_{i≠j} U_{w_l}(θ_i − θ_j) (ordered pairs, no
normalization: landscape/coupling.py, compress/weight_coupling.py), w_l = w·σ_l and h_l = h·N_l^(−α), α = 0.66,
"an empirical power law from the pretrained unweighted interaction energy" that makes layers of different size
contribute comparably. The paper measured it at the pretrained weights only; its first "next check" asks whether
it stays valid throughout fine-tuning, measured on E_l at several checkpoints.

What α refers to (derivation). Write E_l ∝ N_l^β across layers. Then layer l's penalty is h_l E_l ∝ N_l^(β−α).
The summary says "balanced contribution" without saying balanced per what, and our code fixes only the product
h_l E_l, so two readings:
  (a) every layer's total penalty equal:      β − α = 0  →  β = α = 0.66;
  (b) every weight's share equal (h_l E_l ∝ N_l, i.e. the per-weight energy E_l/N_l ∝ N_l^α; this is what one
      measures if the "unweighted energy" is per weight, e.g. Σ_i V(θ_i) with V the potential of a density
      normalized to 1):                       β − α = 1  →  β = 1 + α = 1.66.
Which one can hold follows from the scale of E_l: with m_l = E_l / (N_l (N_l − 1) w_l) ∈ (0, 1] the mean of
U/w_l over the pairs (a number fixed by the *shape* of the layer's weight distribution in units of σ_l, since
w_l ∝ σ_l; ≈ 0.92 for a Gaussian at w = 0.3),

    log E_l = log N_l(N_l − 1) + log w_l + log m_l   ⇒   β = β_pairs (≈ 2) + β_sigma + β_shape   (exactly:
                                                         least-squares slopes add),

with β_sigma the slope of log σ_l on log N_l (w_l = w σ_l). Reading (a) would need σ_l ∝ N_l^(−4/3) (or a
strongly size-dependent shape); (b) needs σ_l ∝ N_l^(−1/3), close to the adapted ResNet-20's pretrained weights.
So the prediction this script tests is (b): β = 1 + α at the pretrained state and, if the law "remains valid",
at every checkpoint, the compressed and the clamped state. Reading (a), β = α, is drawn for contrast. During
fine-tuning N_l and w_l (pretrained σ_l) are fixed, so β can move only through β_shape, i.e. if clustering
changes m_l differently in small and large layers; alpha_fit.csv lists the three parts.

What is measured. For every state (pretrained = step 0, each chosen checkpoint, compressed, clamped; for the
clamped state E_l is still defined), each coupled layer's exact E_l (`coupling.layer_energies`: the sorted
estimator, float64; no histogram error) with w_l from the *pretrained* σ_l, as in training; then the ordinary
least-squares fit log E_l = β log N_l + c over the layers (ResNet-20: 20 layers, N_l = 432 … 36,864), β's
standard error, a 95% interval (Student t, n_layers − 2 degrees of freedom) and R². The layers are not random
draws (several share one N_l), so SE and interval describe the layer-to-layer scatter about the line, not a
sampling error of E_l, which is exact.

Seeds: none. Everything is deterministic given the run file (or checkpoint): no training, no sampling. One run
backs the figure (config "seeds": 1, as the other scripts count runs); it does not average over training seeds.

Writes <out-dir>/alpha_powerlaw.png (left: log-log E_l vs N_l at pretrained, the last checkpoint and clamped, with
fits and the two reference slopes; right: β ± 95% CI vs SGD step, lines at 1 + α and α), alpha_powerlaw.csv (state,
step, layer, N_l, sigma_l, w_l, E_l, m_l = E_l / (N_l (N_l − 1) w_l), std_l = the state's own std),
alpha_fit.csv (state, step, beta, beta_se, ci_lo, ci_hi, r2, n_layers, intercept, beta_pairs, beta_sigma,
beta_shape) and alpha_powerlaw.config.json.

  python analyses/fig_alpha.py --run RUN.h5 [--w 0.3] [--every K | --steps S ...] [--out-dir DIR] [--force] [--json]
  python analyses/fig_alpha.py --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --arch resnet20   (pretrained only)

Without --run or --checkpoint the small soft-quantization run of analyses/common.py is made (once) and used.
The figure itself is landscape.figures.alpha (AlphaFigure); this script parses the options into it.
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures import make
from landscape.figures.alpha import (  # noqa: F401  (the figure's pieces, importable from the script as before)
    DEFAULT_ALPHA,
    DEFAULT_W,
    AlphaFigure,
    draw,
    fit_power_law,
    measure,
    pick_steps,
    slope,
)

STEM, FIT_STEM = f"{AlphaFigure.STEM}_powerlaw", f"{AlphaFigure.STEM}_fit"


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_alpha.py", __doc__)
    cli.add_model_args(p, checkpoint_required=False)
    p.set_defaults(arch="resnet20")
    p.add_argument("--w", type=float, default=None,
                   help=f"global well width in units of σ_l (default: the run's own w; {DEFAULT_W} for --checkpoint)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--every", type=cli.positive_int, default=None, metavar="K",
                       help="measure every K-th stored checkpoint (from the first; the last always) (default: 1, all)")
    group.add_argument("--steps", type=int, nargs="+", default=None, metavar="S",
                       help="measure these checkpoint steps only")
    args = p.parse_args(argv)
    fields = dict(**common.figure_fields(args), checkpoint=args.checkpoint, arch=args.arch,
                  arch_kwargs=args.arch_kwargs, w=args.w, every=args.every, steps=args.steps)
    run = args.run
    if not (run or args.checkpoint):
        AlphaFigure(**fields, run="(the small run)")  # the options checked before the small run is trained
        run = str(common.resolve_runs(args, AlphaFigure)[0])
    return common.show(make(AlphaFigure(**fields, run=run)), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_alpha")
