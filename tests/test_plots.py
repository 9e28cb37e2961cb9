"""landscape.plots draws readable figures from arrays, and the figure scripts in analyses/ write their PNG,
CSV and config JSON from a (tiny) run file."""

import csv
import importlib
import json
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED
from PIL import Image

from landscape import plots

ANALYSES = REPO / "analyses"


def _check_png(path, min_size=(300, 200)):
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # not a blank canvas


def _labelled(ax):
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_every_plot_function_draws_a_labelled_axes(tmp_path):
    rng = np.random.default_rng(0)
    fig, axes = plots.figure(2, 3)
    edges = np.linspace(-1, 1, 41)
    counts = {"pretrained": rng.integers(0, 50, 40), "compressed": rng.integers(0, 50, 40)}
    ax = plots.weight_histograms(axes[0, 0], edges, counts, clusters=(np.array([-0.5, 0.0, 0.5]),
                                                                      np.array([3, 9, 4])),
                                 title="conv1")
    assert ax.get_yscale() == "log" and len(ax.get_legend().get_texts()) == 3
    plots.perturbation_distribution(axes[0, 1], rng.normal(0.05, 0.01, 30), {"clamped": 0.01,
                                                                             "ptq:heq:4": 0.08},
                                    title="random vs real")
    assert len(axes[0, 1].lines) >= 2
    plots.path_curves(axes[0, 2], np.linspace(0, 2, 9), {"a": rng.random(9), "b": rng.random(9)},
                      knots=["pretrained", "compressed", "clamped"], ylabel="loss (nats)", title="path")
    assert [t.get_text() for t in axes[0, 2].get_xticklabels()] == ["pretrained", "compressed", "clamped"]
    plots.bits_per_layer(axes[1, 0], ["conv1.weight", "linear.weight"], {"soft": np.array([3.0, 4.0]),
                                                                         "HEQ 4 bits": np.array([4.0, 4.0])},
                         title="bits")
    plots.pareto(axes[1, 1], {"soft quantization": (np.array([3.5]), np.array([0.85])),
                              "HEQ": (np.array([2, 3, 4]), np.array([0.1, 0.5, 0.8]))}, reference=0.88,
                 notes={"soft quantization": ["h=0.05"]}, title="pareto")
    plots.scan_curves(axes[1, 2], np.array([-1, 0, 1]), {"real": np.array([1.0, 0.3, 0.5])}, title="scan")
    for ax in axes.flat:
        _labelled(ax)
    out = plots.save(fig, tmp_path / "all.png")
    _check_png(out)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_plots_never_touch_pyplot():
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(ANALYSES))
    yield lambda name: importlib.import_module(name)
    sys.path.remove(str(ANALYSES))


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


COMMON = ["--data", str(SHARED / "data"), "--limit", "60", "--batch-size", "30", "--json"]


def test_figure_scripts_write_png_csv_and_config(scripts, tiny_run, tmp_path, capsys):
    out = tmp_path / "fig"
    run = ["--run", str(tiny_run), "--out-dir", str(out)]
    assert scripts("fig_weight_histograms").main(run + COMMON + ["--layers", "all", "--bins", "30"]) == 0
    assert scripts("fig_perturbation").main(run + COMMON + ["--directions", "3", "--alphas", "0", "1",
                                                            "--targets", "clamped", "ptq:heq:2",
                                                            "--bn-batches", "1"]) == 0
    assert scripts("fig_paths").main(["--run", str(tiny_run), str(tiny_run), "--labels", "a", "b",
                                      "--out-dir",
                                      str(out), "--points", "3"] + COMMON) == 0
    assert scripts("fig_accuracy_vs_bits").main(run + COMMON + ["--bits", "2", "3"]) == 0
    assert scripts("fig_surface").main(run + COMMON + ["--resolution", "3"]) == 0
    capsys.readouterr()

    for stem in ("weight_histograms", "perturbation", "paths", "accuracy_vs_bits", "surface"):
        _check_png(out / f"{stem}.png")
        assert _read_csv(out / f"{stem}.csv")
        config = json.loads((out / f"{stem}.config.json").read_text())
        assert config["seeds"] == 1 and config["limit"] == 60

    hist = _read_csv(out / "weight_histograms.csv")
    assert {r["series"] for r in hist} >= {"pretrained", "final (compressed, before clamping)",
                                           "clamped cluster"}
    assert any(r["series"].startswith("after epoch 1") for r in hist)  # the checkpoint nearest one epoch
    pert = _read_csv(out / "perturbation.csv")
    assert sum(r["kind"] == "random" for r in pert) == 6 and {r["target"] for r in pert} == {"clamped",
                                                                                             "ptq:heq:2"}
    paths = _read_csv(out / "paths.csv")
    assert len(paths) == 2 * 5 and {r["label"] for r in paths} == {"a", "b"} and {r["split"] for r in paths} == {"test"}
    assert float(paths[0]["bits"]) > 0 and 0 <= float(paths[0]["accuracy_clamped"]) <= 1 and paths[0]["seed"] == "0"
    surface = _read_csv(out / "surface.csv")
    assert len(surface) == 2 * 9 and not list(out.glob(".*journal*"))
    anchors = {(r["plane"], r["state"]) for r in _read_csv(out / "surface_anchors.csv")}
    assert anchors == {("states", "pretrained"), ("states", "compressed"), ("states", "clamped"), ("random", "clamped")}
    bits = _read_csv(out / "accuracy_vs_bits.csv")
    assert [r["method"] for r in bits].count("HEQ PTQ") == 2

    # outputs exist now: a second run refuses without --force, before doing any work
    with pytest.raises(Exception, match="--force"):
        scripts("fig_paths").main(["--run", str(tiny_run), "--out-dir", str(out)] + COMMON)


