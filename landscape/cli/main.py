"""`landscape COMMAND [options]`: the one command, a table of subcommands (optuna's cli.py pattern). Each command
is a module of this package with `main(argv)` that parses argv into a spec and calls the library; `python -m
landscape.<command>` runs the same module.

    landscape --help                     the commands
    landscape train --help               one command's options
    landscape evaluate --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --json
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command → what it does (its module: landscape.cli.<command>)
COMMANDS: dict[str, str] = {
    "train": "fine-tune with a compression loss, clamp, evaluate; one run file (HDF5)",
    "evaluate": "test accuracy and loss of a checkpoint",
    "ptq": "post-training quantization baseline of a checkpoint (uniform, heq, kmeans)",
    "pretrain": "adapt a public checkpoint to the data by short fine-tuning",
    "interpolate": "loss and accuracy along a path through a run's states",
    "perturb": "the compressed displacement against equal-norm random directions",
    "surface": "a 2-D loss surface (or a 1-D scan) through a run's states or random directions",
    "hessian": "Hessian spectra of a run's states: top/bottom eigenvalues, trace, density, per layer",
    "export": "a run's clamped model as codebooks + bit-packed indices, and its size on disk",
    "study": "grids and Pareto searches over settings × seeds on Optuna (create, run, report, migrate)",
    "reproduce": "run the steps behind REPRODUCTION.md (resumable), compute each claim's row, write the report",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return ("usage: landscape COMMAND [options]   (landscape COMMAND --help: its options)\n\n"
            "Soft quantization and loss-landscape analysis of compressed neural networks.\n\ncommands:\n"
            + "\n".join(lines) + "\n")


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's argument parser, and every subcommand's (`study create`, …), by its command line."""
    out = {}
    for name in COMMANDS:
        p = importlib.import_module(f"landscape.cli.{name}").parser()
        p = p[0] if isinstance(p, tuple) else p  # train's parser() also returns its method-option owners
        out[f"landscape {name}"] = p
        for action in p._actions:  # argparse keeps subcommands here; no public accessor
            if isinstance(action, argparse._SubParsersAction):
                out.update({f"landscape {name} {sub}": sp for sub, sp in action.choices.items()})
    return out


def reference() -> str:
    """The CLI reference as Markdown: each command's `--help`, generated from its parser (docs/cli-reference.md
    is built from this, so it cannot drift from the code)."""
    import os

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal's width: the same page on every machine
    try:
        blocks = [f"## `{line}`\n\n```text\n{p.format_help().rstrip()}\n```\n" for line, p in parsers().items()]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(blocks)


def main(argv: list[str] | None = None) -> None:
    """Dispatch `landscape COMMAND ...` to the command's module (imported only when asked for)."""
    from . import run

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"landscape: error: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"landscape.cli.{name}")
    run(lambda _argv: module.main(rest), f"landscape {name}")


if __name__ == "__main__":
    main()
