"""How each row of the reproduction report turns its steps' outputs into numbers and a verdict.

Every function takes the budget's Context (analyses/repro_claims.py) and returns
  {"result": one line with the numbers, "verdict": reproduced | partly | not reproduced, "seeds": "0,1,2",
   "budget": what was trained/evaluated, "numbers": {…}}.
Means are over training seeds, ± the sample standard deviation (ddof = 1; none shown for one seed). Accuracies
are fractions of the evaluated test images, shown in percent. The verdict rules are written next to each
function and in the report; they were fixed before the full-budget results were seen.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict

import numpy as np

REPRODUCED, PARTLY, NOT = "reproduced", "partly", "not reproduced"


def ms(values) -> tuple[float, float]:
    v = np.asarray(list(values), dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pm(values, *, pct: bool = False, digits: int = 2) -> str:
    m, s = ms(values)
    k = 100.0 if pct else 1.0
    n = len(list(values)) if not isinstance(values, np.ndarray) else len(values)
    text = f"{k * m:.{digits}f}" + (f" ± {k * s:.{digits}f}" if n > 1 else "")
    return text + ("%" if pct else "")


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def report(ctx, name: str) -> dict:
    return json.loads(ctx.figure(f"study-{name}", ".json").read_text())


def seeds_text(rows) -> str:
    return ",".join(str(s) for s in sorted({int(r["seed"]) for r in rows}))


def train_budget(ctx, epochs: int) -> str:
    b = ctx.budget
    return f"{epochs} epoch{'s' * (epochs > 1)} × {b.limit_train or 50_000:,} images"


def _ptq(rep: dict, method: str, bits: int) -> dict | None:
    return next((p for p in rep["ptq_baselines"] if p["method"] == method and p["bits"] == bits), None)


def _fp(rep: dict) -> float:
    return next(p["accuracy_clamped"] for p in rep["ptq_baselines"] if p["method"] == "full precision")


def ptq_table(ctx) -> dict[tuple[str, int], float]:
    """(method, bits) → test accuracy of PTQ of the pretrained model (analyses/table_ptq.py); ("full precision",
    32) too."""
    return {(r["method"], int(r["bits"])): float(r["accuracy"]) for r in read_csv(ctx.figure("ptq_table", ".csv"))}


# -- soft quantization -----------------------------------------------------------------------------------------
def sq_bits(ctx) -> dict:
    """Reproduced when the mean bits are within 3.8 ± 0.3 AND the clamped accuracy beats HEQ-4's; partly when
    one of the two holds."""
    runs = ctx.at("sq", h=0.05, w=0.3)
    heq = _ptq(report(ctx, "sq"), "heq", 4)
    bits, acc = [r["mean_bits"] for r in runs], [r["accuracy_clamped"] for r in runs]
    near = abs(ms(bits)[0] - 3.8) <= 0.3
    better = ms(acc)[0] > heq["accuracy_clamped"]
    return {"result": f"{pm(bits)} bits, clamped {pm(acc, pct=True)} (BN-recalibrated "
                      f"{pm([r['accuracy_recalibrated'] for r in runs], pct=True)}); HEQ-4 "
                      f"{100 * heq['accuracy_clamped']:.2f}% at {heq['mean_bits']:.2f} bits",
            "verdict": REPRODUCED if near and better else PARTLY if near or better else NOT,
            "seeds": seeds_text(runs), "budget": train_budget(ctx, ctx.budget.epochs),
            "numbers": {"bits": ms(bits), "accuracy_clamped": ms(acc), "heq4": heq["accuracy_clamped"]}}


def sq_fig2(ctx) -> dict:
    """Reproduced when, for HEQ at 3 and at 4 bits, some (h, w) point (mean over seeds) has fewer mean bits and
    a higher clamped accuracy; partly when only at one of them. k-means PTQ is tested the same way and reported
    (the paper does not compare with it)."""
    rep = report(ctx, "fig2")
    points = rep["points"]

    def beaten(method: str, b: int) -> tuple[bool, dict | None, dict]:
        base = _ptq(rep, method, b)
        wins = [p for p in points if p["mean_bits"] <= base["mean_bits"] and p["accuracy_clamped"] >
                base["accuracy_clamped"]]
        best = max(wins, key=lambda p: p["accuracy_clamped"] - p["mean_bits"], default=None)
        return bool(wins), best, base

    parts, verdicts = [], []
    for method in ("heq", "kmeans"):
        for b in (3, 4):
            ok, best, base = beaten(method, b)
            if method == "heq":
                verdicts.append(ok)
            where = (f"h={best['h']:g}, w={best['w']:g}: {best['mean_bits']:.2f} bits, "
                     f"{100 * best['accuracy_clamped']:.2f}%") if best else "no point"
            parts.append(f"{method.upper() if method == 'heq' else 'k-means'}-{b} {100 * base['accuracy_clamped']:.2f}%"
                         f" → {where}")
    n = sum(verdicts)
    return {"result": "; ".join(parts), "verdict": REPRODUCED if n == 2 else PARTLY if n else NOT,
            "seeds": ",".join(map(str, rep["spec"]["seeds"])), "budget": "1 epoch × 50,000 images per point, 12 "
            "points (the studies issue's fig2 sweep)", "numbers": {"points": len(points)}}


def _fig3(ctx, stem: str = "fig3_protocols") -> list[dict]:
    return read_csv(ctx.figure(stem, ".csv"))


def _protocol(r: dict) -> str:
    return f"{r['split']}/{r['norm']}/BN {r['bn']}"


def sq_fig3(ctx) -> dict:
    """'Outside the distribution' = below all M random directions (percentile 0) for every seed. Reproduced when
    that holds for the compressed and the clamped weight-only displacement under both protocols the paper's
    wording supports most directly (training loss, global norm — "equal-norm"; BN treatment unstated, so both);
    partly when it holds under some protocol; not reproduced otherwise. The actual model (its own BN) is
    reported beside it."""
    rows = [r for r in _fig3(ctx) if r["label"] == "h=0.05" and r["target"] in ("compressed", "clamped")]
    by = defaultdict(list)
    for r in rows:
        by[(r["target"], _protocol(r))].append(r)
    outside, actual_outside, lines = {}, {}, []
    for (target, proto), rs in sorted(by.items()):
        below = all(float(r["real_percentile"]) == 0.0 for r in rs)
        actual_below = all(float(r["actual_percentile"]) == 0.0 for r in rs)
        outside[(target, proto)], actual_outside[(target, proto)] = below, actual_below
        lines.append(f"{target} {proto}: weight-only z {pm([float(r['real_z']) for r in rs], digits=1)}, "
                     f"percentile {pm([float(r['real_percentile']) for r in rs], digits=0)}"
                     f"{' (outside)' if below else ''}; actual model z "
                     f"{pm([float(r['actual_z']) for r in rs], digits=1)}{' (outside)' if actual_below else ''}")
    primary = [k for k in outside if k[1].startswith("train/global/")]
    held = [k for k, v in outside.items() if v]
    verdict = REPRODUCED if primary and all(outside[k] for k in primary) else PARTLY if held else NOT
    m = int(rows[0]["directions"]) if rows else 0
    n_actual = sum(actual_outside.values())
    return {"result": f"weight-only displacement below all M = {m} random directions in every seed for "
                      f"{len(held)} of {len(outside)} (target, protocol) pairs; the actual model (own BN, "
                      f"reported, not judged) for {n_actual} of {len(actual_outside)}. " + "; ".join(lines),
            "verdict": verdict, "seeds": seeds_text(rows),
            "budget": f"{train_budget(ctx, ctx.budget.epochs)}; M = {m} directions, {ctx.budget.images:,} images",
            "numbers": {"outside": {f"{t} {p}": v for (t, p), v in outside.items()},
                        "actual_outside": {f"{t} {p}": v for (t, p), v in actual_outside.items()}}}


def sq_fig3_ptq(ctx) -> dict:
    """Reproduced when the soft-quantized clamped displacement's z-score (mean over seeds) is below both PTQ
    displacements' under every protocol; partly when under some."""
    rows = _fig3(ctx, "fig3_compare")
    lines, wins, total = [], 0, 0
    for proto in sorted({_protocol(r) for r in rows}):
        at = [r for r in rows if _protocol(r) == proto]
        sq = [float(r["real_z"]) for r in at if r["label"] == "h=0.05" and r["target"] == "clamped"]
        ptq = {r["target"]: float(r["real_z"]) for r in at if r["target"].startswith("ptq:")}
        if not sq or not ptq:
            continue
        total += 1
        ok = all(ms(sq)[0] < z for z in ptq.values())
        wins += ok
        lines.append(f"{proto}: z {ms(sq)[0]:+.1f} vs " + ", ".join(f"{t[4:]} {z:+.1f}" for t, z in
                                                                      sorted(ptq.items())))
    return {"result": f"below both PTQ steps under {wins} of {total} protocols; " + "; ".join(lines),
            "verdict": REPRODUCED if total and wins == total else PARTLY if wins else NOT,
            "seeds": seeds_text([r for r in rows if r["label"] == "h=0.05"]),
            "budget": f"M = {ctx.budget.directions} directions, {ctx.budget.images:,} images",
            "numbers": {"wins": wins, "protocols": total}}


