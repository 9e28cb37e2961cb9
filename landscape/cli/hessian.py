"""landscape hessian: the curvature of the task loss at a run's states — the largest (and smallest)
Hessian eigenvalues, the trace, the spectral density, per compressed layer and for the whole model; λ_max and trace
along pretrained → compressed → clamped; and what a second-order model predicts clamping costs.

The Hessian is that of the mean cross-entropy over the first --limit images of --split (class-balanced prefix,
unaugmented, default 1,000 test images: each Hessian-vector product costs about four gradient passes) with the
model in eval mode, with respect to the conv/linear weights (--params all: every parameter). A layer's Hessian is
the diagonal block of its weight tensor. Top eigenvalues by ARPACK Lanczos (--top-k, relative --tol), the trace by
Hutchinson (--samples Rademacher vectors, ± standard error), the density by stochastic Lanczos quadrature (--steps,
--vectors, Gaussian broadening --sigma); landscape/analysis/hessian.py and lanczos.py say how and why.

States (--state, several allowed; default clamped, the model that is deployed: each further state costs as much
again): pretrained, compressed, clamped, step:N (or N), ptq:METHOD:BITS or a checkpoint file of the run's
architecture.
--path        λ_max and trace at --points positions per segment of pretrained → compressed → clamped (every entry
              interpolated, BN statistics included).
clamp cost    (unless --no-clamp-cost) at the compressed state, g = ∇L and δ = clamped − compressed: predicted
              ΔL ≈ gᵀδ + ½ δᵀHδ beside the measured L(clamped weights) − L(compressed); per layer with --per-layer.

Results go into the run file, group /analysis/hessian/<name>, with a PNG beside it (density, per-layer bars,
λ_max along the path, clamp cost: whichever were computed).

Long jobs. Finished quantities are journaled in a hidden file beside the run file,
.<file>.hessian-<name>.journal.json; rerunning the same command after a crash or Ctrl-C skips them. Under torchrun
the quantities are shared out over the processes: torchrun --nproc-per-node 2 -m landscape.hessian ...

Example:
  landscape hessian runs/wc.h5 --state pretrained compressed clamped --per-layer --trace
  landscape hessian runs/wc.h5 --path --points 5 --density --json
"""

from __future__ import annotations

import argparse

from .. import cli
from ..analysis.hessian import GROUP, HessianConfig, HessianResult
from ..specs import HessianSpec


