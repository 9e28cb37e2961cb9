"""Shared pieces of the commands (`landscape <command>`, or `python -m landscape.<command>`): common arguments,
declared once (data, device, evaluation split/limit/BN/--no-fast, seed, --name/--out/--force/--json), output-path
checks, and the rule that a user error prints one line (`<tool>: error: ...`), exits 2 and shows no traceback.
Set LANDSCAPE_DEBUG=1 to see the traceback anyway."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

import torch

from ..errors import LandscapeError
from ..outputs import check_out  # noqa: F401  (cli.check_out, as the commands and scripts call it)

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): `prog: error: message`, exit 2."""

    def __init__(self, prog: str, description: str | None = None, **kwargs):
        super().__init__(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                         **kwargs)

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def add_data_args(p: argparse.ArgumentParser, *, text: bool = False) -> None:
    """--data, --dataset and the other data options; `text`: --dataset also takes text (a UTF-8 file as --data)."""
    from ..datasets import DATASETS

    p.add_argument("--data", default=None, help="folder with cifar10-jpeg.tar.gz or cifar-10-batches-py/ (or "
                   "cifar-100-python/, or an image tree DIR/train/<class>/…, DIR/test/<class>/…), the only "
                   "place searched (--download fetches into it); default: $LANDSCAPE_DATA if set (likewise the "
                   "only place), else ../shared/data, then ~/.cache/landscape")
    p.add_argument("--dataset", default=None, choices=(*DATASETS, "text") if text else DATASETS,
                   help="cifar10, cifar100 or imagefolder" + (", or text (--data: a UTF-8 file; default "
                                                              "../shared/data/tinyshakespeare.txt)" if text else "")
                   + " (default: a run's own dataset, else cifar10)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="imagefolder: images resized and centre-cropped to this many pixels square (default: 32)")
    p.add_argument("--normalization", default=None, help="per-channel input normalization: imagenet, measured "
                   "(on the training split) or m1,m2,m3,s1,s2,s3 (default: a run's own, else imagenet for cifar10 "
                   "and measured for the others)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 if no local copy")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps (default: cpu)")
    p.add_argument("--batch-size", type=int, default=500, help="evaluation batch size in images (default: 500)")


def add_model_args(p: argparse.ArgumentParser, *, checkpoint_required: bool = True) -> None:
    from ..models import ARCHS

    p.add_argument("--arch", default="resnet20", help=f"one of {', '.join(ARCHS)} (default: resnet20), or any "
                   "importable model factory package.module:factory, e.g. torchvision.models:mobilenet_v3_small")
    p.add_argument("--arch-kwargs", type=json_object, default=None, metavar="JSON",
                   help='keyword arguments of the arch\'s factory, e.g. \'{"num_classes": 10}\'')
    p.add_argument("--checkpoint", required=checkpoint_required,
                   help="checkpoint path, or an arch name (resnet20, resnet56, …) for the public weights")


def add_result_args(p: argparse.ArgumentParser, group: str, default: str) -> None:
    """--name, --out, --force and --json of an analysis command that stores its result under /<group>/<name>."""
    p.add_argument("--name", default=None, help=f"result name under /{group} (default: {default})")
    p.add_argument("--out", default=None, help="write the result (and its PNG, beside it) into this HDF5 file "
                   "instead of the run file")
    p.add_argument("--force", action="store_true", help="replace an existing result of the same name (and its PNG, "
                   "and an --out file), and discard a journal left by a different command")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def add_eval_args(p: argparse.ArgumentParser, *, splits: tuple[str, ...] = ("test", "train"),
                  split_help: str = "", limit: int | None = None, bn: str | None = None, bn_help: str = "",
                  bn_batches: int = 4, fast: bool = True) -> None:
    """The evaluation options every analysis command shares, declared once: --split, --limit, --bn and
    --bn-batches (if the analysis has a BN mode: `bn` is its default), --no-fast (if it has the BN-folded forward:
    `fast`)."""
    from ..bn import BN_MODES

    p.add_argument("--split", default="test", choices=splits,
                   help="the images evaluated (default: test; train images are unaugmented"
                        + (f"; {split_help})" if split_help else ")"))
    p.add_argument("--limit", type=positive_int, default=limit,
                   help=f"first N images of the split (class-balanced prefix; default: {limit or 'all'})")
    if bn is not None:
        p.add_argument("--bn", default=bn, choices=BN_MODES,
                       help=f"BN running statistics: {bn_help} (default: {bn})")
        p.add_argument("--bn-batches", type=positive_int, default=bn_batches,
                       help=f"--bn recalibrate: training batches of --batch-size images per evaluated state "
                            f"(default: {bn_batches})")
    if fast:
        p.add_argument("--no-fast", action="store_true", help="evaluate the model as is (no BN folding, default "
                       "memory layout): bit-identical to landscape.evaluate, ~1.5× slower on CPU")


def add_seed_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=f"seed of {what} (default: 0)")


