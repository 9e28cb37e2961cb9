"""landscape interpolate: task loss and accuracy along a piecewise-linear path through parameter
states.

The states (default: pretrained compressed clamped, read from RUN.h5) are run-file names (pretrained,
compressed, clamped, step:N), PTQ of the pretrained state (ptq:METHOD:BITS), or checkpoint files of the run's
architecture. Each segment is evaluated at --points positions, both endpoints included (shared knots are not
repeated); BN running statistics are interpolated (--bn keep, default: the endpoints are the saved models) or
re-estimated at every point on --bn-batches unaugmented training batches (--bn recalibrate).

Results go into the run file, group /analysis/paths/<name> (alpha, segment, <split>/loss, <split>/accuracy;
settings as attributes; see landscape/analysis/paths.py), or into the HDF5 file --out, with a PNG beside that file.

Long jobs. Finished points are journaled in a hidden file beside the result,
.<file>.paths-<name>.journal.json; rerunning the same command after a crash or Ctrl-C skips them, with the
same numbers as an uninterrupted run. Under torchrun the points are shared out over the processes and rank 0
writes the result: torchrun --nproc-per-node 4 -m landscape.interpolate ... (landscape/analysis/sweep.py, README).

Example:
  landscape interpolate runs/wc.h5 --points 11 --split test --limit 1000
  landscape interpolate runs/wc.h5 pretrained ptq:heq:4 --bn recalibrate --json
"""

from __future__ import annotations

import argparse

import numpy as np

from .. import cli
from ..analysis.paths import GROUP, PathConfig, PathResult
from ..specs import PATH_STATES, PathSpec


def points_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be ≥ 2 (both endpoints of a segment are included), "
                                         f"got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape interpolate", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("states", nargs="*",
                   help="the path's states, ≥ 2 (default: pretrained compressed clamped)")
    p.add_argument("--points", type=points_arg, default=PathConfig.points,
                   help=f"evaluation points per segment, both endpoints included, ≥ 2 "
                        f"(default: {PathConfig.points})")
    cli.add_eval_args(p, splits=("test", "train", "both"), bn=PathConfig.bn, bn_batches=PathConfig.bn_batches,
                      bn_help="keep = interpolate them, recalibrate = re-estimate at every point")
    cli.add_result_args(p, GROUP, "the states joined by '-', then the BN mode")
    cli.add_data_args(p)
    return p


def spec_from_args(args: argparse.Namespace) -> PathSpec:
    """The command line as a PathSpec (what the library takes)."""
    config = PathConfig(points=args.points, bn=args.bn, bn_batches=args.bn_batches, fast=not args.no_fast)
    return PathSpec(**cli.analysis_fields(args), states=tuple(args.states or PATH_STATES), config=config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run_analysis_command(spec_from_args(args), args.json, report)


def report(outcome) -> None:
    print_table(outcome.result)
    print(f"wrote {outcome.file}:/{outcome.key} and {outcome.png}")


def print_table(result: PathResult) -> None:
    splits = list(result.metrics)
    acc = not all(np.isnan(result.metrics[s]["accuracy"]).all() for s in splits)  # a language model has none
    loss = "loss" if acc else "nats/tok"
    print("  alpha  seg  " + "  ".join(f"{s + ' ' + loss:>11}" + (f" {s + ' acc %':>11}" if acc else "")
                                       for s in splits))
    for i, a in enumerate(result.alpha):
        row = "  ".join(f"{result.metrics[s]['loss'][i]:11.4f}"
                        + (f" {100 * result.metrics[s]['accuracy'][i]:11.2f}" if acc else "") for s in splits)
        print(f"{a:7.3f}  {result.segment[i]:3d}  {row}")
    for s in splits:
        loss = result.metrics[s]["loss"]
        print(f"{s}: max loss along the path {np.max(loss):.4f} at alpha {result.alpha[np.argmax(loss)]:.3f}")


if __name__ == "__main__":
    cli.run(main, "landscape.interpolate")
