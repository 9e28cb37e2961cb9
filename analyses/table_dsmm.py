"""DSMM then naive PTQ, at several bit widths from one training (DSMM paper, abstract and Table 1 "Naïve").

Claim checked (not assumed): fine-tuning with the differentiable soft min-max loss (Kundu et al., eq. 1) trims
each layer's weight range, so naive uniform min–max PTQ of the fine-tuned weights keeps more accuracy at low
bits than PTQ of the same fine-tuning without the loss (λ = 0).

DSMM's loss does not depend on the bit width (the bits only choose the PTQ applied after it), so one training per
(λ, α₀, seed) serves every bit width: this script applies uniform PTQ at each of --bits to the fine-tuned
("compressed") weights of each run — BN statistics as trained, exactly the run's own clamp step — and evaluates
on the first --limit test images. Runs of a study that differ only in `bits` are one training; the first is
used, and its stored clamped accuracy is printed beside this script's PTQ at its bits as a check.

Two panels: accuracy after uniform PTQ against bits (mean ± std over seeds per setting; uniform PTQ of the
pretrained model dashed) and the per-layer weight range after fine-tuning relative to the pretrained range
(first seed of each setting) — what the loss is meant to change.

Writes figures/dsmm_ptq.png, dsmm_ptq.csv (one row per run and bit width) and dsmm_ptq.config.json.

  python analyses/table_dsmm.py --study dsmm dsmm-alpha10 --dir studies [--bits 2 3 4] [--limit 10000]
"""

from __future__ import annotations

import common
import numpy as np
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

import landscape
from landscape import cli, plots
from landscape.errors import LandscapeError
from landscape.params import select_params

STEM = "dsmm_ptq"


def training_key(row: dict) -> tuple:
    """What decides a DSMM run's training: its settings except the bits — (λ, α₀, α's step size) — and the seed."""
    c = landscape.open_run(row["run"]).config["compressor"]
    return (float(c["strength"]), float(c["alpha_init"]), c.get("alpha_lr")), int(row["seed"])


def setting_label(setting: tuple) -> str:
    strength, alpha0, alpha_lr = setting
    return f"λ={strength:g}, α₀={alpha0:g}" + ("" if alpha_lr is None else f", α step {alpha_lr:g}")


def layer_ranges(model, which: str) -> dict[str, float]:
    """max − min of every parameter DSMM regularises and PTQ quantizes (the run's `params` selection)."""
    return {k: (v.max() - v.min()).item() for k, v in select_params(model, which).items()}


def ptq_accuracy(model, bits: int, batches) -> float:
    return landscape.evaluate_model(landscape.clamp(model, bits=bits, quantizer="uniform").model,
                                    batches)["accuracy"]


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/table_dsmm.py", __doc__)
    p.add_argument("--study", nargs="+", required=True, help="studies of DSMM runs (method dsmm)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4], help="PTQ bit widths (default: 2 3 4)")
    args = p.parse_args(argv)
    if any(not 1 <= b <= 16 for b in args.bits):
        raise ValueError(f"bits must be in 1..16, got {args.bits}")
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    trainings: dict[tuple, dict] = {}
    for name in args.study:
        spec, rows = common.study_runs(name, args.dir)
        if spec.method != "dsmm":
            raise LandscapeError(f"study {name!r} is a {spec.method} study, not dsmm")
        if not rows:
            raise LandscapeError(f"study {name!r} has no finished runs yet (run it with `study run {name}`)")
        for r in sorted(rows, key=lambda r: r.get("bits", 0)):
            trainings.setdefault(training_key(r), {**r, "study": name})
    batches, _ = common.test_batches(args)

    table, ranges = [], {}
    first = landscape.open_run(next(iter(trainings.values()))["run"])
    which = first.config["compressor"]["params"]
    pretrained = first.model("pretrained")
    base = {b: ptq_accuracy(pretrained, b, batches) for b in args.bits}
    base_ranges = layer_ranges(pretrained, which)
    for (setting, seed), r in tqdm(trainings.items(), desc="PTQ of DSMM runs", unit="run"):
        run = landscape.open_run(r["run"])
        model = run.model("compressed")
        fine_ranges = layer_ranges(model, which)
        ranges.setdefault(setting, fine_ranges)
        evals = run.evals()
        fine = evals.get("compressed", {}).get("accuracy", float("nan"))
        own_bits, own = int(run.config["compressor"]["bits"]), evals.get("clamped", {})
        own_acc = own.get("accuracy") if own.get("n") == len(batches.split) else None  # same test images only
        strength, alpha0, alpha_lr = setting
        for b in args.bits:
            acc = ptq_accuracy(model, b, batches)
            table.append({"study": r["study"], "strength": strength, "alpha_init": alpha0, "alpha_lr": alpha_lr,
                          "seed": seed, "bits": b, "accuracy": acc, "accuracy_pretrained_ptq": base[b],
                          "accuracy_finetuned": fine,
                          "run_clamped_accuracy": own_acc if b == own_bits and own_acc is not None else "",
                          "mean_range": float(np.mean(list(fine_ranges.values()))),
                          "mean_range_pretrained": float(np.mean(list(base_ranges.values()))), "run": r["run"]})
            if b == own_bits and own_acc is not None:
                print(f"check {setting_label(setting)}, seed {seed}: PTQ here {100 * acc:.2f}% vs the run's own "
                      f"clamp {100 * own_acc:.2f}% at {b} bits")

    settings = sorted(ranges, key=lambda s: (s[0], s[1], s[2] or 0.0))
    colors = plots.palette([f"{s}" for s in settings])
    fig, axes = plots.figure(1, 2, width=5.4, height=4.0)
    summary = []
    for s in settings:
        label = setting_label(s)
        accs = 100 * np.array([[t["accuracy"] for t in table if (t["strength"], t["alpha_init"], t["alpha_lr"]) == s
                                 and t["bits"] == b] for b in args.bits])  # bits × seeds
        mean, std = accs.mean(1), accs.std(1, ddof=1) if accs.shape[1] > 1 else np.zeros(len(args.bits))
        summary.append({"setting": label, **{f"{b} bits": f"{m:.2f} ± {e:.2f}" for b, m, e in
                                             zip(args.bits, mean, std, strict=True)}})
        axes[0, 0].errorbar(args.bits, mean, yerr=std, marker="o", capsize=3, color=colors[f"{s}"],
                            label=f"{label} ({accs.shape[1]} seed{'s' * (accs.shape[1] > 1)})")
        names = list(base_ranges)
        axes[0, 1].plot(range(len(names)), [ranges[s][n] / base_ranges[n] for n in names], marker=".",
                        color=colors[f"{s}"], label=label)
    axes[0, 0].plot(args.bits, [100 * base[b] for b in args.bits], "k--", marker="x", label="pretrained, uniform PTQ")
    axes[0, 0].set(xlabel="bits per weight (uniform PTQ, per layer)", ylabel="test accuracy (%)", xticks=args.bits,
                   title="naive PTQ after fine-tuning")
    axes[0, 0].legend(fontsize="x-small")
    axes[0, 1].axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[0, 1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 1].set(xlabel="layer (model order)", ylabel="weight range after / before fine-tuning",
                   title="per-layer range (max − min), first seed")
    axes[0, 1].legend(fontsize="x-small")
    fig.suptitle(f"DSMM then uniform PTQ ({len(batches.split):,} test images)", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], table)
    common.write_config(out[".config.json"], args, trainings=len(trainings))
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": summary})
    else:
        for s in summary:
            print(" | ".join(f"{k}: {v}" for k, v in s.items()))
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "table_dsmm")
