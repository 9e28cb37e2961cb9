"""Validation loss vs bits of a character language model under the LLM field's post-training baselines
(`analyses/table_lm_ptq.py`): per-layer round-to-nearest, k-means and GPTQ grids, and round-to-nearest and HQQ per
output channel or per group of input weights (compress/groupwise.py).

A method is written `NAME` or `NAME/gG` (G input weights per group: `rtn/g64`, `hqq/g128`; `rtn` and `hqq` alone
are per output channel); NAME is a `landscape ptq --method`. Deterministic (k-means seeded; GPTQ calibrates on the
first `calibration` training windows, consecutive), so one run backs every number. Bits on the x axis are each
method's mean effective bits, scales included for the group-wise ones (B + 32/G), so the curves sit at the bits
they cost. Writes <stem>.csv (method, bits, mean_effective_bits, loss, perplexity, bits_per_token, tokens),
<stem>.png and <stem>.config.json; its lines are the table as markdown.

    >>> spec = LMPTQTable(checkpoint="runs/lm/gpt.pt", bits=(3, 4), methods=("rtn/g64", "gptq"), out_dir="figs")
    >>> [p.as_posix() for p in spec.paths().values()], spec.parsed()
    (['figs/lm_ptq.csv', 'figs/lm_ptq.png', 'figs/lm_ptq.config.json'], [('rtn', 64), ('gptq', None)])
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .. import plots
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, check_bits, maker, write_config

METHODS = ("uniform", "kmeans", "gptq", "rtn", "rtn/g128", "rtn/g64", "hqq/g128", "hqq/g64")


def parse_method(text: str) -> tuple[str, int | None]:
    """(`landscape ptq` method, group size or None) of a method label.

    Args:
        text: e.g. "gptq", "rtn", "hqq/g64".

    Returns:
        The pair; ValueError for a label that is neither.

    Examples:
        >>> parse_method("hqq/g64"), parse_method("kmeans")
        (('hqq', 64), ('kmeans', None))
    """
    from ..compress.groupwise import GROUPWISE
    from ..quantize import QUANTIZERS

    name, _, group = text.partition("/g")
    if name not in (*QUANTIZERS, "gptq", *GROUPWISE) or (group and (name not in GROUPWISE or not group.isdigit())):
        raise ValueError(f"method {text!r}: write a ptq method ({', '.join((*QUANTIZERS, 'gptq', *GROUPWISE))}), "
                         f"rtn and hqq optionally with /gG (G inputs per group)")
    return name, int(group) if group else None


@dataclass(frozen=True)
class LMPTQTable(FigureSpec):
    """Validation loss of every method × bits of a language model's checkpoint (module docstring)."""

    checkpoint: str = ""  # a language model's checkpoint (`landscape pretrain --dataset text`; required)
    arch: str = "gpt"  # its architecture (models.LANGUAGE_ARCHS)
    text: str | None = None  # the text (None: tinyshakespeare from the data roots)
    bits: tuple[int, ...] = (2, 3, 4, 8)  # bits per weight B of every method
    methods: tuple[str, ...] = METHODS  # method labels (module docstring)
    calibration: int = 1024  # GPTQ: the first N training windows of the model's context
    limit: int | None = None  # first N validation windows (None: all)
    params: str = "weights"  # the layers quantized (landscape/params.py; e.g. weights,-tok.weight: the blocks only)

    STEM = "lm_ptq"
    SUFFIXES = (".csv", ".png", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "checkpoint", str(self.checkpoint))
        if not self.checkpoint:
            raise ValueError("give the checkpoint of the language model to quantize")
        object.__setattr__(self, "bits", check_bits(tuple(self.bits), "give at least one bit-width"))
        object.__setattr__(self, "methods", tuple(self.methods))
        if not self.methods:
            raise ValueError("give at least one method")
        self.parsed()  # its checks

    def parsed(self) -> list[tuple[str, int | None]]:
        """(method, group size) of every method label.

        Returns:
            One pair per label, in order.
        """
        return [parse_method(m) for m in self.methods]


