"""python -m landscape.interpolate / landscape.perturb: what they write and print, and one clear line (exit ≠
0, nothing written) for every kind of bad input."""

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import ADAPTED_R20, SHARED, assert_one_line_error

from landscape.analysis.paths import PathConfig, evaluate_path, read_path
from landscape.analysis.perturbation import read_perturb
from landscape.data import Batches
from landscape.store import Run

DATA = ["--data", str(SHARED / "data"), "--batch-size", "50"]


@pytest.fixture
def run(tiny_run, tmp_path):
    """A writable copy of the tiny run."""
    return shutil.copy(tiny_run, tmp_path / "run.h5")


def _groups(path):
    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        return sorted(names)


def _snapshot(folder):
    return sorted(p.name for p in folder.iterdir())


def test_interpolate_writes_into_the_run_file(run_cli, run, cifar):
    r = run_cli("interpolate", run, "--points", 3, "--limit", 100, "--split", "both", "--json", *DATA)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["group"] == "/analysis/paths/pretrained-compressed-clamped_bn-keep"
    assert out["alpha"] == [0, 0.5, 1, 1.5, 2] and out["segment"] == [0, 0, 0, 1, 1]
    result, attrs = read_path(run, "pretrained-compressed-clamped_bn-keep")
    assert set(result.metrics) == {"test", "train"} and result.n == {"test": 100, "train": 100}
    assert json.loads(attrs["states"]) == ["pretrained", "compressed", "clamped"] and attrs["bn"] == "keep"
    png = run.parent / "run.path-pretrained-compressed-clamped_bn-keep.png"
    assert png.is_file() and png.stat().st_size > 5000 and out["png"] == str(png)
    # the stored numbers are the library's on the same data
    tiny = Run(run)
    lib = evaluate_path(tiny.model("pretrained"), [tiny.state(s) for s in ("pretrained", "compressed",
                                                                           "clamped")],
                        {"test": Batches(cifar[1].subset(100), 50, train=False)}, PathConfig(points=3))
    np.testing.assert_array_equal(result.metrics["test"]["loss"], lib.metrics["test"]["loss"])
    np.testing.assert_array_equal(out["test"]["loss"], lib.metrics["test"]["loss"])


def test_interpolate_to_out_with_checkpoint_and_ptq_states(run_cli, run, tiny_checkpoint, tmp_path):
    before = _groups(run)
    out = tmp_path / "sub" / "paths.h5"
    r = run_cli("interpolate", run, "pretrained", str(tiny_checkpoint), "ptq:heq:2", "--points", 2,
                "--limit", 50,
                "--bn", "recalibrate", "--bn-batches", 1, "--out", out, *DATA)
    assert r.code == 0, r.err
    assert "wrote" in r.out and "alpha" in r.out
    assert _groups(run) == before  # the run file is untouched
    result, attrs = read_path(out, "pretrained-tiny-ptqheq2_bn-recalibrate")
    assert len(result.alpha) == 3 and attrs["bn"] == "recalibrate"
    assert (out.parent / "paths.path-pretrained-tiny-ptqheq2_bn-recalibrate.png").is_file()


def test_perturb_writes_into_the_run_file(run_cli, run):
    r = run_cli("perturb", run, "--directions", 3, "--target", "compressed", "--norm", "per-layer",
                "--limit", 50,
                "--alphas", -1, 0, 1, "--bn-batches", 1, "--json", *DATA)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["group"] == "/analysis/perturb/compressed_per-layer"
    assert len(out["random_delta_loss"]) == 3 and 0 <= out["percentile"] <= 100
    data, attrs = read_perturb(run, "compressed_per-layer")
    np.testing.assert_allclose(data["random_delta_loss"], out["random_delta_loss"])
    assert list(data["scan_alpha"]) == [-1, 0,
                                        1] and attrs["norm"] == "per-layer" and attrs["bn"] == "recalibrate"
    r = run_cli("perturb", run, "--directions", 2, "--target", "ptq:uniform:2", "--limit", 50, "--bn",
                "keep", *DATA)
    assert r.code == 0, r.err
    assert "percentile" in r.out and "ptq-uniform-2_global" in r.out


