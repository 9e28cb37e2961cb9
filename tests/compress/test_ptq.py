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


# ------------------------------------------------------------------------ per-layer levels (matched bits)


def test_levels_config_checks_and_storage():
    import json

    import numpy as np

    given = {"conv1.weight": np.int64(3), "linear.weight": 5}
    cfg = PTQConfig("kmeans", levels=given)
    given["conv1.weight"] = 7  # a copy is stored: the caller's dict changing later changes nothing
    assert cfg.levels == {"conv1.weight": 3, "linear.weight": 5} and type(cfg.levels["conv1.weight"]) is int
    assert hash(cfg) == hash(PTQConfig("kmeans", levels={"linear.weight": 5, "conv1.weight": 3}))
    assert cfg == PTQConfig("kmeans", levels={"conv1.weight": 3, "linear.weight": 5}) != PTQConfig("kmeans")
    assert len({cfg, PTQConfig("kmeans"), PTQConfig("kmeans")}) == 2
    compressor = PTQ(cfg)
    settings = json.loads(json.dumps(compressor.config_dict()))  # JSON-ready, as the run file stores it
    assert settings == {"quantizer": "kmeans", "bits": 4, "params": "weights",
                        "levels": {"conv1.weight": 3, "linear.weight": 5}}
    assert PTQConfig(**settings) == cfg
    assert PTQ(PTQConfig()).config_dict()["levels"] is None
    for bad, needle in [({"a.weight": 0}, "levels"), ({"a.weight": 2**16 + 1}, "levels"),
                        ({"a.weight": 2.5}, "levels"), ({"a.weight": True}, "levels"), ({"a.weight": "3"}, "levels"),
                        ({1: 3}, "names"), ({"": 3}, "names"), ([("a.weight", 3)], "map")]:
        with pytest.raises(ValueError, match=needle):
            PTQConfig("kmeans", levels=bad)


def test_runspec_and_make_compressor_take_levels():
    from landscape.compress import make_compressor
    from landscape.specs import RunSpec

    spec = RunSpec(arch="tiny", checkpoint=None, method="ptq",
                   compressor={"quantizer": "kmeans", "levels": {"conv1.weight": 3}})
    assert spec.compressor["levels"] == {"conv1.weight": 3}
    assert RunSpec.from_settings(spec.to_settings()) == spec
    assert make_compressor("ptq", {"levels": {"conv1.weight": 3}}).config.levels == {"conv1.weight": 3}


@pytest.mark.parametrize("method", ["uniform", "heq", "kmeans"])
def test_ptq_with_levels_on_a_tiny_model(method):
    model = build_model("tiny")
    levels = {"conv1.weight": 3, "layer2.0.conv2.weight": 5, "linear.weight": 1}
    q = PTQ(PTQConfig(method, 2, levels=levels)).clamp(model)
    for name, p in select_params(q.model).items():
        k = torch.unique(p).numel()
        assert k == q.codebooks[name].k
        if name in levels:
            assert k <= levels[name] and (method == "uniform" or k == levels[name])
        else:
            assert k <= 4  # 2^bits
    assert torch.equal(q.codebooks["layer3.0.conv1.weight"].values,
                       quantize_model(model, method, 2).codebooks["layer3.0.conv1.weight"].values)
    with pytest.raises(ValueError, match="bn1.weight"):  # not among the compressed parameters
        PTQ(PTQConfig(method, 2, levels={"bn1.weight": 3})).codebooks(model)
    assert PTQ(PTQConfig(method, 2, "all", {"bn1.weight": 1})).clamp(model).codebooks["bn1.weight"].k == 1


def test_matched_kmeans_has_the_runs_bits_exactly(tiny_run, tiny_checkpoint):
    """k-means of the *pretrained* model with the K_l of a real soft-quantization run: every layer has exactly the
    run's number of clusters, so the effective bits per layer and their mean equal the run's, bit for bit."""
    from landscape.compress.ptq import matched_levels, matched_ptq
    from landscape.store import Run

    run = Run(tiny_run)
    levels = matched_levels(run)
    assert levels == matched_levels(str(tiny_run)) == {name: len(v) for name, (v, _) in run.clusters().items()}
    pretrained = load_model("tiny", tiny_checkpoint)
    weights = select_params(pretrained)
    assert set(levels) == set(weights) and len(set(levels.values())) > 1  # mixed precision
    assert all(torch.unique(weights[name]).numel() >= k for name, k in levels.items())  # the premise
    q = matched_ptq(pretrained, tiny_run)
    assert {name: cb.k for name, cb in q.codebooks.items()} == levels
    assert q.bits == run.bits()["effective"]
    assert q.mean_bits() == run.bits()["mean_effective"]  # exactly, not approximately
    again = PTQ(PTQConfig("kmeans", levels=levels)).clamp(pretrained)  # the same thing, spelled out
    assert all(torch.equal(again.codebooks[n].values, q.codebooks[n].values) for n in levels)
    uniform = matched_ptq(pretrained, levels, method="uniform")
    assert all(uniform.codebooks[n].k <= k for n, k in levels.items())
    for name in levels:  # k-means' squared error ≤ uniform's at the same K_l
        w = weights[name].detach().flatten().double()
        err = {m: float(((c.codebooks[name].apply().double() - w) ** 2).sum()) for m, c in (("k", q), ("u", uniform))}
        assert err["k"] <= err["u"] * (1 + 1e-6), name


def test_matched_ptq_checks_the_layers(tiny_run):
    from landscape.compress.ptq import matched_levels, matched_ptq

    model = build_model("tiny")
    levels = matched_levels(tiny_run)
    with pytest.raises(ValueError, match="no level count for 1 of the model's 8"):
        matched_ptq(model, {k: v for k, v in levels.items() if k != "linear.weight"})
    with pytest.raises(ValueError, match="ghost.weight"):
        matched_ptq(model, {**levels, "ghost.weight": 3})
    with pytest.raises(ValueError, match="no level count"):
        matched_ptq(model, tiny_run, params="all")  # the run quantized the weights only
    assert matched_levels(PTQ(PTQConfig("heq", 2)).clamp(model)) == dict.fromkeys(select_params(model), 4)
    with pytest.raises(ValueError, match="matched_levels takes"):
        matched_levels(42)
