"""landscape surface: the 2-D loss surface on a plane through parameter space (or a 1-D scan).

--plane states: the plane through three states (--states, default pretrained compressed clamped; any state spec:
pretrained, compressed, clamped, step:N, ptq:METHOD:BITS or a checkpoint file), with an orthonormal basis, axes in
units of parameter distance drawn at true aspect, the states at their exact coordinates and the interpolation
path between them drawn on it. --plane random: two Gaussian directions around --around (default clamped),
filter-normalized (each output-channel slice scaled to the same slice of the state; --norm layer|none), 1-D
tensors zeroed (--ignore biasbn, default) or normalized as one slice (--ignore none), orthogonalized after
normalization; --dims 1 is the 1-D filter-normalized scan. BN statistics: --bn keep (the states' own; along
the states plane they move with the weights) or --bn recalibrate (re-estimated on --bn-batches training batches
at every point). landscape/analysis/surface.py has the details.

Grid: --resolution R (or RX,RY) points per axis, odd and ≥ 3, so the centre and both ends of every range are on
it; --range A:B[,C:D] (default: random ±1, states: the states' box with a 25% margin). Cost: one evaluation of
--limit images per point (R² points, plus the anchors).

Results go into the run file, group /analysis/surfaces/<name> (x, y, loss[x, y], accuracy[x, y], anchors;
settings as attributes), with a PNG beside it (filled contours with log-spaced levels, and a 3-D view).

Long jobs. Finished points are journaled in a hidden file beside the run file; rerunning the same command after a
crash or Ctrl-C skips them, with the same numbers as an uninterrupted run. Under torchrun the points are shared
out over the processes: torchrun --nproc-per-node 4 -m landscape.surface ... (landscape/analysis/sweep.py).

Example:
  landscape surface runs/wc.h5 --plane states --resolution 21 --limit 2000
  landscape surface runs/wc.h5 --plane random --around clamped --resolution 15 --range -0.5:0.5
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from .. import cli
from ..analysis import directions as dirs
from ..analysis.surface import GROUP, PLANES, SurfaceConfig, SurfaceResult
from ..errors import LandscapeError
from ..specs import PATH_STATES, SurfaceSpec


def resolution_arg(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be R or RX,RY (integers), got {text!r}") from None
    if len(values) not in (1, 2) or any(v < 3 or v % 2 == 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be odd and ≥ 3 (the centre and both ends on the grid), got {text!r}")
    return values


def range_arg(text: str) -> tuple[tuple[float, float], ...]:
    out = []
    for part in text.split(","):
        a, sep, b = part.partition(":")
        try:
            lo, hi = float(a), float(b)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be A:B or A:B,C:D, got {text!r}") from None
        if not sep or not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise argparse.ArgumentTypeError(f"{part!r} is an empty range (need A < B)")
        out.append((lo, hi))
    if len(out) > 2:
        raise argparse.ArgumentTypeError(f"at most two ranges (x and y), got {text!r}")
    return tuple(out)


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape surface", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("--plane", required=True, choices=PLANES, help="states: through three states; random: two "
                   "filter-normalized Gaussian directions around --around")
    p.add_argument("--states", nargs=3, default=list(PATH_STATES), metavar="STATE",
                   help="--plane states: the three states (default: pretrained compressed clamped)")
    p.add_argument("--around", default="clamped", help="--plane random: the centre state (default: clamped)")
    p.add_argument("--dims", type=int, choices=(1, 2), default=2, help="--plane random: 2 (a plane, default) or 1 "
                   "(the 1-D filter-normalized scan)")
    p.add_argument("--resolution", type=resolution_arg, default=(21,),
                   help="grid points per axis, R or RX,RY, odd and ≥ 3 (default: 21)")
    p.add_argument("--range", type=range_arg, default=None, dest="range_",
                   help="A:B[,C:D] coordinates per axis (default: random -1:1; states: their box + 25%%)")
    p.add_argument("--norm", default="filter", choices=dirs.FILTER_NORMS,
                   help="--plane random: normalization of the directions (default: filter)")
    p.add_argument("--ignore", default="biasbn", choices=dirs.IGNORES,
                   help="--plane random: biasbn zeroes 1-D tensors (biases, BN affine; default), none normalizes "
                        "each as one slice")
    cli.add_seed_arg(p, "the random directions")
    cli.add_eval_args(p, bn=SurfaceConfig.bn, bn_batches=SurfaceConfig.bn_batches,
                      bn_help="keep (the states' own; along the states plane they move with the weights) or "
                              "recalibrate at every point")
    cli.add_result_args(p, GROUP, "the plane and its states, e.g. states_pretrained-compressed-clamped or "
                        "random_clamped")
    cli.add_data_args(p)
    return p


def spec_from_args(args: argparse.Namespace) -> SurfaceSpec:
    """The command line as a SurfaceSpec (what the library takes)."""
    if args.plane == "states" and args.dims != 2:
        raise LandscapeError("--dims 1 is a random scan; the states plane is 2-D")
    config = SurfaceConfig(plane=args.plane, resolution=args.resolution, range=args.range_, dims=args.dims,
                           norm=args.norm, ignore=args.ignore, seed=args.seed, bn=args.bn, bn_batches=args.bn_batches,
                           fast=not args.no_fast)
    return SurfaceSpec(**cli.analysis_fields(args), states=tuple(args.states), around=args.around, config=config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run_analysis_command(spec_from_args(args), args.json, report)


def report(outcome) -> None:
    print_summary(outcome.result, outcome.attrs["units"], {k: outcome.attrs[k] for k in ("cosine",)
                                                           if outcome.attrs.get(k) is not None})
    print(f"wrote {outcome.file}:/{outcome.key} and {outcome.png}")


def print_summary(result: SurfaceResult, units: str, info: dict) -> None:
    loss = result.loss
    i = np.unravel_index(np.nanargmin(loss), loss.shape)
    where = ", ".join(f"{c[k]:+.4g}" for c, k in zip(result.coords, i, strict=True))
    lm = bool(np.isnan(result.accuracy).all())  # a language model: loss in nats/token over windows, no accuracy
    print(f"grid {' × '.join(str(len(c)) for c in result.coords)} in {units}; {result.n} "
          f"{'windows' if lm else 'images'} per point")
    print(f"  loss{' (nats/token)' if lm else ''} min {np.nanmin(loss):.4f} at ({where}), max {np.nanmax(loss):.4f}"
          + ("" if lm else f"; accuracy max {100 * np.nanmax(result.accuracy):.2f}%"))
    for label, c, lo, acc in result.anchors:
        print(f"  {label:>12} at ({', '.join(f'{v:+.4g}' for v in c)}): loss {lo:.4f}"
              + ("" if lm else f", accuracy {100 * acc:.2f}%"))
    if "cosine" in info:
        print(f"  cosine of the two directions before orthogonalization: {info['cosine']:+.2e}")


if __name__ == "__main__":
    cli.run(main, "landscape.surface")
