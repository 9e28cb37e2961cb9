"""BatchNorm running statistics: the one place that re-estimates them (training's --recalibrate-bn, PTQ, studies'
PTQ baselines, the analyses' --bn recalibrate) and names the modes the analyses offer.

Analyses give every evaluated state its BN statistics one of two ways (`BN_MODES`):
  "keep"         the state's own running statistics as stored (interpolated with everything else along a path);
                 no training data needed.
  "recalibrate"  reset and re-estimated on fixed unaugmented training batches (`recalibration_batches`) as a
                 cumulative average (momentum=None), BN layers in train mode and everything else in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

BN_MODES = ("keep", "recalibrate")
RECALIBRATION_BATCH = 128  # images per BN-recalibration batch where no training batch size decides it (ptq)


def bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def check_bn_mode(bn: str) -> str:
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    return bn


def recalibration_batches(train, n_batches: int, batch_size: int, device: torch.device | str = "cpu") -> list:
    """The first n_batches × batch_size images of `train` (a data.Split), unaugmented, as a list of (x, y) batches
    so that every recalibration sees exactly the same tensors: the data `recalibrate_bn_` re-estimates BN
    statistics on (unaugmented: the statistics of the kind of images the model is evaluated on)."""
    from .data import Batches

    return list(Batches(train.subset(n_batches * batch_size), batch_size, train=False, device=device))


@torch.no_grad()
def recalibrate_bn_(model: nn.Module, batches: Iterable) -> nn.Module:
    """In place: reset every BN layer's running statistics and re-estimate them on `batches` ((x, y) pairs) as
    a cumulative average (momentum=None), BN layers in train mode, all else in eval mode. Returns the model in
    eval mode with the BN momenta restored."""
    bns = bn_modules(model)
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    for x, _ in batches:
        model(x)
        seen += 1
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    model.eval()
    if bns and seen == 0:
        raise ValueError("BN recalibration got no batches")
    return model
