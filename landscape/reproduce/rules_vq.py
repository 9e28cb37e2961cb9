"""How the rows of VQ-QAT's search and ablations (issue 26: vq-nas, vq-cosine) turn their tables into numbers and a
verdict. The conventions are those of rules.py; the bit columns those of the QAT comparison (rules_cmp.py: a point
sits in column ⌈its mean effective bits⌉, so no configuration has more bits than its rivals in its column). These
rules were written before any run of their studies existed (the vq-cosine row's earlier rule, on the methods
table's entries in use, is replaced: at 2 and 3 bits both assignments used ~100% of the entries, which could not
tell collapse apart).
"""

from __future__ import annotations

from .rules import NOT, PARTLY, REPRODUCED, read_csv, train_budget
from .rules_cmp import BITS, cells, text

NAS_LABEL = "VQ/linear NAS"
NAS_TARGET = "VQ/linear NAS, budget as target"  # study nas-target: reported, not judged (added after a run)
COSINE, EUCLIDEAN = "VQ-QAT", "VQ-QAT (euclidean)"  # VQ.label_for: top-1 STE, cosine / euclidean assignment
COSINE_SOFT, EUCLIDEAN_SOFT = "VQ-QAT (soft A·C)", "VQ-QAT (soft A·C) (euclidean)"


def vq_nas(ctx) -> dict:
    """The search against the best fixed uniform configuration at the same size: in each bit column (2, 3, 4) where
    the search (its budgets 2, 3 and 4 bits; the chosen configuration respects its budget) has a point, its most
    accurate point against the most accurate fixed configuration of the column (every layer the same candidate:
    vq:4x2, vq:8x4, lin:2 | vq:6x2, lin:3 | vq:8x2, lin:4, trained by the same code), means over seeds. Reproduced
    when the search is at least as accurate in every such column (≥ 2 of them), partly in some, not reproduced in
    none."""
    table = cells(ctx, "nas_comparison")
    fixed = [m for m in table if m.startswith("fixed ")]
    lines, held, tried = [], 0, 0
    for b in BITS:
        nas = table.get(NAS_LABEL, {}).get(b)
        got = [(m, table[m][b]) for m in fixed if b in table[m]]
        best = max(got, key=lambda mc: mc[1]["accuracy"]) if got else None
        if nas is None or best is None:
            lines.append(f"{b} bits: {text(NAS_LABEL, nas)} vs {text(*best) if best else 'no fixed configuration'}")
            continue
        tried += 1
        gap = 100 * (nas["accuracy"] - best[1]["accuracy"])
        held += gap >= 0
        lines.append(f"{b} bits: {text('NAS', nas)} [{nas['setting']}] vs best fixed "
                     f"{text(best[0].removeprefix('fixed '), best[1])}: {gap:+.2f} pt")
    verdict = REPRODUCED if tried >= 2 and held == tried else PARTLY if held else NOT
    if NAS_TARGET in table:  # beside the verdict, not judged
        lines.append("not judged (added after the first run), the budget as a two-sided target: " + ", ".join(
            f"{b} bits {text('NAS', table[NAS_TARGET][b])} [{table[NAS_TARGET][b]['setting']}]"
            for b in BITS if b in table[NAS_TARGET]))
    return {"result": "; ".join(lines), "verdict": verdict, "seeds": ",".join(map(str, ctx.budget.nas_seeds)),
            "budget": train_budget(ctx, ctx.budget.nas_epochs) + ", search over the first half of the steps",
            "numbers": {"tried": tried, "held": held}}


def _summary(ctx) -> dict[tuple[str, int], dict]:
    """(variant, codebook bits b) → its row of vq_ablation_summary.csv, as floats."""
    out = {}
    for r in read_csv(ctx.figure("vq_ablation", "_summary.csv")):
        out[(r["variant"], int(r["codebook_bits"]))] = {k: float(v) for k, v in r.items()
                                                        if k not in ("variant", "study", "codebook_bits")}
    return out


def _cell(r: dict) -> str:
    std = (lambda k: f" ± {100 * r[k + '_std']:.1f}") if r["seeds"] > 1 else (lambda k: "")
    return (f"{100 * r['accuracy']:.2f}%, perplexity {100 * r['perplexity']:.1f}{std('perplexity')}% and "
            f"{100 * r['used']:.1f}% of entries used, rel. error {r['rel_error']:.4f}")


def vq_cosine(ctx) -> dict:
    """Cosine vs Euclidean assignment (top-1 STE, d = 2, 2^b codewords at b = 4, 6, 8: 2, 3, 4 bits per weight),
    collapse measured per layer at the end of training: the usage perplexity exp(H) / 2^b (how evenly the
    codebook is used; mean over layers, then seeds). Two statements per bit width: cosine's perplexity share
    is above Euclidean's (less collapse), and cosine is at least as accurate (clamped). Reproduced when both hold
    at every width, partly when either holds at some width, not reproduced otherwise. Reported beside it, not
    judged: the soft A·C forward against top-1 STE (reconstruction error and accuracy, each assignment)."""
    s = _summary(ctx)
    lines, less_collapse, as_good = [], 0, 0
    for b in (4, 6, 8):
        cos, euc = s.get((COSINE, b)), s.get((EUCLIDEAN, b))
        if cos is None or euc is None:
            lines.append(f"{b // 2} bits: missing a variant")
            continue
        less_collapse += cos["perplexity"] > euc["perplexity"]
        as_good += cos["accuracy"] >= euc["accuracy"]
        line = f"{b // 2} bits: cosine {_cell(cos)} vs Euclidean {_cell(euc)}"
        soft = [(name, s.get((variant, b))) for name, variant in (("cosine", COSINE_SOFT),
                                                                   ("Euclidean", EUCLIDEAN_SOFT))]
        if any(v for _, v in soft):
            line += " (soft A·C: " + ", ".join(f"{name} {100 * v['accuracy']:.2f}%, rel. error {v['rel_error']:.4f}"
                                              for name, v in soft if v) + ")"
        lines.append(line)
    verdict = (REPRODUCED if less_collapse == 3 and as_good == 3 else PARTLY if less_collapse or as_good else NOT)
    return {"result": "; ".join(lines), "verdict": verdict, "seeds": ",".join(map(str, ctx.budget.vq_seeds)),
            "budget": train_budget(ctx, ctx.budget.nas_epochs) + ", d = 2",
            "numbers": {"less_collapse": less_collapse, "as_good": as_good}}