def sq_failure(ctx) -> dict:
    """Reproduced when h = 0.001 ends ≥ 1 bit above h = 0.05 (the refinement finds no compression to make)."""
    weak, good = ctx.at("sq", h=0.001, w=0.3), ctx.at("sq", h=0.05, w=0.3)
    bw, bg = [r["mean_bits"] for r in weak], [r["mean_bits"] for r in good]
    return {"result": f"h=0.001: {pm(bw)} bits, clamped {pm([r['accuracy_clamped'] for r in weak], pct=True)}; "
                      f"h=0.05: {pm(bg)} bits, {pm([r['accuracy_clamped'] for r in good], pct=True)}",
            "verdict": REPRODUCED if ms(bw)[0] >= ms(bg)[0] + 1 else NOT, "seeds": seeds_text(weak),
            "budget": train_budget(ctx, ctx.budget.epochs), "numbers": {"bits_weak": ms(bw), "bits_good": ms(bg)}}


def sq_mixed(ctx) -> dict:
    """Reproduced when every seed's per-layer bits span at least 1 bit."""
    rows = read_csv(ctx.figure("mixed_precision", ".csv"))
    by = defaultdict(list)
    for r in rows:
        by[int(r["seed"])].append(r)
    spans, rhos = [], []
    for rs in by.values():
        bits = np.array([float(r["bits"]) for r in rs])
        n = np.array([float(r["n_weights"]) for r in rs])
        spans.append(bits.max() - bits.min())
        rhos.append(spearman(bits, n))
    return {"result": f"per-layer bits span {pm(spans)} bits (min–max over layers); Spearman ρ(bits, layer size) "
                      f"{pm(rhos)}",
            "verdict": REPRODUCED if min(spans) >= 1 else NOT, "seeds": ",".join(map(str, sorted(by))),
            "budget": train_budget(ctx, ctx.budget.epochs), "numbers": {"span": ms(spans), "spearman": ms(rhos)}}


