"""landscape.analysis.engine: one engine runs every analysis spec (checks before work, journal, resume, writing),
the specs round-trip through the stored `spec` attribute, and the analysis commands share their options."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace

import h5py
import pytest
from conftest import SHARED

from landscape.analysis import engine
from landscape.analysis.engine import Analysis, register, run_analysis
from landscape.analysis.hessian import HessianConfig
from landscape.analysis.paths import PathConfig, read_path
from landscape.analysis.perturbation import PerturbConfig
from landscape.analysis.storage import new_result, set_attrs
from landscape.analysis.surface import SurfaceConfig
from landscape.analysis.sweep import journal_path, run_sweep
from landscape.errors import LandscapeError
from landscape.specs import AnalysisSpec, DataSource, HessianSpec, PathSpec, PerturbSpec, SurfaceSpec

DATA = DataSource(folder=str(SHARED / "data"))


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    path = tmp_path / "run.h5"
    shutil.copy(tiny_run, path)
    return path


def test_docstring_examples():
    import doctest

    from landscape import specs

    assert doctest.testmod(engine).failed == 0 and doctest.testmod(specs).failed == 0


def test_the_commands_build_the_specs_python_would():
    from landscape.cli import hessian, interpolate, perturb, surface

    def spec(module, *argv):
        return module.spec_from_args(module.parser().parse_args(["r.h5", *argv]))

    assert spec(interpolate, "pretrained", "clamped", "--points", "5", "--bn", "recalibrate", "--limit", "100") == \
        PathSpec(run="r.h5", states=("pretrained", "clamped"), limit=100,
                 config=PathConfig(points=5, bn="recalibrate"))
    assert spec(perturb, "--directions", "7", "--split", "train", "--out", "o.h5") == \
        PerturbSpec(run="r.h5", split="train", out="o.h5", config=PerturbConfig(directions=7))
    assert spec(surface, "--plane", "random", "--dims", "1", "--resolution", "5", "--no-fast") == \
        SurfaceSpec(run="r.h5", config=SurfaceConfig(plane="random", dims=1, resolution=5, fast=False))
    assert spec(hessian, "--state", "pretrained", "clamped", "--trace", "--no-clamp-cost", "--device", "cpu") == \
        HessianSpec(run="r.h5", states=("pretrained", "clamped"), clamp_cost=False, config=HessianConfig(trace=True))


def test_every_analysis_spec_is_registered_and_round_trips(tmp_path):
    specs = [PathSpec(run="r.h5", states=("pretrained", "ptq:heq:4"), config=PathConfig(points=3), split="both"),
             PerturbSpec(run="r.h5", target="ptq:uniform:3", config=PerturbConfig(directions=3, alphas=(-1.0, 0.5))),
             SurfaceSpec(run="r.h5", config=SurfaceConfig(resolution=(3, 5), range=((-1.0, 1.0), (-0.5, 0.5)))),
             HessianSpec(run="r.h5", states=("pretrained", "clamped"), path=True,
                         config=HessianConfig(trace=True, layers=("conv1.weight",)), data=DATA)]
    for spec in specs:
        assert engine.analysis_for(spec).kind in {"paths", "perturb", "surface", "hessian"}
        back = AnalysisSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert back == spec and type(back) is type(spec)


@pytest.mark.parametrize("bad, message", [
    (dict(split="validation"), "split must be one of"),
    (dict(limit=0), "limit must be"),
    (dict(batch_size=0), "batch_size must be"),
    (dict(name="a/b"), "result name"),
    (dict(states=("pretrained",)), "at least 2 states"),
])
def test_specs_refuse_bad_settings_at_construction(bad, message):
    with pytest.raises(ValueError, match=message):
        PathSpec(run="r.h5", **bad)


def test_spec_specific_checks():
    with pytest.raises(ValueError, match="target must be"):
        PerturbSpec(run="r.h5", target="pretrained")
    with pytest.raises(ValueError, match="3 states"):
        SurfaceSpec(run="r.h5", states=("pretrained", "clamped"))
    with pytest.raises(ValueError, match="repeat a name"):
        HessianSpec(run="r.h5", states=("clamped", "clamped"))
    with pytest.raises(ValueError, match="split must be one of"):
        PerturbSpec(run="r.h5", split="both")  # only a path evaluates both splits at once


def test_a_spec_built_in_python_runs_like_the_command(run_copy, run_cli, tmp_path):
    """The library call and `landscape interpolate` are the same engine: same numbers, and the stored `spec`
    attribute rebuilds the spec that made the result."""
    spec = PathSpec(run=str(run_copy), states=("pretrained", "clamped"), config=PathConfig(points=3), limit=100,
                    batch_size=50, data=DATA, out=str(tmp_path / "api.h5"))
    outcome = run_analysis(spec)
    assert outcome.file == tmp_path / "api.h5" and outcome.png.exists()
    cli = run_cli("interpolate", run_copy, "pretrained", "clamped", "--points", "3", "--limit", "100",
                  "--batch-size", "50", "--data", SHARED / "data", "--out", tmp_path / "cli.h5", "--json")
    assert cli.code == 0, cli.err
    printed = json.loads(cli.out)
    assert printed["test"] == outcome.to_dict()["test"] and "spec" not in printed
    result, attrs = read_path(tmp_path / "api.h5", outcome.name)
    assert AnalysisSpec.from_dict(json.loads(attrs["spec"])) == spec
    assert list(result.metrics["test"]["loss"]) == printed["test"]["loss"]


def test_outputs_are_checked_before_any_evaluation(run_copy, monkeypatch):
    """A result name that is taken fails before the data is even loaded."""
    with new_result(run_copy, "analysis/paths", "taken") as (group, _):
        set_attrs(group, {"x": 1})
    monkeypatch.setattr(DataSource, "load", lambda self, run=None: pytest.fail("data loaded before the checks"))
    with pytest.raises(LandscapeError, match="already has /analysis/paths/taken; pass --force"):
        run_analysis(PathSpec(run=str(run_copy), name="taken", data=DATA))


# ------------------------------------------------------- a new analysis is one class: the engine does the rest


@dataclass(frozen=True, kw_only=True)
class CountSpec(AnalysisSpec):
    """A toy analysis: the test loss of the pretrained model, evaluated `keys` times (one sweep key each)."""

    keys: int = 4
    fail_at: int | None = None  # raise while evaluating this key (a crash mid-job)


@register(CountSpec)
class CountAnalysis(Analysis):
    kind, group, unit = "count", "analysis/count", "evaluations"
    evaluated: list[str] = []

    def default_name(self):
        return f"count{self.spec.keys}"

    def prepare(self, model):
        return [model.state_dict()]

    def settings(self):
        return {"keys": self.spec.keys, "limit": self.spec.limit}

    def compute(self, ctx):
        from landscape.metrics import evaluate

        def one(key):
            if self.spec.fail_at is not None and int(key) == self.spec.fail_at:
                raise KeyboardInterrupt
            CountAnalysis.evaluated.append(key)
            return evaluate(ctx.model, ctx.batches())["loss"]

        return run_sweep([str(i) for i in range(self.spec.keys)], one, world=ctx.world, journal=ctx.journal)

    def write(self, file, name, result, attrs):
        with new_result(file, self.group, name, force=self.spec.force) as (g, key):
            g.create_dataset("loss", data=[result[str(i)] for i in range(self.spec.keys)])
            set_attrs(g, attrs)
        return key

    def summary(self, result):
        return {"loss": list(result.values())}


def test_the_engine_journals_and_resumes_any_registered_analysis(run_copy):
    spec = CountSpec(run=str(run_copy), keys=4, fail_at=2, limit=50, data=DATA)
    CountAnalysis.evaluated = []
    with pytest.raises(KeyboardInterrupt):
        run_analysis(spec)
    journal = journal_path(run_copy, "count", "count4")
    assert sorted(json.loads(journal.read_text())["done"]) == ["0", "1"]
    outcome = run_analysis(replace(spec, fail_at=None))  # the same job: keys 0 and 1 come from the journal
    assert CountAnalysis.evaluated == ["0", "1", "2", "3"]
    assert not journal.exists()
    with h5py.File(run_copy) as f:
        assert list(f["analysis/count/count4/loss"]) == outcome.summary["loss"]
        assert len(set(outcome.summary["loss"])) == 1  # the same model every time
    with pytest.raises(LandscapeError, match="pass --force"):
        run_analysis(replace(spec, fail_at=None))
    run_analysis(replace(spec, fail_at=None, force=True))


# ------------------------------------------------------------------------------------- shared options, declared once

SHARED_OPTIONS = ("--split", "--limit", "--name", "--out", "--force", "--json", "--device", "--batch-size", "--data",
                  "--seed", "--bn", "--bn-batches", "--no-fast")


def test_the_analysis_commands_declare_their_shared_options_once():
    """The same option means the same thing in every analysis command: its help text is the same but for the
    defaults and the command's own note after ';' (a drift here is what the issue found); --bn and --seed say
    what they apply to."""
    from landscape.cli import hessian, interpolate, perturb, surface

    helps: dict[str, set[str]] = {}
    for module in (interpolate, perturb, surface, hessian):
        for action in module.parser()._actions:
            for option in action.option_strings:
                if option in SHARED_OPTIONS:
                    text = re.sub(r"/analysis/\w+", "/GROUP", (action.help or "").split(";")[0].split("(default")[0])
                    helps.setdefault(option, set()).add(text)
    assert set(helps) == set(SHARED_OPTIONS)
    drifted = {option: texts for option, texts in helps.items() if len(texts) > 1 and option not in ("--bn", "--seed")}
    assert not drifted
