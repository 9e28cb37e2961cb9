"""The layer-size power law check (analyses/fig_alpha.py): `coupling.layer_energies` is the exact pair sum, the fit
recovers a known exponent, and the script writes finite fits from a (tiny) run file."""

from __future__ import annotations

import csv
import importlib
import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import REPO, CliResult, assert_one_line_error
from scipy import stats

from landscape import cli, coupling


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        yield importlib.import_module("fig_alpha")
    finally:
        sys.path.remove(str(REPO / "analyses"))


def _brute(values: list[float], w: float) -> float:
    """Σ_{i≠j} U_w(θ_i − θ_j) by the double loop over float64 values, summed exactly rounded (math.fsum: a plain
    running sum of the ~10^5 terms is itself off by ~1e-12 relative)."""
    terms = []
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if i != j:
                d = abs(a - b)
                terms.append(d if d < w else w)
    return math.fsum(terms)


def test_layer_energies_equal_the_double_loop():
    g = torch.Generator().manual_seed(1)
    layers = {"a": torch.randn(300, generator=g, dtype=torch.float64) * 0.1,
              "b": torch.randn(16, 4, 4, generator=g).round(decimals=1),  # float32, many ties
              "c": torch.rand(40, generator=g, dtype=torch.float64) ** 3,  # skewed
              "flat": torch.full((10,), 0.5)}  # sigma 0: left out, as WeightCoupling.prepare does
    out = coupling.layer_energies(layers, 0.3)
    assert [le.name for le in out] == ["a", "b", "c"]
    for le in out:
        theta = layers[le.name].double().flatten()
        assert le.n == theta.numel() and le.sigma == pytest.approx(theta.std().item(), rel=1e-15)
        assert le.w == pytest.approx(0.3 * le.sigma, rel=1e-15)
        assert le.energy == pytest.approx(_brute(theta.tolist(), le.w), rel=1e-13)

    # given reference sigmas fix w_l (as the pretrained ones do during fine-tuning)
    fixed = coupling.layer_energies({"a": layers["a"]}, 0.5, sigmas={"a": 0.2})[0]
    assert fixed.w == pytest.approx(0.1) and fixed.energy == pytest.approx(_brute(layers["a"].tolist(), 0.1),
                                                                          rel=1e-13)
    with pytest.raises(ValueError, match="sigma"):
        coupling.layer_energies({"a": layers["a"]}, 0.3, sigmas={})
    with pytest.raises(ValueError, match="w must be"):
        coupling.layer_energies(layers, 0.0)

    # a module: only its conv/linear weights (no biases, no BN), in model order
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(8, 5))
    assert [le.name for le in coupling.layer_energies(model, 0.3)] == ["0.weight", "3.weight"]


def test_fit_recovers_a_known_exponent(script):
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(432, 36864, 7).round(), 3)  # repeated sizes, as in ResNet-20
    exact = script.fit_power_law(n, 3.0 * n**1.66)
    assert exact["beta"] == pytest.approx(1.66, abs=1e-12) and exact["r2"] == pytest.approx(1.0)
    assert exact["intercept"] == pytest.approx(math.log(3.0)) and exact["n_layers"] == 21

    hits = 0
    for _ in range(200):
        e = 3.0 * n**1.66 * np.exp(rng.normal(0, 0.2, n.size))
        f = script.fit_power_law(n, e)
        hits += f["ci_lo"] <= 1.66 <= f["ci_hi"]
    assert 0.90 <= hits / 200 <= 0.99  # a 95% interval

    ref = stats.linregress(np.log(n), np.log(e))
    assert f["beta"] == pytest.approx(ref.slope) and f["beta_se"] == pytest.approx(ref.stderr)
    assert f["r2"] == pytest.approx(ref.rvalue**2)
    assert math.isnan(script.fit_power_law([10, 100], [1, 2])["beta_se"])  # no degrees of freedom left


def test_script_end_to_end_on_a_tiny_run(script, tiny_run, tmp_path, capsys):
    out = tmp_path / "fig"
    assert script.main(["--run", str(tiny_run), "--out-dir", str(out), "--every", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("alpha_powerlaw.png", "alpha_powerlaw.csv", "alpha_fit.csv", "alpha_powerlaw.config.json"):
        assert (out / name).is_file(), name
    with open(out / "alpha_fit.csv") as f:
        fits = list(csv.DictReader(f))
    with open(out / "alpha_powerlaw.csv") as f:
        rows = list(csv.DictReader(f))
    states = [r["state"] for r in fits]
    assert states[0] == "pretrained" and states[-2:] == ["compressed", "clamped"] and "checkpoint" in states
    for r in fits:
        assert all(math.isfinite(float(r[k])) for k in ("beta", "beta_se", "ci_lo", "ci_hi", "r2"))
        assert int(r["n_layers"]) == 8
        parts = float(r["beta_pairs"]) + float(r["beta_sigma"]) + float(r["beta_shape"])
        assert parts == pytest.approx(float(r["beta"]), abs=1e-9)  # the decomposition is exact
    assert len(rows) == 8 * len(fits)
    # w_l comes from the pretrained sigma_l in every state
    w_l = {(r["layer"], r["w_l"]) for r in rows}
    assert len(w_l) == 8 and all(float(r["E_l"]) > 0 for r in rows)
    assert result["w"] == 0.5 and len(result["fits"]) == len(fits)

    # a rerun refuses to overwrite without --force, before any work
    with pytest.raises(Exception, match="--force"):
        script.main(["--run", str(tiny_run), "--out-dir", str(out)])


def test_bad_arguments_give_one_line(script, tiny_run, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    def run(*args):
        monkeypatch.setattr(sys, "argv", ["fig_alpha", *map(str, args)])
        try:
            cli.run(script.main, "fig_alpha")
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    assert_one_line_error(run("--run", tiny_run, "--checkpoint", tiny_checkpoint, "--out-dir", tmp_path),
                          "not both")
    assert_one_line_error(run("--run", tiny_run, "--steps", "999999", "--out-dir", tmp_path), "999999")
    # a checkpoint alone: the pretrained fit only
    assert run("--checkpoint", tiny_checkpoint, "--arch", "tiny", "--out-dir", tmp_path, "--json").code == 0
    with open(tmp_path / "alpha_fit.csv") as f:
        assert [r["state"] for r in csv.DictReader(f)] == ["pretrained"]
