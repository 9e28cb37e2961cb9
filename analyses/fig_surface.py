"""Where the compressed model sits on the loss surface: the plane through pretrained → compressed → clamped, and a
filter-normalized random plane around the clamped model (Li et al. 2018's view).

Question, not a claim of the papers: is the compressed model in the same basin as the pretrained one, is the
clamp step a step up a wall or along a valley floor, and how wide is the basin around the clamped model compared
with the distances the compressor moved? One run (one training seed), one direction seed for the random plane; the
surfaces are exact evaluations (no fit), on --limit test images with the states' own BN statistics (--bn keep) or
re-estimated ones at every point (--bn recalibrate).

Writes figures/surface.png (2 × 2: filled contours with log-spaced levels and a 3-D view, for each plane; the
states and the interpolation path marked on the states plane, drawn at true aspect), surface.csv (plane, i, j, x,
y, loss, accuracy), surface_anchors.csv and surface.config.json. Evaluations are journaled beside the outputs
(.surface-<plane>.journal.json): rerun the same command after a crash to continue.

  python analyses/fig_surface.py --run runs/headline-histogram.h5 --resolution 21 --limit 2000
"""

from __future__ import annotations

import sys
from pathlib import Path

import common

from landscape import cli, plots
from landscape.analysis.states import load_state_spec
from landscape.analysis.surface import SurfaceConfig, evaluate_surface, random_plane, states_plane
from landscape.analysis.sweep import Journal, state_digest
from landscape.bn import BN_MODES
from landscape.store import Run

STEM = "surface"


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_surface.py", __doc__)
    p.add_argument("--resolution", type=int, default=21, help="grid points per axis, odd ≥ 3 (default: 21)")
    p.add_argument("--random-range", type=float, default=1.0,
                   help="random plane: ±R in filter-normalized units (default: 1)")
    p.add_argument("--around", default="clamped", help="centre of the random plane (default: clamped)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    p.add_argument("--bn", default="keep", choices=BN_MODES, help="BN statistics (default: keep)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4, help="--bn recalibrate: training batches")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", "_anchors.csv", ".config.json"], args.force)
    run = Run(common.resolve_runs(args)[0])
    specs = ["pretrained", "compressed", "clamped"]
    states = {s: load_state_spec(run, s) for s in dict.fromkeys([*specs, args.around])}
    model = run.model("pretrained")
    planes = {"states": states_plane(model, [states[s] for s in specs], specs),
              "random": random_plane(model, states[args.around], args.around, seed=args.seed)}
    batches, dev = common.test_batches(args)
    bn_data = common.bn_batches(args, args.bn_batches) if args.bn == "recalibrate" else None
    model = model.to(dev)

    results = {}
    for kind, plane in planes.items():
        config = SurfaceConfig(plane=kind, resolution=args.resolution, bn=args.bn, seed=args.seed,
                               range=None if kind == "states" else ((-args.random_range, args.random_range),))
        fingerprint = {"script": STEM, "plane": kind, "resolution": args.resolution, "limit": args.limit,
                       "bn": args.bn, "bn_batches": args.bn_batches, "seed": args.seed, "range": args.random_range,
                       "around": args.around, "device": dev.type, "run": state_digest(states[args.around])}
        journal = Journal.open(Path(args.out_dir) / f".{STEM}-{kind}.journal.json", fingerprint,
                               discard_other=args.force)
        if not args.json:
            print(f"{kind} plane: {args.resolution}² points on {args.limit} test images …", file=sys.stderr)
        results[kind] = evaluate_surface(model, plane, batches, config, bn_data=bn_data, progress=not args.json,
                                         journal=journal)
        journal.remove()

    fig, axes = plots.figure(2, 2, width=6.4, height=5.4)
    rows, anchor_rows, summary = [], [], {}
    for r, (kind, res) in enumerate(results.items()):
        plane = planes[kind]
        x, y = res.coords
        unit = plane.units
        plots.surface_contour(axes[r, 0], x, y, res.loss, anchors=[(a, c) for a, c, *_ in res.anchors],
                              path=kind == "states", equal_aspect=kind == "states", xlabel=f"x ({unit})",
                              ylabel=f"y ({unit})", title=f"{kind} plane: test loss")
        axes[r, 1].remove()
        ax3d = fig.add_subplot(2, 2, 2 * r + 2, projection="3d")
        plots.surface_3d(ax3d, x, y, res.loss, xlabel="x", ylabel="y", title=f"{kind} plane (3-D)")
        for i, xi in enumerate(x):
            for j, yj in enumerate(y):
                rows.append({"plane": kind, "i": i, "j": j, "x": xi, "y": yj, "loss": res.loss[i, j],
                             "accuracy": res.accuracy[i, j]})
        for label, c, loss, acc in res.anchors:
            anchor_rows.append({"plane": kind, "state": label, "x": c[0], "y": c[1], "loss": loss, "accuracy": acc})
        summary[kind] = {"units": unit, **{k: v for k, v in plane.info.items()},
                         "loss_min": float(res.loss.min()), "loss_max": float(res.loss.max()),
                         "anchors": {a: {"x": c[0], "y": c[1], "loss": lo, "accuracy": ac}
                                     for a, c, lo, ac in res.anchors}}
    fig.suptitle(f"{run.path.name}: {common.run_label(run)}  ({results['states'].n} test images, BN {args.bn})",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    common.write_csv(out["_anchors.csv"], anchor_rows)
    common.write_config(out[".config.json"], args, run=str(run.path), seeds=1, summary=summary)
    if args.json:
        cli.print_json({"outputs": {k: str(v) for k, v in out.items()}, **summary})
    else:
        for kind, s in summary.items():
            print(f"{kind}: loss {s['loss_min']:.4f} … {s['loss_max']:.4f}; "
                  + "; ".join(f"{a} at ({v['x']:.3f}, {v['y']:.3f}) loss {v['loss']:.4f}"
                              for a, v in s["anchors"].items()))
        print(f"wrote {out['.png']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_surface")
