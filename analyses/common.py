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
from landscape.figures.base import (  # noqa: E402, F401  (the helpers the scripts call as common.*)
    checkpoint_epochs,
    energy_gradient,
    run_label,
    study_runs,
)
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


def described(doc: str, figure: type) -> str:
    """A figure script's --help text: its own docstring, then its figure's (the spec's module docstring, without
    its runnable examples): what a figure shows and which claim it reproduces is written once, in the library."""
    text, skipping = [], False
    for line in (sys.modules[figure.__module__].__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped.startswith((">>>", "...")):
            skipping = True
        elif skipping and not stripped:
            skipping = False
        elif not skipping:
            text.append(line)
    return f"{doc.rstrip()}\n\n{figure.__name__} (landscape.figures):\n\n" + "\n".join(text).strip() + "\n"


def figure_fields(args: argparse.Namespace) -> dict:
    """The fields every figure spec (landscape.figures.FigureSpec) takes, from the options `parser` declares."""
    return {"out_dir": args.out_dir, "force": args.force, "limit": args.limit, "batch_size": args.batch_size,
            "data": cli.data_source(args), "device": args.device, "quiet": args.json}


def show(result, as_json: bool) -> int:
    """Print a figure job's result (landscape.figures.FigureResult): one JSON object, or its lines."""
    if as_json:
        cli.print_json(result.to_dict())
    else:
        for line in result.lines:
            print(line)
    return 0


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


def resolve_runs(args: argparse.Namespace, figure: type | None = None, stem: str | None = None) -> list[Path]:
    """The --run file(s), or the small run made on demand; with `figure` (a FigureSpec type) its outputs under
    `stem` are checked first, so an existing output is refused before a small run is trained."""
    if figure is not None:
        outputs(args.out_dir, stem or figure.STEM, figure.SUFFIXES, args.force)
    runs = args.run if isinstance(args.run, list) else ([args.run] if args.run else [])
    if not runs:
        runs = [small_run(args.out_dir, data=args.data, device=args.device, quiet=args.json)]
    return [Path(r) for r in runs]
