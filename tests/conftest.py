"""Shared fixtures: the CIFAR-10 JPEG copy (decoded once per session, then cached), the shared checkpoints, and
an in-process CLI runner that checks the one-line-error contract."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from landscape import cli
from landscape.data import load_cifar10

pytest_plugins = ["postgres"]  # tests/postgres.py: the postgres_url fixture (a throwaway PostgreSQL cluster)

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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised `tiny` model saved as a checkpoint (seed 0)."""
    from landscape.models import build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(build_model("tiny"), path, arch="tiny")
    return path


def make_tiny_run(out: Path, checkpoint: Path, *extra: str) -> Path:
    """Train the tiny model for 2 epochs on 256 images with strong weight coupling (through the CLI's main);
    the run file has checkpoints every 2 steps. About 10 s on 2 cores."""
    from landscape.train import main

    args = ["--arch", "tiny", "--checkpoint", str(checkpoint), "--data", str(SHARED / "data"), "--method",
            "weight-coupling", "--h", "0.5", "--w", "0.5", "--epochs", "2", "--lr", "0.01", "--train-batch-size", "64",
            "--limit-train", "256", "--limit-test", "200", "--checkpoint-every", "2", "--stats-every", "4",
            "--out", str(out), "--json", *extra]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_checkpoint, cifar) -> Path:
    """A finished run file of the tiny model (read-only for tests: copy it before writing into it)."""
    return make_tiny_run(tmp_path_factory.mktemp("run") / "tiny.h5", tiny_checkpoint)


TINY_GPT = {"n_layer": 2, "n_head": 2, "n_embd": 32}


@pytest.fixture(scope="session")
def tiny_gpt(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, text): a tiny GPT (2 layers, 32 wide, 16 characters of context) pretrained 30 steps on the
    first 6 kB of tinyshakespeare, and that text. A few seconds on 2 cores."""
    import dataclasses

    from landscape.lm import NANOGPT_CPU, LMPretrainSpec, pretrain_lm

    folder = tmp_path_factory.mktemp("gpt")
    text = folder / "few.txt"
    text.write_text((SHARED / "data" / "tinyshakespeare.txt").read_text()[:6000])
    spec = LMPretrainSpec(out=str(folder / "gpt.pt"), text=str(text), arch_kwargs=dict(TINY_GPT), context=16,
                          steps=30, eval_every=30, train=dataclasses.replace(NANOGPT_CPU, batch_size=8))
    pretrain_lm(spec, progress=False)
    return folder / "gpt.pt", text
