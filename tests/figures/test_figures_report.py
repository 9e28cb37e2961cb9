"""The report's figure jobs called as a library (landscape.figures: protocols, mixed_precision, seeds, alpha) on the
tiny run: each writes what its CSV says, returns the JSON its script printed, refuses to overwrite without force
(naming the file) and rejects a bad spec value with ValueError; their docstring examples run."""

from __future__ import annotations

import csv
import doctest
import json
import math
import re
import shutil

import numpy as np
import pytest
from conftest import SHARED

from landscape.errors import LandscapeError
from landscape.figures import alpha, mixed_precision, protocols, seeds
from landscape.figures.alpha import AlphaFigure
from landscape.figures.base import make
from landscape.figures.mixed_precision import MixedPrecisionFigure
from landscape.figures.protocols import ProtocolsFigure
from landscape.figures.seeds import SeedsFigure
from landscape.store import Run

MODULES = (protocols, mixed_precision, seeds, alpha)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _refuses_twice(spec, first: str):
    """A second make without force raises before any work, naming the existing output `first`."""
    with pytest.raises(LandscapeError, match=re.escape(str(spec.paths()[first]))):
        make(spec)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def test_protocols_reads_the_stored_perturbation_results(tiny_run, tmp_path):
    from landscape.analysis.engine import run_analysis
    from landscape.analysis.perturbation import PerturbConfig, read_perturb
    from landscape.specs import DataSource, PerturbSpec

    run = shutil.copy(tiny_run, tmp_path / "a.h5")
    run_analysis(PerturbSpec(run=str(run), target="compressed", limit=40, batch_size=20,
                             data=DataSource(folder=str(SHARED / "data")),
                             config=PerturbConfig(directions=3, bn="keep")))
    spec = ProtocolsFigure(out_dir=str(tmp_path / "fig"), runs=(str(run),), labels=("h=0.5",), quiet=True)
    result = make(spec)
    assert list(result.to_dict()) == ["png", "csv", "summary_csv", "config", "summary"]
    [row] = _rows(spec.paths()[".csv"])
    assert list(row)[:len(protocols.COLUMNS)] == list(protocols.COLUMNS)
    assert (row["label"], row["target"], row["split"], row["norm"], row["bn"]) == \
        ("h=0.5", "compressed", "test", "global", "keep")
    data, attrs = read_perturb(run, row["name"])
    assert float(row["real_z"]) == pytest.approx(attrs["zscore"], rel=1e-9)
    actual = attrs["target_loss"] - attrs["base_loss"]
    assert float(row["actual_slope"]) == pytest.approx(actual / attrs["displacement_norm"], rel=1e-9)
    [summary] = _rows(spec.paths()["_summary.csv"])
    assert summary["n_seeds"] == "1" and float(summary["real_z_mean"]) == pytest.approx(float(row["real_z"]))
    config = json.loads(spec.paths()[".config.json"].read_text())
    assert config["figure"] == "ProtocolsFigure" and config["seeds"] == {"h=0.5": 1}
    assert result.lines[-1].startswith("wrote ") and len(result.lines) == 2
    _refuses_twice(spec, ".png")
    make(ProtocolsFigure(out_dir=spec.out_dir, runs=spec.runs, force=True, quiet=True))  # force overwrites

    with pytest.raises(ValueError, match="1 labels for 2 run files"):
        ProtocolsFigure(runs=("a.h5", "b.h5"), labels=("x",))
    with pytest.raises(ValueError, match="twice"):
        ProtocolsFigure(runs=("a.h5", "a.h5"))


