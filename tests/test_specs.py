"""landscape/specs.py: a RunSpec is what the library trains from; its JSON form is the run file's config, so a
run file's settings rebuild the same spec (resume, studies), and a spec built in Python equals the CLI's."""

import dataclasses
import doctest

import pytest

from landscape import specs
from landscape.specs import RunSpec
from landscape.trainer import TrainConfig


def test_docstring_examples():
    assert doctest.testmod(specs).failed == 0


def test_cli_and_python_build_the_same_spec(tiny_checkpoint):
    from landscape import train

    p, owners = train.parser()
    args = p.parse_args(["--arch", "tiny", "--checkpoint", str(tiny_checkpoint), "--method", "weight-coupling",
                         "--h", "0.1", "--epochs", "2", "--limit-train", "64", "--seed", "3"])
    from_cli = train.spec_from_args(args, owners, "cpu")
    by_hand = RunSpec.resolved(str(tiny_checkpoint), arch="tiny", method="weight-coupling", compressor={"h": 0.1},
                               train=TrainConfig(epochs=2, seed=3), limit_train=64)
    assert from_cli == by_hand and from_cli.checkpoint_sha256 and from_cli.seed == 3
    settings = from_cli.to_settings()
    assert settings["seed"] == settings["train"]["seed"] == 3 and settings["compressor"]["h"] == 0.1
    assert RunSpec.from_settings(settings) == from_cli


def test_an_old_run_files_settings_get_todays_defaults():
    settings = RunSpec(arch="tiny", checkpoint=None).to_settings()
    del settings["train"]["compile"], settings["train"]["precision"], settings["recalibrate_bn"]
    old = RunSpec.from_settings(settings)
    assert old.train.compile == "off" and old.train.precision == "fp32" and old.recalibrate_bn == 0


def test_bad_specs_are_refused_at_construction():
    with pytest.raises(ValueError, match="has no setting"):
        RunSpec(arch="tiny", checkpoint=None, method="centroid", compressor={"h": 1.0})
    with pytest.raises(ValueError, match="unknown method"):
        RunSpec(arch="tiny", checkpoint=None, method="no-such-method")
    with pytest.raises(ValueError, match="checkpoint_every"):
        RunSpec(arch="tiny", checkpoint=None, checkpoint_every=0)
    spec = RunSpec(arch="tiny", checkpoint=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.arch = "resnet20"
    assert spec.at({"h": 0.2}).compressor["h"] == 0.2 and spec.compressor["h"] != 0.2  # a new spec, not a change
