"""The demo's figures as library calls (landscape.figures.<module>.make on a typed spec, no argv): weight
histograms, perturbation, accuracy vs bits and the PTQ table on the tiny run and checkpoint; each writes its files,
refuses to overwrite them without force, and rejects a bad setting when the spec is built."""

import csv
import dataclasses
import doctest

import pytest
from conftest import SHARED

from landscape.analysis.perturbation import PerturbConfig
from landscape.errors import LandscapeError
from landscape.figures import accuracy_vs_bits, base, perturbation, ptq_table, weight_histograms
from landscape.figures.accuracy_vs_bits import AccuracyVsBitsFigure
from landscape.figures.perturbation import PerturbationFigure
from landscape.figures.ptq_table import PTQTable
from landscape.figures.weight_histograms import WeightHistogramsFigure
from landscape.specs import DataSource

MODULES = (weight_histograms, perturbation, accuracy_vs_bits, ptq_table)


def _fields(tmp_path):
    return {"out_dir": str(tmp_path / "fig"), "limit": 60, "batch_size": 30, "quiet": True,
            "data": DataSource(folder=str(SHARED / "data"))}


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _refuses_again(spec, existing):
    with pytest.raises(LandscapeError, match=existing.name):
        base.make(spec)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_docstring_examples_pass(module):
    assert doctest.testmod(module).failed == 0


def test_weight_histograms_figure(tiny_run, tmp_path):
    spec = WeightHistogramsFigure(**_fields(tmp_path), run=str(tiny_run), layers=["all"], bins=30)
    result = base.make(spec)
    out = spec.paths()
    assert out[".png"].is_file() and result.outputs == {"png": str(out[".png"]), "csv": str(out[".csv"])}
    rows = _read_csv(out[".csv"])
    assert list(rows[0]) == ["layer", "series", "bin_left", "bin_right", "count"]
    assert {r["series"] for r in rows} >= {"pretrained", "final (compressed, before clamping)", "clamped cluster"}
    assert sum(r["series"] == "pretrained" for r in rows) == 30 * len(result.summary["layers"])
    assert set(result.to_dict()) == {"png", "csv", "layers", "series"}  # the script's --json, as before
    assert result.lines == [f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"]
    _refuses_again(spec, out[".png"])
    with pytest.raises(ValueError, match="bins"):
        WeightHistogramsFigure(run=str(tiny_run), bins=0)


def test_perturbation_figure(tiny_run, tmp_path):
    config = PerturbConfig(directions=3, alphas=(0.0, 1.0), bn_batches=1)
    spec = PerturbationFigure(**_fields(tmp_path), run=str(tiny_run), targets=["clamped", "ptq:heq:2"],
                              config=config)
    result = base.make(spec)
    out = spec.paths()
    assert out[".png"].is_file()
    rows = _read_csv(out[".csv"])
    assert list(rows[0]) == ["target", "kind", "direction", "delta_loss", "slope", "accuracy"]
    assert sum(r["kind"] == "random" for r in rows) == 6 and {r["target"] for r in rows} == {"clamped", "ptq:heq:2"}
    assert len(_read_csv(out["_scan.csv"])) == 2 * 2
    assert set(result.summary) == {"clamped", "ptq:heq:2"} and set(result.to_dict()) == {"png", "csv", "summary"}
    assert len(result.lines) == 3
    _refuses_again(spec, out[".png"])
    with pytest.raises(ValueError, match="target"):
        dataclasses.replace(spec, targets=())


def test_accuracy_vs_bits_figure(tiny_run, tmp_path):
    spec = AccuracyVsBitsFigure(**_fields(tmp_path), runs=[str(tiny_run)], bits=[2, 3], labels=["h=0.5"])
    result = base.make(spec)
    out = spec.paths()
    assert out[".png"].is_file()
    rows = _read_csv(out[".csv"])
    assert [r["method"] for r in rows] == ["full precision", "soft quantization", "HEQ PTQ", "HEQ PTQ"]
    assert [r["label"] for r in rows] == ["pretrained", "h=0.5", "HEQ 2 bits", "HEQ 3 bits"]
    assert {int(r["n"]) for r in rows} == {60}
    layers = _read_csv(out["_layers.csv"])
    assert list(layers[0])[:2] == ["layer", "soft quantization: h=0.5"] and len(layers[0]) == 3
    assert set(result.to_dict()) == {"png", "csv", "rows"} and len(result.lines) == 5
    _refuses_again(spec, out[".png"])
    with pytest.raises(ValueError, match="1..16"):
        AccuracyVsBitsFigure(runs=[str(tiny_run)], bits=[0])
    with pytest.raises(ValueError, match="2 labels for 1 runs"):
        AccuracyVsBitsFigure(runs=[str(tiny_run)], labels=["a", "b"])


def test_ptq_table(tiny_checkpoint, tmp_path):
    spec = PTQTable(**_fields(tmp_path), arch="tiny", checkpoint=str(tiny_checkpoint), bits=[2, 4],
                    methods=["uniform", "kmeans"])
    result = base.make(spec)
    out = spec.paths()
    assert out[".png"].name == "ptq_accuracy_vs_bits.png" and out[".png"].is_file()
    rows = _read_csv(out[".csv"])
    assert list(rows[0]) == ["method", "bits", "mean_effective_bits", "accuracy", "loss", "n"]
    assert [(r["method"], r["bits"]) for r in rows] == [("full precision", "32"), ("uniform", "2"), ("uniform", "4"),
                                                       ("kmeans", "2"), ("kmeans", "4")]
    assert {int(r["n"]) for r in rows} == {60} and result.summary["n_test"] == 60
    assert "| method | 2 bits | 4 bits |" in result.lines and sum(line.startswith("| k") for line in result.lines) == 1
    _refuses_again(spec, out[".csv"])
    with pytest.raises(ValueError, match="PTQ method"):
        dataclasses.replace(spec, methods=("nearest",))
    with pytest.raises(ValueError, match="checkpoint"):
        PTQTable()
