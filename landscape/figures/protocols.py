"""Soft-quantization paper, Fig. 3, under every measurement protocol side by side: does the compressor's step
ΔL_task/‖Δθ‖ lie outside the distribution of equal-norm random perturbations? (`analyses/fig3_protocols.py`)

Claim. The paper says that ΔL_task/Δθ of soft quantization "falls outside the perturbation distribution": the step
from the pretrained to the compressed (or clamped) weights costs less task loss per unit of weight-space distance
than random Gaussian steps of the same norm. The task loss the method lowers is the training loss.

This figure computes nothing: it reads the results `python -m landscape.perturb` stored in one or more run files
(/analysis/perturb/<name>, landscape/analysis/perturbation.py) and draws them all in one figure.

Protocols. A stored result's protocol is (split × norm × bn), read from its attributes:
  split  train | test   the images ΔL is measured on (perturb --split; results without the attribute: test);
  norm   global         ‖δ‖ = ‖Δθ‖ over all weights | per-layer: ‖δ_l‖ = ‖Δθ_l‖ in every layer;
  bn     keep           every state keeps the pretrained BN statistics | recalibrate: every state (pretrained,
                        real, random) gets its statistics re-estimated on the same unaugmented training batches.
The paper's wording supports split = train (the task loss the method lowers) with norm = global (the literal
"random perturbations of equal norm"); marked † in the figure. It does not say how BN statistics are treated,
so both bn modes are consistent with it: keep is the literal "add δ to the weights", recalibrate the fair
comparison (analysis/perturbation.py: stale statistics penalise a structured step more than a random one).

Displacements and points. A displacement is (run label, target: compressed, clamped, ptq:heq:4, …). For each
(displacement, protocol), with ‖Δθ‖ the displacement's norm over the conv/linear weights:
  random         ΔL/‖Δθ‖ of the M random directions (box and dots);
  weight-only Δθ real_slope: θ_pre + Δθ, only the conv/linear weights moved, BN parameters and biases pretrained
                 (with bn=recalibrate its statistics re-estimated like every random state's);
  actual model   (target_loss − base_loss)/‖Δθ‖: the target's full state (its own fine-tuned BN parameters and
                 biases) against the pretrained model, on the same images. Under bn=keep both are exactly the saved
                 models with their own BN running statistics; under bn=recalibrate both have their statistics
                 re-estimated on the same batches. The random ΔL are measured from the same base_loss, so every
                 point of a protocol shares one reference. (A PTQ target's full state differs from the pretrained
                 one in the weights only, so for it the two points coincide.)
Each point's position among the random ones is given as in analysis/perturbation.py: percentile = percent of
random ΔL below it (ties count half), z = (ΔL − mean)/std with std ddof=1 (NaN for M < 2).

Seeds. Several run files given the same `labels` entry are training seeds of one setting (their run-file seed is
the `seed` column): every seed's points are drawn, and the summary CSV gives mean ± std (ddof=1) over seeds of
z-scores, percentiles and slopes per label × target × protocol. The random directions' own seed (perturb --seed)
is the `direction_seed` column. Without labels each run is labelled by its compressor settings (base.run_label),
so runs of equal settings are seeds of one label.

Figure: one panel per target (rows) × protocol (columns), each with its own linear y axis (ΔL/‖Δθ‖); one box
(quartiles, whiskers over the full range) and the dots of the random directions per run, the weight-only point
(filled circle) and the actual-model point (open diamond) beside it, colour per label; the tick label under each
run gives both z-scores. A panel without a stored result says so.

Outputs (<out_dir>/<stem>…): .png; .csv, one row per run × target × protocol (COLUMNS, then name, direction_seed,
limit, base_loss, target_loss, real_delta_loss, actual_delta_loss); _summary.csv (n_seeds and <column>_mean,
<column>_std per label × target × protocol); .config.json.

    >>> spec = ProtocolsFigure(runs=("runs/s0.h5", "runs/s1.h5"), labels=("h=0.05", "h=0.05"),
    ...                        targets=("compressed",))
    >>> spec.name, spec.paths()["_summary.csv"].name
    ('fig3_protocols', 'fig3_protocols_summary.csv')
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import plots
from ..analysis.perturbation import read_perturb, stored_perturbs
from ..errors import LandscapeError
from ..outputs import write_csv
from ..store import Run
from .base import FigureResult, FigureSpec, maker, run_label, write_config

SPLITS, NORMS, BNS = ("train", "test"), ("global", "per-layer"), ("keep", "recalibrate")
PAPER = ("train", "global")  # the (split, norm) the paper's wording speaks about; BN treatment not stated
COLUMNS = ("label", "run", "seed", "target", "split", "norm", "bn", "directions", "n_images", "displacement_norm",
           "real_slope", "real_z", "real_percentile", "actual_slope", "actual_z", "actual_percentile", "random_mean",
           "random_std")
SUMMARY_OF = ("real_z", "real_percentile", "actual_z", "actual_percentile", "real_slope", "actual_slope",
              "random_mean", "random_std", "displacement_norm")


def percentile(random: np.ndarray, x: float) -> float:
    """Percent of the random values below x, ties counting half (PerturbResult.percentile)."""
    return float(100 * (np.sum(random < x) + 0.5 * np.sum(random == x)) / len(random))


def zscore(random: np.ndarray, x: float) -> float:
    """(x − mean)/std, std with ddof=1; NaN for fewer than 2 values or zero spread (PerturbResult.zscore)."""
    if len(random) < 2 or np.std(random, ddof=1) == 0:
        return math.nan
    return float((x - random.mean()) / np.std(random, ddof=1))


def protocol_of(attrs: dict) -> tuple[str, str, str]:
    return str(attrs.get("split", "test")), str(attrs["norm"]), str(attrs["bn"])


def protocol_label(p: tuple[str, str, str]) -> str:
    split, norm, bn = p
    return f"{split}{' †' if (split, norm) == PAPER else ''}\n{norm}\nBN {'recal.' if bn == 'recalibrate' else bn}"


def _order(value: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(value), "") if value in known else (len(known), value)


def protocol_key(p: tuple[str, str, str]):
    return _order(p[0], SPLITS), _order(p[1], NORMS), _order(p[2], BNS)


def target_key(t: str):
    return _order(t, ("compressed", "clamped")), t


def read_rows(path: Path, label: str, names: tuple[str, ...] | list[str] | None,
              targets: tuple[str, ...] | list[str] | None) -> list[tuple[dict, np.ndarray]]:
    """(CSV row, random ΔL/‖Δθ‖) for every stored perturbation result of one run file that `names`/`targets` keep."""
    run = Run(path)
    stored = stored_perturbs(path)
    if not stored:
        raise LandscapeError(f"{path} has no perturbation results (/analysis/perturb is empty): run "
                             f"python -m landscape.perturb {path} ... first")
    if names:
        missing = [n for n in names if n not in stored]
        chosen = [n for n in stored if n in names]
        if not chosen:
            raise LandscapeError(f"{path} has none of the results {', '.join(missing)} (stored: {', '.join(stored)})")
    else:
        chosen = stored
    out, seen = [], {}
    for name in chosen:
        data, attrs = read_perturb(path, name)
        target = str(attrs.get("target", name))
        if targets and target not in targets:
            continue
        proto = protocol_of(attrs)
        if (target, proto) in seen:
            raise LandscapeError(f"{path} has two results for target {target} under protocol "
                                 f"{'/'.join(proto)} ({seen[target, proto]}, {name}): choose one by its name "
                                 f"(names, --names)")
        seen[target, proto] = name
        r = np.asarray(data["random_delta_loss"], dtype=np.float64)
        norm = float(attrs["displacement_norm"])
        real = float(attrs["real_delta_loss"])
        actual = float(attrs["target_loss"]) - float(attrs["base_loss"])
        slopes = r / norm
        row = {"label": label, "run": str(path), "seed": run.seed, "target": target, "split": proto[0],
               "norm": proto[1], "bn": proto[2], "directions": int(attrs.get("directions", len(r))),
               "n_images": int(attrs["n"]), "displacement_norm": norm,
               "real_slope": real / norm, "real_z": zscore(r, real), "real_percentile": percentile(r, real),
               "actual_slope": actual / norm, "actual_z": zscore(r, actual), "actual_percentile": percentile(r, actual),
               "random_mean": float(slopes.mean()),
               "random_std": float(np.std(slopes, ddof=1)) if len(slopes) > 1 else math.nan,
               "name": name, "direction_seed": int(attrs["seed"]) if "seed" in attrs else "",
               "limit": int(attrs["limit"]) if "limit" in attrs else "", "base_loss": float(attrs["base_loss"]),
               "target_loss": float(attrs["target_loss"]), "real_delta_loss": real, "actual_delta_loss": actual}
        out.append((row, slopes))
    if not out:
        raise LandscapeError(f"{path}: no stored perturbation result has a target among {', '.join(targets)} "
                             f"(stored: {', '.join(stored)})")
    return out


def no_nan(rows: list[dict]) -> list[dict]:
    """NaN → None, for JSON (a NaN is not valid JSON)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def summarize(rows: list[dict]) -> list[dict]:
    """mean ± std (ddof=1; NaN for one seed) over the runs of each label × target × protocol."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["label"], row["target"], row["split"], row["norm"], row["bn"]].append(row)
    out = []
    for (label, target, split, norm, bn), rs in groups.items():
        s = {"label": label, "target": target, "split": split, "norm": norm, "bn": bn, "n_seeds": len(rs),
             "seeds": " ".join(str(r["seed"]) for r in rs),
             "directions": " ".join(sorted({str(r["directions"]) for r in rs})),
             "n_images": " ".join(sorted({str(r["n_images"]) for r in rs}))}
        for col in SUMMARY_OF:
            v = np.array([r[col] for r in rs], dtype=np.float64)
            s[f"{col}_mean"] = float(v.mean())
            s[f"{col}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        out.append(s)
    return out


FOOTNOTE = ("Panels: rows = targets, columns = protocols (split · norm matching · BN statistics of every state); "
            "each panel has its own y scale. † = the paper's wording (training loss, equal global norm; it does not "
            "say how BN is treated). Tick labels: z of the weight-only step | z of the actual model among the random "
            "ΔL. Actual model = the target's full state minus the pretrained model on the same images; under BN "
            "recal. both have their BN statistics re-estimated on the same training batches, under BN keep both are "
            "the saved models.")


def draw(rows: list[tuple[dict, np.ndarray]], labels: list[str], title: str):
    """One panel per target (row) × protocol (column), linear y; in a panel one box per run, grouped by label."""
    targets = sorted({r["target"] for r, _ in rows}, key=target_key)
    protos = sorted({(r["split"], r["norm"], r["bn"]) for r, _ in rows}, key=protocol_key)
    runs = sorted(dict.fromkeys((r["label"], r["run"]) for r, _ in rows), key=lambda x: labels.index(x[0]))
    seeds = {r["run"]: r["seed"] for r, _ in rows}
    tag = {}  # how a run is told apart from the other runs of its label: its seed, else its file name
    for label in labels:
        mine = [run for lab, run in runs if lab == label]
        distinct = len({seeds[run] for run in mine}) == len(mine)
        tag.update({run: "" if len(mine) == 1 else f"\nseed {seeds[run]}" if distinct else f"\n{Path(run).stem}"
                    for run in mine})
    xs, x = {}, 0.0  # a slot per run, a half-slot gap between labels
    for i, (label, run) in enumerate(runs):
        x += 0.5 if i and runs[i - 1][0] != label else 0.0
        xs[label, run] = x
        x += 1.0
    colors = dict(zip(labels, sns.color_palette("deep", len(labels)).as_hex(), strict=True))
    fig, axes = plots.figure(len(targets), len(protos), width=max(2.8, 1.0 + 0.75 * x, 9.0 / len(protos)),
                               height=3.3)
    rng = np.random.default_rng(0)  # jitter of the random dots only
    by = {(r["target"], r["split"], r["norm"], r["bn"]): [] for r, _ in rows}
    for row, slopes in rows:
        by[row["target"], row["split"], row["norm"], row["bn"]].append((row, slopes))
    for i, target in enumerate(targets):
        for j, proto in enumerate(protos):
            ax = axes[i, j]
            title_ = f"{target} — {protocol_label(proto).replace(chr(10), ' · ')}"
            ax.set_title(title_, fontsize="small")
            cell = by.get((target, *proto), [])
            if not cell:
                ax.text(0.5, 0.5, "no stored result", ha="center", va="center", transform=ax.transAxes,
                        color="#888888")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            ticks, names = [], []
            for row, slopes in cell:
                pos, color = xs[row["label"], row["run"]], colors[row["label"]]
                box = ax.boxplot(slopes, positions=[pos], widths=0.55, whis=(0, 100), showfliers=False,
                                 patch_artist=True, manage_ticks=False, zorder=2)
                for patch in box["boxes"]:
                    patch.set(facecolor=color, alpha=0.25, edgecolor="#555555")
                for part in ("whiskers", "caps", "medians"):
                    for line in box[part]:
                        line.set(color="#555555", linewidth=0.8)
                ax.scatter(pos + rng.uniform(-0.15, 0.15, len(slopes)), slopes, s=7, color="#444444", alpha=0.6,
                           linewidths=0, zorder=3)
                ax.scatter([pos - 0.12], [row["real_slope"]], marker="o", s=50, color=color, edgecolors="black",
                           linewidths=0.8, zorder=5)
                ax.scatter([pos + 0.12], [row["actual_slope"]], marker="D", s=40, color="white", edgecolors=color,
                           linewidths=1.8, zorder=4)
                ticks.append(pos)
                names.append(f"{row['label']}{tag[row['run']]}\nz {row['real_z']:+.1f} | {row['actual_z']:+.1f}")
            ax.axhline(0, color="black", linewidth=0.6, linestyle=":", zorder=1)
            ax.set_xticks(ticks, names, fontsize="x-small")
            ax.set_xlim(-0.6, x - 0.4)
            if j == 0:
                ax.set_ylabel("ΔL / ‖Δθ‖  (nats per unit norm)", fontsize="small")
    handles = [Patch(facecolor="#bbbbbb", edgecolor="#555555", label="random directions (box: quartiles, range)"),
               Line2D([], [], marker="o", linestyle="", color="#999999", markeredgecolor="black",
                      label="weight-only Δθ (pretrained BN params, biases)"),
               Line2D([], [], marker="D", linestyle="", color="white", markeredgecolor="#555555", markeredgewidth=1.8,
                      label="actual model (target's full state)")]
    handles += [Patch(color=colors[label], label=label) for label in labels]
    width = fig.get_figwidth()  # inches; ~14 characters of x-small text per inch
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, min(len(handles), int(width // 3.2))),
               fontsize="small", frameon=False, title=textwrap.fill(FOOTNOTE, width=int(width * 14)),
               title_fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    return fig




@dataclass(frozen=True)
class ProtocolsFigure(FigureSpec):
    """The stored perturbation results of `runs` (run files), every protocol side by side; runs of one label are
    seeds of one setting. Reads the run files only: `limit`, `batch_size`, `data` and `device` are not used."""

    runs: tuple[str, ...] = ()  # run files holding results of python -m landscape.perturb, ≥ 1, each once
    labels: tuple[str, ...] | None = None  # one label per run file, the same for seeds of one setting (None: its
    #                                        compressor settings)
    targets: tuple[str, ...] | None = None  # only results for these targets (compressed, clamped, ptq:METHOD:BITS;
    #                                         None: all)
    names: tuple[str, ...] | None = None  # only these stored results (names under /analysis/perturb; None: all)

    STEM = "fig3_protocols"
    SUFFIXES = (".png", ".csv", "_summary.csv", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))
        for name in ("labels", "targets", "names"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.runs:
            raise ValueError("give at least one run file")
        if self.labels is not None and len(self.labels) != len(self.runs):
            raise ValueError(f"labels: got {len(self.labels)} labels for {len(self.runs)} run files (give one per "
                             f"run file, the same label for seeds of one setting)")
        if "/" in self.name:
            raise ValueError(f"stem must be a plain file-name stem, got {self.stem!r}")
        if len(set(self.runs)) != len(self.runs):
            raise ValueError("runs: a run file is given twice (seeds must be different run files)")


@maker(ProtocolsFigure)
def make(spec: ProtocolsFigure) -> FigureResult:
    """Read every run's stored results, draw the panels, write the PNG, both CSVs and the config JSON."""
    out = spec.outputs()
    paths = [Path(r) for r in spec.runs]
    labels = list(spec.labels) if spec.labels else [run_label(Run(path)) for path in paths]
    results = [x for path, label in zip(paths, labels, strict=True)
               for x in read_rows(path, label, spec.names, spec.targets)]
    rows = [row for row, _ in results]
    summary = summarize(rows)
    unique = list(dict.fromkeys(labels))
    n_seeds = {label: labels.count(label) for label in unique}
    seeds = ", ".join(f"{label}: {n} seed{'s' * (n > 1)}" for label, n in n_seeds.items())
    spec.log(f"{len(rows)} stored results of {len(paths)} run files ({seeds})")
    fig = draw(results, unique, f"Fig. 3 protocols — ΔL/‖Δθ‖ of the real displacement vs equal-norm random "
                                f"directions ({seeds})")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_csv(out["_summary.csv"], summary)
    write_config(out[".config.json"], spec, labels=labels, seeds=n_seeds, summary=no_nan(summary))
    lines = [f"{s['label']:>14} {s['target']:>12}  {s['split']:>5} {s['norm']:>9} BN {s['bn']:<11}"
             f" n={s['n_seeds']}  weight-only z {s['real_z_mean']:+.2f} ± {s['real_z_std']:.2f} "
             f"(percentile {s['real_percentile_mean']:.0f})  actual z {s['actual_z_mean']:+.2f} ± "
             f"{s['actual_z_std']:.2f} (percentile {s['actual_percentile_mean']:.0f})" for s in summary]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary_csv": str(out["_summary.csv"]),
                         "config": str(out[".config.json"])}, no_nan(summary),
                        [*lines, f"wrote {', '.join(map(str, out.values()))}"])
