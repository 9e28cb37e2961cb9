"""The first CLIs (evaluate, ptq): their output contract and the one-line errors on bad input."""

import json

import pytest
import torch
from conftest import ADAPTED_R20, PUBLIC_R20, SHARED, assert_one_line_error

DATA = SHARED / "data"


def test_evaluate_json(run_cli):
    r = run_cli("evaluate", "--arch", "resnet20", "--checkpoint", PUBLIC_R20, "--data", DATA, "--limit", 200, "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert set(out) == {"accuracy", "loss", "n"} and out["n"] == 200 and 0.7 < out["accuracy"] <= 1


def test_ptq_writes_a_quantized_checkpoint(run_cli, tmp_path):
    out = tmp_path / "q.pt"
    r = run_cli("ptq", "--method", "uniform", "--bits", 2, "--checkpoint", ADAPTED_R20, "--data", DATA,
                "--limit", 100, "--out", out, "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    saved = torch.load(out, weights_only=False)
    assert saved["arch"] == "resnet20" and summary["bits"] == 2
    assert torch.unique(saved["state_dict"]["layer3.0.conv1.weight"]).numel() <= 4
    assert max(summary["bits_per_layer"].values()) <= 2


@pytest.mark.parametrize("args,needle", [
    (["--arch", "resnet1000"], "unknown arch"),
    (["--arch", "resnet32"], "does not fit"),
    (["--data", "/nonexistent/data"], "does not exist"),
])
def test_evaluate_bad_input(run_cli, args, needle):
    base = {"--arch": "resnet20", "--checkpoint": str(PUBLIC_R20), "--data": str(DATA), "--limit": "10"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    r = run_cli("evaluate", *[x for kv in base.items() for x in kv])
    assert_one_line_error(r, needle)


@pytest.mark.parametrize("bits", ["0", "17", "-3"])
def test_ptq_bits_out_of_range(run_cli, tmp_path, bits):
    r = run_cli("ptq", "--method", "heq", "--bits", bits, "--checkpoint", ADAPTED_R20, "--out", tmp_path / "q.pt")
    assert_one_line_error(r, "bits")
    assert not (tmp_path / "q.pt").exists()


def test_ptq_refuses_to_overwrite(run_cli, tmp_path):
    out = tmp_path / "q.pt"
    out.write_bytes(b"precious")
    r = run_cli("ptq", "--method", "heq", "--bits", 4, "--checkpoint", ADAPTED_R20, "--out", out)
    assert_one_line_error(r, "exists", "--force")
    assert out.read_bytes() == b"precious"
