"""landscape export: a run's clamped model as a small file (codebooks + bit-packed indices), and its
real size on disk against the float32 checkpoint.

Per compressed layer the file holds its codebook (the distinct values of the layer in the chosen state, or for
VQ-QAT runs its distinct d-vectors when that is smaller) and its indices at ceil(log2 K) bits each; BN
parameters and buffers, biases and uncompressed layers are stored as is, with the architecture spec and the
provenance. The format (safetensors container, "landscape-export" version 1) is documented in
landscape/codec/; `landscape.codec.load_exported(MODEL)` rebuilds the module, bit-identical to the run's.

Prints per layer K, log2 K, the storage bits b = ceil(log2 K), the Shannon entropy H of the index histogram
(bits per index), the stored bytes (packed indices + codebook) and the entropy-ideal bytes; then the bytes on
disk of the float32 checkpoint (torch.save of the state dict), of the export, of the export compressed by lzma
(xz -9e; and zstd -19 where installed), and the entropy-ideal size, with their ratios to float32.

--state compressed (the fine-tuned weights before clamping) has ~all values distinct: such layers are stored
as is, and said so. Input-bitwise runs compress the inputs, not the weights: their export is the float network
with its input quantizer.

--check MODEL reads an existing export as load_exported does (checksum, lengths, index ranges, the spec's
architecture against the stored state) and prints the same report.

Example:
  landscape export runs/wc.h5 --out runs/wc.safetensors
  landscape export runs/wc.h5 --state recalibrated --out runs/wc-recal.safetensors --json
  landscape export --check runs/wc.safetensors
"""

from __future__ import annotations

import argparse

from .. import cli
from ..codec import load_exported, size_report
from ..codec.model import export
from ..specs import EXPORT_STATES, ExportSpec


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape export", __doc__)
    p.add_argument("run", nargs="?", help="run file (HDF5) written by landscape.train")
    p.add_argument("--state", default="clamped", choices=EXPORT_STATES,
                   help="which state of the run: clamped (default), recalibrated (clamped with re-estimated BN "
                        "statistics; train --recalibrate-bn), compressed (before clamping: not packable)")
    p.add_argument("--out", help="the export file to write (e.g. MODEL.safetensors)")
    p.add_argument("--check", metavar="MODEL", help="instead of exporting: load an existing export (as "
                   "landscape.codec.load_exported does) and print its size report")
    p.add_argument("--trust-spec", action="store_true", help="--check: build a package.module:factory architecture "
                   "named in the file (imports and calls it: only for files you trust)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print the size report as one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.check:
        if args.run or args.out:
            p.error("--check MODEL takes no run file and no --out")
        load_exported(args.check, trust_spec=args.trust_spec)  # every check the loader makes, architecture included
        return _print(size_report(args.check), args.json)
    if not args.run or not args.out:
        p.error("give a run file and --out MODEL (or --check MODEL)")
    return _print(export(ExportSpec(run=args.run, out=args.out, state=args.state, force=args.force)), args.json)


def _print(report: dict, as_json: bool) -> int:
    if as_json:
        cli.print_json(report)
    else:
        print("\n".join(table(report)))
    return 0


def table(report: dict) -> list[str]:
    """The size report as text: one line per compressed layer (stored B = packed indices + codebook; ideal B = n·H/8
    + codebook), then the totals."""
    b = report["bytes"]
    lines = [f"{report['provenance'].get('run', '?')} ({report['state']}) → {report['file']}",
             f"{'layer':<24} {'weights':>8} {'code':<7} {'K':>5} {'log2 K':>6} {'b':>3} {'H':>6} "
             f"{'stored B':>9} {'ideal B':>9}"]
    for row in report["layers"]:
        if row["encoding"] == "raw":
            lines.append(f"{row['layer']:<24} {row['weights']:>8} {'as is':<7} {row.get('note', '')}")
            continue
        code = row["encoding"] if row["encoding"] == "scalar" else f"{row['dim']}-vec"
        lines.append(f"{row['layer']:<24} {row['weights']:>8} {code:<7} {row['k']:>5} {row['log2_k']:>6.2f} "
                     f"{row['bits']:>3} {row['entropy_bits']:>6.2f} {row['packed_bytes'] + row['codebook_bytes']:>9,} "
                     f"{row['entropy_bytes']:>9,.0f}")
        if row.get("run_clusters") is not None and row["run_clusters"] != row["distinct_values"]:
            lines.append(f"{'':<24} note: {row['distinct_values']} distinct values, the run's /final/clusters has "
                         f"{row['run_clusters']}")
    if not any(row["encoding"] != "raw" for row in report["layers"]):
        lines.append("(no weight is encoded: " + ("the run compresses its inputs, not its weights"
                                                  if report["spec"].get("wrapper") else
                                                  "no compressed layer is worth packing") + ")")
    if report["mean_bits_per_weight"] is not None:
        lines.append(f"{report['encoded_weights']:,} encoded weights, bits per weight: log2 K "
                     f"{report['mean_log2_k']:.2f}, stored {report['mean_bits_per_weight']:.2f} (with the codebooks "
                     f"{report['mean_bits_per_weight_with_codebook']:.2f}), entropy "
                     f"{report['mean_entropy_bits_per_weight']:.2f}")

    lines.append(f"{'bytes on disk':<34} {'bytes':>10} {'× float32':>9} {'bits/number':>11}")
    labels = {"float32_checkpoint": "float32 checkpoint (torch.save)",
              "float16_checkpoint": "float16 checkpoint (torch.save)", "export": "export",
              "export_lzma": "export + lzma (xz -9e)", "export_zstd": "export + zstd -19",
              "entropy_ideal": "entropy-ideal (order 0, no header)"}
    for key, label in labels.items():
        if b[key] is None:
            lines.append(f"{label:<34} {'n/a':>10} (zstandard not installed)")
            continue
        ratio = b["float32_checkpoint"] / b[key]
        lines.append(f"{label:<34} {b[key]:>10,} {ratio:>9.2f} {8 * b[key] / report['numel']:>11.2f}")
    lines.append(f"(export header {b['export_header']:,} B; {report['numel']:,} numbers in the state dict, "
                 f"{report['compressed_weights']:,} of them in compressed layers)")
    return lines


if __name__ == "__main__":
    cli.run(main, "landscape.export")
