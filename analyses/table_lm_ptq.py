"""Validation loss vs bits of the reference character GPT under the LLM field's post-training baselines.

What it shows and what it writes: landscape.figures.lm_ptq (LMPTQTable), whose description `--help` prints
below; this script parses its options into that spec.

  python analyses/table_lm_ptq.py --checkpoint runs/lm/gpt-shakespeare.pt [--bits 2 3 4 8] [--methods ...]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.lm_ptq import METHODS, LMPTQTable, make


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_lm_ptq.py", common.described(__doc__, figures.LMPTQTable))
    p.add_argument("--checkpoint", required=True, help="a language model's checkpoint (landscape pretrain --dataset "
                   "text; `make demo-lm` writes runs/lm/gpt-shakespeare.pt)")
    p.add_argument("--arch", default="gpt", help="its architecture (gpt, hf-gpt2, hf-llama; default: gpt)")
    p.add_argument("--text", default=None, help="the text (default: tinyshakespeare from the data roots)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8], help="bit-widths (default: 2 3 4 8)")
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help=f"method labels, NAME or NAME/gG for rtn and hqq (default: {' '.join(METHODS)})")
    p.add_argument("--calibration", type=cli.positive_int, default=1024,
                   help="GPTQ: the first N training windows (default: 1024)")
    p.add_argument("--limit", type=cli.positive_int, default=None, help="first N validation windows (default: all)")
    p.add_argument("--params", type=cli.selection_arg, default="weights",
                   help="the layers quantized (default: weights, the tied embedding/head included; "
                        "weights,-tok.weight: the Transformer blocks only, the LLM papers' setting)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the CSV/PNG/config go (default: figures/)")
    p.add_argument("--stem", default="", help="output names <stem>.csv/.png/.config.json (default: lm_ptq)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = p.parse_args(argv)
    spec = LMPTQTable(out_dir=args.out_dir, stem=args.stem, force=args.force, device=args.device,
                      checkpoint=args.checkpoint,
                      arch=args.arch, text=args.text, bits=tuple(args.bits), methods=tuple(args.methods),
                      calibration=args.calibration, limit=args.limit, params=args.params)
    return common.show(make(spec), False)


if __name__ == "__main__":
    cli.run(main, "analyses/table_lm_ptq.py")
