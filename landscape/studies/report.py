"""A study's results: every run, the mean ± std over seeds per point, the Pareto front, and the PTQ baselines on
the same model and test images, as tables, a figure, and one JSON object.

Accuracies are fractions of the study's test images, losses nats, bits mean effective bits per weight (log2 K per
layer, weighted by layer size). The PTQ baselines' bits are their effective bits too (a layer may use fewer than
2^b levels), so every point of the figure is on one axis.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from .. import plots
from ..compress import METHODS
from ..specs import RunSpec
from ..store import Run
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
    """Mean and std (over seeds, ddof=1; 0 for a single seed) of accuracies, losses and bits per point."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(digest({n: r[n] for n in spec.parameters}), []).append(r)
    out = []
    keys = [k for k in rows[0] if k.startswith(("accuracy_", "loss_", "mean_bits"))] if rows else []
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


def front_rows(study: optuna.Study, metric: str = "accuracy") -> list[dict]:
    """Optuna's Pareto front (`best_trials`: the study's objective — `metric`, accuracy or loss — and mean bits),
    by bits."""
    return sorted(({"trial": t.number, **t.params, metric: t.values[0], "mean_bits": t.values[1]}
                   for t in study.best_trials), key=lambda r: r["mean_bits"])


def ptq_baselines(base: RunSpec, *, data=None, download: bool = False, device: str = "cpu",
                  bits=PTQ_BITS, cache: Path | None = None, recorded: dict | None = None) -> list[dict]:
    """Uniform, HEQ and k-means PTQ of the study's starting model at `bits`, on the study's test images; with the
    study's --recalibrate-bn N also after BN recalibration on N training batches. A language model's study
    (`recorded`: the data spec its runs recorded, with the text's vocabulary and context) is quantized with its
    runs' parameter selection and evaluated on their validation windows, in nats per token (no accuracy, no BN).
    Cached in `cache` (JSON, keyed by everything that decides the numbers)."""
    from ..bn import recalibrate_bn_, recalibration_batches
    from ..compress.ptq import quantize_model
    from ..datasets import load_recorded
    from ..metrics import evaluate
    from ..models import load_model
    from ..text import evaluation_batches, is_text, loss_for, recorded_splits

    settings = base.at(device=device).to_settings()
    text = is_text(settings.get("data"))
    if text and not is_text(recorded):
        raise ValueError("a language model's PTQ baselines need the data spec its runs recorded")
    which = settings["compressor"].get("params", "weights") if text else "weights"
    key = digest([settings["arch"], settings["checkpoint_sha256"] or settings["checkpoint"], settings["limit_test"],
                  settings["recalibrate_bn"], settings["train"]["batch_size"], list(bits)]
                 + ([which, recorded.get("sha256"), recorded.get("context")] if text else []))
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["rows"]
    model = load_model(settings["arch"], settings["checkpoint"], settings.get("arch_kwargs")).to(device)
    if text:
        train_split, test = recorded_splits(recorded, data)
    else:
        train_split, test, _ = load_recorded(settings.get("data"), data, download=download)
    test_batches = evaluation_batches(test.subset(settings["limit_test"]), 500, device)
    loss_fn = loss_for(test)
    n_bn = settings["recalibrate_bn"]
    # the same images the study's runs recalibrate on (train.run_training: N batches of the training batch size)
    bn_data = recalibration_batches(train_split, n_bn, settings["train"]["batch_size"], device) if n_bn else None
    rows = [{"method": "full precision", "bits": 32, "mean_bits": 32.0,
             **_acc(evaluate(model, test_batches, loss_fn=loss_fn))}]
    for method in PTQ_METHODS:
        for b in bits:
            q = quantize_model(model, method, b, which=which)
            row = {"method": method, "bits": b, "mean_bits": q.mean_bits(),
                   **_acc(evaluate(q.model, test_batches, loss_fn=loss_fn))}
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
    """A baseline's numbers: loss (nats), examples, and the accuracy where the model is a classifier (NaN for a
    language model: left out)."""
    out = {"loss_clamped": result["loss"], "n_test": result["n"]}
    return out if math.isnan(result["accuracy"]) else {"accuracy_clamped": result["accuracy"], **out}


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
            "pareto_front": front_rows(study, spec.metric), "ptq_baselines": baselines or [], "metric": spec.metric}


def figure(report: dict, path: Path) -> Path:
    """Accuracy vs mean bits: one panel per accuracy the runs have (clamped; BN-recalibrated), each with every
    run, the per-point means ± seed std, that panel's Pareto front, and the PTQ baselines. A language model's
    study (report["metric"] "loss"): one panel, validation loss in nats/token (lower is better)."""
    spec = report["spec"]
    loss = report.get("metric") == "loss"
    metric = "loss" if loss else "accuracy"
    kinds = [k for k in ("clamped", "recalibrated") if any(f"{metric}_{k}" in r for r in report["runs"])]
    fig, axes = plots.figure(1, len(kinds), width=6.5, height=4.8)
    full = next((b for b in report["ptq_baselines"] if b["method"] == "full precision"), None)
    for ax, kind in zip(axes[0], kinds, strict=True):
        runs = [r for r in report["runs"] if f"{metric}_{kind}" in r]
        bits = np.array([r["mean_bits"] for r in runs])
        value = np.array([r[f"{metric}_{kind}"] for r in runs])
        pts = report["points"]
        means = ([p["mean_bits"] for p in pts], [p[f"{metric}_{kind}"] for p in pts],
                 [p["mean_bits_std"] for p in pts], [p[f"{metric}_{kind}_std"] for p in pts])
        front = nondominated(bits, -value if loss else value)  # fewer bits and lower loss / higher accuracy
        base = {}
        for method, name in PTQ_METHODS.items():
            rows = [b for b in report["ptq_baselines"] if b["method"] == method and f"{metric}_{kind}" in b]
            if rows:
                base[name] = ([b["mean_bits"] for b in rows], [b[f"{metric}_{kind}"] for b in rows])
        title = "clamped" if kind == "clamped" else "clamped, BN statistics recalibrated"
        names = sorted(spec["grid"] or spec["space"])
        notes = [",".join(f"{p[n]:.3g}" for n in names) for p in pts]
        plots.study_front(ax, (bits, value), means, (bits[front], value[front]), base, reference=full and
                          full[f"{metric}_clamped"], notes=notes,
                          label=METHODS[spec["method"]][0].display_name(),
                          title=f"{spec['name']}: {spec['method']}, {title} (labels: {','.join(names)})",
                          **({"scale": 1.0, "ylabel": "validation loss (nats/token)"} if loss else {}))
        if loss:  # 2-bit PTQ of a language model can be several nats off: keep the runs readable
            ax.set_ylim(None, max(value, default=1.0) + 0.5)
        else:
            ax.set_ylim(max(0, 100 * min(value, default=0.5) - 15), None)  # 2-bit PTQ (~10%) would squash the runs
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
    result = summary(study, spec)
    if not result["runs"]:
        raise LandscapeError(f"study {spec.name!r} has no finished runs yet (run it with `study run {spec.name}`)")
    recorded = Run(result["runs"][0]["run"]).config.get("data") if spec.metric == "loss" else None
    if ptq:
        result["ptq_baselines"] = ptq_baselines(base, data=data, download=download, device=device, recorded=recorded,
                                                cache=Path(spec.runs) / "ptq-baselines.json")
    write_csv(out["-runs.csv"], result["runs"])
    write_csv(out["-points.csv"], result["points"])
    write_json(out[".json"], {**result, **provenance})
    figure(result, out[".png"])
    return result, {k.lstrip("-."): str(v) for k, v in out.items()}
