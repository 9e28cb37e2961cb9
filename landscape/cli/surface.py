"""python -m landscape.surface: the 2-D loss surface on a plane through parameter space (or a 1-D scan).

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
  python -m landscape.surface runs/wc.h5 --plane states --resolution 21 --limit 2000
  python -m landscape.surface runs/wc.h5 --plane random --around clamped --resolution 15 --range -0.5:0.5
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from .. import cli, distributed
from ..analysis import directions as dirs
from ..analysis.states import load_state_spec, spec_label
from ..analysis.storage import check_name, check_writable, png_path, write_with_png
from ..analysis.surface import (
    GROUP,
    PLANES,
    SurfaceConfig,
    SurfaceResult,
    evaluate_surface,
    random_plane,
    states_plane,
    write_surface,
)
from ..analysis.sweep import open_journal
from ..bn import BN_MODES, recalibration_batches
from ..data import Batches
from ..errors import LandscapeError
from ..store import Run, git_commit

DEFAULT_STATES = ("pretrained", "compressed", "clamped")


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
    p = cli.Parser("python -m landscape.surface", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("--plane", required=True, choices=PLANES, help="states: through three states; random: two "
                   "filter-normalized Gaussian directions around --around")
    p.add_argument("--states", nargs=3, default=list(DEFAULT_STATES), metavar="STATE",
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
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    p.add_argument("--split", default="test", choices=("test", "train"), help="data to evaluate on (default: test; "
                   "train images unaugmented)")
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="first N images of the split (class-balanced prefix; default: all)")
    p.add_argument("--bn", default="keep", choices=BN_MODES,
                   help="BN statistics: keep (default) or recalibrate at every point")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4,
                   help="--bn recalibrate: training batches of --batch-size images per point (default: 4)")
    p.add_argument("--no-fast", action="store_true", help="evaluate the model as is (no BN folding)")
    cli.add_result_args(p, "analysis/surfaces", "the plane and its states, e.g. states_pretrained-compressed-clamped "
                        "or random_clamped")
    cli.add_data_args(p)
    return p


def default_name(args) -> str:
    if args.plane == "states":
        return "states_" + "-".join(spec_label(s).replace(":", "") for s in args.states)
    return f"random{'1d' if args.dims == 1 else ''}_{spec_label(args.around).replace(':', '')}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.in_world(args.device, lambda dev, world: _surface(args, dev, world))


def _surface(args, dev, world: distributed.World) -> int:
    dims = 2 if args.plane == "states" else args.dims
    if args.plane == "states" and args.dims != 2:
        raise LandscapeError("--dims 1 is a random scan; the states plane is 2-D")
    config = SurfaceConfig(plane=args.plane, resolution=args.resolution, range=args.range_, dims=dims,
                           norm=args.norm, ignore=args.ignore, seed=args.seed, bn=args.bn, fast=not args.no_fast)
    run = Run(args.run)
    name = args.name or default_name(args)
    check_name(name)

    # Everything that can fail on the user's input fails here, before any evaluation or write.
    png = png_path(run.path, "surface", name)
    distributed.on_main(lambda: _check_outputs(run, name, png, args.force), world)
    model = run.model("pretrained")
    specs = list(args.states) if args.plane == "states" else [args.around]
    states = [load_state_spec(run, s) for s in specs]
    labels = [spec_label(s) for s in specs]
    if args.plane == "states":
        plane = states_plane(model, states, labels)
    else:
        plane = random_plane(model, states[0], labels[0], dims=dims, seed=args.seed, norm=args.norm,
                             ignore=args.ignore)
    attrs = {"plane": args.plane, "states": specs, "resolution": list(config.resolution),
             "range": [list(r) for r in (config.range or plane.default_range(config.margin))], "norm": args.norm,
             "ignore": args.ignore, "seed": args.seed, "bn": args.bn, "bn_batches": args.bn_batches,
             "fast": config.fast, "split": args.split, "limit": args.limit, "batch_size": args.batch_size}
    if args.plane == "states":  # settings that only shape random directions do not apply
        attrs = {k: v for k, v in attrs.items() if k not in ("norm", "ignore", "seed")}
    journal = open_journal(run.path, "surface", name, {**attrs, "device": dev.type}, states, world,
                           discard_other=args.force, unit="points")
    train, test = cli.load_data(args, run)
    split = test if args.split == "test" else train
    batches = Batches(split.subset(args.limit), args.batch_size, train=False, device=dev)
    bn_data = recalibration_batches(train, args.bn_batches, args.batch_size, dev) if args.bn == "recalibrate" \
        else None

    result = evaluate_surface(model.to(dev), plane, batches, config, bn_data=bn_data, progress=not args.json,
                              world=world, journal=journal)
    if not world.is_main:
        return 0
    attrs = {**attrs, "units": plane.units, "axis_norms": plane.info.get("axis_norms"),
             "cosine": plane.info.get("cosine"), "run": str(run.path), "world_size": world.size,
             "git_commit": git_commit()}
    fig = draw(result, plane.kind, plane.units, f"{run.path.name}: {name}  (n = {result.n} {args.split} images)")
    key = write_with_png(fig, png, lambda: write_surface(run.path, name, result, attrs, force=args.force))
    journal.remove()
    if args.json:
        cli.print_json({"file": str(run.path), "group": f"/{key}", "png": str(png), **attrs, **result.to_dict()})
    else:
        print_summary(result, plane.units, plane.info)
        print(f"wrote {run.path}:/{key} and {png}")
    return 0


def _check_outputs(run: Run, name: str, png, force: bool) -> None:
    check_writable(run.path, GROUP, name, force)
    if png.exists() and not force:
        raise LandscapeError(f"{png} exists; pass --force to overwrite it")


def draw(result: SurfaceResult, kind: str, units: str, title: str):
    """The figure of a stored surface: filled contours + 3-D view (a line for a 1-D scan)."""
    from .. import plots

    if len(result.coords) == 1:
        fig, axes = plots.figure(1, 1, width=6, height=4)
        plots.line_scan(axes[0, 0], result.coords[0], result.loss,
                        anchors=[(a, c[0], lo) for a, c, lo, _ in result.anchors], xlabel=units, title=title)
        return fig
    x, y = result.coords
    fig, axes = plots.figure(1, 2, width=6.5, height=5.2)
    anchors = [(a, c) for a, c, _, _ in result.anchors]
    plots.surface_contour(axes[0, 0], x, y, result.loss, anchors=anchors, path=kind == "states",
                          equal_aspect=kind == "states", xlabel=f"x ({units})", ylabel=f"y ({units})",
                          title="loss (filled contours)")
    axes[0, 1].remove()
    ax3d = fig.add_subplot(1, 2, 2, projection="3d")
    plots.surface_3d(ax3d, x, y, result.loss, xlabel="x", ylabel="y", title="loss surface")
    fig.suptitle(title, fontsize="medium")
    return fig


def print_summary(result: SurfaceResult, units: str, info: dict) -> None:
    loss = result.loss
    i = np.unravel_index(np.nanargmin(loss), loss.shape)
    where = ", ".join(f"{c[k]:+.4g}" for c, k in zip(result.coords, i, strict=True))
    print(f"grid {' × '.join(str(len(c)) for c in result.coords)} in {units}; {result.n} images per point")
    print(f"  loss min {np.nanmin(loss):.4f} at ({where}), max {np.nanmax(loss):.4f}; "
          f"accuracy max {100 * np.nanmax(result.accuracy):.2f}%")
    for label, c, lo, acc in result.anchors:
        print(f"  {label:>12} at ({', '.join(f'{v:+.4g}' for v in c)}): loss {lo:.4f}, accuracy {100 * acc:.2f}%")
    if "cosine" in info:
        print(f"  cosine of the two directions before orthogonalization: {info['cosine']:+.2e}")


if __name__ == "__main__":
    cli.run(main, "landscape.surface")
