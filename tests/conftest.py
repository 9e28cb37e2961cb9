"""Shared fixtures: the CIFAR-10 JPEG copy (decoded once per session, then cached), the shared checkpoints, and
an in-process CLI runner that checks the one-line-error contract."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from landscape import cli
from landscape.data import load_cifar10

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
PUBLIC_R20 = MODELS / "resnet20-12fca82f.th"
ADAPTED_R20 = MODELS / "resnet20-cifar10jpeg.pt"


@pytest.fixture(scope="session")
def cifar():
    """(train, test) from ../shared/data; CI has it beside the clone, so a missing copy is a failure."""
    return load_cifar10(SHARED / "data")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """run_cli(module, *args) runs `python -m landscape.<module> args` in-process through cli.run."""
    import importlib

    def runner(module: str, *args: str) -> CliResult:
        mod = importlib.import_module(f"landscape.{module}")
        monkeypatch.setattr(sys, "argv", [f"landscape.{module}", *map(str, args)])
        monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
        try:
            cli.run(mod.main, f"landscape.{module}")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return runner


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """Non-zero exit, a single line on stderr naming the problem, no traceback."""
    assert result.code != 0, f"expected failure, got exit 0; stdout: {result.out}"
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.err}"
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