def test_fig_paths_on_both_splits_under_another_stem(scripts, tiny_run, tmp_path, capsys):
    """--split both: a test and a train curve per run (train images unaugmented, first --limit); --stem names the
    files; the legend carries the run's seed, mean bits and clamped accuracy; one label may cover several seeds
    but not the same run twice."""
    from landscape.store import Run

    out = tmp_path / "fig"
    assert scripts("fig_paths").main(["--run", str(tiny_run), "--labels", "h=1", "--out-dir", str(out), "--points",
                                      "2", "--split", "both", "--stem", "paths_both"] + COMMON) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    rows = _read_csv(out / "paths_both.csv")
    assert [r["split"] for r in rows] == ["test"] * 3 + ["train"] * 3 and not (out / "paths.csv").exists()
    run = Run(tiny_run)
    bits, acc = run.bits()["mean_effective"], run.evals()["clamped"]["accuracy"]
    assert {r["label"] for r in rows} == {"h=1"} and float(rows[0]["bits"]) == pytest.approx(bits)
    assert float(rows[0]["accuracy_clamped"]) == pytest.approx(acc)
    (key,) = summary
    assert key == "h=1 (seed 0)" and set(summary[key]) >= {"test", "train", "bits", "accuracy_clamped"}
    assert summary[key]["train"]["loss"]["pretrained"] != summary[key]["test"]["loss"]["pretrained"]
    _check_png(out / "paths_both.png")
    with pytest.raises(ValueError, match="same label and seed"):
        scripts("fig_paths").main(["--run", str(tiny_run), str(tiny_run), "--labels", "x", "x", "--out-dir",
                                   str(tmp_path / "other")] + COMMON)


def test_table_scripts_run_on_the_tiny_model(scripts, tiny_checkpoint, tmp_path, capsys):
    """table_ptq and table_methods end to end on the tiny checkpoint (a regression test: both once broke on an
    option they did not define)."""
    common = ["--arch", "tiny", "--checkpoint", str(tiny_checkpoint), "--data", str(SHARED / "data"), "--limit", "60",
              "--batch-size", "30", "--out-dir", str(tmp_path)]
    assert scripts("table_ptq").main(common + ["--bits", "2", "--methods", "kmeans"]) == 0
    assert scripts("table_methods").main(common + ["--bits", "2", "--methods", "kmeans", "centroid",
                                                   "--train-limit", "128"]) == 0
    assert scripts("table_methods").main(common + ["--bits", "2", "--methods", "kmeans", "--seed", "1",
                                                   "--suffix", "_s1"]) == 0  # a second seed beside the first
    capsys.readouterr()
    assert len(_read_csv(tmp_path / "ptq_table.csv")) >= 1 and len(_read_csv(tmp_path / "methods_table.csv")) >= 2
    assert (tmp_path / "methods_accuracy_vs_bits_s1.png").is_file()
    assert json.loads((tmp_path / "methods_table_s1.config.json").read_text())["seed"] == 1
    with pytest.raises(ValueError, match="not a path"):
        scripts("table_methods").main(common + ["--suffix", "/x"])


def test_palette_gives_every_series_its_own_colour_beyond_the_deep_palette():
    """Twelve curves (a study's runs on one path figure) used to repeat two of 'deep''s colours; the named
    states keep their fixed colours either way."""
    few = plots.palette(["compressed", "a", "b"])
    assert few["compressed"] == plots.COLORS["compressed"] and few["a"] != few["b"]
    names = ["pretrained"] + [f"run {i}" for i in range(14)]
    many = plots.palette(names)
    assert many["pretrained"] == plots.COLORS["pretrained"]
    assert len(set(many.values())) == len(names)
