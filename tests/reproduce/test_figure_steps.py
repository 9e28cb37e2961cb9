"""The report's figure and table steps (FigureStep) build the very spec their script parsed from the command the
command engine ran before (so a ledger entry of that command describes the same work, and `--migrate` may re-key
it), and a figure step runs in process and logs."""

from __future__ import annotations

import importlib
import sys

import pytest
from conftest import REPO

from landscape.figures import base as figures_base
from landscape.reproduce import BUDGETS, Context
from landscape.reproduce import steps as rsteps


def _old_commands(ctx: Context) -> dict[str, tuple[str, list[str]]]:
    """step → (script, argv): what landscape/reproduce/steps.py ran as `python analyses/<script> ARGV --out-dir
    <figures> --force` before the figure steps were typed (copied from that version, checkpoint path aside)."""
    b = ctx.budget
    heads = [ctx.runs("sq", h=0.05, w=0.3)[s] for s in b.seeds]
    failed = ctx.runs("sq", h=0.001, w=0.3)[b.seeds[0]]
    names = [rsteps.perturb_name(t, *p) for t in ("compressed", "clamped") for p in rsteps.PROTOCOLS]
    more = [rsteps.perturb_name(t, *p) for t in ("ptq:heq:4", "ptq:kmeans:4") for p in rsteps.PROTOCOLS]
    cwc = sorted(ctx.at("cwc"), key=lambda r: (f"K={2 ** int(r['bits'])}, λ={r['strength']:g}", r["seed"]))
    checkpoint = rsteps.local_checkpoint(ctx)  # the command ran from the checkout: a relative path did there
    methods = ["--arch", b.arch, "--checkpoint", checkpoint, "--epochs", str(b.sweep_epochs), "--train-limit",
               str(b.limit_train or 50_000), "--methods", "vq", "vq-euclidean", "input-bitwise"]
    return {
        "fig:fig3": ("fig3_protocols", ["--run", *heads, "--labels", *["h=0.05"] * len(heads), "--names", *names,
                                        "--stem", "fig3_protocols"]),
        "fig:fig3-compare": ("fig3_protocols", ["--run", *heads, failed, "--labels", *["h=0.05"] * len(heads),
                                                "h=0.001", "--names", *names, *more, "--stem", "fig3_compare"]),
        "fig:paths": ("fig_paths", ["--run", *[r["run"] for r in cwc], "--labels",
                                    *[f"K={2 ** int(r['bits'])}, λ={r['strength']:g}" for r in cwc], "--split",
                                    "both", "--limit", str(b.images), "--points", str(b.points), "--stem",
                                    "paths_cwc"]),
        "fig:mixed": ("fig_mixed_precision", ["--run", *heads]),
        "fig:seeds": ("fig_seeds", ["--run", *heads]),
        "fig:alpha": ("fig_alpha", ["--run", heads[0], "--every", "1"]),
        "fig:estimators": ("fig_estimators", ["--study", *rsteps.ESTIMATOR_STUDIES, "--dir", str(ctx.studies)]),
        "fig:nbins": ("table_nbins", ["--study", "nbins", "--dir", str(ctx.studies)]),
        "table:ptq": ("table_ptq", ["--arch", b.arch, "--checkpoint", checkpoint, "--bits", "2", "3", "4",
                                    "--methods", "uniform", "heq", "kmeans"]),
        "table:dsmm": ("table_dsmm", ["--study", "dsmm", "dsmm-alpha10", "--dir", str(ctx.studies), "--limit",
                                      "10000"]),
        "table:methods": ("table_methods", [*methods, "--seed", str(b.sweep_seeds[0])]),
        **{f"table:methods:s{s}": ("table_methods", [*methods, "--seed", str(s), "--suffix", f"_s{s}"])
           for s in b.sweep_seeds[1:]},
        "fig:cost": ("fig_cost", ["--bench", str(ctx.figure("bench_coupling", ".json"))]),
        # added with the typed steps (no old command): the script's options must build the step's spec
        "table:comparison": ("table_comparison", ["--study", *rsteps.COMPARISON_STUDIES, "--dir", str(ctx.studies),
                                                  "--matched", "cmp-sq"]),
        "table:nas": ("table_comparison", ["--study", *rsteps.NAS_STUDIES, "--dir", str(ctx.studies), "--ptq",
                                           "--stem", "nas_comparison"]),
        "fig:nas-allocation": ("fig_nas", ["--run", ctx.runs("nas", budget_bits=3.0)[b.nas_seeds[0]]]),
        "table:vq-ablation": ("table_vq_ablation", ["--study", *rsteps.VQ_ABLATION_STUDIES, "--dir",
                                                    str(ctx.studies)]),
    }


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """The quick budget over fake finished studies (run files named, not read: building specs reads no file)."""
    b = BUDGETS["quick"]
    rows = {"sq": [{"h": h, "w": 0.3, "seed": s, "run": str(tmp_path / f"sq-h{h}-s{s}.h5")}
                   for h in (0.001, 0.05) for s in b.seeds],
            "cwc": [{"bits": bits, "strength": st, "seed": s, "run": str(tmp_path / f"cwc-{bits}-{st}-{s}.h5")}
                    for bits in (2, 3, 4) for st in (0.1, 1.0) for s in b.cwc_seeds],
            "nas": [{"budget_bits": float(bb), "seed": s, "run": str(tmp_path / f"nas-{bb}-{s}.h5")}
                    for bb in (2, 3, 4) for s in b.nas_seeds]}
    monkeypatch.setattr(Context, "study_rows", lambda self, name: [dict(r) for r in rows.get(name, [])])
    return Context.for_budget(b, root=tmp_path)


def test_every_figure_step_builds_the_spec_its_old_command_parsed_to(ctx, monkeypatch):
    figure_steps = {s.name: s for s in rsteps.steps(ctx) if isinstance(s, rsteps.FigureStep)}
    old = _old_commands(ctx)
    # every command step but the benchmark is a figure step now; the longer comparison's table has no command (its
    # studies are chosen from table:comparison, absent here: its spec is None until then)
    assert figure_steps.pop("table:comparison-long").spec(ctx) is None
    assert set(figure_steps) == set(old)
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        for name, (script, argv) in old.items():
            module = importlib.import_module(script)
            parsed = []
            monkeypatch.setattr(module, "make",
                                lambda spec, into=parsed: into.append(spec) or figures_base.FigureResult({}))
            assert module.main([*argv, "--out-dir", str(ctx.figures), "--force"]) == 0
            assert parsed == [figure_steps[name].spec(ctx)], name
    finally:
        sys.path.remove(str(REPO / "analyses"))


def test_a_figure_step_key_ignores_the_device_and_names_the_checkout_relatively(ctx):
    step = next(s for s in rsteps.steps(ctx) if s.name == "table:ptq")
    on_gpu = Context.for_budget(ctx.budget, root=ctx.figures.parents[2], device="cuda")
    assert step.key(ctx) == step.key(on_gpu) and step.digest(ctx) == step.digest(on_gpu)
    assert "./../shared/models/" in str(sorted(step.key(ctx).items())).replace(str(REPO), ".")
    assert step.outputs(ctx) == [ctx.figure("ptq_table", ".csv")]
