"""The one command (landscape/cli/main.py): `landscape COMMAND …` runs the same module as `python -m
landscape.COMMAND`, every command of the table exists in landscape/cli/, and bad input is one line, exit 2."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, SHARED, assert_one_line_error

from landscape.cli import main as command


@pytest.mark.parametrize("name", sorted(command.COMMANDS))
def test_every_command_is_a_module_of_the_cli_package_and_a_python_m_form(name):
    module = importlib.import_module(f"landscape.cli.{name}")
    shim = importlib.import_module(f"landscape.{name}")
    assert callable(module.main) and shim.main is module.main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        command.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in command.COMMANDS)


def test_unknown_command_and_bad_option_are_one_line(capsys):
    from conftest import CliResult

    for argv in (["nope"], ["evaluate", "--batch-size", "0", "--checkpoint", "x"]):
        with pytest.raises(SystemExit) as done:
            command.main(argv)
        captured = capsys.readouterr()
        assert_one_line_error(CliResult(done.value.code, captured.out, captured.err), "error")
        assert done.value.code == 2


def test_landscape_evaluate_equals_python_m_landscape_evaluate(capsys, run_cli):
    args = ["--arch", "resnet20", "--checkpoint", str(MODELS / "resnet20-cifar10jpeg.pt"), "--data",
            str(SHARED / "data"), "--json"]
    with pytest.raises(SystemExit) as done:
        command.main(["evaluate", *args])
    assert done.value.code == 0
    ours = capsys.readouterr().out
    theirs = run_cli("evaluate", *args)
    assert theirs.code == 0 and ours == theirs.out and '"accuracy": 0.881' in ours


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "landscape"
    assert script.is_file(), "pip install -e . installs the `landscape` command ([project.scripts])"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "commands:" in done.stdout


def test_the_cli_reference_is_generated_from_every_parser():
    text = command.reference()
    for name in command.COMMANDS:
        assert f"## `landscape {name}`" in text
    for sub in ("create", "run", "report"):
        assert f"## `landscape study {sub}`" in text
    assert "--precision {fp32,bf16}" in text and "--deterministic" in text  # train's options, as parsed


def test_method_settings_help_is_the_fields_comment_without_the_linters_noqa(capsys):
    from landscape.cli.config import field_comments
    from landscape.compress.vq_nas import VQNASConfig

    assert field_comments(VQNASConfig)["candidates"].endswith("comma-separated")
    with pytest.raises(SystemExit):
        command.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--arch-optimizer" in out and "noqa" not in out
