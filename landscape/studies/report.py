"""A study's results: every run, the mean ± std over seeds per point, the Pareto front, and the PTQ baselines on
the same model and test images, as tables, a figure, and one JSON object.

Accuracies are fractions of the study's test images, losses nats, bits mean effective bits per weight (log2 K per
layer, weighted by layer size). The PTQ baselines' bits are their effective bits too (a layer may use fewer than
2^b levels), so every point of the figure is on one axis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from .. import plots
from ..compress import METHODS
from ..specs import RunSpec
from .spec import StudySpec, digest

PTQ_BITS = (2, 3, 4, 6, 8)
PTQ_METHODS = {"uniform": "uniform PTQ", "heq": "HEQ PTQ", "kmeans": "k-means PTQ"}


def run_rows(study: optuna.Study, spec: StudySpec) -> list[dict]:
    """One row per run of every complete trial (a run trained twice, e.g. by a duplicate trial, once)."""
    rows, seen = [], set()
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        point = {k: v for k, v in t.params.items() if k != "seed"}
        for run in t.user_attrs.get("runs", []):
            if run["run"] in seen:
                continue
            seen.add(run["run"])
            rows.append({"trial": t.number, **point, **{k: v for k, v in run.items() if k != "run"},
                         "run": run["run"]})
    return rows


def point_rows(rows: list[dict], spec: StudySpec) -> list[dict]:
    """Mean and std (over seeds, ddof=1; 0 for a single seed) of accuracies and bits per point."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(digest({n: r[n] for n in spec.parameters}), []).append(r)
    out = []
    keys = [k for k in rows[0] if k.startswith(("accuracy_", "mean_bits"))] if rows else []
    for members in groups.values():
        row = {n: members[0][n] for n in spec.parameters} | {"seeds": len(members)}
        for k in keys:
            values = np.array([m[k] for m in members if k in m], dtype=float)
            row[k] = float(values.mean()) if len(values) else float("nan")
            row[f"{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(row)
    return sorted(out, key=lambda r: tuple(r[n] for n in spec.parameters))


def nondominated(bits: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (fewer or equal bits and higher or equal accuracy,
    one strictly), sorted by bits."""
    keep = [i for i in range(len(bits)) if not np.any((bits <= bits[i]) & (accuracy >= accuracy[i])
                                                      & ((bits < bits[i]) | (accuracy > accuracy[i])))]
    return np.array(sorted(keep, key=lambda i: (bits[i], -accuracy[i])), dtype=int)


def front_rows(study: optuna.Study) -> list[dict]:
    """Optuna's Pareto front (`best_trials`: accuracy of the study's objective, mean bits), by bits."""
    return sorted(({"trial": t.number, **t.params, "accuracy": t.values[0], "mean_bits": t.values[1]}
                   for t in study.best_trials), key=lambda r: r["mean_bits"])


def ptq_baselines(base: RunSpec, *, data=None, download: bool = False, device: str = "cpu",
                  bits=PTQ_BITS, cache: Path | None = None) -> list[dict]:
    """Uniform, HEQ and k-means PTQ of the study's starting model at `bits`, on the study's test images; with the
    study's --recalibrate-bn N also after BN recalibration on N training batches. Cached in `cache` (JSON,
    keyed by everything that decides the numbers)."""
    from ..bn import recalibrate_bn_, recalibration_batches
    from ..compress.ptq import quantize_model
    from ..data import Batches
    from ..datasets import load_recorded
    from ..metrics import evaluate
    from ..models import load_model

    settings = base.at(device=device).to_settings()
    key = digest([settings["arch"], settings["checkpoint_sha256"] or settings["checkpoint"], settings["limit_test"],
                  settings["recalibrate_bn"], settings["train"]["batch_size"], list(bits)])
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["rows"]
    model = load_model(settings["arch"], settings["checkpoint"], settings.get("arch_kwargs")).to(device)
    train_split, test, _ = load_recorded(settings.get("data"), data, download=download)
    test_batches = Batches(test.subset(settings["limit_test"]), 500, train=False, device=device)
    n_bn = settings["recalibrate_bn"]
    # the same images the study's runs recalibrate on (train.run_training: N batches of the training batch size)
    bn_data = recalibration_batches(train_split, n_bn, settings["train"]["batch_size"], device) if n_bn else None
    rows = [{"method": "full precision", "bits": 32, "mean_bits": 32.0, **_acc(evaluate(model, test_batches))}]
    for method in PTQ_METHODS:
        for b in bits:
            q = quantize_model(model, method, b)
            row = {"method": method, "bits": b, "mean_bits": q.mean_bits(), **_acc(evaluate(q.model, test_batches))}
            if bn_data is not None:
                after = evaluate(recalibrate_bn_(q.model, bn_data), test_batches)
                row |= {"accuracy_recalibrated": after["accuracy"], "loss_recalibrated": after["loss"]}
            rows.append(row)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp")
        tmp.write_text(json.dumps({"key": key, "rows": rows}, indent=1))
        tmp.replace(cache)
    return rows


def _acc(result: dict) -> dict:
    return {"accuracy_clamped": result["accuracy"], "loss_clamped": result["loss"], "n_test": result["n"]}


def summary(study: optuna.Study, spec: StudySpec, baselines: list[dict] | None = None) -> dict:
    """Everything the report shows, as one JSON-ready object."""
    from .engine import done_count

    rows = run_rows(study, spec)
    done, total = done_count(study, spec)
    states = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] += 1
    return {"study": spec.name, "spec": json.loads(spec.to_json()), "finished": done, "total": total,
            "trial_states": {k: v for k, v in states.items() if v}, "runs": rows, "points": point_rows(rows, spec),
            "pareto_front": front_rows(study), "ptq_baselines": baselines or []}


def figure(report: dict, path: Path) -> Path:
    """Accuracy vs mean bits: one panel per accuracy the runs have (clamped; BN-recalibrated), each with every
    run, the per-point means ± seed std, that panel's Pareto front, and the PTQ baselines."""
    spec = report["spec"]
    kinds = [k for k in ("clamped", "recalibrated") if any(f"accuracy_{k}" in r for r in report["runs"])]
    fig, axes = plots.figure(1, len(kinds), width=6.5, height=4.8)
    full = next((b for b in report["ptq_baselines"] if b["method"] == "full precision"), None)
    for ax, kind in zip(axes[0], kinds, strict=True):
        runs = [r for r in report["runs"] if f"accuracy_{kind}" in r]
        bits = np.array([r["mean_bits"] for r in runs])
        acc = np.array([r[f"accuracy_{kind}"] for r in runs])
        pts = report["points"]
        means = ([p["mean_bits"] for p in pts], [p[f"accuracy_{kind}"] for p in pts],
                 [p["mean_bits_std"] for p in pts], [p[f"accuracy_{kind}_std"] for p in pts])
        front = nondominated(bits, acc)
        base = {}
        for method, name in PTQ_METHODS.items():
            rows = [b for b in report["ptq_baselines"] if b["method"] == method and f"accuracy_{kind}" in b]
            if rows:
                base[name] = ([b["mean_bits"] for b in rows], [b[f"accuracy_{kind}"] for b in rows])
        title = "clamped" if kind == "clamped" else "clamped, BN statistics recalibrated"
        names = sorted(spec["grid"] or spec["space"])
        notes = [",".join(f"{p[n]:.3g}" for n in names) for p in pts]
        plots.study_front(ax, (bits, acc), means, (bits[front], acc[front]), base, reference=full and
                          full["accuracy_clamped"], notes=notes,
                          label=METHODS[spec["method"]][0].display_name(),
                          title=f"{spec['name']}: {spec['method']}, {title} (labels: {','.join(names)})")
        ax.set_ylim(max(0, 100 * min(acc, default=0.5) - 15), None)  # 2-bit PTQ (~10%) would squash the runs
    return plots.save(fig, path)


