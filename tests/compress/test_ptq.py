import copy

import pytest
import torch
from conftest import ADAPTED_R20

from landscape.compress.ptq import PTQ, PTQConfig, quantize_model
from landscape.data import Batches
from landscape.metrics import evaluate
from landscape.models import build_model, load_model
from landscape.params import select_params


@pytest.fixture(scope="module")
def adapted():
    return load_model("resnet20", ADAPTED_R20)


@pytest.mark.parametrize("method", ["uniform", "heq", "kmeans"])
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_distinct_values_per_layer_at_most_2_to_the_b(method, bits):
    model = build_model("tiny")
    q = quantize_model(model, method, bits)
    for name, p in select_params(q.model).items():
        k = torch.unique(p).numel()
        assert k <= 2**bits and k == q.codebooks[name].k
        assert q.bits[name] <= bits
    # BN parameters, BN buffers and biases untouched
    for name, value in q.model.state_dict().items():
        if name not in q.codebooks:
            assert torch.equal(value, model.state_dict()[name]), name


def test_input_model_never_modified():
    model = build_model("tiny")
    before = copy.deepcopy(model.state_dict())
    for method in ("uniform", "heq", "kmeans"):
        quantize_model(model, method, 2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_params_all_quantizes_bn_too():
    model = build_model("tiny")
    with torch.no_grad():
        model.bn1.weight.uniform_(0.5, 1.5)
    q = quantize_model(model, "uniform", 1, which="all")
    assert torch.unique(q.model.bn1.weight).numel() <= 2
    assert "bn1.weight" in q.codebooks


def test_heq_bins_equally_populated_on_a_real_layer(adapted):
    w = adapted.layer2[0].conv1.weight.detach().flatten()
    cb = PTQ(PTQConfig("heq", 3)).codebooks(adapted)["layer2.0.conv1.weight"]
    counts = torch.bincount(cb.index).tolist()
    assert len(counts) == 8 and max(counts) - min(counts) <= 1 and sum(counts) == w.numel()


def test_eight_bit_ptq_keeps_accuracy(cifar, adapted):
    """Uniform and k-means at 8 bits stay within 0.5 pt. HEQ as specified (equal-population bins, each weight
    → its bin's *mean*) does not: its outermost bin maps the largest weights to a mean ~35% smaller, and on the
    full test split it loses 0.77 pt at 8 bits (88.10 → 87.33, `python -m landscape.ptq --method heq --bits 8`).
    We keep the specified definition and pin its loss below 1.5 pt here instead of hiding it."""
    _, test = cifar
    batches = Batches(test.subset(1000), 500, train=False)
    base = evaluate(adapted, batches)["accuracy"]
    for method, tolerance in (("uniform", 0.005), ("kmeans", 0.005), ("heq", 0.015)):
        acc = evaluate(quantize_model(adapted, method, 8).model, batches)["accuracy"]
        assert abs(acc - base) < tolerance, (method, acc, base)


def test_config_validation():
    with pytest.raises(ValueError, match="bits"):
        PTQConfig("heq", 0)
    with pytest.raises(ValueError, match="bits"):
        PTQConfig("heq", 17)
    with pytest.raises(ValueError, match="unknown PTQ method"):
        PTQConfig("fancy", 4)
