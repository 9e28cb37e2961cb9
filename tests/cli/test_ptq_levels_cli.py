"""`landscape ptq --levels-from RUN.h5`: the matched-bits PTQ baseline of a mixed-precision (soft-quantization) run,
and its one-line errors (exit 2, nothing written)."""

import json
import shutil

import h5py
import pytest
import torch
from conftest import ADAPTED_R20, SHARED, assert_one_line_error

from landscape.compress.ptq import matched_levels
from landscape.store import Run

DATA = SHARED / "data"


def ptq_args(checkpoint, out, *extra, arch="tiny"):
    return ["--arch", arch, "--checkpoint", checkpoint, "--data", DATA, "--limit", 50, "--out", out, *extra]


def test_levels_from_gives_every_layer_the_runs_levels(run_cli, tiny_run, tiny_checkpoint, tmp_path):
    out = tmp_path / "matched.pt"
    r = run_cli("ptq", "--method", "kmeans", "--levels-from", tiny_run, *ptq_args(tiny_checkpoint, out), "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    run = Run(tiny_run)
    levels = matched_levels(run)
    assert summary["levels"] == levels and summary["levels_from"] == str(tiny_run) and summary["bits"] is None
    assert summary["bits_per_layer"] == run.bits()["effective"]
    assert summary["mean_effective_bits"] == run.bits()["mean_effective"] == summary["levels_from_mean_effective_bits"]
    saved = torch.load(out, weights_only=False)
    assert saved["ptq"]["levels"] == levels
    for name, k in levels.items():
        assert torch.unique(saved["state_dict"][name]).numel() == k
    # plain text output names the run
    r = run_cli("ptq", "--method", "kmeans", "--levels-from", tiny_run, *ptq_args(tiny_checkpoint, tmp_path / "t.pt"))
    assert r.code == 0 and f"at the levels of {tiny_run}" in r.out


def test_levels_from_with_bits_for_the_layers_the_run_did_not_quantize(run_cli, tiny_run, tiny_checkpoint,
                                                                        tmp_path):
    out = tmp_path / "all.pt"
    r = run_cli("ptq", "--method", "kmeans", "--levels-from", tiny_run, "--bits", 1, "--params", "all",
                *ptq_args(tiny_checkpoint, out), "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    levels = matched_levels(tiny_run)
    assert summary["bits"] == 1
    assert all(summary["bits_per_layer"][n] == Run(tiny_run).bits()["effective"][n] for n in levels)
    assert summary["bits_per_layer"]["bn1.weight"] <= 1  # not in the run: 2^1 levels


def _renamed_copy(run, tmp_path, old="linear.weight", new="ghost.weight"):
    path = tmp_path / "renamed.h5"
    shutil.copy(run, path)
    with h5py.File(path, "r+") as f:
        f.move(f"final/clusters/{old}", f"final/clusters/{new}")
    return path


@pytest.mark.parametrize("case", ["ghost layer", "no count, no bits", "params all, no bits", "other arch",
                                  "other arch with bits", "missing run", "not finished", "gptq", "neither"])
def test_levels_from_bad_input_is_one_line_exit_2_nothing_written(case, run_cli, tiny_run, tiny_checkpoint,
                                                                   tmp_path):
    out = tmp_path / "q.pt"
    method, extra, checkpoint, arch, needles = "kmeans", [], tiny_checkpoint, "tiny", []
    if case == "ghost layer":  # the run quantized a layer the model does not have (and lacks linear.weight)
        extra, needles = ["--levels-from", _renamed_copy(tiny_run, tmp_path)], ["ghost.weight", "does not quantize"]
    elif case == "no count, no bits":  # linear.weight missing from the run, no --bits for it
        path = tmp_path / "partial.h5"
        shutil.copy(tiny_run, path)
        with h5py.File(path, "r+") as f:
            del f["final/clusters/linear.weight"]
        extra, needles = ["--levels-from", path], ["no level count", "linear.weight", "--bits"]
    elif case == "params all, no bits":
        extra, needles = ["--levels-from", tiny_run, "--params", "all"], ["no level count", "bn1.weight"]
    elif case == "other arch":  # a tiny run against ResNet-20: its layers lack counts
        extra, checkpoint, arch = ["--levels-from", tiny_run], ADAPTED_R20, "resnet20"
        needles = ["no level count", "layer1.1.conv1.weight"]
    elif case == "other arch with bits":  # the tiny names exist in ResNet-20 too, with other shapes
        extra, checkpoint, arch = ["--levels-from", tiny_run, "--bits", "2"], ADAPTED_R20, "resnet20"
        needles = ["not a run of this model", "conv1.weight", "shape"]
    elif case == "missing run":
        extra, needles = ["--levels-from", tmp_path / "nope.h5"], ["nope.h5", "does not exist"]
    elif case == "not finished":
        path = tmp_path / "unfinished.h5"
        shutil.copy(tiny_run, path)
        with h5py.File(path, "r+") as f:
            del f["final"]
        extra, needles = ["--levels-from", path], ["final/clusters", "finished"]
    elif case == "gptq":
        method, extra, needles = "gptq", ["--levels-from", tiny_run, "--bits", "3"], ["levels_from", "gptq"]
    elif case == "neither":
        needles = ["--bits", "--levels-from"]
    r = run_cli("ptq", "--method", method, *extra, *ptq_args(checkpoint, out, arch=arch))
    assert r.code == 2
    assert_one_line_error(r, *needles)
    assert not out.exists()