@pytest.fixture
def unfinished(run):
    """The run file as it is before training ends: no /final, no /eval."""
    with h5py.File(run, "a") as f:
        del f["final"]
        del f["eval"]
    return run


@pytest.mark.parametrize("args,needles", [
    (["--points", "1"], ["--points", "≥ 2"]),
    (["--points", "x"], ["--points", "integer"]),
    (["--split", "validation"], ["--split", "invalid choice"]),
    (["--bn", "freeze"], ["--bn"]),
    (["--limit", "0"], ["--limit"]),
    (["pretrained"], ["at least 2 states"]),
    (["pretrained", "nonsense"], ["nonsense", "no such file"]),
    (["pretrained", "step:999"], ["no complete checkpoint at step 999"]),
    (["pretrained", "ptq:heq:x"], ["ptq:METHOD:BITS"]),
    (["pretrained", "ptq:magic:4"], ["unknown PTQ method"]),
    (["pretrained", str(ADAPTED_R20)], ["does not fit", "wrong shape"]),
])
def test_interpolate_bad_input(run_cli, run, args, needles):
    before, files = _groups(run), _snapshot(run.parent)
    r = run_cli("interpolate", run, *args, "--limit", "20", *DATA) if "--limit" not in args else \
        run_cli("interpolate", run, *args, *DATA)
    assert_one_line_error(r, *needles)
    assert _groups(run) == before and _snapshot(run.parent) == files


def test_interpolate_needs_a_finished_run(run_cli, unfinished):
    before, files = _groups(unfinished), _snapshot(unfinished.parent)
    r = run_cli("interpolate", unfinished, "--limit", 20, *DATA)
    assert_one_line_error(r, "/final/compressed", "is the run finished")
    assert _groups(unfinished) == before and _snapshot(unfinished.parent) == files


def test_interpolate_refuses_to_replace_without_force(run_cli, run, tmp_path):
    assert run_cli("interpolate", run, "--points", 2, "--limit", 20, *DATA).code == 0
    files = _snapshot(run.parent)
    assert_one_line_error(run_cli("interpolate", run, "--points", 2, "--limit", 20, *DATA), "--force")
    assert run_cli("interpolate", run, "--points", 2, "--limit", 30, "--force", *DATA).code == 0
    assert read_path(run, "pretrained-compressed-clamped_bn-keep")[0].n == {"test": 30}
    assert _snapshot(run.parent) == files
    existing = tmp_path / "exists.h5"
    existing.write_text("x")
    assert_one_line_error(run_cli("interpolate", run, "--out", existing, *DATA), "exists", "--force")


@pytest.mark.parametrize("args,needles", [
    (["--directions", "0"], ["--directions", "M must be ≥ 1"]),
    (["--directions", "-3"], ["M must be ≥ 1"]),
    ([], ["--directions"]),
    (["--directions", "2", "--norm", "l1"], ["--norm"]),
    (["--directions", "2", "--target", "pretrained"], ["--target"]),
    (["--directions", "2", "--target", "ptq:heq"], ["ptq:METHOD:BITS"]),
])
def test_perturb_bad_input(run_cli, run, args, needles):
    before = _groups(run)
    assert_one_line_error(run_cli("perturb", run, *args, "--limit", "20", *DATA), *needles)
    assert _groups(run) == before


def test_perturb_needs_a_finished_run(run_cli, unfinished):
    before = _groups(unfinished)
    r = run_cli("perturb", unfinished, "--directions", 2, "--limit", 20, *DATA)
    assert_one_line_error(r, "/final/clamped", "is the run finished")
    assert _groups(unfinished) == before


def test_not_a_run_file(run_cli, tmp_path):
    missing = tmp_path / "missing.h5"
    assert_one_line_error(run_cli("interpolate", missing, *DATA), "does not exist")
    assert_one_line_error(run_cli("perturb", missing, "--directions", 1, *DATA), "does not exist")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert_one_line_error(run_cli("interpolate", junk, *DATA), "not a readable HDF5")
    assert _snapshot(tmp_path) == ["junk.h5"]