def write(study: optuna.Study, spec: StudySpec, base: RunSpec, out_dir, stem: str, *, force: bool = False,
          ptq: bool = True, data=None, download: bool = False, device: str = "cpu", **provenance
          ) -> tuple[dict, dict[str, str]]:
    """The report as files OUT_DIR/STEM.png (figure), STEM-runs.csv, STEM-points.csv and STEM.json (everything,
    with `provenance`); existing files are replaced only with `force`, checked before any work. The PTQ
    baselines are cached beside the run files. Returns (summary, {kind: path})."""
    from .. import cli
    from ..errors import LandscapeError
    from ..outputs import write_csv, write_json

    out = {s: cli.check_out(Path(out_dir) / f"{stem}{s}", force) for s in (".png", "-runs.csv", "-points.csv",
                                                                            ".json")}
    baselines = ptq_baselines(base, data=data, download=download, device=device,
                              cache=Path(spec.runs) / "ptq-baselines.json") if ptq else []
    result = summary(study, spec, baselines)
    if not result["runs"]:
        raise LandscapeError(f"study {spec.name!r} has no finished runs yet (run it with `study run {spec.name}`)")
    write_csv(out["-runs.csv"], result["runs"])
    write_csv(out["-points.csv"], result["points"])
    write_json(out[".json"], {**result, **provenance})
    figure(result, out[".png"])
    return result, {k.lstrip("-."): str(v) for k, v in out.items()}
