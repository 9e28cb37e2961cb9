"""analyses/fig_other_arch.py end to end on a shrunken torchvision MobileNetV2 (24k parameters, a few SGD steps):
every output written and consistent with the run files, and a rerun reuses every finished step (nothing
retrained or re-evaluated)."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import pytest
from conftest import REPO, SHARED, CliResult, assert_one_line_error

from landscape import cli
from landscape.store import Run

# torchvision's own MobileNetV2 (depthwise convs, inverted residuals, ReLU6), only narrower and shallower
TINY_KWARGS = {"num_classes": 10, "width_mult": 0.25, "inverted_residual_setting": [[1, 8, 1, 2], [2, 8, 1, 2]]}


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        yield importlib.import_module("fig_other_arch")
    finally:
        sys.path.remove(str(REPO / "analyses"))


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_end_to_end_and_rerun_reuses_everything(script, tmp_path, capsys):
    fig, work = tmp_path / "fig", tmp_path / "work"
    args = ["--arch", "torchvision.models:mobilenet_v2", "--arch-kwargs", json.dumps(TINY_KWARGS),
            "--pretrain-epochs", "1", "--limit-train", "256", "--epochs", "1", "--limit", "100", "--directions", "2",
            "--points", "3", "--data", str(SHARED / "data"), "--out-dir", str(fig), "--work-dir", str(work), "--json"]
    assert script.main(args) == 0
    first = json.loads(capsys.readouterr().out)

    for suffix in (".png", ".csv", "_paths.csv", "_perturb.csv", ".config.json"):
        assert (fig / f"other_arch{suffix}").is_file(), suffix
    assert (fig / "other_arch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(fig / "other_arch.csv")
    assert [r["kind"] for r in rows] == ["full precision", "soft quantization", "soft quantization"] + \
        [kind for kind in ("uniform PTQ", "HEQ PTQ", "k-means PTQ") for _ in (3, 4)]
    assert [r["setting"] for r in rows[1:3]] == ["h=0.05 w=0.3", "h=0.1 w=0.45"]
    config = json.loads((fig / "other_arch.config.json").read_text())
    runs = config["run_files"]
    assert list(runs) == ["h=0.05 w=0.3", "h=0.1 w=0.45"]
    for row in rows[1:3]:
        run = Run(runs[row["setting"]])
        assert run.config["compressor"]["h"] == float(row["setting"].split()[0][2:])
        assert run.config["train"]["epochs"] == 1 and run.config["limit_train"] == 256
        assert float(row["mean_bits"]) == pytest.approx(run.bits()["mean_effective"])
        assert float(row["accuracy"]) == pytest.approx(run.evals()["clamped"]["accuracy"])
        assert float(row["accuracy_recalibrated"]) == pytest.approx(run.evals()["recalibrated"]["accuracy"])
        assert row["source"] == runs[row["setting"]]
    for row in rows:
        assert int(row["n"]) == 100 and 0 <= float(row["accuracy"]) <= 1
    for row in rows[3:]:
        assert 0 < float(row["mean_bits"]) <= int(row["setting"].split()[1])  # small layers may use fewer levels
    assert Path(Run(runs["h=0.05 w=0.3"]).config["checkpoint"]) == Path(config["checkpoint"]).resolve()

    paths = _rows(fig / "other_arch_paths.csv")
    assert len(paths) == 2 * (2 * 3 - 1)
    assert [r["state"] for r in paths[:5] if r["state"]] == ["pretrained", "compressed", "clamped"]
    clamped = [r for r in paths if r["state"] == "clamped"]
    for r, row in zip(clamped, rows[1:3], strict=True):  # the path's end is the run's clamped model
        assert float(r["accuracy"]) == pytest.approx(float(row["accuracy"]), abs=0.011)  # BN folded: ≤ 1 image
    perturb = _rows(fig / "other_arch_perturb.csv")
    assert [r["kind"] for r in perturb] == ["real", "target_full_state", "random", "random"] * 2

    verdict = first["verdict"]
    assert verdict["mean_bits"] == pytest.approx(float(rows[1]["mean_bits"])) and verdict["ptq_bits"] in (3, 4)
    assert first["verdict_text"].startswith("verdict: (0.05, 0.3)")
    assert config["seeds"]["training"] == 0 and config["budget"]["soft_quantization"]["epochs"] == 1
    assert config["full_precision"]["source"] == "trained here"
    assert not any(t["cached"] for t in config["timings"].values())

    # a rerun: outputs refused without --force, then every step read back, no file of the work folder rewritten
    before = {p.name: p.stat().st_mtime_ns for p in work.iterdir()}
    assert sorted(p for p in before if p.endswith(".h5")) == sorted(p.rsplit("/", 1)[1] for p in runs.values())
    with pytest.raises(Exception, match="exists"):
        script.main(args)
    assert script.main([*args, "--force"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert {p.name: p.stat().st_mtime_ns for p in work.iterdir()} == before
    assert all(t["cached"] for t in second["timings"].values()), second["timings"]
    assert _rows(fig / "other_arch.csv") == rows and second["verdict"] == first["verdict"]


@pytest.mark.parametrize("args, needles", [
    (["--setting", "0.05,0.3"], ["paper's own"]),
    (["--setting", "0.1"], ["--setting", "H,W"]),
    (["--arch", "no_such_module:f"], ["cannot import"]),
    (["--points", "1"], ["--points"]),
])
def test_bad_input_is_one_line(script, tmp_path, monkeypatch, capsys, args, needles):
    monkeypatch.setattr(sys, "argv", ["fig_other_arch.py", "--out-dir", str(tmp_path / "fig"), "--work-dir",
                                      str(tmp_path / "work"), "--data", str(SHARED / "data"), *args])
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.run(script.main, "fig_other_arch")
    captured = capsys.readouterr()
    assert_one_line_error(CliResult(e.value.code, captured.out, captured.err), *needles)
    assert not (tmp_path / "fig").exists() or not list((tmp_path / "fig").iterdir())
