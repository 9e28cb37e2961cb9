"""Every method of issue 6 through `python -m landscape.train --method NAME` on the tiny model, with defaults
only: the run file is written, and `Run.model(which)` rebuilds the very module whose accuracy /eval
records (for input-bitwise, the input quantizer around the network). Plus the methods' bad settings as
one-line CLI errors."""

import json

import pytest
import torch
from conftest import SHARED, assert_one_line_error

from landscape.data import Batches
from landscape.metrics import evaluate
from landscape.store import Run

N_TEST = 100


def train_args(checkpoint, out, method, *extra):
    return ["--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--method", method,
            "--epochs", "1", "--train-batch-size", "64", "--limit-train", "128", "--limit-test", N_TEST,
            "--checkpoint-every", "1", "--out", out, "--json", *extra]


@pytest.mark.parametrize("method", ["centroid", "dsmm", "vq", "vq-nas", "input-bitwise", "lsq", "parq",
                                    "binaryrelax", "dkm", "gptq"])
def test_method_runs_with_defaults_and_its_run_file_is_analysable(method, run_cli, tiny_checkpoint, tmp_path,
                                                                  cifar):
    out = tmp_path / f"{method}.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, method))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == method and summary["steps"] == 2 and summary["n_test"] == N_TEST
    run = Run(out)
    assert run.steps() == [1, 2]
    assert bool(run.attrs["prepared"]) == (method == "input-bitwise")
    test = Batches(cifar[1].subset(N_TEST), 500, train=False)
    evals = run.evals()
    keys = None
    for which in ("pretrained", "compressed", "clamped"):
        model = run.model(which)
        keys = keys or list(model.state_dict())
        assert list(model.state_dict()) == keys  # one module structure for every state: paths interpolate
        assert evaluate(model, test)["accuracy"] == pytest.approx(evals[which]["accuracy"], abs=1e-9), which
    assert run.model(2).state_dict().keys() == run.model("pretrained").state_dict().keys()
    bits = run.bits()
    assert bits["mean_effective"] == pytest.approx(summary["mean_bits"])
    if method == "input-bitwise":
        assert set(bits["effective"]) == {"input.channel0", "input.channel1", "input.channel2"}
        assert bits["mean_effective"] == 4.0  # default input_bits
        assert type(run.model("clamped")).__name__ == "InputQuantized"
    if method == "vq":
        assert bits["mean_effective"] <= 8 / 4 + 1e-9  # b/d = 8/4 at most (tiny layers use fewer entries)
    if method == "vq-nas":  # 2 steps, still searching: the clamp takes the argmax of α, a candidate of 1..8 bits
        assert 1 - 1e-9 <= bits["mean_effective"] <= 8 + 1e-9
        assert "nas:expected_bits" in run.scalars()
    if method == "centroid":
        assert max(bits["effective"].values()) <= 4
        clamped = run.state("clamped")
        assert all(torch.unique(clamped[name]).numel() <= 16 for name in bits["effective"])


def test_dsmm_then_and_bits_options(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "dsmm.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, "dsmm", "--then", "uniform", "--bits", "3"))
    assert r.code == 0, r.err
    assert Run(out).config["compressor"]["then"] == "uniform"
    assert max(json.loads(r.out)["bits_per_layer"].values()) <= 3


@pytest.mark.parametrize("method,extra,needle", [
    ("centroid", ["--bits", "0"], "K = 2^bits centroids, K ≥ 2"),
    ("centroid", ["--rho", "0"], "rho must be a finite number > 0"),
    ("centroid", ["--rho", "-2"], "rho must be a finite number > 0"),
    ("dsmm", ["--alpha-init", "nan"], "alpha_init (the initial DSMM temperature α) must be a finite number"),
    ("dsmm", ["--alpha", "0.5"], "--alpha does not apply to --method dsmm"),
    ("dsmm", ["--then", "lloyd"], "then must be a PTQ method"),
    ("dsmm", ["--bits", "17"], "bits must be an integer in 1..16"),
    ("vq", ["--dim", "0"], "dim must be an integer in 1..64"),
    ("vq", ["--codebook-bits", "13"], "codebook_bits must be an integer in 1..12"),
    ("vq-nas", ["--candidates", ""], "candidates is empty"),
    ("vq-nas", ["--budget-bits", "0.5"], "is below the smallest candidate's 1 bits per weight"),
    ("vq-nas", ["--candidates", "vq:4x3,lin:2"], "vq:4x3 (d = 3) does not divide linear.weight"),
    ("input-bitwise", ["--input-bits", "9"], "input_bits must be an integer in 1..8"),
    ("input-bitwise", ["--temperature", "nan"], "temperature must be a finite number > 0"),
    ("centroid", ["--then", "heq"], "--then does not apply to --method centroid"),
])
def test_bad_settings_are_one_line_errors(method, extra, needle, run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "bad.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, method, *extra))
    assert_one_line_error(r, needle)
    assert not out.exists()


@pytest.mark.parametrize("method", ["weight-coupling", "ptq"])
def test_recalibrate_bn_stores_a_clamped_copy_with_new_bn_statistics(method, run_cli, tiny_checkpoint, tmp_path,
                                                                     cifar):
    out = tmp_path / "recal.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, method, "--recalibrate-bn", "2"))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    run = Run(out)
    clamped, recal = run.state("clamped"), run.state("recalibrated")
    assert set(clamped) == set(recal)
    for name, tensor in clamped.items():
        if "running_" in name:
            assert not torch.equal(tensor, recal[name]), f"{name}: BN statistics not re-estimated"
        elif not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, recal[name]), f"{name}: recalibration changed a weight"
    evals = run.evals()
    assert evals["recalibrated"]["bn_batches"] == 2 and run.config["recalibrate_bn"] == 2
    test = Batches(cifar[1].subset(N_TEST), 500, train=False)
    assert evaluate(run.model("recalibrated"), test)["accuracy"] == pytest.approx(evals["recalibrated"]["accuracy"])
    assert summary["accuracy_recalibrated"] == evals["recalibrated"]["accuracy"]
    # without the option nothing is stored
    r = run_cli("train", *train_args(tiny_checkpoint, tmp_path / "plain.h5", method))
    assert "recalibrated" not in Run(tmp_path / "plain.h5").evals()


def test_ptq_cli_recalibrate_bn_reports_both_accuracies(run_cli, tiny_checkpoint, tmp_path):
    r = run_cli("ptq", "--method", "heq", "--bits", "2", "--arch", "tiny", "--checkpoint", tiny_checkpoint,
                "--data", SHARED / "data", "--limit", N_TEST, "--recalibrate-bn", "2", "--out", tmp_path / "q.pt",
                "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["recalibrate_bn"] == 2
    assert {"accuracy", "accuracy_before_recalibration", "loss", "loss_before_recalibration"} <= set(summary)
    state = torch.load(tmp_path / "q.pt", weights_only=False)["state_dict"]
    plain = run_cli("ptq", "--method", "heq", "--bits", "2", "--arch", "tiny", "--checkpoint", tiny_checkpoint,
                    "--data", SHARED / "data", "--limit", N_TEST, "--out", tmp_path / "p.pt", "--json")
    assert json.loads(plain.out)["accuracy"] == summary["accuracy_before_recalibration"]
    before = torch.load(tmp_path / "p.pt", weights_only=False)["state_dict"]
    bn = [k for k in state if "running_mean" in k]
    assert bn and all(not torch.equal(state[k], before[k]) for k in bn)
