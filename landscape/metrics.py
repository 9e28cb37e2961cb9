"""Evaluation of a model on batches: mean loss (nats; cross-entropy unless a loss function is given) and accuracy
(fraction; for classifier outputs [N, C] with integer labels [N], else NaN). The one loop every evaluation runs
(`metrics.evaluate`, the analyses' StateEvaluator)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) → the batch's *mean* loss (a 0-d tensor)


@torch.no_grad()
def accumulate(model: nn.Module, batches: Iterable, *, loss_fn: LossFn | None = None,
               prepare: Callable[[Tensor], Tensor] | None = None, progress: bool = False,
               desc: str = "eval") -> dict:
    """{"accuracy", "loss", "n"} of `model` as it is (its mode untouched) on (x, y) batches: the loss is the
    batch-size-weighted mean of `loss_fn`'s batch means (default: cross-entropy summed per batch, the same
    number), `prepare(x)` (e.g. a memory-layout change) applied to every input first."""
    # per-batch values stay on the device and are read in one transfer at the end (no host sync per batch), then
    # summed in float64 in batch order: the same numbers as adding each batch's value as it comes
    losses, sizes, corrects, classifier = [], [], [], True
    for x, y in tqdm(batches, desc=desc, leave=False, disable=not progress):
        out = model(prepare(x) if prepare is not None else x)
        if loss_fn is None:
            losses.append(F.cross_entropy(out, y, reduction="sum"))
        else:
            losses.append(loss_fn(out, y).detach().reshape(()))
        sizes.append(len(y))
        if classifier and isinstance(out, Tensor) and out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
            corrects.append((out.argmax(1) == y).sum())
        else:
            classifier = False
    n = sum(sizes)
    if n == 0:
        raise ValueError("no data to evaluate on (empty batches)")
    values = torch.stack(losses).tolist()
    loss_sum = 0.0
    for value, size in zip(values, sizes, strict=True):
        loss_sum += value if loss_fn is None else value * size
    correct = int(torch.stack(corrects).sum()) if classifier else 0
    return {"accuracy": correct / n if classifier else math.nan, "loss": loss_sum / n, "n": n}


def evaluate(model: nn.Module, batches: Iterable, *, loss_fn: LossFn | None = None, progress: bool = False,
             desc: str = "eval") -> dict:
    """{"accuracy": fraction correct, "loss": mean loss in nats, "n": examples}. The model is put in eval mode
    for the pass and its previous mode restored."""
    was_training = model.training
    model.eval()
    try:
        return accumulate(model, batches, loss_fn=loss_fn, progress=progress, desc=desc)
    finally:
        model.train(was_training)


def classifier_only(data):
    """`data` (JSON-ready dicts and lists) without the accuracy entries a language model's evaluation leaves NaN:
    every key containing "accuracy" whose value is NaN or a list of NaNs is dropped, recursively, so that nothing
    reports an accuracy for a model that has none.

    Args:
        data: a summary (dicts, lists, numbers, strings).

    Returns:
        The same structure without those keys.

    Examples:
        >>> classifier_only({"loss": 1.5, "accuracy": float("nan"), "runs": [{"real_accuracy": [float("nan")]}]})
        {'loss': 1.5, 'runs': [{}]}
        >>> classifier_only({"accuracy": 0.9})
        {'accuracy': 0.9}
    """
    def nan(value) -> bool:
        if isinstance(value, float):
            return math.isnan(value)
        if isinstance(value, list) and value:
            return all(nan(v) for v in value)
        return False

    if isinstance(data, dict):
        return {k: classifier_only(v) for k, v in data.items() if not ("accuracy" in str(k) and nan(v))}
    if isinstance(data, list):
        return [classifier_only(v) for v in data]
    return data
