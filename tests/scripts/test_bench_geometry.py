"""bench/geometry.py runs end to end on a tiny budget (3×3 grid on 10 test images, Hessian on 4), with and without
the peer packages of the `bench` extra; its findings about loss-landscapes' grid hold in the recorded coordinates."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
from conftest import ADAPTED_R20, REPO

TINY = ["--quick", "--resolution", "3", "--images", "10", "--hessian-images", "4"]
KEYS = ("surface_vs_bare", "surface_vs_loss_landscapes", "top_eig_vs_pyhessian", "top_eig_rel_diff", "hvp_vs_grad")


@pytest.fixture
def geometry(monkeypatch):
    if not ADAPTED_R20.is_file():
        pytest.skip(f"no {ADAPTED_R20}")
    spec = importlib.util.spec_from_file_location("bench_geometry", REPO / "bench" / "geometry.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_with_peers(geometry, capsys, tmp_path):
    pytest.importorskip("loss_landscapes")
    pytest.importorskip("pyhessian")
    out = tmp_path / "geometry.json"
    assert geometry.main([*TINY, "--json", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert json.loads(out.read_text()) == result
    assert "| surface_vs_bare |" in captured.err  # the table goes to stderr under --json
    for key in KEYS:
        assert math.isfinite(result[key]) and result[key] >= 0, key
    assert result["top_eig_rel_diff"] < 0.01
    assert result["messages"] == {}
    assert result["budget"]["resolution"] == 3 and result["budget"]["hessian_images"] == 4
    assert set(result["load"]) == {"start", "end"} and result["versions"]["pyhessian"]
    h = result["hessian"]
    assert h["product_rel_diff_vs_pyhessian"] < 1e-5  # both differentiate the same loss w.r.t. the same parameters
    assert h["ours"]["products"] >= 1 and h["pyhessian"]["products"] >= 1

    ins = result["surface"]["inspection"]
    assert ins["recorded_order_ok"]  # every recorded evaluation is the element of its array we mapped it to
    r = 3
    step = 2 / r  # distance 0.5: its step in filter-normalized units
    for i in range(r):
        for j in range(r):
            assert ins["coords_x"][i][j] == pytest.approx(-1 + i * step, abs=1e-4)
            expected_y = -1 + (j + 1) * step if i % 2 == 0 else -1 + j * step  # the zigzag
            assert ins["coords_y"][i][j] == pytest.approx(expected_y, abs=1e-4)
    ids = {d["id"] for d in result["loss_landscapes_differences"]}
    assert {"grid", "zigzag", "uniform", "orthogonality", "biases_bn", "distance", "bn_statistics",
            "evaluation"} <= ids
    for c in ins["values"]["cross_check"]:  # our evaluator on its plane gives its values
        assert c["ours"] == pytest.approx(c["theirs"], rel=1e-4, abs=1e-4)


def test_quick_without_peers(geometry, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "loss_landscapes", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pyhessian", None)
    assert geometry.main([*TINY, "--out", str(tmp_path / "geometry.json")]) == 0
    result = json.loads((tmp_path / "geometry.json").read_text())
    for key in ("surface_vs_loss_landscapes", "top_eig_vs_pyhessian", "top_eig_rel_diff"):
        assert result[key] is None, key
    assert math.isfinite(result["surface_vs_bare"]) and math.isfinite(result["hvp_vs_grad"])
    assert all("pip install -e '.[bench]'" in m for m in result["messages"].values())
    assert set(result["messages"]) == {"loss_landscapes", "pyhessian"}
    out = capsys.readouterr().out
    assert "pip install -e '.[bench]'" in out
    assert "| surface_vs_loss_landscapes | null |" in out and "| top_eig_vs_pyhessian | null |" in out
    assert "| hvp_vs_grad | " in out and "Where loss_landscapes" not in out