def spearman(a, b) -> float:
    """Spearman's rank correlation, ties given their average rank (many layers share a size and a bit width)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# Our penalty is Σ_l h·N_l^(−α)·E_l with E_l the raw pair sum; the paper's "layers contribute comparably" is
# read as an equal share per weight, E_l/N_l ∝ N_l^α, i.e. E_l ∝ N_l^(1+α) (analyses/fig_alpha.py derives it and
# shows the literal alternative E_l ∝ N_l^α, which the data reject).
ALPHA_PREDICTED = 1.66


def sq_alpha(ctx) -> dict:
    """Reproduced when the fitted exponent β of E_l ∝ N_l^β has a 95% interval containing 1 + α = 1.66 at the
    pretrained state and at the last checkpoint; partly when only at one of them."""
    fits = read_csv(ctx.figure("alpha_fit", ".csv"))
    pre = next(f for f in fits if f["state"] == "pretrained")
    steps = [f for f in fits if f["state"] == "checkpoint"]
    last = max(steps, key=lambda f: int(f["step"])) if steps else next(f for f in fits if f["state"] == "clamped")
    clamped = next((f for f in fits if f["state"] == "clamped"), last)

    def inside(f):
        return float(f["ci_lo"]) <= ALPHA_PREDICTED <= float(f["ci_hi"])

    def show(f):
        return f"{float(f['beta']):.3f} ± {float(f['beta_se']):.3f} (95% [{float(f['ci_lo']):.3f}, " \
               f"{float(f['ci_hi']):.3f}], R² {float(f['r2']):.3f})"

    n = inside(pre) + inside(last)
    return {"result": f"β (E_l ∝ N_l^β; predicted 1 + α = {ALPHA_PREDICTED:g}): pretrained {show(pre)}; "
                      f"checkpoint at step {last['step']} {show(last)}; clamped {show(clamped)}. Of β, N_l² "
                      f"pairs give {float(pre['beta_pairs']):.2f} and the pretrained σ_l ∝ N_l^"
                      f"{float(pre['beta_sigma']):.2f} the rest — α = 0.66 restates σ_l's layer-size trend",
            "verdict": REPRODUCED if n == 2 else PARTLY if n else NOT, "seeds": str(ctx.budget.seeds[0]),
            "budget": train_budget(ctx, ctx.budget.epochs),
            "numbers": {"pretrained": float(pre["beta"]), "last": float(last["beta"])}}


def sq_nbins(ctx) -> dict:
    """Reproduced when 2^14 bins is within 0.5 points of accuracy and 0.1 bits of 2^16, and 2^16 costs more
    time per step than 2^14 (finer bins buy nothing and cost something)."""
    rows = {int(float(r["n_bins"])): r for r in read_csv(ctx.figure("nbins", ".csv"))}
    a, b = rows[16384], rows[65536]
    key_t = next(k for k in ("step_s", "penalty_s", "step_seconds") if k in a)
    same = (abs(float(a["accuracy_clamped"]) - float(b["accuracy_clamped"])) <= 0.005
            and abs(float(a["mean_bits"]) - float(b["mean_bits"])) <= 0.1)
    cheaper = float(a[key_t]) < float(b[key_t])
    text = "; ".join(f"2^{int(math.log2(n))}: {100 * float(r['accuracy_clamped']):.2f}%, "
                     f"{float(r['mean_bits']):.2f} bits, {1000 * float(r[key_t]):.1f} ms"
                     for n, r in sorted(rows.items()))
    return {"result": text + f" ({key_t.replace('_s', '')} time)",
            "verdict": REPRODUCED if same and cheaper else PARTLY if same or cheaper else NOT,
            "seeds": str(ctx.budget.sweep_seeds[0]), "budget": train_budget(ctx, ctx.budget.sweep_epochs),
            "numbers": {str(n): float(r["accuracy_clamped"]) for n, r in rows.items()}}


def sq_cost(ctx) -> dict:
    """Reproduced when, at the largest N timed against the exact sum, the histogram estimator is ≥ 10× faster
    with a relative energy error below 1%."""
    bench = json.loads(ctx.figure("bench_coupling", ".json").read_text())
    hist = [r for r in bench["coupling"] if r["estimator"] == "histogram" and r.get("exact_time_s")]
    top = max(hist, key=lambda r: r["n"])
    ok = top["speedup"] >= 10 and top["energy_rel_err"] < 1e-2
    return {"result": f"N = {top['n']:,}: {top['speedup']:.0f}× faster than the exact pair sum, energy error "
                      f"{top['energy_rel_err']:.1e}, force error {top['force_rel_err']:.1e}; soft-quant step "
                      f"{bench['step_overhead']:.2f}× a plain step on ResNet-20",
            "verdict": REPRODUCED if ok else NOT, "seeds": "–", "budget": "bench/coupling.py --quick",
            "numbers": {"speedup": top["speedup"], "energy_rel_err": top["energy_rel_err"]}}


# -- bottom of the loss landscape -----------------------------------------------------------------------------
def _cwc_best(rep: dict) -> dict[int, dict]:
    """bits → the point (strength) with the highest mean clamped accuracy (the paper also picked its
    hyperparameters by exploring them; this selects on the test images — stated in the report)."""
    best = {}
    for p in rep["points"]:
        b = int(p["bits"])
        if b not in best or p["accuracy_clamped"] > best[b]["accuracy_clamped"]:
            best[b] = p
    return best


def _cwc_line(p: dict) -> str:
    s = f" ± {100 * p['accuracy_clamped_std']:.2f}" if p["seeds"] > 1 else ""
    return f"{100 * p['accuracy_clamped']:.2f}{s}% (λ={p['strength']:g})"


def bl_cwc_ptq(ctx) -> dict:
    """Reproduced when CWC beats uniform PTQ at 3 and 4 bits; partly at one."""
    rep, ptq = report(ctx, "cwc"), ptq_table(ctx)
    best = _cwc_best(rep)
    lines, wins = [], 0
    for b in (2, 3, 4):
        u, h, k = (ptq[m, b] for m in ("uniform", "heq", "kmeans"))
        wins += b in (3, 4) and best[b]["accuracy_clamped"] > u
        lines.append(f"{b} bits: CWC {_cwc_line(best[b])} vs uniform {100 * u:.2f}% (HEQ {100 * h:.2f}%, "
                     f"k-means {100 * k:.2f}%)")
    return {"result": "; ".join(lines), "verdict": REPRODUCED if wins == 2 else PARTLY if wins else NOT,
            "seeds": ",".join(map(str, rep["spec"]["seeds"])), "budget": train_budget(ctx, ctx.budget.cwc_epochs),
            "numbers": {str(b): p["accuracy_clamped"] for b, p in best.items()}}


def bl_cwc_fp(ctx) -> dict:
    """Reproduced when the best CWC setting is within 2 points of full precision at 3 and at 4 bits."""
    rep = report(ctx, "cwc")
    best, fp = _cwc_best(rep), ptq_table(ctx)["full precision", 32]
    gaps = {b: 100 * (best[b]["accuracy_clamped"] - fp) for b in (3, 4)}
    n = sum(g >= -2 for g in gaps.values())
    return {"result": f"full precision {100 * fp:.2f}%; " + "; ".join(f"{b} bits {_cwc_line(best[b])}, "
                                                                   f"{g:+.2f} pt" for b, g in gaps.items()),
            "verdict": REPRODUCED if n == 2 else PARTLY if n else NOT,
            "seeds": ",".join(map(str, rep["spec"]["seeds"])), "budget": train_budget(ctx, ctx.budget.cwc_epochs),
            "numbers": {str(b): g for b, g in gaps.items()}}


def path_steps(ctx) -> dict:
    """(label, split) → per seed (climb = L_compressed − L_pretrained, clamp = L_clamped − L_compressed,
    clamped accuracy) from the paths CSV."""
    rows = read_csv(ctx.figure("paths_cwc", ".csv"))
    curves = defaultdict(list)
    for r in rows:
        curves[(r["label"], r["run"], r.get("split", "test"))].append(r)
    out = defaultdict(list)
    for (label, _run, split), rs in curves.items():
        rs.sort(key=lambda r: (int(r["segment"]), float(r["alpha"])))
        seg0 = [r for r in rs if int(r["segment"]) == 0]
        pre, comp, clamp = float(rs[0]["loss"]), float(seg0[-1]["loss"]), float(rs[-1]["loss"])
        out[(label, split)].append({"climb": comp - pre, "clamp": clamp - comp,
                                    "accuracy": float(rs[-1]["accuracy"])})
    return out


def _k_and_strength(label: str) -> tuple[int, float]:
    k, lam = label.split(", ")
    return int(k.split("=")[1]), float(lam.split("=")[1])


def bl_paths(ctx) -> dict:
    """At each K, compare the two pull strengths (matched bits). Reproduced when, at every K and on both splits,
    the run that climbs more while fine-tuning loses less at the clamp and ends more accurate; partly when at
    some (K, split)."""
    steps = path_steps(ctx)
    ks = sorted({_k_and_strength(label)[0] for label, _ in steps})
    holds, lines = [], []
    for split in ("train", "test"):
        for k in ks:
            runs = {_k_and_strength(label)[1]: v for (label, s), v in steps.items() if s == split and
                    _k_and_strength(label)[0] == k}
            if len(runs) < 2:
                continue
            m = {lam: {q: ms([v[q] for v in vs])[0] for q in ("climb", "clamp", "accuracy")} for lam, vs in
                 runs.items()}
            up = max(m, key=lambda lam: m[lam]["climb"])
            other = min(m, key=lambda lam: m[lam]["climb"])
            ok = m[up]["clamp"] < m[other]["clamp"] and m[up]["accuracy"] > m[other]["accuracy"]
            holds.append(ok)
            lines.append(f"{split} K={k}: λ={up:g} climbs {m[up]['climb']:+.3f}, clamp {m[up]['clamp']:+.3f}; "
                         f"λ={other:g} climbs {m[other]['climb']:+.3f}, clamp {m[other]['clamp']:+.3f}"
                         f"{'' if ok else ' ✗'}")
    n = sum(holds)
    return {"result": f"holds at {n} of {len(holds)} (K, split); " + "; ".join(lines),
            "verdict": REPRODUCED if holds and n == len(holds) else PARTLY if n else NOT,
            "seeds": ",".join(map(str, ctx.budget.cwc_seeds)),
            "budget": f"{train_budget(ctx, ctx.budget.cwc_epochs)}; {ctx.budget.images:,} images per split, "
                      f"{ctx.budget.points} points per segment", "numbers": {"holds": n, "cases": len(holds)}}


def bl_barrier(ctx) -> dict:
    """Among each K's successful run (the strength with the smaller clamp loss), the climb decreases from K = 4 to
    8 to 16 on both splits: reproduced; on one split: partly."""
    steps = path_steps(ctx)
    lines, mono = [], []
    for split in ("train", "test"):
        best = {}
        for (label, s), vs in steps.items():
            if s != split:
                continue
            k, lam = _k_and_strength(label)
            m = {q: ms([v[q] for v in vs])[0] for q in ("climb", "clamp")}
            if k not in best or m["clamp"] < best[k]["clamp"]:
                best[k] = {**m, "lam": lam}
        climbs = [best[k]["climb"] for k in sorted(best)]
        mono.append(all(a > b for a, b in zip(climbs, climbs[1:], strict=False)))
        lines.append(f"{split}: " + ", ".join(f"K={k} climb {best[k]['climb']:+.3f} (λ={best[k]['lam']:g})"
                                               for k in sorted(best)))
    n = sum(mono)
    return {"result": "; ".join(lines), "verdict": REPRODUCED if n == 2 else PARTLY if n else NOT,
            "seeds": ",".join(map(str, ctx.budget.cwc_seeds)),
            "budget": train_budget(ctx, ctx.budget.cwc_epochs), "numbers": {"monotone_splits": n}}


def write_rows(ctx, stem: str, rows: list[dict]) -> None:
    """A row's own CSV in the budget's figures folder (rows whose numbers come straight from run files)."""
    from landscape.outputs import write_csv

    ctx.figure(stem, ".csv").parent.mkdir(parents=True, exist_ok=True)
    write_csv(ctx.figure(stem, ".csv"), rows)


def bl_estimators(ctx) -> dict:
    """Reproduced when subsampled and exact (sorted) pair sums end within 0.2 bits and 1 point of accuracy."""
    res, table = {}, []
    for est in ("subsampled", "sorted", "histogram"):
        rs = ctx.study_rows(f"est-{est}")
        res[est] = ([r["mean_bits"] for r in rs], [r["accuracy_clamped"] for r in rs])
        table += [{"estimator": est, "seed": r["seed"], "mean_bits": r["mean_bits"], "accuracy_clamped":
                   r["accuracy_clamped"], "accuracy_compressed": r["accuracy_compressed"],
                   "seconds": r.get("seconds"), "run": r["run"]} for r in rs]
    write_rows(ctx, "estimators", table)
    db = abs(ms(res["subsampled"][0])[0] - ms(res["sorted"][0])[0])
    da = abs(ms(res["subsampled"][1])[0] - ms(res["sorted"][1])[0])
    return {"result": "; ".join(f"{e}: {pm(b)} bits, {pm(a, pct=True)}" for e, (b, a) in res.items()),
            "verdict": REPRODUCED if db <= 0.2 and da <= 0.01 else NOT,
            "seeds": ",".join(map(str, ctx.budget.sweep_seeds)), "budget": train_budget(ctx, ctx.budget.sweep_epochs),
            "numbers": {"delta_bits": db, "delta_accuracy": da}}


def bl_seeds(ctx) -> dict:
    """Per layer and pair of seeds, the clustering differs when the cluster counts differ or some cluster centre
    of one seed is farther than w_l / 2 from every centre of the other (Hausdorff distance > w_l/2, w_l = 0.3·σ_l
    of the pretrained layer). Reproduced when more than half the layers differ for every pair of seeds."""
    from landscape.store import Run

    runs = ctx.runs("sq", h=0.05, w=0.3)
    if len(runs) < 2:
        return {"result": "needs two seeds", "verdict": NOT, "seeds": seeds_text([{"seed": s} for s in runs]),
                "budget": "", "numbers": {}}
    centres, widths = {}, {}
    for seed, path in runs.items():
        run = Run(path)
        centres[seed] = {k: np.asarray(v[0], dtype=float) for k, v in run.clusters().items()}
        if not widths:
            pre = run.state("pretrained")
            widths = {k: 0.3 * float(pre[k].double().std()) for k in centres[seed]}
    fractions, table = [], []
    seeds = sorted(runs)
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            differ = []
            for layer, ca in centres[a].items():
                cb = centres[b][layer]
                d = np.abs(ca[:, None] - cb[None, :])
                hausdorff = max(d.min(axis=1).max(), d.min(axis=0).max())
                differ.append(len(ca) != len(cb) or hausdorff > widths[layer] / 2)
                table.append({"seed_a": a, "seed_b": b, "layer": layer, "clusters_a": len(ca), "clusters_b": len(cb),
                              "hausdorff": float(hausdorff), "w_l": widths[layer], "differ": differ[-1]})
            fractions.append(float(np.mean(differ)))
    write_rows(ctx, "seeds_clusters", table)
    return {"result": f"fraction of layers whose clustering differs between two seeds: {pm(fractions)} "
                      f"({len(fractions)} seed pair{'s' * (len(fractions) > 1)})",
            "verdict": REPRODUCED if min(fractions) > 0.5 else NOT, "seeds": ",".join(map(str, seeds)),
            "budget": train_budget(ctx, ctx.budget.epochs), "numbers": {"fractions": fractions}}


# -- DSMM, VQ, bitwise input ----------------------------------------------------------------------------------
def dsmm_ptq(ctx) -> dict:
    """Reproduced when DSMM (λ = 0.01) then uniform PTQ beats the same fine-tuning without it (λ = 0) then uniform
    PTQ at 2 and 3 bits by more than the seeds' spread; partly at one of them."""
    rep = report(ctx, "dsmm")
    pts = {(int(p["bits"]), float(p["strength"])): p for p in rep["points"]}
    lines, wins = [], 0
    for b in (2, 3, 4):
        d, z = pts[(b, 0.01)], pts[(b, 0.0)]
        u = ptq_table(ctx)["uniform", b]
        margin = max(d["accuracy_clamped_std"], z["accuracy_clamped_std"])
        better = d["accuracy_clamped"] - z["accuracy_clamped"] > margin
        wins += better and b in (2, 3)
        lines.append(f"{b} bits: DSMM {100 * d['accuracy_clamped']:.2f}% vs λ=0 {100 * z['accuracy_clamped']:.2f}%"
                     f" (uniform PTQ of the pretrained model {100 * u:.2f}%)")
    return {"result": "; ".join(lines), "verdict": REPRODUCED if wins == 2 else PARTLY if wins else NOT,
            "seeds": ",".join(map(str, rep["spec"]["seeds"])), "budget": train_budget(ctx, ctx.budget.sweep_epochs),
            "numbers": {"wins": wins}}