@maker(LMPTQTable)
def make(spec: LMPTQTable) -> FigureResult:
    """Quantize and evaluate every method × bit-width, write the CSV, config JSON and PNG; the lines are the
    markdown table."""
    import torch

    from ..compress.ptq import ptq_quantize
    from ..distributed import usable_device
    from ..lm import load_char_model
    from ..specs import DataSource, PTQSpec
    from ..text import eval_windows, lm_metrics, load_text

    out = spec.outputs()  # refuse before any work, not after
    dev = usable_device(spec.device)
    model, vocab, kwargs = load_char_model(spec.checkpoint, spec.arch)
    model = model.to(dev)
    corpus = load_text(spec.text, vocab=vocab)
    context = int(kwargs["context"])
    val = [(x.to(dev), y.to(dev)) for x, y in eval_windows(corpus.val, context=context, batch_size=spec.batch_size,
                                                           limit=spec.limit)]
    calibration = [(x.to(dev), y.to(dev)) for x, y in eval_windows(corpus.train, context=context, batch_size=128,
                                                                   limit=spec.calibration, what="training")]
    start = time.perf_counter()
    full = lm_metrics(model, val, dev)
    rows = [{"method": "full precision", "bits": 32, "mean_effective_bits": 32.0, **full}]
    for label, (method, group) in zip(spec.methods, spec.parsed(), strict=True):
        for bits in spec.bits:
            ptq = PTQSpec(arch=spec.arch, checkpoint=spec.checkpoint, method=method, bits=bits, out="unused.pt",
                          group_size=group, calibration_images=spec.calibration, data=DataSource(dataset="text"),
                          params=spec.params)
            with torch.no_grad():
                q, entries = ptq_quantize(ptq, model, None, lambda: calibration, unit="windows")
            result = lm_metrics(q.model, val, dev)
            rows.append({"method": label, "bits": bits, "mean_effective_bits": entries["mean_effective_bits"],
                         **result})
            spec.log(f"{label:>9} {bits} bits: {result['loss']:.4f} nats/token at "
                     f"{entries['mean_effective_bits']:.2f} bits")
    elapsed = time.perf_counter() - start
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, seconds=round(elapsed, 1), tokens=full["tokens"])

    fig, axes = plots.figure(1, 1, width=6.5, height=4.2)
    ax = axes[0, 0]
    for label in spec.methods:
        pts = [r for r in rows if r["method"] == label]
        ax.plot([r["mean_effective_bits"] for r in pts], [r["loss"] for r in pts], marker="o", label=label,
                ls="--" if "/" in label or label in ("rtn", "hqq") else "-")
    ax.axhline(full["loss"], color="k", ls=":", lw=1, label="full precision")
    worst = min(max(r["loss"] for r in rows), full["loss"] + 1.0)  # a collapsed 2-bit row would flatten the rest
    ax.set(xlabel="mean effective bits per weight (group-wise: scales included)",
           ylabel="validation loss (nats/token)", ylim=(full["loss"] - 0.02, worst + 0.02),
           title=f"PTQ of {spec.arch}, {spec.params} ({full['tokens']:,} validation tokens)")
    ax.legend(fontsize="small", ncol=2)
    plots.save(fig, out[".png"], dpi=120)

    lines = ["", f"PTQ of {spec.arch} ({spec.checkpoint}, params {spec.params}): validation loss in nats/token on "
             f"{full['tokens']:,} "
             f"tokens; full precision {full['loss']:.4f}", "",
             "| method | " + " | ".join(f"{b} bits" for b in spec.bits) + " |", "|---|" + "---|" * len(spec.bits)]
    for label in spec.methods:
        cells = {r["bits"]: r for r in rows if r["method"] == label}
        lines.append(f"| {label} | " + " | ".join(f"{cells[b]['loss']:.4f} ({cells[b]['mean_effective_bits']:.2f} b)"
                                               for b in spec.bits) + " |")
    lines += ["", f"wrote {out['.csv']}, {out['.png']} ({elapsed:.0f} s)"]
    return FigureResult({"csv": str(out[".csv"]), "png": str(out[".png"])},
                        {"rows": rows, "tokens": full["tokens"], "seconds": round(elapsed, 1)}, lines)
