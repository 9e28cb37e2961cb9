"""analyses/fig3_protocols.py on the tiny run: two stored perturbation results of different protocols (train split,
BN keep; test split, BN recalibrate) in two run files labelled as seeds of one setting; the CSV's protocol
columns, positions (finite z-scores, percentiles in [0, 100], equal to the stored ones and to a recomputation from
the stored arrays), the summary over seeds, and one-line errors."""

from __future__ import annotations

import csv
import importlib
import json
import math
import shutil
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED, CliResult, assert_one_line_error

from landscape import cli
from landscape.analysis.perturbation import read_perturb
from landscape.perturb import main as perturb

COMMON = ["--directions", "3", "--target", "compressed", "--limit", "40", "--batch-size", "20", "--data",
          str(SHARED / "data"), "--json"]


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        yield importlib.import_module("fig3_protocols")
    finally:
        sys.path.remove(str(REPO / "analyses"))


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory, cifar):
    """Two run files ("seeds"): train/global/keep and test/global/recalibrate results of the compressed target;
    the second file's test result drawn with another direction seed so that the seeds differ. perturb gets the
    session's decoded CIFAR-10 instead of reading it again (3 s a call)."""
    folder = tmp_path_factory.mktemp("fig3")
    a = shutil.copy(tiny_run, folder / "a.h5")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cli, "load_data", lambda args, run=None: cifar)
        assert perturb([str(a), *COMMON, "--split", "train", "--bn", "keep"]) == 0
        assert perturb([str(a), *COMMON, "--bn-batches", "1"]) == 0
        b = shutil.copy(a, folder / "b.h5")
        assert perturb([str(b), *COMMON, "--bn-batches", "1", "--seed", "1", "--force"]) == 0
    return [a, b]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_rows_summary_and_recomputed_zscores(script, runs, tmp_path, capsys):
    a, b = runs
    capsys.readouterr()
    assert script.main(["--run", str(a), str(b), "--labels", "h=0.5", "h=0.5", "--out-dir", str(tmp_path),
                        "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for suffix in (".png", ".csv", "_summary.csv", ".config.json"):
        assert (tmp_path / f"fig3_protocols{suffix}").is_file(), suffix
    assert (tmp_path / "fig3_protocols.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(tmp_path / "fig3_protocols.csv")
    assert list(rows[0])[:len(script.COLUMNS)] == list(script.COLUMNS)
    assert sorted((r["run"], r["split"], r["norm"], r["bn"]) for r in rows) == [
        (str(a), "test", "global", "recalibrate"), (str(a), "train", "global", "keep"),
        (str(b), "test", "global", "recalibrate"), (str(b), "train", "global", "keep")]
    for r in rows:
        assert r["label"] == "h=0.5" and r["target"] == "compressed" and r["seed"] == "0"
        assert r["directions"] == "3" and r["n_images"] == "40"
        for col in ("real_z", "actual_z", "real_slope", "actual_slope", "random_mean", "random_std"):
            assert math.isfinite(float(r[col])), col
        for col in ("real_percentile", "actual_percentile"):
            assert 0 <= float(r[col]) <= 100, col
        # the weight-only point is the one perturb stored; the actual-model point is recomputed from the arrays
        data, attrs = read_perturb(r["run"], r["name"])
        assert attrs.get("split", "test") == r["split"]
        assert float(r["real_z"]) == pytest.approx(attrs["zscore"], rel=1e-9)
        assert float(r["real_percentile"]) == pytest.approx(attrs["percentile"])
        dl = data["random_delta_loss"]
        actual = attrs["target_loss"] - attrs["base_loss"]
        assert float(r["actual_z"]) == pytest.approx((actual - dl.mean()) / np.std(dl, ddof=1), rel=1e-9)
        assert float(r["actual_slope"]) == pytest.approx(actual / attrs["displacement_norm"], rel=1e-9)
        assert float(r["random_std"]) == pytest.approx(np.std(data["random_slope"], ddof=1), rel=1e-9)
    summary = {(s["split"], s["bn"]): s for s in _rows(tmp_path / "fig3_protocols_summary.csv")}
    assert set(summary) == {("train", "keep"), ("test", "recalibrate")}
    for (split, bn), s in summary.items():
        zs = [float(r["real_z"]) for r in rows if (r["split"], r["bn"]) == (split, bn)]
        assert s["n_seeds"] == "2" and s["label"] == "h=0.5"
        assert float(s["real_z_mean"]) == pytest.approx(np.mean(zs))
        assert float(s["real_z_std"]) == pytest.approx(np.std(zs, ddof=1), abs=1e-12)
    assert float(summary["test", "recalibrate"]["real_z_std"]) > 0  # the two direction seeds differ
    assert len(out["summary"]) == 2 and out["png"] == str(tmp_path / "fig3_protocols.png")
    # --stem writes a variant beside it; the first outputs are not overwritten without --force
    assert script.main(["--run", str(a), "--out-dir", str(tmp_path), "--stem", "v2", "--targets", "compressed"]) == 0
    assert (tmp_path / "v2.png").is_file() and len(_rows(tmp_path / "v2.csv")) == 2


def _run_script(script, monkeypatch, capsys, *args) -> CliResult:
    monkeypatch.setattr(sys, "argv", ["fig3_protocols.py", *map(str, args)])
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    try:
        cli.run(script.main, "fig3_protocols")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def test_bad_input_is_one_line(script, runs, tiny_run, tmp_path, monkeypatch, capsys):
    a, b = runs
    bare = shutil.copy(tiny_run, tmp_path / "bare.h5")
    run = lambda *args: _run_script(script, monkeypatch, capsys, *args, "--out-dir", tmp_path)  # noqa: E731
    assert_one_line_error(run("--run", bare), "no perturbation results")
    assert_one_line_error(run("--run", a, b, "--labels", "x"), "1 labels for 2 run files")
    assert_one_line_error(run("--run", a, "--targets", "clamped"), "no stored perturbation result has a target")
    assert_one_line_error(run("--run", a, "--names", "nope"), "none of the results")
    assert_one_line_error(run("--run", tmp_path / "missing.h5"), "does not exist")
    assert not list(tmp_path.glob("fig3_protocols*"))