def _methods(ctx) -> list[dict]:
    return read_csv(ctx.figure("methods_table", ".csv"))


def vq_cosine(ctx) -> dict:
    """Cosine vs Euclidean assignment at the same bits. Reproduced when cosine uses more codebook entries (less
    collapse) at every bit width and is not less accurate; partly when one of the two holds."""
    rows = _methods(ctx)
    lines, more_used, as_good = [], 0, 0
    for b in ("2", "3", "4"):
        vq = [r for r in rows if r["method"].startswith("vq") and r["target_bits"] == b]
        cos = next(r for r in vq if "cosine" in r["method"])
        euc = next(r for r in vq if "euclid" in r["method"])
        uc, ue = (json.loads(r["stats"])["used_entries"] for r in (cos, euc))
        ac, ae = float(cos["accuracy_clamped"]), float(euc["accuracy_clamped"])
        more_used += uc > ue
        as_good += ac >= ae
        lines.append(f"{b} bits: cosine {100 * ac:.2f}% using {100 * uc:.1f}% of entries vs Euclidean "
                     f"{100 * ae:.2f}% using {100 * ue:.1f}%")
    ok = (more_used == 3) + (as_good == 3)
    return {"result": "; ".join(lines), "verdict": REPRODUCED if ok == 2 else PARTLY if more_used or as_good else NOT,
            "seeds": str(ctx.budget.sweep_seeds[0]), "budget": train_budget(ctx, ctx.budget.sweep_epochs) + ", d = 2",
            "numbers": {"more_used": more_used, "as_good": as_good}}


