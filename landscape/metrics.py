"""Evaluation of a model on a data split: accuracy (fraction) and mean cross-entropy (nats)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .data import Batches


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, *, progress: bool = False, desc: str = "eval") -> dict:
    """{"accuracy": fraction correct, "loss": mean cross-entropy in nats, "n": images}. The model is put in eval
    mode for the pass and its previous mode restored."""
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in tqdm(batches, desc=desc, leave=False, disable=not progress):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was_training)
    return {"accuracy": correct / n, "loss": loss_sum / n, "n": n}
