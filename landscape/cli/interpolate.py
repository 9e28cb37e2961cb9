"""python -m landscape.interpolate: task loss and accuracy along a piecewise-linear path through parameter
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
  python -m landscape.interpolate runs/wc.h5 --points 11 --split test --limit 1000
  python -m landscape.interpolate runs/wc.h5 pretrained ptq:heq:4 --bn recalibrate --json
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .. import cli, distributed
from ..analysis.paths import GROUP, PathConfig, PathResult, evaluate_path, stored_paths, write_path
from ..analysis.states import load_state_spec, spec_label
from ..analysis.storage import check_name, png_path, write_with_png
from ..analysis.sweep import open_journal
from ..bn import recalibration_batches
from ..data import Batches
from ..errors import LandscapeError
from ..store import Run

DEFAULT_STATES = ("pretrained", "compressed", "clamped")
SPLITS = ("test", "train", "both")


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
    p = cli.Parser("python -m landscape.interpolate", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("states", nargs="*",
                   help="the path's states, ≥ 2 (default: pretrained compressed clamped)")
    p.add_argument("--points", type=points_arg, default=PathConfig.points,
                   help=f"evaluation points per segment, both endpoints included, ≥ 2 "
                        f"(default: {PathConfig.points})")
    p.add_argument("--split", default="test", choices=SPLITS, help="data to evaluate on (default: test)")
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="first N images of each split (class-balanced prefix; default: all)")
    p.add_argument("--bn", default=PathConfig.bn, choices=["keep", "recalibrate"],
                   help="BN running statistics: keep = interpolate them (default), recalibrate = "
                        "re-estimate at every point")
    p.add_argument("--bn-batches", type=cli.positive_int, default=PathConfig.bn_batches,
                   help=f"--bn recalibrate: training batches of --batch-size images per point "
                        f"(default: {PathConfig.bn_batches})")
    p.add_argument("--no-fast", action="store_true", help="evaluate the model as is (no BN folding, default "
                   "memory layout): bit-identical to landscape.evaluate, ~1.5× slower on CPU")
    p.add_argument("--name", default=None,
                   help="result name under /analysis/paths (default: the states joined "
                   "by '-', then the BN mode)")
    p.add_argument("--out", default=None, help="write to this HDF5 file instead of the run file")
    p.add_argument("--force", action="store_true",
                   help="replace an existing result (and --out file), and discard a journal left by a different "
                        "command")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    cli.add_data_args(p)
    return p


def default_name(specs: list[str], bn: str) -> str:
    return "-".join(spec_label(s).replace(":", "") for s in specs) + f"_bn-{bn}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.in_world(args.device, lambda dev, world: _interpolate(args, dev, world))


def _interpolate(args, dev, world: distributed.World) -> int:
    config = PathConfig(points=args.points, bn=args.bn, bn_batches=args.bn_batches, fast=not args.no_fast)
    run = Run(args.run)
    specs = list(args.states) or list(DEFAULT_STATES)
    if len(specs) < 2:
        raise LandscapeError(f"a path needs at least 2 states, got {len(specs)} ({specs[0]})")
    name = args.name or default_name(specs, args.bn)
    check_name(name)

    # Everything that can fail on the user's input fails here, before any evaluation or write.
    target, png = distributed.on_main(lambda: _check_outputs(args, run, name), world) or (None, None)
    states = [load_state_spec(run, s) for s in specs]
    attrs = {"states": specs, "points": args.points, "bn": args.bn, "bn_batches": args.bn_batches,
             "fast": config.fast, "split": args.split, "limit": args.limit, "batch_size": args.batch_size}
    journal = open_journal(target, "paths", name, {**attrs, "device": dev.type}, states, world,
                           discard_other=args.force, unit="points")
    model = run.model("pretrained").to(dev)
    train, test = cli.load_data(args, run)
    splits = ["test", "train"] if args.split == "both" else [args.split]
    data = {s: Batches((test if s == "test" else train).subset(args.limit), args.batch_size, train=False,
                       device=dev) for s in splits}
    bn_data = recalibration_batches(train, args.bn_batches, args.batch_size, dev) if args.bn == "recalibrate" \
        else None

    result = evaluate_path(model, states, data, config, bn_data=bn_data, labels=specs,
                           progress=not args.json, world=world, journal=journal)
    if not world.is_main:
        return 0

    attrs = {**attrs, "run": str(run.path), "world_size": world.size}
    fig = draw(result, [spec_label(s) for s in specs], f"{run.path.name}: {name}")
    key = write_with_png(fig, png, lambda: write_path(target, name, result, attrs, force=args.force))
    journal.remove()

    if args.json:
        cli.print_json({"file": str(target), "group": f"/{key}", "png": str(png), **attrs, **result.to_dict()})
    else:
        print_table(result)
        print(f"wrote {target}:/{key} and {png}")
    return 0


def _check_outputs(args, run: Run, name: str) -> tuple[Path, Path]:
    """(file the result goes into, its PNG), or an error if either may not be written."""
    target = cli.check_out(args.out, args.force) if args.out else run.path
    if not args.out and not os.access(run.path, os.W_OK):
        raise LandscapeError(f"cannot write to {run.path} (permission denied); use --out")
    if target.exists() and name in _stored(target) and not args.force:  # _stored: fails if it is not HDF5
        raise LandscapeError(f"{target} already has /{GROUP}/{name}; pass --force or another --name")
    png = png_path(target, "path", name)
    if png.exists() and not args.force:
        raise LandscapeError(f"{png} exists; pass --force to overwrite it")
    return target, png


def _stored(path: Path) -> list[str]:
    try:
        return stored_paths(path)
    except OSError as e:
        raise LandscapeError(f"{path} is not a readable HDF5 file ({e})") from None


def draw(result: PathResult, knots: list[str], title: str):
    from .. import plots

    fig, axes = plots.figure(1, 2, width=5.5, height=3.8)
    splits = list(result.metrics)
    which = "/".join(splits)
    plots.path_curves(axes[0, 0], result.alpha, {s: result.metrics[s]["loss"] for s in splits}, knots=knots,
                      ylabel=f"{which} loss (cross-entropy, nats)", title="task loss")
    plots.path_curves(axes[0, 1], result.alpha, {s: result.metrics[s]["accuracy"] for s in splits},
                      knots=knots,
                      ylabel=f"{which} accuracy (%)", title="accuracy", percent=True)
    fig.suptitle(f"{title}  (n = {', '.join(f'{s} {n}' for s, n in result.n.items())})", fontsize="medium")
    return fig


def print_table(result: PathResult) -> None:
    splits = list(result.metrics)
    print("  alpha  seg  " + "  ".join(f"{s + ' loss':>11} {s + ' acc %':>11}" for s in splits))
    for i, a in enumerate(result.alpha):
        row = "  ".join(f"{result.metrics[s]['loss'][i]:11.4f} {100 * result.metrics[s]['accuracy'][i]:11.2f}"
                        for s in splits)
        print(f"{a:7.3f}  {result.segment[i]:3d}  {row}")
    for s in splits:
        loss = result.metrics[s]["loss"]
        print(f"{s}: max loss along the path {np.max(loss):.4f} at alpha {result.alpha[np.argmax(loss)]:.3f}")


if __name__ == "__main__":
    cli.run(main, "landscape.interpolate")
