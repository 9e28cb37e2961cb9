"""Post-training quantization baselines as compressors with no penalty: naive uniform, histogram-equalized (HEQ)
and k-means, each per layer with 2^b levels (definitions and choices in `landscape.quantize`). Being compressors,
they sit in the same tables as the fine-tuning methods, with zero fine-tuning epochs. `run_ptq` (`landscape ptq`)
also runs GPTQ (compress/gptq.py), which needs calibration images. With `PTQConfig.levels` a layer gets its own
number of levels K_l instead of 2^b: `matched_ptq` / `landscape ptq --levels-from RUN.h5` give each layer the K_l a
mixed-precision (soft-quantization) run clamped it to, the baseline at matched bits."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..errors import LandscapeError
from ..quantize import MAX_LEVELS, QUANTIZERS, Codebook
from .base import Clamped, Compressor
from .groupwise import GROUPWISE, GroupwiseConfig, groupwise_quantize, summary_entries


@dataclass(frozen=True)
class PTQConfig:
    """Post-training quantization's settings (`--method ptq`): a quantizer of landscape/quantize.py at `bits`, or
    at a number of levels per layer (`levels`, mixed precision: e.g. the K_l a soft-quantization run chose, see
    `matched_levels`).

    `levels` maps parameter names to their number of levels K_l (integers 1..2^16); a layer it names is quantized
    with `quantizer(theta, levels=K_l)` (k-means: exactly min(K_l, distinct weights) clusters), a layer it does
    not name with 2^bits levels as without it, and a name that is not among the compressed parameters is an
    error at `PTQ.codebooks`. It is stored as a plain dict copy (JSON-ready for the run file's config); the
    config stays hashable.

    Examples:
        >>> PTQConfig(bits=2).quantizer
        'heq'
        >>> PTQConfig(quantizer="lloyd")
        Traceback (most recent call last):
        ...
        ValueError: unknown PTQ method 'lloyd'; choose one of uniform, heq, kmeans
        >>> PTQConfig("kmeans", levels={"0.weight": 3, "2.weight": 5}).levels
        {'0.weight': 3, '2.weight': 5}
        >>> PTQConfig("kmeans", levels={"0.weight": 0})
        Traceback (most recent call last):
        ...
        ValueError: levels['0.weight'] must be an integer in 1..65536, got 0
    """

    quantizer: str = "heq"  # PTQ method: "uniform" | "heq" | "kmeans"
    bits: int = 4  # bits per weight b: 2^b levels per layer, 1..16
    params: str = "weights"  # "weights": conv/linear weights, BN and biases untouched; "all"
    levels: Mapping[str, int] | None = None  # parameter name → its number of levels K_l (1..65536); others: 2^bits

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown PTQ method {self.quantizer!r}; choose one of {', '.join(QUANTIZERS)}")
        check_int("bits", self.bits, 1, 16)
        if self.levels is not None:
            if not isinstance(self.levels, Mapping):
                raise ValueError(f"levels must map parameter names to numbers of levels, got "
                                 f"{type(self.levels).__name__}")
            levels = {}
            for name, k in self.levels.items():
                if not isinstance(name, str) or not name:
                    raise ValueError(f"levels: parameter names must be non-empty strings, got {name!r}")
                if isinstance(k, numbers.Integral) and not isinstance(k, bool):
                    k = int(k)  # numpy integers, e.g. read from a run file
                levels[name] = check_int(f"levels[{name!r}]", k, 1, MAX_LEVELS)
            object.__setattr__(self, "levels", levels)

    def __hash__(self) -> int:  # the dataclass's would hash the levels dict
        levels = None if self.levels is None else tuple(sorted(self.levels.items()))
        return hash((self.quantizer, self.bits, self.params, levels))


class PTQ(Compressor):
    name = "ptq"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}

    def __init__(self, config: PTQConfig = PTQConfig(), *, seed: int = 0):
        self.config, self.params, self.seed = config, config.params, seed  # seed: k-means initialisation

    def penalty(self, model: nn.Module) -> Tensor:
        return torch.zeros(())

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        method, bits, levels = self.config.quantizer, self.config.bits, self.config.levels or {}
        seeded = {"seed": self.seed} if method == "kmeans" else {}
        selected = self.selected(model)
        unknown = [name for name in levels if name not in selected]
        if unknown:
            raise ValueError(f"levels name {len(unknown)} parameter(s) that --params {self.params} does not "
                             f"compress in this model: {_names(unknown)}")
        return {name: QUANTIZERS[method](p.detach().flatten(), levels=levels[name], **seeded) if name in levels
                else QUANTIZERS[method](p.detach().flatten(), bits, **seeded) for name, p in selected.items()}


def _names(names: list[str], shown: int = 5) -> str:
    """The first `shown` names, comma-separated, and how many more."""
    more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def quantize_model(model: nn.Module, method: str, bits: int, *, which: str = "weights",
                   levels: Mapping[str, int] | None = None) -> Clamped:
    """Quantize the parameters chosen by `which` of a *copy* of `model`, each layer separately: with 2^bits levels,
    or with `levels[name]` levels where `levels` names the layer (`PTQConfig.levels`).

    Args:
        model: the model to quantize (not modified).
        method: the quantizer: uniform, heq or kmeans (`landscape.quantize.QUANTIZERS`).
        bits: 2^bits levels per layer (1..16), for the layers `levels` does not name.
        which: the parameter selection (landscape/params.py): "weights" (conv/linear) or "all".
        levels: parameter name → its number of levels K_l (None: every layer 2^bits).

    Returns:
        The `Clamped` copy and its codebooks.

    Examples:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
        >>> quantize_model(model, "kmeans", 2).bits
        {'0.weight': 2.0, '2.weight': 2.0}
        >>> {name: cb.k for name, cb in quantize_model(model, "kmeans", 2, levels={"2.weight": 3}).codebooks.items()}
        {'0.weight': 4, '2.weight': 3}
    """
    return PTQ(PTQConfig(method, bits, which, levels)).clamp(model)


def matched_levels(source: Any) -> dict[str, int]:
    """The number of clusters K_l of every layer a compressed model clamped: the per-layer budget a matched-bits
    PTQ baseline (`matched_ptq`, `landscape ptq --levels-from`) gives each layer. Read from the clamped codebooks
    themselves (their K, not bits rounded back), so log2 K_l is exactly the run's effective bits of the layer.

    Args:
        source: a finished run file (path, or a `landscape.store.Run`: its /final/clusters), a `Clamped`, or a
            mapping parameter name → `Codebook`.

    Returns:
        Parameter name → K_l (int ≥ 1).

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
        >>> data = [(torch.randn(16, 16), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="weight-coupling",
        ...                         h=0.05, w=0.3, epochs=1, progress=False)
        >>> levels = matched_levels(f"{tmp.name}/run.h5")
        >>> sorted(levels), all(k >= 1 for k in levels.values())
        (['0.weight', '2.weight'], True)
        >>> matched_levels(PTQ(PTQConfig("kmeans", 2)).clamp(model))
        {'0.weight': 4, '2.weight': 4}
        >>> tmp.cleanup()
    """
    from ..store import Run

    if isinstance(source, (str, os.PathLike)):
        source = Run(source)
    if isinstance(source, Run):
        return {name: int(len(values)) for name, (values, _) in source.clusters().items()}
    books = source.codebooks if isinstance(source, Clamped) else source
    if not isinstance(books, Mapping) or not all(isinstance(cb, Codebook) for cb in books.values()):
        raise ValueError(f"matched_levels takes a run file, a Run, a Clamped or a mapping name → Codebook, got "
                         f"{type(source).__name__}")
    return {name: cb.k for name, cb in books.items()}


def check_levels_cover(levels: Mapping[str, int], compressed: list[str], *, source: str = "levels",
                       bits_for_rest: bool = False, hint: str = "") -> None:
    """Check that per-layer level counts fit a model: every layer `levels` names is compressed (`compressed`: the
    names of the parameters the model's selection compresses), and, unless `bits_for_rest`, every compressed
    layer has a count. ValueError (one line) otherwise.

    Args:
        levels: parameter name → number of levels (e.g. `matched_levels` of a run).
        compressed: the parameter names to quantize (e.g. `list(select_params(model, "weights"))`).
        source: what `levels` came from, for the message (e.g. the run file).
        bits_for_rest: compressed layers that `levels` does not name are fine (they get 2^bits levels).
        hint: appended to the message on missing layers (e.g. which option gives them levels).

    Examples:
        >>> check_levels_cover({"0.weight": 3}, ["0.weight", "2.weight"], bits_for_rest=True)
        >>> check_levels_cover({"0.weight": 3}, ["0.weight", "2.weight"], source="run.h5")
        Traceback (most recent call last):
        ...
        ValueError: run.h5 has no level count for 1 of the model's 2 quantized layers: 2.weight
    """
    extra = [name for name in levels if name not in compressed]
    if extra:
        raise ValueError(f"{source} has level counts for {len(extra)} layer(s) the model does not quantize: "
                         f"{_names(extra)} (is it a run of this architecture, with the same --params?)")
    missing = [name for name in compressed if name not in levels]
    if missing and not bits_for_rest:
        raise ValueError(f"{source} has no level count for {len(missing)} of the model's {len(compressed)} quantized "
                         f"layers: {_names(missing)}{hint}")


def matched_ptq(model: nn.Module, levels: Any, *, method: str = "kmeans", params: str = "weights",
                seed: int = 0) -> Clamped:
    """The matched-bits PTQ baseline of a mixed-precision model: `method` (k-means by default) on a *copy* of
    `model` (the pretrained one) with exactly the level count K_l of every layer that `levels` gives, e.g. the
    clusters a soft-quantization run ended with. k-means then has K_l = min(K_l, distinct weights) clusters in
    each layer, so where every layer has at least K_l distinct weights its effective bits equal the run's,
    layer by layer, and so does the mean. Same as `PTQ(PTQConfig(method, levels=...)).clamp(model)` after
    checking that `levels` covers exactly the layers `params` selects.

    Args:
        model: the model to quantize (not modified).
        levels: parameter name → K_l, or anything `matched_levels` reads (a run file, a `Run`, a `Clamped`).
        method: the quantizer (uniform, heq, kmeans; uniform and heq use at most K_l levels).
        params: which parameters are quantized (as the run did: "weights" by default).
        seed: passed to k-means (unused there: it is deterministic).

    Returns:
        The `Clamped` copy and its codebooks.

    Examples:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
        >>> q = matched_ptq(model, {"0.weight": 5, "2.weight": 3})
        >>> {name: cb.k for name, cb in q.codebooks.items()}, round(q.mean_bits(), 4)
        ({'0.weight': 5, '2.weight': 3}, 2.2056)
        >>> matched_ptq(model, {"0.weight": 5})
        Traceback (most recent call last):
        ...
        ValueError: levels has no level count for 1 of the model's 2 quantized layers: 2.weight
    """
    from ..params import select_params

    source = "levels"
    if not isinstance(levels, Mapping) or any(isinstance(v, Codebook) for v in levels.values()):
        source = str(levels) if isinstance(levels, (str, os.PathLike)) else type(levels).__name__
        levels = matched_levels(levels)
    check_levels_cover(levels, list(select_params(model, params)), source=source)
    return PTQ(PTQConfig(method, params=params, levels=levels), seed=seed).clamp(model)


def _run_levels(spec, model: nn.Module) -> tuple[dict[str, int], dict]:
    """`spec.levels_from`'s K_l per layer (`matched_levels`), checked against the layers `spec.params` selects
    (without `spec.bits` every one needs a count), and the summary entries naming them."""
    from ..params import select_params
    from ..store import Run

    run = Run(spec.levels_from)
    levels = matched_levels(run)
    compressed = select_params(model, spec.params)
    check_levels_cover(levels, list(compressed), source=spec.levels_from, bits_for_rest=spec.bits is not None,
                       hint=" (give --bits B for them, or the --params the run used)")
    pretrained = run.state("pretrained")  # same names, other shapes: a run of another architecture
    for name in levels:
        if name in pretrained and tuple(pretrained[name].shape) != tuple(compressed[name].shape):
            raise ValueError(f"{spec.levels_from} is not a run of this model: its {name} has shape "
                             f"{tuple(pretrained[name].shape)}, the model's {tuple(compressed[name].shape)}")
    levels = {name: levels[name] for name in compressed if name in levels}  # model order
    return levels, {"levels_from": spec.levels_from, "levels": levels,
                    "levels_from_mean_effective_bits": run.bits()["mean_effective"]}


def run_ptq(spec, *, progress: bool = False) -> dict:
    """The PTQ baseline `spec` (a specs.PTQSpec) describes: quantize a copy of the checkpoint's model, evaluate it on
    the test split (before and after BN recalibration, if asked), save it to `spec.out` with the numbers in the
    checkpoint's `ptq` entry; returns those numbers (accuracy, loss, bits per layer, ...). The output is checked
    before any work. Method "gptq" (compress/gptq.py) calibrates on the first `spec.calibration_images` training
    images, unaugmented, in batches of 128 (the BN recalibration's), on `spec.device`.
    With `spec.levels_from` (a finished run file) each layer gets the run's clamped number of levels K_l instead
    of 2^bits (`matched_levels`; bits, if given, for the layers the run did not quantize); a layer the run
    quantized that this model's selection lacks, or a selected layer with neither a count nor bits, is a one-line
    error before any data is loaded."""
    from ..bn import RECALIBRATION_BATCH, recalibrate_bn_, recalibration_batches
    from ..data import Batches
    from ..metrics import evaluate
    from ..models import load_model, save_checkpoint
    from ..outputs import check_out

    out = check_out(spec.out, spec.force)
    dev = torch.device(spec.device)
    if spec.data.dataset == "text":  # a language model: windows of a text, the validation loss as the metric
        return _run_ptq_text(spec, out, dev)
    model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs or None)
    levels, matched = _run_levels(spec, model) if spec.levels_from is not None else (None, {})  # checked before data
    train, test = spec.data.load()
    n = spec.calibration_images
    q, entries = ptq_quantize(spec, model.to(dev), levels, lambda: recalibration_batches(
        train.subset(n), math.ceil(n / RECALIBRATION_BATCH), RECALIBRATION_BATCH, dev), unit="images")
    test_batches = Batches(test.subset(spec.limit), spec.batch_size, train=False, device=dev)
    result = evaluate(q.model.to(dev), test_batches, progress=progress)
    summary = {"method": spec.method, "bits": spec.bits, **matched, **result, **entries, "out": str(out)}
    if spec.recalibrate_bn:  # the saved model is the recalibrated one; the un-recalibrated numbers stay reported
        recalibrate_bn_(q.model, recalibration_batches(train, spec.recalibrate_bn, RECALIBRATION_BATCH, dev))
        after = evaluate(q.model, test_batches, progress=progress)
        summary.update({"accuracy_before_recalibration": result["accuracy"], "loss_before_recalibration":
                        result["loss"], **after, "recalibrate_bn": spec.recalibrate_bn})
    save_checkpoint(q.model.cpu(), out, arch=spec.arch, arch_kwargs=spec.arch_kwargs, ptq={k: v for k, v in
                    summary.items() if k != "out"}, source=spec.checkpoint)
    return summary


def ptq_quantize(spec, model: nn.Module, levels: dict[str, int] | None, calibration, *, unit: str) -> tuple:
    """The quantized copy of `model` by `spec.method`, and its summary entries: GPTQ on the batches
    `calibration()` gives (called for GPTQ only; `unit`: what a calibration example is), the group-wise RTN and
    HQQ (compress/groupwise.py), or a per-layer codebook quantizer (at `levels` where given).

    Args:
        spec: a specs.PTQSpec (its method, bits, group_size, params, gptq settings; `out` is not written here).
        model: the model (not modified).
        levels: K_l per layer (`matched_levels`), or None.
        calibration: () → list of (x, y) calibration batches on the model's device.
        unit: "images" or "windows", for the summary key calibration_<unit>.

    Returns:
        (the quantized copy: `.model`, `.bits`, `.mean_bits()`; summary entries incl. mean_effective_bits).
    """
    if spec.method == "gptq":
        from .gptq import gptq_quantize

        config, batches = spec.gptq_config(), calibration()
        q = gptq_quantize(model, batches, config)
        entries = {f"calibration_{unit}": sum(len(x) for x, _ in batches), "grid": config.grid, "damp": config.damp,
                   "block_size": config.block_size, "act_order": config.act_order}
        return q, {**entries, "mean_effective_bits": q.mean_bits(), "bits_per_layer": q.bits}
    if spec.method in GROUPWISE:
        q = groupwise_quantize(model, GroupwiseConfig(spec.method, spec.bits, spec.group_size, spec.params))
        return q, summary_entries(q)
    q = quantize_model(model, spec.method, spec.bits if spec.bits is not None else PTQConfig.bits,
                       which=spec.params, levels=levels)  # bits=None: `levels` names every layer
    return q, {"mean_effective_bits": q.mean_bits(), "bits_per_layer": q.bits}


def _run_ptq_text(spec, out, dev) -> dict:
    """`run_ptq` for a character language model (`--dataset text`): the checkpoint's vocabulary and shape
    (`lm.load_char_model`), the text's validation windows of the model's context for the loss (nats per
    character; no accuracy), and for GPTQ the first `calibration_images` training windows as its calibration
    segments (the GPTQ paper calibrates on 128 random 2,048-token segments of C4; here consecutive windows of the
    training split, so the numbers are reproducible)."""
    from ..lm import load_char_model
    from ..models import save_checkpoint
    from ..text import eval_windows, lm_metrics, load_text

    if spec.recalibrate_bn:
        raise LandscapeError(f"--recalibrate-bn {spec.recalibrate_bn}: {spec.arch} has no BatchNorm layer")
    model, vocab, kwargs = load_char_model(spec.checkpoint, spec.arch)
    corpus = load_text(spec.data.folder, vocab=vocab)
    context = int(kwargs["context"])
    levels, matched = _run_levels(spec, model) if spec.levels_from is not None else (None, {})
    q, entries = ptq_quantize(spec, model.to(dev), levels, lambda: [
        (x.to(dev), y.to(dev)) for x, y in eval_windows(corpus.train, context=context, batch_size=RECALIBRATION_WINDOWS,
                                                        limit=spec.calibration_images, what="training")],
        unit="windows")
    val = eval_windows(corpus.val, context=context, batch_size=spec.batch_size, limit=spec.limit)
    result = lm_metrics(q.model.to(dev), val, dev)
    summary = {"method": spec.method, "bits": spec.bits, **matched, **result, **entries, "out": str(out)}
    save_checkpoint(q.model.cpu(), out, arch=spec.arch, arch_kwargs=kwargs, vocab=vocab.chars,
                    data=corpus.record(), ptq={k: v for k, v in summary.items() if k != "out"}, source=spec.checkpoint)
    return summary


RECALIBRATION_WINDOWS = 128  # GPTQ's calibration batch on text: windows per forward pass