def data_source(args: argparse.Namespace):
    """The --data/--dataset/--image-size/--normalization/--download options as a specs.DataSource."""
    from ..specs import DataSource

    return DataSource(folder=args.data, dataset=args.dataset, image_size=args.image_size,
                      normalization=args.normalization, download=args.download)


def analysis_fields(args: argparse.Namespace) -> dict:
    """The fields every analysis spec takes (specs.AnalysisSpec), from the shared options."""
    return {"run": args.run, "name": args.name, "out": args.out, "force": args.force, "split": args.split,
            "limit": args.limit, "batch_size": args.batch_size, "data": data_source(args), "device": args.device}


def run_analysis_command(spec, as_json: bool, report: Callable) -> int:
    """An analysis command's body: run `spec` under torchrun's process group if there is one
    (analysis.engine.run_analysis) and, on rank 0, print the outcome as JSON or by `report(outcome)`."""
    from ..analysis.engine import run_analysis

    def body(dev, world) -> int:
        outcome = run_analysis(spec, world=world, device=dev, progress=not as_json)
        if outcome is not None:
            if as_json:
                from ..metrics import classifier_only

                print_json(classifier_only(outcome.to_dict()))  # a language model has no accuracy to report
            else:
                report(outcome)
        return 0

    return in_world(spec.device, body)


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {text!r}")
    return value


def recorded_dataset(run_file: str) -> str | None:
    """The dataset name a run file recorded ("text" for a language model's run), or None where the file cannot be
    read (the analysis then says why, in its own words)."""
    from ..errors import LandscapeError
    from ..store import Run

    try:
        return (Run(run_file).config.get("data") or {}).get("name", "cifar10")
    except (LandscapeError, OSError):
        return None


def data_spec(args: argparse.Namespace, run=None) -> dict:
    """The data to use: --dataset/--image-size/--normalization where given, else what `run` (a store.Run)
    recorded, else CIFAR-10 (datasets.load_recorded reads it); specs.DataSource.recorded says how."""
    return data_source(args).recorded(run.config.get("data") if run is not None else None)


def load_data(args: argparse.Namespace, run=None):
    """(train, test) splits for a CLI: `data_spec` loaded from --data (or the default places)."""
    return data_source(args).load(run)


def selection_arg(text: str) -> str:
    """A parameter selection (landscape/params.py: weights, all, ±patterns), checked as an argparse type."""
    from ..params import check_selection

    try:
        return check_selection(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {value}")
    return value


def device(name: str) -> torch.device:
    """--device checked (distributed.usable_device): one-line error where it is not usable."""
    from ..distributed import usable_device

    return usable_device(name)


def in_world(device_name: str, body: Callable) -> int:
    """body(device, world) inside the process group torchrun describes (a single process: World()), on the
    device this rank should use (`cuda` → the GPU of its local rank), leaving the group however body ends."""
    from .. import distributed

    dev = distributed.device_for(device_name)
    device(str(dev))
    world = distributed.init(dev)
    try:
        code = body(dev, world)
        # every rank waits for rank 0's writes before the group goes: a rank that tore down its gloo group while
        # a peer was still working aborted now and then ("terminate called without an active exception")
        distributed.barrier(world)
        return code
    finally:
        distributed.finish(world)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


def run(main: Callable[[list[str] | None], int | None], prog: str) -> None:
    """Call main(argv); turn user errors into one line on stderr and exit status 2."""
    try:
        code = main(None)
    except (LandscapeError, ValueError, FileExistsError, PermissionError) as e:
        if os.environ.get("LANDSCAPE_DEBUG"):
            raise
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