def parser():
    p = cli.Parser("landscape hessian", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("--state", nargs="+", default=None, metavar="STATE",
                   help="states to analyse (default: clamped): pretrained, compressed, clamped, step:N, "
                        "ptq:METHOD:BITS or a checkpoint file")
    p.add_argument("--top-k", type=cli.positive_int, default=1, metavar="K",
                   help="largest algebraic eigenvalues per state and block (default: 1)")
    p.add_argument("--smallest", action="store_true", help="also the K smallest algebraic eigenvalues")
    p.add_argument("--tol", type=float, default=HessianConfig.tol,
                   help=f"relative tolerance of the eigenvalues (ARPACK; default: {HessianConfig.tol})")
    p.add_argument("--trace", action="store_true", help="Hutchinson trace with its standard error")
    p.add_argument("--samples", type=cli.positive_int, default=HessianConfig.samples, metavar="M",
                   help=f"Rademacher vectors of the trace, here and along --path (default: {HessianConfig.samples})")
    p.add_argument("--density", action="store_true", help="spectral density by stochastic Lanczos quadrature")
    p.add_argument("--steps", type=cli.positive_int, default=HessianConfig.steps,
                   help=f"Lanczos steps per SLQ start vector (default: {HessianConfig.steps})")
    p.add_argument("--vectors", type=cli.positive_int, default=HessianConfig.vectors,
                   help=f"SLQ start vectors (default: {HessianConfig.vectors})")
    p.add_argument("--sigma", type=float, default=None,
                   help="Gaussian broadening of the density, in eigenvalue units (default: 1%% of the span)")
    p.add_argument("--per-layer", action="store_true", help="also the diagonal block of every compressed layer")
    p.add_argument("--layers", nargs="+", default=None, metavar="PARAM",
                   help="only these layers' blocks (parameter names, e.g. layer1.0.conv1.weight); implies "
                        "--per-layer")
    p.add_argument("--layer-trace", default="block", choices=["block", "split"],
                   help="per-layer traces by Hutchinson on each block (block, default) or from the whole model's "
                        "vectors split by layer (split: no extra products, more variance)")
    p.add_argument("--path", action="store_true", help="λ_max and trace along pretrained → compressed → clamped")
    p.add_argument("--points", type=cli.positive_int, default=HessianConfig.points,
                   help=f"--path: points per segment, both ends included, ≥ 2 (default: {HessianConfig.points})")
    p.add_argument("--no-clamp-cost", action="store_true", help="skip the clamp-cost prediction")
    p.add_argument("--params", default="weights",
                   help="the parameters differentiated: weights (conv/linear, default), all, or either edited by "
                        "name patterns, e.g. weights,-linear.weight (landscape/params.py)")
    p.add_argument("--keep-graph", action="store_true", help="keep each batch's gradient graph between the "
                   "products of one quantity: each product ≈30%% cheaper, but holds the graph of every batch at once "
                   "(≈5 MB per image for ResNet-20)")
    cli.add_seed_arg(p, "the start and Rademacher vectors")
    cli.add_eval_args(p, limit=HessianSpec.limit, fast=False)
    cli.add_result_args(p, GROUP, "the state labels joined by '-'")
    cli.add_data_args(p)
    return p


def spec_from_args(args: argparse.Namespace) -> HessianSpec:
    """The command line as a HessianSpec (what the library takes)."""
    config = HessianConfig(top_k=args.top_k, smallest=args.smallest, tol=args.tol, trace=args.trace,
                           samples=args.samples, density=args.density, steps=args.steps, vectors=args.vectors,
                           sigma=args.sigma, per_layer=args.per_layer or bool(args.layers),
                           layers=tuple(args.layers or ()), points=args.points, params=args.params, seed=args.seed,
                           layer_trace=args.layer_trace)
    return HessianSpec(**cli.analysis_fields(args), states=tuple(args.state or HessianSpec.states), path=args.path,
                       clamp_cost=not args.no_clamp_cost, keep_graph=args.keep_graph, config=config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run_analysis_command(spec_from_args(args), args.json, report)


def report(outcome) -> None:
    lm = cli.recorded_dataset(outcome.attrs["run"]) == "text"  # a language model: windows, loss in nats/token
    print_table(outcome.result, outcome.attrs["split"], "windows" if lm else "images")
    print(f"wrote {outcome.file}:/{outcome.key} and {outcome.png}")


def _fmt(entry: dict) -> str:
    out = "  ".join(f"{v:+.4g}" for v in entry.get("top", []))
    if "bottom" in entry:
        out += "   smallest " + "  ".join(f"{v:+.4g}" for v in entry["bottom"])
    if "trace" in entry:
        out += f"   trace {entry['trace']:.4g} ± {entry['trace_se']:.2g}"
    return out


def print_table(result: HessianResult, split: str, unit: str = "images") -> None:
    for label, entry in result.states.items():
        print(f"{label}: loss {entry['loss']:.4f}, ‖∇L‖ {entry['grad_norm']:.4g} on {result.n} {split} {unit}, "
              f"{entry['dim']} parameters")
        print(f"  {'whole model':<28} λ {_fmt(entry)}")
        for name, layer in entry.get("layers", {}).items():
            print(f"  {name:<28} λ {_fmt(layer)}")
    if result.path is not None:
        p = result.path
        print("path  alpha     loss      λ_max     trace ± se")
        for i, a in enumerate(p["alpha"]):
            print(f"     {a:6.3f}  {p['loss'][i]:8.4f}  {p['lambda_max'][i]:9.4g}  {p['trace'][i]:9.4g} ± "
                  f"{p['trace_se'][i]:.2g}")
    if result.clamp_cost is not None:
        c = result.clamp_cost
        rows = [("whole model", c)] + list(c.get("layers", {}).items())
        print("clamp cost                     measured ΔL   predicted = gᵀδ + ½δᵀHδ")
        for name, r in rows:
            print(f"  {name:<28} {r['measured']:+11.4g}   {r['predicted']:+10.4g} = {r['linear']:+.4g} "
                  f"{r['quadratic']:+.4g}")
        if c["other_changed"]:
            print(f"  clamping also changed {len(c['other_changed'])} entries outside the selection (left out of "
                  f"δ); the full clamped state's loss is {c['loss_clamped']:.4f}")


if __name__ == "__main__":
    cli.run(main, "landscape.hessian")