def test_mixed_precision_rows_are_the_run_files_bits(tiny_run, tmp_path):
    spec = MixedPrecisionFigure(out_dir=str(tmp_path), runs=(str(tiny_run),), quiet=True)
    result = make(spec)
    assert list(result.to_dict()) == ["png", "csv", "bits_span"]
    rows = _rows(spec.paths()[".csv"])
    bits = Run(tiny_run).bits()["effective"]
    assert [r["layer"] for r in rows] == list(bits) and [int(r["index"]) for r in rows] == list(range(len(bits)))
    for r in rows:
        assert float(r["bits"]) == pytest.approx(bits[r["layer"]]) and int(r["clusters"]) >= 1
    span = max(float(r["bits"]) for r in rows) - min(float(r["bits"]) for r in rows)
    assert result.summary["bits_span"] == {0: pytest.approx(span)}
    assert json.loads(spec.paths()[".config.json"].read_text())["seeds"] == [0]
    _refuses_twice(spec, ".png")
    with pytest.raises(ValueError, match="at least one run"):
        MixedPrecisionFigure(runs=())


def test_seeds_histograms_count_every_weight(tiny_run, tmp_path):
    spec = SeedsFigure(out_dir=str(tmp_path), runs=(str(tiny_run),), bins=16, quiet=True)
    result = make(spec)
    assert list(result.to_dict()) == ["png", "csv", "clusters"]
    rows = _rows(spec.paths()["_hist.csv"])
    config = json.loads(spec.paths()["_hist.config.json"].read_text())
    assert config["figure"] == "SeedsFigure" and config["seeds"] == [0] and 1 <= len(config["layers"]) <= 3
    state = Run(tiny_run).state("compressed")
    for layer in config["layers"]:
        mine = [r for r in rows if r["layer"] == layer]
        bins = [r for r in mine if r["kind"] == "bin"]
        assert len(bins) == 16 and sum(int(r["count"]) for r in bins) == state[layer].numel()
        clusters = [r for r in mine if r["kind"] == "cluster"]
        assert sum(int(r["count"]) for r in clusters) == state[layer].numel()
        assert len(clusters) == result.summary["clusters"][0][layer]
    _refuses_twice(spec, ".png")
    with pytest.raises(ValueError, match="bins"):
        SeedsFigure(runs=("a.h5",), bins=0)


def test_alpha_fits_every_state(tiny_run, tiny_checkpoint, tmp_path):
    spec = AlphaFigure(out_dir=str(tmp_path), run=str(tiny_run), every=3, quiet=True)
    result = make(spec)
    assert list(result.to_dict()) == ["png", "csv", "fit_csv", "n_layers", "w", "alpha", "seconds", "fits"]
    assert result.outputs["fit_csv"] == str(tmp_path / "alpha_fit.csv")
    fits, rows = _rows(tmp_path / "alpha_fit.csv"), _rows(tmp_path / "alpha_powerlaw.csv")
    states = [r["state"] for r in fits]
    assert states[0] == "pretrained" and states[-2:] == ["compressed", "clamped"] and "checkpoint" in states
    for r in fits:
        parts = float(r["beta_pairs"]) + float(r["beta_sigma"]) + float(r["beta_shape"])
        assert math.isfinite(float(r["beta"])) and parts == pytest.approx(float(r["beta"]), abs=1e-9)
    assert len(rows) == result.summary["n_layers"] * len(fits) and result.summary["w"] == 0.5
    n, e = (np.array([float(r[k]) for r in rows if r["state"] == "pretrained"]) for k in ("N_l", "E_l"))
    assert float(fits[0]["beta"]) == pytest.approx(alpha.fit_power_law(n, e)["beta"])
    config = json.loads((tmp_path / "alpha_powerlaw.config.json").read_text())
    assert config["figure"] == "AlphaFigure" and config["w_used"] == 0.5 and config["seeds"] == 1
    _refuses_twice(spec, "_powerlaw.png")

    only = AlphaFigure(out_dir=str(tmp_path / "ckpt"), checkpoint=str(tiny_checkpoint), arch="tiny", quiet=True)
    make(only)
    assert [r["state"] for r in _rows(tmp_path / "ckpt" / "alpha_fit.csv")] == ["pretrained"]
    with pytest.raises(ValueError, match="not both"):
        AlphaFigure(run=str(tiny_run), checkpoint=str(tiny_checkpoint))
    with pytest.raises(ValueError, match="w must be"):
        AlphaFigure(run=str(tiny_run), w=-1.0)
