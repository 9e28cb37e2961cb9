"""Small helpers shared by the figure scripts: common arguments, the data, output files (CSV, config JSON,
PNG), and a small soft-quantization run for scripts started without --run.

Imported by the scripts as `common` (they run as `python analyses/<script>.py`, so this folder is on
sys.path). The checkout's root is put first on sys.path too, so the scripts use this checkout's `landscape`
even where the package is not (or not correctly) installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from landscape import cli  # noqa: E402
from landscape.bn import recalibration_batches  # noqa: E402
from landscape.data import Batches  # noqa: E402
from landscape.outputs import write_csv, write_json  # noqa: E402, F401  (the scripts' writers)

FIGURES = REPO / "figures"
ADAPTED_R20 = REPO.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"

# The budget of the run made when a script gets no --run: ~2 min on 2 CPU cores (train subset, one epoch).
SMALL_RUN = {"limit_train": 2000, "epochs": 1, "limit_test": 500, "h": 0.05, "w": 0.3}


def parser(prog: str, doc: str | None, *, run_nargs: str | None = None) -> argparse.ArgumentParser:
    """--run, --out-dir, --limit and the data/device options every figure script takes."""
    p = cli.Parser(prog, doc)
    p.add_argument("--run", nargs=run_nargs, default=None,
                   help="run file(s) from landscape.train (default: make a small soft-quantization run of "
                        f"the adapted ResNet-20 in OUT_DIR/runs/: {SMALL_RUN})")
    p.add_argument("--out-dir", default=str(FIGURES),
                   help="where the PNG, CSV and config JSON go (default: figures/)")
    p.add_argument("--limit", type=cli.positive_int, default=1000,
                   help="first N test images for every evaluation (class-balanced prefix; default: 1000)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    p.add_argument("--json", action="store_true",
                   help="print the output paths and numbers as one JSON object")
    cli.add_data_args(p)
    return p


def outputs(out_dir: str | os.PathLike, stem: str, suffixes: Iterable[str], force: bool) -> dict[str, Path]:
    """The output paths <out_dir>/<stem><suffix>, checked before any work: refuses to overwrite without
    --force."""
    paths = {s: Path(out_dir) / f"{stem}{s}" for s in suffixes}
    for path in paths.values():
        cli.check_out(path, force)
    return paths


def test_batches(args: argparse.Namespace):
    """(test Batches on --limit images, device)."""
    dev = cli.device(args.device)
    _, test = cli.load_data(args)
    return Batches(test.subset(args.limit), args.batch_size, train=False, device=dev), dev


SPLITS = ("test", "train", "both")  # --split of the scripts that evaluate on either, as landscape.interpolate


def eval_batches(args: argparse.Namespace, split: str = "test") -> tuple[dict, object]:
    """({"test": …, "train": …} unaugmented Batches of the first --limit images of each split asked for (test,
    train, or both; class-balanced prefixes, as `python -m landscape.interpolate --split`), the training split
    (for BN recalibration batches))."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    dev = cli.device(args.device)
    train, test = cli.load_data(args)
    names = ["test", "train"] if split == "both" else [split]
    return {s: Batches((test if s == "test" else train).subset(args.limit), args.batch_size, train=False,
                       device=dev) for s in names}, train


def bn_batches(args: argparse.Namespace, n_batches: int) -> list:
    """The first n_batches unaugmented training batches of --batch-size images (for BN recalibration), as a
    list so that every recalibration sees exactly the same tensors."""
    train, _ = cli.load_data(args)
    return recalibration_batches(train, n_batches, args.batch_size, cli.device(args.device))


def write_config(path: Path, args: argparse.Namespace, **extra) -> Path:
    """The script's settings (all arguments) and any extra facts, as JSON."""
    return write_json(path, {"script": sys.argv[0], **{k: v for k, v in vars(args).items()}, **extra,
                             "written": time.strftime("%Y-%m-%d %H:%M:%S")})


def run_label(run, *, method: bool = True) -> str:
    """A short description of a run's compressor settings, e.g. 'weight-coupling h=0.05 w=0.3'."""
    settings = run.config.get("compressor", {})
    shown = " ".join(f"{k}={settings[k]}" for k in ("h", "w", "quantizer", "bits") if k in settings)
    return f"{run.method} {shown}".strip() if method else (shown or run.method)


def checkpoint_epochs(path: str | os.PathLike) -> dict[int, float]:
    """step → epoch (fractional) of every complete checkpoint of a run file."""
    import h5py

    with h5py.File(path, "r") as f:
        if "checkpoints" not in f:
            return {}
        return {int(g.attrs["step"]): float(g.attrs["epoch"]) for g in f["checkpoints"].values()
                if g.attrs.get("complete", 0) == 1}


def small_run(out_dir: str | os.PathLike, *, data: str | None, device: str, quiet: bool) -> Path:
    """A soft-quantization run of the adapted ResNet-20 with the SMALL_RUN budget, made once through the
    library call behind `landscape.train` (`training.run_training`) and reused afterwards."""
    from landscape.specs import RunSpec
    from landscape.trainer import TrainConfig
    from landscape.training import run_training

    path = Path(out_dir) / "runs" / "small-soft-quant.h5"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.h5")
    b = SMALL_RUN
    spec = RunSpec.resolved(str(ADAPTED_R20), arch="resnet20", method="weight-coupling",
                            compressor={"h": b["h"], "w": b["w"]}, train=TrainConfig(epochs=b["epochs"], device=device),
                            limit_train=b["limit_train"], limit_test=b["limit_test"], checkpoint_every=5)
    if not quiet:
        print(f"no --run given: training a small run into {path} ({b})", file=sys.stderr)
    try:
        run_training(tmp, spec, data=data, device=device, progress=not quiet)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def resolve_runs(args: argparse.Namespace) -> list[Path]:
    """The --run file(s), or the small run made on demand."""
    runs = args.run if isinstance(args.run, list) else ([args.run] if args.run else [])
    if not runs:
        runs = [small_run(args.out_dir, data=args.data, device=args.device, quiet=args.json)]
    return [Path(r) for r in runs]


def study_runs(name: str, folder: str | os.PathLike = "studies", *, storage: str | None = None) -> tuple:
    """(spec, one row per finished run: grid point, seed, run file and numbers) of the study `name`, from its
    journal <folder>/<name>/journal.log or from `storage` (an Optuna storage URL)."""
    from landscape.studies import engine, report

    study, spec = engine.open_study(storage or f"{folder}/{name}/journal.log", name)
    return spec, report.run_rows(study, spec)


def energy_gradient(fn, x, *args, **kw) -> tuple:
    """(fn(x′, *args, **kw) detached, the gradient of its sum with respect to x′) for a fresh leaf copy x′ of x, a
    tensor or a list of tensors (then a list of gradients): the energy and force of a coupling estimator."""
    many = isinstance(x, list | tuple)
    leaves = [t.detach().clone().requires_grad_(True) for t in (x if many else [x])]
    energy = fn(leaves if many else leaves[0], *args, **kw)
    energy.sum().backward()  # the layers' energies are independent: each gradient is its own layer's
    grads = [t.grad for t in leaves]
    return energy.detach(), (grads if many else grads[0])
