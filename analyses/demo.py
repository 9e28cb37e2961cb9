"""The quick end-to-end reproduction behind `make demo`: two short soft-quantization runs of the adapted
ResNet-20, then every figure script on them and the PTQ table, all into figures/demo/.

  1. runs/demo/soft-quant.h5     weight coupling with the paper's h = 0.05, w = 0.3
  2. runs/demo/weak-coupling.h5  the same with h = 0.001, the paper's example of a too weak coupling
  3. figures/demo/weight_histograms.*  (Fig. 1)        run 1: pretrained, after epoch 1, final, clusters
  4. figures/demo/perturbation.*       (Fig. 3)        run 1: compressed, clamped, HEQ 4-bit vs random
  5. figures/demo/paths.*              (§4.2, Fig. 2A) runs 1 and 2: pretrained → compressed → clamped
  6. figures/demo/accuracy_vs_bits.*   (Pareto)        runs 1 and 2 vs HEQ at 2–6 bits
  7. figures/demo/ptq_table.*          analyses/table_ptq.py on the same test images

Budget (defaults): each run fine-tunes on the first 2,560 training images for 2 epochs (40 SGD steps of 128
images); evaluations use the first 1,000 test images, the perturbation test 500 (and 500 training images for
the BN recalibration of every perturbed state). That is far below the paper's budget (full training set, more
epochs, full test set): the demo exercises the whole pipeline and shows the direction of each effect, not the
paper's numbers. The figures in figures/ itself (full budgets) are not touched. Each step runs as its own
process (`python -m landscape.train`, `python analyses/...`), exactly as a user would run it; a failing step
stops the demo with its exit status. The timing table printed at the end is the measurement of record.
Every step overwrites its outputs (`--force`): figures/demo/ is committed, so a fresh clone already holds them, and
`make demo` run twice in a row rewrites them both times (tests/scripts/test_demo.py runs it at a tiny budget into a copy
of the committed folder; CI runs `make demo` on its fresh clone after `make test`).

  python analyses/demo.py [--device cpu] [--limit-train 2560] [--epochs 2] [--limit 1000] [--reuse-runs]
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import common

from landscape import cli
from landscape.analysis.paths import PathConfig
from landscape.analysis.perturbation import PerturbConfig
from landscape.figures import make
from landscape.figures.accuracy_vs_bits import AccuracyVsBitsFigure
from landscape.figures.paths import PathsFigure
from landscape.figures.perturbation import PerturbationFigure
from landscape.figures.ptq_table import PTQTable
from landscape.figures.weight_histograms import WeightHistogramsFigure
from landscape.specs import DataSource, RunSpec
from landscape.trainer import TrainConfig
from landscape.training import run_training

RUNS = {  # name → weight-coupling settings
    "soft-quant": {"h": 0.05, "w": 0.3},  # the paper's setting for ResNet-20
    "weak-coupling": {"h": 0.001, "w": 0.3},  # the paper's failure example: clustering never completes
}


def parser():
    p = cli.Parser("analyses/demo.py", __doc__)
    p.add_argument("--out-dir", default=str(common.FIGURES / "demo"),
                   help="figures and tables (default: figures/demo/)")
    p.add_argument("--runs-dir", default=str(common.REPO / "runs" / "demo"),
                   help="run files (default: runs/demo/)")
    p.add_argument("--limit-train", type=cli.positive_int, default=2560,
                   help="training images per run (default: 2560)")
    p.add_argument("--epochs", type=cli.positive_int, default=2, help="epochs per run (default: 2)")
    p.add_argument("--train-batch-size", type=cli.positive_int, default=128,
                   help="images per SGD step (default: 128)")
    p.add_argument("--limit", type=cli.positive_int, default=1000,
                   help="test images per evaluation (default: 1000)")
    p.add_argument("--directions", type=cli.positive_int, default=10,
                   help="random directions per target in the perturbation figure (default: 10)")
    p.add_argument("--perturb-limit", type=cli.positive_int, default=500,
                   help="test images (and BN-recalibration training images) of the perturbation test "
                        "(default: 500)")
    p.add_argument("--reuse-runs", action="store_true",
                   help="keep run files that already exist instead of retraining")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: see landscape.data)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    return p


def run_spec(settings: dict, args) -> RunSpec:
    """The demo's run of the adapted ResNet-20 with weight-coupling `settings` (h, w), at the demo's budget: a
    checkpoint every half epoch, cluster stats once per epoch, evaluations on the first --limit test images."""
    steps_per_epoch = args.limit_train // args.train_batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--limit-train {args.limit_train} is less than one batch of {args.train_batch_size}")
    train = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, stats_every=steps_per_epoch,
                        device=args.device)
    return RunSpec.resolved(str(common.ADAPTED_R20), arch="resnet20", method="weight-coupling",
                            compressor=dict(settings), train=train, limit_train=args.limit_train,
                            limit_test=args.limit, checkpoint_every=max(1, steps_per_epoch // 2))


def figure_specs(args, good: Path, weak: Path) -> dict[str, object]:
    """step name → the spec of each figure and table of the demo, on the two runs."""
    shared = {"out_dir": args.out_dir, "force": True, "device": args.device, "data": DataSource(folder=args.data)}
    return {
        "fig_weight_histograms": WeightHistogramsFigure(**shared, run=str(good), limit=args.limit),
        "fig_perturbation": PerturbationFigure(
            **shared, run=str(good), limit=args.perturb_limit, batch_size=args.perturb_limit,
            config=PerturbConfig(directions=args.directions, alphas=(-1.0, 0.0, 1.0, 2.0), bn_batches=1)),
        "fig_paths": PathsFigure(**shared, runs=(str(good), str(weak)), limit=args.limit, config=PathConfig(points=6),
                                 labels=("h=0.05 (paper's setting)", "h=0.001 (paper's failure setting)")),
        "fig_accuracy_vs_bits": AccuracyVsBitsFigure(**shared, runs=(str(good), str(weak)), limit=args.limit,
                                                     labels=("h=0.05", "h=0.001")),
        "table_ptq": PTQTable(**shared, checkpoint=str(common.ADAPTED_R20), limit=args.limit),
    }


@contextlib.contextmanager
def timed(name: str, log: list, what: str = ""):
    """A step: its header line, then its seconds appended to `log` once it finished."""
    print(f"\n=== {name}{what}", flush=True)
    t0 = time.perf_counter()
    yield
    log.append((name, time.perf_counter() - t0))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    runs_dir, out_dir = Path(args.runs_dir), Path(args.out_dir)
    for folder in (runs_dir, out_dir):
        cli.check_out(folder / ".probe", force=True)  # creates the folder, checks it is writable
    cli.device(args.device)

    started, log = time.perf_counter(), []
    run_paths = {}
    for name, settings in RUNS.items():
        path = runs_dir / f"{name}.h5"
        run_paths[name] = path
        spec = run_spec(settings, args)
        if args.reuse_runs and path.is_file():
            print(f"\n=== train {name}: reusing {path}")
            continue
        with timed(f"train {name}", log, f": weight coupling h={settings['h']}, w={settings['w']} → {path}"):
            summary = run_training(path, spec, data=args.data, device=args.device)
        print(f"clamped: accuracy {100 * summary['accuracy_clamped']:.2f}%  loss {summary['loss_clamped']:.4f}; "
              f"mean bits {summary['mean_bits']:.2f}")

    for name, spec in figure_specs(args, run_paths["soft-quant"], run_paths["weak-coupling"]).items():
        with timed(name, log, f": {type(spec).__name__}"):
            result = make(spec)
        print("\n".join(result.lines))

    total = time.perf_counter() - started
    print("\n| step | seconds |\n|---|---|")
    for name, seconds in log:
        print(f"| {name} | {seconds:.0f} |")
    print(f"| total | {total:.0f} |")
    print(f"\nrun files: {', '.join(str(p) for p in run_paths.values())}")
    print(f"figures, CSV and config JSON: {out_dir}/")
    for png in sorted(out_dir.glob("*.png")):
        print(f"  {png}")
    jupyter = Path(sys.executable).parent / "jupyter"  # the venv's own, so it works without activating the venv
    install = "" if jupyter.exists() else f"{sys.executable} -m pip install -e '.[notebook]', then "
    good = run_paths["soft-quant"]
    print(f"notebook: {install}LANDSCAPE_RUN={good} {jupyter} lab notebooks/explore.ipynb")
    return 0


if __name__ == "__main__":
    cli.run(main, "demo")
