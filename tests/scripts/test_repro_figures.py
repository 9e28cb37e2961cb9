"""The reproduction report's figure scripts for the seeds row (analyses/fig_seeds.py, Fig. 1B), the estimators
row (analyses/fig_estimators.py) and the DSMM row (analyses/table_dsmm.py), on tiny runs: what they draw is what
their CSV says (histograms count every weight, cluster members sum to the layer, PTQ after a run is its own
clamp), and they refuse bad input with one line."""

from __future__ import annotations

import csv
import importlib
import json
import math
import sys

import pytest
from conftest import REPO, SHARED, make_tiny_run

from landscape import study
from landscape.store import Run

DATA = str(SHARED / "data")


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(REPO / "analyses"))
    yield lambda name: importlib.import_module(name)
    sys.path.remove(str(REPO / "analyses"))


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_fig_seeds_counts_every_weight_of_every_seed(scripts, tiny_run, tiny_checkpoint, tmp_path, capsys):
    other = make_tiny_run(tmp_path / "seed1.h5", tiny_checkpoint, "--seed", "1")
    out = tmp_path / "fig"
    assert scripts("fig_seeds").main(["--run", str(tiny_run), str(other), "--out-dir", str(out), "--bins", "16",
                                      "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed["clusters"]) == {"0", "1"}
    rows = _rows(out / "seeds_clusters_hist.csv")
    config = json.loads((out / "seeds_clusters_hist.config.json").read_text())
    assert config["seeds"] == [0, 1] and 1 <= len(config["layers"]) <= 3
    for seed, path in (("0", tiny_run), ("1", other)):
        state = Run(path).state("compressed")
        for layer in config["layers"]:
            mine = [r for r in rows if r["seed"] == seed and r["layer"] == layer]
            bins = [r for r in mine if r["kind"] == "bin"]
            assert len(bins) == 16 and sum(int(r["count"]) for r in bins) == state[layer].numel()
            members = sum(int(r["count"]) for r in mine if r["kind"] == "cluster")
            assert members == state[layer].numel()  # every weight belongs to one clamped cluster
    assert (out / "seeds_clusters.png").stat().st_size > 5000
    with pytest.raises(Exception, match="same seed"):  # two copies of one seed say nothing about seeds
        scripts("fig_seeds").main(["--run", str(tiny_run), str(tiny_run), "--out-dir", str(tmp_path / "x")])
    with pytest.raises(Exception, match="not clustered"):
        scripts("fig_seeds").main(["--run", str(tiny_run), str(other), "--out-dir", str(tmp_path / "y"),
                                   "--layers", "nope.weight"])


def test_fig_estimators_shows_every_run_and_the_force_noise_of_both_designs(scripts, tiny_checkpoint, tmp_path,
                                                                            capsys):
    where = ["--dir", str(tmp_path / "studies")]
    for est in ("subset", "sorted"):
        assert study.main(["create", f"est-{est}", *where, "--grid", "h=0.5", "w=0.5", "--seeds", "0", "--arch",
                           "tiny", "--checkpoint", str(tiny_checkpoint), "--epochs", "1", "--limit-train", "128",
                           "--limit-test", "100", "--train-batch-size", "32", "--lr", "0.01", "--estimator", est,
                           "--checkpoint-every", "4", "--stats-every", "2"]) == 0
        assert study.main(["run", f"est-{est}", *where, "--worker-index", "0", "--threads", "1", "--data",
                           DATA]) == 0
    out = tmp_path / "fig"
    assert scripts("fig_estimators").main(["--study", "est-subset", "est-sorted", *where, "--draws", "3",
                                           "--out-dir", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _rows(out / "estimators_force.csv")
    runs = [r for r in rows if r["kind"] == "run"]
    assert sorted(r["study"] for r in runs) == ["est-sorted", "est-subset"]
    assert all(0 <= float(r["accuracy_clamped"]) <= 1 and float(r["mean_bits"]) >= 0 for r in runs)
    noise = [r for r in rows if r["kind"] == "noise"]
    layers = Run(runs[0]["run"]).clusters()
    assert len(noise) == 2 * len(layers) and {r["estimator"] for r in noise} == {"subsampled", "subset"}
    assert all(math.isfinite(float(r["noise"])) and float(r["noise"]) > 0 for r in noise)
    assert set(printed["noise_geomean"]) == {"subsampled", "subset"}
    assert (out / "estimators_force.png").stat().st_size > 5000
    with pytest.raises(Exception, match="no finished runs"):
        assert study.main(["create", "empty", *where, "--grid", "h=0.5", "w=0.5", "--seeds", "0", "--arch", "tiny",
                           "--checkpoint", str(tiny_checkpoint), "--epochs", "1"]) == 0
        scripts("fig_estimators").main(["--study", "empty", *where, "--out-dir", str(tmp_path / "z")])


def test_fig_cost_draws_the_benchmark_it_is_given(scripts, tmp_path):
    """Nothing is timed: the CSV is the benchmark's rows plus the exact sum's own timings."""
    rows = [{"estimator": e, "n": n, "time_s": t, "exact_time_s": x, "energy_rel_err": 1e-8, "force_rel_err": 1e-2,
             "reference": "exact" if x else "sorted-float64"}
            for e, n, t, x in (("histogram", 4096, 1e-3, 0.07), ("sorted", 4096, 1e-3, 0.07),
                               ("histogram", 2**18, 3e-3, None), ("sorted", 2**18, 5e-2, None))]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"coupling": rows, "threads": 1}))
    out = tmp_path / "fig"
    assert scripts("fig_cost").main(["--bench", str(bench), "--out-dir", str(out)]) == 0
    drawn = _rows(out / "coupling_cost.csv")
    assert [(r["estimator"], r["n"]) for r in drawn] == [("histogram", "4096"), ("sorted", "4096"),
                                                         ("histogram", "262144"), ("sorted", "262144"),
                                                         ("exact", "4096")]
    assert float(drawn[-1]["time_s"]) == 0.07 and (out / "coupling_cost.png").stat().st_size > 5000
    bench.write_text("{}")
    with pytest.raises(Exception, match="not a bench/coupling.py JSON"):
        scripts("fig_cost").main(["--bench", str(bench), "--out-dir", str(tmp_path / "other")])


def test_table_dsmm_ptq_of_one_training_per_setting_matches_each_runs_own_clamp(scripts, tiny_checkpoint,
                                                                                 tmp_path, capsys):
    """Runs that differ only in bits are one training; uniform PTQ of its fine-tuned weights at a run's own bits is
    that run's clamp step (same test images), and a strong DSMM pull narrows the weight ranges."""
    where = ["--dir", str(tmp_path / "studies")]
    assert study.main(["create", "d", *where, "--method", "dsmm", "--grid", "bits=2,3", "strength=0,1", "--seeds",
                       "0", "--arch", "tiny", "--checkpoint", str(tiny_checkpoint), "--epochs", "1", "--limit-train",
                       "128", "--limit-test", "100", "--train-batch-size", "32", "--lr", "0.01", "--then", "uniform",
                       "--alpha-init", "10", "--checkpoint-every", "4"]) == 0
    assert study.main(["run", "d", *where, "--worker-index", "0", "--threads", "1", "--data", DATA]) == 0
    out = tmp_path / "fig"
    assert scripts("table_dsmm").main(["--study", "d", *where, "--bits", "2", "3", "4", "--limit", "100", "--data",
                                       DATA, "--out-dir", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _rows(out / "dsmm_ptq.csv")
    assert sorted((float(r["strength"]), int(r["bits"])) for r in rows) == [(s, b) for s in (0.0, 1.0)
                                                                           for b in (2, 3, 4)]
    checked = [r for r in rows if r["run_clamped_accuracy"] != ""]
    assert len(checked) == 2 and all(r["bits"] == "2" for r in checked)  # the bits=2 run of each training
    for r in checked:
        assert float(r["accuracy"]) == pytest.approx(float(r["run_clamped_accuracy"]), abs=1e-9)
    width = {float(r["strength"]): float(r["mean_range"]) for r in rows}
    assert width[1.0] < width[0.0] and float(rows[0]["mean_range_pretrained"]) > 0
    assert [s["setting"] for s in printed["summary"]] == ["λ=0, α₀=10", "λ=1, α₀=10"]
    assert (out / "dsmm_ptq.png").stat().st_size > 5000
    assert study.main(["create", "wc", *where, "--grid", "h=0.5", "w=0.5", "--seeds", "0", "--arch", "tiny",
                       "--checkpoint", str(tiny_checkpoint), "--epochs", "1"]) == 0
    with pytest.raises(Exception, match="not dsmm"):
        scripts("table_dsmm").main(["--study", "wc", *where, "--out-dir", str(tmp_path / "z")])
