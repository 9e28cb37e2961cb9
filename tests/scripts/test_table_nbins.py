"""analyses/table_nbins.py: a study over n_bins (tiny model, two N_b, one seed, 4 SGD steps per run) gives one
row per N_b with finite accuracies, bits, timings and estimator errors; on a fixed tensor the estimator's errors
against the exact sum do not grow with N_b."""

from __future__ import annotations

import csv
import importlib
import json
import math
import sys

import pytest
import torch
from conftest import REPO, SHARED

from landscape import study
from landscape.studies.spec import parse_grid

DATA = str(SHARED / "data")


@pytest.fixture(scope="module")
def table_nbins():
    sys.path.insert(0, str(REPO / "analyses"))
    yield importlib.import_module("table_nbins")
    sys.path.remove(str(REPO / "analyses"))


def test_grid_takes_n_bins_as_integers():
    assert parse_grid("weight-coupling", ["n_bins=1024,4096,16384,65536"]) == {"n_bins": [1024, 4096, 16384, 65536]}
    assert all(type(v) is int for v in parse_grid("weight-coupling", ["n_bins=1024,4096"])["n_bins"])
    with pytest.raises(ValueError, match="integers"):
        parse_grid("weight-coupling", ["n_bins=1024.5"])


def test_rows_of_a_tiny_n_bins_study(table_nbins, tmp_path, tiny_checkpoint, cifar, capsys):
    where = ["--dir", str(tmp_path / "studies")]
    assert study.main(["create", "nb", *where, "--grid", "n_bins=256,4096", "h=0.5", "w=0.5", "--seeds", "0",
                       "--arch", "tiny", "--checkpoint", str(tiny_checkpoint), "--epochs", "1", "--limit-train",
                       "128", "--limit-test", "100", "--train-batch-size", "32", "--lr", "0.01",
                       "--checkpoint-every", "4", "--stats-every", "2"]) == 0
    assert study.main(["run", "nb", *where, "--worker-index", "0", "--threads", "1", "--data", DATA]) == 0
    out = tmp_path / "fig"
    assert table_nbins.main(["--study", "nb", *where, "--data", DATA, "--repeats", "2", "--threads", "1",
                             "--out-dir", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(out / "nbins.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_bins"]) for r in rows] == [256, 4096] and [r["log2_n_bins"] for r in rows] == ["8", "12"]
    numbers = ["accuracy_clamped", "accuracy_compressed", "mean_bits", "penalty_s", "step_s", "plain_step_s",
               "energy_rel_err", "force_rel_err", "energy_rel_err_max_layer", "force_rel_err_max_layer",
               "grid_bytes"]
    for r in rows:
        assert r["seeds"] == "1" and float(r["accuracy_clamped_std"]) == 0.0
        for k in numbers:
            assert math.isfinite(float(r[k])) and float(r[k]) >= 0, (k, r[k])
        assert 0 <= float(r["accuracy_clamped"]) <= 1 and float(r["penalty_s"]) > 0 and float(r["step_s"]) > 0
    assert float(rows[1]["force_rel_err"]) < float(rows[0]["force_rel_err"])
    assert int(rows[1]["grid_bytes"]) > int(rows[0]["grid_bytes"])
    assert printed["rows"][0]["n_bins"] == 256 and (out / "nbins.png").stat().st_size > 5000
    config = json.loads((out / "nbins.config.json").read_text())
    assert config["seeds"] == [0] and config["repeats"] == 2 and len(config["runs"]) == 2
    # a second call refuses to overwrite, before any work
    with pytest.raises(Exception, match="--force"):
        table_nbins.main(["--study", "nb", *where, "--data", DATA, "--out-dir", str(out)])


def test_estimator_errors_do_not_grow_with_n_bins(table_nbins):
    g = torch.Generator().manual_seed(0)
    thetas = [torch.randn(n, generator=g) for n in (432, 2304, 4608)]  # ResNet-20-like layer sizes
    ws = [0.3 * t.std().item() for t in thetas]
    hs = [0.05 * t.numel() ** -0.66 for t in thetas]
    errs = [table_nbins.estimator_errors(thetas, ws, hs, 2**b) for b in (10, 12, 14, 16)]
    for key in ("force_rel_err", "force_rel_err_max_layer"):
        values = [e[key] for e in errs]
        assert all(b < a for a, b in zip(values, values[1:], strict=False)), (key, values)
    for key in ("energy_rel_err", "energy_rel_err_max_layer"):  # O(dx^2) until float32 rounding (~1e-7)
        values = [e[key] for e in errs]
        assert all(b <= a + 1e-7 for a, b in zip(values, values[1:], strict=False)), (key, values)
        assert values[-1] < 1e-6
