"""Bytes on disk of compressed models: the float32 checkpoint against the export (`python -m landscape.export`:
codebooks + indices bit-packed at ceil(log2 K) bits), the export compressed by lzma (and zstd where installed),
and the entropy-ideal size (order-0 Shannon entropy of each layer's index histogram).

Claim checked: a clamped model stored as codebooks + packed indices is ~32/b times smaller than its float32
checkpoint where b is the mean storage bits, less the weight of what stays float (BN, biases) and of the
header; a general-purpose compressor on top gains roughly what the index histograms' entropy promises. Also
checked for every row: the exported model, loaded back, gives outputs bit-identical to the source model on the
first --limit test images (`outputs_identical`). Deterministic (no training, no random draws).

Rows: one per --run file (its --state, default clamped; labels from the run's method and settings), and one
per --ptq METHOD:BITS (per-layer PTQ of --checkpoint, zero fine-tuning, as in the methods table). The export
files are written to a temporary folder and measured there. Writes figures/export_table.csv and
figures/export_table.config.json; prints the table as markdown.

  python analyses/table_export.py --run runs/headline-histogram.h5 runs/export/*.h5 \\
      --ptq uniform:4 heq:4 kmeans:4 [--limit 1000] [--state clamped]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from landscape import cli
from landscape.codec import export_run, export_state, load_exported, size_report
from landscape.errors import LandscapeError
from landscape.metrics import evaluate
from landscape.store import Run

STEM = "export_table"
SHOWN = ("h", "w", "quantizer", "bits", "then", "dim", "codebook_bits", "assign", "input_bits")


def label(run: Run) -> str:
    """The run's method, the settings that tell its variants apart and its epochs, e.g.
    'vq dim=2 codebook_bits=8 assign=cosine, 1 epoch'."""
    settings = run.config.get("compressor", {})
    epochs = run.config.get("train", {}).get("epochs")
    return " ".join([run.method, *(f"{k}={settings[k]}" for k in SHOWN if k in settings)]) + (
        f", {epochs} epoch{'s' * (epochs != 1)}" if epochs is not None else "")


def ptq_spec(text: str) -> tuple[str, int]:
    from landscape.quantize import QUANTIZERS

    method, _, bits = text.partition(":")
    if method not in QUANTIZERS or not bits.isdigit() or not 1 <= int(bits) <= 16:
        raise ValueError(f"--ptq takes METHOD:BITS with METHOD one of {', '.join(QUANTIZERS)} and BITS in 1..16, "
                         f"got {text!r}")
    return method, int(bits)


def identical(a: torch.nn.Module, b: torch.nn.Module, batches) -> bool:
    """Bit-identical logits on every batch."""
    with torch.no_grad():
        return all(torch.equal(a(x), b(x)) for x, _ in batches)


def row(name: str, source: str, report: dict, same: bool, n: int, accuracy: dict) -> dict:
    """One table row; `n`: test images on which the outputs were compared; `accuracy`: {"accuracy", "n"} of the
    model (the run's own evaluation of the state, or the PTQ model's on those images)."""
    b, r = report["bytes"], report["ratio_vs_float32"]
    encodings = sorted({x["encoding"] + (f" d={x['dim']}" if x["encoding"] == "vector" else "")
                        for x in report["layers"] if x["encoding"] != "raw"})
    as_is = sum(x["encoding"] == "raw" for x in report["layers"])
    encoding = " + ".join(encodings) + (f" ({as_is} layer{'s' * (as_is > 1)} as is)" if as_is else "")
    return {"method": name, "source": source, "state": report["state"], "arch": report["spec"]["arch"],
            "numel": report["numel"], "compressed_weights": report["compressed_weights"],
            "encoded_weights": report["encoded_weights"], "encoding": encoding.strip() or "none",
            "mean_log2_k": report["mean_log2_k"], "mean_bits": report["mean_bits_per_weight"],
            "mean_bits_with_codebook": report["mean_bits_per_weight_with_codebook"],
            "mean_entropy_bits": report["mean_entropy_bits_per_weight"],
            "float32_bytes": b["float32_checkpoint"], "export_bytes": b["export"], "header_bytes": b["export_header"],
            "lzma_bytes": b["export_lzma"], "zstd_bytes": b["export_zstd"], "entropy_ideal_bytes": b["entropy_ideal"],
            "ratio_export": r["export"], "ratio_lzma": r["export_lzma"], "ratio_zstd": r["export_zstd"],
            "ratio_entropy_ideal": r["entropy_ideal"], "export_bits_per_number": 8 * b["export"] / report["numel"],
            "lzma_bits_per_number": 8 * b["export_lzma"] / report["numel"],
            "accuracy": accuracy.get("accuracy"), "accuracy_n": accuracy.get("n"),
            "outputs_identical": same, "n_compared": n}


def markdown(rows: list[dict]) -> list[str]:
    def num(v, fmt="{:.2f}"):
        return "–" if v is None else fmt.format(v)

    zstd = any(r["zstd_bytes"] is not None for r in rows)
    lines = ["| model | code | log2 K | stored b (+ codebooks) | entropy H | float32 | export | + lzma | "
             + ("+ zstd | " if zstd else "") + "entropy-ideal |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if zstd else "") + "---|"]
    def size(r, key, ratio):
        return f"{r[key]:,} (×{r[ratio]:.1f})" if r[key] is not None else "–"

    for r in rows:
        stored = "–" if r["mean_bits"] is None else f"{r['mean_bits']:.2f} ({r['mean_bits_with_codebook']:.2f})"
        cells = [r["method"], r["encoding"], num(r["mean_log2_k"]), stored, num(r["mean_entropy_bits"]),
                 f"{r['float32_bytes']:,}", size(r, "export_bytes", "ratio_export"),
                 size(r, "lzma_bytes", "ratio_lzma")]
        if zstd:
            cells.append(size(r, "zstd_bytes", "ratio_zstd"))
        cells.append(size(r, "entropy_ideal_bytes", "ratio_entropy_ideal"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/table_export.py", __doc__, run_nargs="+")
    p.add_argument("--runs", nargs="+", dest="run", help="the same as --run")
    p.add_argument("--state", default="clamped", choices=["clamped", "recalibrated", "compressed"],
                   help="state of every run to export (default: clamped)")
    p.add_argument("--ptq", nargs="+", type=ptq_spec, default=[], metavar="METHOD:BITS",
                   help="also rows of per-layer PTQ of --checkpoint, e.g. uniform:4 heq:4 kmeans:4")
    p.add_argument("--arch", default="resnet20", help="--ptq: architecture of --checkpoint (default: resnet20)")
    p.add_argument("--checkpoint", default=str(common.ADAPTED_R20),
                   help="--ptq: the model to quantize (default: the adapted ResNet-20)")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".csv", ".config.json"], args.force)
    runs = [Run(r) for r in (args.run or [])] if args.run or args.ptq else [Run(r) for r in common.resolve_runs(args)]
    batches, dev = common.test_batches(args)
    batches = [(x.cpu(), y) for x, y in batches]  # exports load on the CPU

    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for i, run in enumerate(runs):
            path = export_run(run.path, Path(folder) / f"{i}.safetensors", state=args.state)
            same = identical(run.model(args.state), load_exported(path), batches)
            evaluated = run.evals().get(args.state, {})
            accuracy = {k: float(evaluated[k]) if k == "accuracy" else int(evaluated[k])
                        for k in ("accuracy", "n") if k in evaluated}
            report = size_report(path)
            rows.append(row(label(run), str(run.path), report, same, sum(len(y) for _, y in batches), accuracy))
            print(f"{rows[-1]['method']}: export {rows[-1]['export_bytes']:,} B", file=sys.stderr, flush=True)
        if args.ptq:
            from landscape.compress.ptq import quantize_model
            from landscape.models import load_model

            model = load_model(args.arch, args.checkpoint)
            for method, bits in args.ptq:
                q = quantize_model(model, method, bits)
                path = export_state(Path(folder) / f"ptq-{method}-{bits}.safetensors", q.model.state_dict(),
                                    arch=args.arch, compressed=list(q.codebooks), state_name=f"ptq {method} {bits}",
                                    provenance={"checkpoint": str(args.checkpoint), "ptq": method, "bits": bits})
                loaded = load_exported(path)
                same = identical(q.model.eval(), loaded, batches)
                accuracy = evaluate(loaded, batches)
                report = size_report(path)
                rows.append(row(f"ptq {method} {bits} bits", str(args.checkpoint), report, same,
                                sum(len(y) for _, y in batches), accuracy))
                print(f"{rows[-1]['method']}: export {rows[-1]['export_bytes']:,} B", file=sys.stderr, flush=True)
    if not rows:
        raise LandscapeError("nothing to tabulate: give --run files and/or --ptq")
    elapsed = time.perf_counter() - start
    common.write_csv(out[".csv"], rows)
    common.write_config(out[".config.json"], args, ptq=[f"{m}:{b}" for m, b in args.ptq], rows=len(rows),
                        lzma=report["lzma"], zstd=report["zstd"], seconds=round(elapsed, 1))
    if args.json:
        cli.print_json({"csv": str(out[".csv"]), "config": str(out[".config.json"]), "rows": rows})
    else:
        print("\nBytes on disk (× = float32 checkpoint / size); log2 K, stored b and entropy H are bits per "
              "weight, means over the encoded layers weighted by their weights:\n")
        print("\n".join(markdown(rows)))
        if not all(r["outputs_identical"] for r in rows):
            print("\nNOT bit-identical: " + ", ".join(r["method"] for r in rows if not r["outputs_identical"]))
        print(f"\nwrote {out['.csv']}, {out['.config.json']} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    cli.run(main, "table_export")