def bw_input(ctx) -> dict:
    """Reproduced when trained bitwise input quantization beats untrained uniform input quantization at every bit
    width (1–4) and is within 1 point of full precision at 4 bits; partly when one holds."""
    rows = _methods(ctx)
    fp = json.loads(ctx.figure("methods_table", ".config.json").read_text())["accuracy_full_precision"]
    lines, wins, close = [], 0, False
    for b in ("1", "2", "3", "4"):
        t = next(r for r in rows if r["method"] == "input-bitwise" and r["target_bits"] == b)
        u = next(r for r in rows if "untrained" in r["method"] and r["target_bits"] == b)
        at, au = float(t["accuracy_clamped"]), float(u["accuracy_clamped"])
        wins += at > au
        close = close or (b == "4" and fp - at <= 0.01)
        lines.append(f"{b} bit{'s' * (b != '1')}: {100 * at:.2f}% vs untrained {100 * au:.2f}%")
    ok = (wins == 4) + close
    return {"result": "; ".join(lines) + f"; full precision {100 * fp:.2f}%",
            "verdict": REPRODUCED if ok == 2 else PARTLY if ok else NOT, "seeds": str(ctx.budget.sweep_seeds[0]),
            "budget": train_budget(ctx, ctx.budget.sweep_epochs), "numbers": {"wins": wins}}
