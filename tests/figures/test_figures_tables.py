"""The figure and table jobs of landscape.figures that the reproduction report's estimators, N_b, DSMM, methods
and cost rows run (estimators, nbins, dsmm_table, methods_table, cost), called as the library (a spec, then
make) on tiny studies and runs: what the CSV says, what the config JSON and to_dict keep, the refusal to
overwrite without force, and a bad spec value."""

from __future__ import annotations

import csv
import doctest
import json
import math

import pytest
from conftest import SHARED

from landscape import study
from landscape.errors import LandscapeError
from landscape.figures import base, dsmm_table, estimators, methods_table, nbins
from landscape.figures import cost as cost_fig
from landscape.figures.cost import CostFigure
from landscape.figures.dsmm_table import DSMMTable
from landscape.figures.estimators import EstimatorsFigure
from landscape.figures.methods_table import MethodsTable
from landscape.figures.nbins import NbinsTable
from landscape.specs import DataSource

DATA = str(SHARED / "data")
MODULES = (estimators, nbins, dsmm_table, methods_table, cost_fig)
TINY_STUDY = ["--seeds", "0", "--arch", "tiny", "--epochs", "1", "--limit-train", "128", "--limit-test", "100",
              "--train-batch-size", "32", "--lr", "0.01", "--checkpoint-every", "4"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _study(folder, name, checkpoint, *args) -> None:
    assert study.main(["create", name, "--dir", str(folder), *args, "--checkpoint", str(checkpoint),
                       *TINY_STUDY]) == 0
    assert study.main(["run", name, "--dir", str(folder), "--worker-index", "0", "--threads", "1", "--data",
                       DATA]) == 0


def _refuses_a_second_call(spec, existing) -> None:
    with pytest.raises(LandscapeError, match=existing.name):
        base.make(spec)


def test_the_docstring_examples_run():
    assert all(doctest.testmod(m).failed == 0 for m in MODULES)


def test_estimators_figure_shows_the_runs_and_the_noise_of_both_designs(tmp_path, tiny_checkpoint, cifar):
    studies = tmp_path / "studies"
    _study(studies, "est-subset", tiny_checkpoint, "--grid", "h=0.5", "w=0.5", "--estimator", "subset")
    spec = EstimatorsFigure(studies=["est-subset"], dir=str(studies), draws=2, out_dir=str(tmp_path / "fig"),
                            quiet=True)
    result = base.make(spec)
    assert set(result.to_dict()) == {"png", "csv", "noise_geomean"}
    assert set(result.to_dict()["noise_geomean"]) == {"subsampled", "subset"}
    rows = _rows(tmp_path / "fig" / "estimators_force.csv")
    runs = [r for r in rows if r["kind"] == "run"]
    assert [r["study"] for r in runs] == ["est-subset"] and 0 <= float(runs[0]["accuracy_clamped"]) <= 1
    noise = [r for r in rows if r["kind"] == "noise"]
    assert {r["estimator"] for r in noise} == {"subsampled", "subset"}
    assert all(math.isfinite(float(r["noise"])) and float(r["noise"]) > 0 for r in noise)
    config = json.loads((tmp_path / "fig" / "estimators_force.config.json").read_text())
    assert config["figure"] == "EstimatorsFigure" and config["draws"] == 2 and config["noise_run"] == runs[0]["run"]
    assert result.lines[-1].startswith("wrote ")
    _refuses_a_second_call(spec, tmp_path / "fig" / "estimators_force.png")
    with pytest.raises(ValueError, match="draws"):
        EstimatorsFigure(studies=["est-subset"], draws=0)
    with pytest.raises(ValueError, match="at least one study"):
        EstimatorsFigure()


def test_nbins_table_has_one_row_per_n_bins(tmp_path, tiny_checkpoint, cifar):
    studies = tmp_path / "studies"
    _study(studies, "nb", tiny_checkpoint, "--grid", "n_bins=256,4096", "h=0.5", "w=0.5")
    spec = NbinsTable(study="nb", dir=str(studies), repeats=2, threads=1, data=DataSource(folder=DATA),
                      out_dir=str(tmp_path / "fig"), quiet=True)
    result = base.make(spec)
    assert {"png", "csv", "rows", "arch", "threads", "loadavg"} <= set(result.to_dict())
    rows = _rows(tmp_path / "fig" / "nbins.csv")
    assert [int(r["n_bins"]) for r in rows] == [256, 4096] and [r["log2_n_bins"] for r in rows] == ["8", "12"]
    assert all(float(r["step_s"]) > 0 and float(r["penalty_s"]) > 0 and r["seeds"] == "1" for r in rows)
    assert int(rows[1]["grid_bytes"]) > int(rows[0]["grid_bytes"])
    config = json.loads((tmp_path / "fig" / "nbins.config.json").read_text())
    assert config["repeats"] == 2 and config["seeds"] == [0] and config["spec"]["name"] == "nb"
    assert config["threads"] == 1 and len(config["runs"]) == 2
    assert len(result.lines) == 3 and result.lines[0].startswith("N_b 2^8: clamped ")
    _refuses_a_second_call(spec, tmp_path / "fig" / "nbins.png")
    with pytest.raises(ValueError, match="repeats"):
        NbinsTable(study="nb", repeats=0)


def test_dsmm_table_ptq_at_a_runs_own_bits_is_its_clamp(tmp_path, tiny_checkpoint, cifar):
    studies = tmp_path / "studies"
    _study(studies, "d", tiny_checkpoint, "--method", "dsmm", "--grid", "bits=2,3", "strength=0,1", "--then",
           "uniform", "--alpha-init", "10")
    spec = DSMMTable(studies=["d"], dir=str(studies), bits=[2, 4], limit=100, data=DataSource(folder=DATA),
                     out_dir=str(tmp_path / "fig"), quiet=True)
    result = base.make(spec)
    assert set(result.to_dict()) == {"png", "csv", "summary"}
    assert [s["setting"] for s in result.summary] == ["λ=0, α₀=10", "λ=1, α₀=10"]
    rows = _rows(tmp_path / "fig" / "dsmm_ptq.csv")
    assert sorted((float(r["strength"]), int(r["bits"])) for r in rows) == [(0.0, 2), (0.0, 4), (1.0, 2), (1.0, 4)]
    checked = [r for r in rows if r["run_clamped_accuracy"] != ""]
    assert len(checked) == 2 and all(r["bits"] == "2" for r in checked)
    for r in checked:
        assert float(r["accuracy"]) == pytest.approx(float(r["run_clamped_accuracy"]), abs=1e-9)
    assert sum(line.startswith("check ") for line in result.lines) == 2
    assert json.loads((tmp_path / "fig" / "dsmm_ptq.config.json").read_text())["trainings"] == 2
    _refuses_a_second_call(spec, tmp_path / "fig" / "dsmm_ptq.png")
    with pytest.raises(ValueError, match="1..16"):
        DSMMTable(studies=["d"], bits=[0, 2])


def test_methods_table_fine_tunes_and_quantizes_every_cell(tmp_path, tiny_checkpoint, cifar):
    spec = MethodsTable(arch="tiny", checkpoint=str(tiny_checkpoint), bits=[2], methods=["kmeans", "centroid"],
                        train_limit=128, limit=60, batch_size=30, data=DataSource(folder=DATA),
                        out_dir=str(tmp_path), suffix="_s1", seed=1, quiet=True)
    result = base.make(spec)
    rows = _rows(tmp_path / "methods_table_s1.csv")
    assert [(r["method"], r["target_bits"], r["epochs"]) for r in rows] == [("kmeans", "2", "0"),
                                                                            ("centroid", "2", "1")]
    assert rows[1]["steps"] == "1" and rows[1]["train_images"] == "128" and rows[0]["n_test"] == "60"
    assert json.loads(rows[1]["settings"])["bits"] == 2
    config = json.loads((tmp_path / "methods_table_s1.config.json").read_text())
    assert config["seed"] == 1 and config["train"]["seed"] == 1 and config["n_train"] == 128
    assert 0 <= config["accuracy_full_precision"] <= 1 and config["figure"] == "MethodsTable"
    assert (tmp_path / "methods_accuracy_vs_bits_s1.png").stat().st_size > 5000
    assert "| method | epochs | 2 bits | other bits |" in result.lines
    _refuses_a_second_call(spec, tmp_path / "methods_table_s1.csv")
    with pytest.raises(ValueError, match="not a path"):
        MethodsTable(suffix="/x")
    with pytest.raises(ValueError, match="methods"):
        MethodsTable(methods=["nope"])


def test_cost_figure_draws_the_benchmark_rows_and_the_exact_timings(tmp_path):
    rows = [{"estimator": e, "n": n, "time_s": t, "exact_time_s": x, "energy_rel_err": 1e-8, "force_rel_err": 1e-2,
             "reference": "exact" if x else "sorted-float64"}
            for e, n, t, x in (("histogram", 4096, 1e-3, 0.07), ("histogram", 2**18, 3e-3, None))]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"coupling": rows, "threads": 2}))
    spec = CostFigure(bench=str(bench), out_dir=str(tmp_path / "fig"))
    result = base.make(spec)
    drawn = _rows(tmp_path / "fig" / "coupling_cost.csv")
    assert [(r["estimator"], r["n"], float(r["time_s"])) for r in drawn] == [("histogram", "4096", 1e-3),
                                                                             ("histogram", "262144", 3e-3),
                                                                             ("exact", "4096", 0.07)]
    config = json.loads((tmp_path / "fig" / "coupling_cost.config.json").read_text())
    assert config["bench"] == str(bench) and config["threads"] == 2 and config["loadavg"] is None
    assert result.summary["estimators"] == ["histogram", "exact"] and result.lines[-1].startswith("wrote ")
    _refuses_a_second_call(spec, tmp_path / "fig" / "coupling_cost.png")
    bench.write_text("[]")
    with pytest.raises(LandscapeError, match="not a bench/coupling.py JSON"):
        base.make(CostFigure(bench=str(bench), out_dir=str(tmp_path / "other")))
    with pytest.raises(ValueError, match="bench"):
        CostFigure()
