"""Any model, any data, through the public API (`import landscape as ls`): tiny random models of several kinds
(depthwise and grouped convs with BN, Conv1d, an attention block with embeddings and LayerNorm, an MLP) on random
data: every method trains and clamps into a run file, every analysis runs on it, and a model with nothing to
compress is a one-line error."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import landscape as ls
from landscape.compress import METHODS
from landscape.errors import LandscapeError
from landscape.params import not_compressed, select_params


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)  # depthwise
        self.pw = nn.Conv2d(8, 8, 1, groups=2)  # grouped pointwise
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.pw(self.dw(x)))
        return self.head(x.mean((2, 3)))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 5, padding=2)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(2))


class Attention(nn.Module):
    """Token classifier: embeddings, one self-attention block with LayerNorm, a linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = self.norm(x + self.attn(x, x, x, need_weights=False)[0])
        return self.head(x.mean(1))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


KINDS = {  # model factory, input maker (batch size → inputs)
    "depthwise": (Depthwise, lambda n, g: torch.randn(n, 3, 6, 6, generator=g)),
    "conv1d": (Conv1dNet, lambda n, g: torch.randn(n, 2, 10, generator=g)),
    "attention": (Attention, lambda n, g: torch.randint(0, 16, (n, 5), generator=g)),
    "mlp": (mlp, lambda n, g: torch.randn(n, 12, generator=g)),
}
IMAGE_ONLY = {"input-bitwise"}  # it quantizes image inputs ([N, 3, H, W] in the CIFAR normalization)
SETTINGS = {"weight-coupling": {"h": 0.5, "w": 0.5, "estimator": "sorted"}, "ptq": {"bits": 2},
            "centroid": {"bits": 2}, "dsmm": {"bits": 2}, "vq": {"codebook_bits": 4, "dim": 2}, "input-bitwise": {},
            "lsq": {"bits": 2}, "parq": {"bits": 2, "anneal_end": 2}, "binaryrelax": {"bits": 2, "anneal_end": 2},
            "dkm": {"bits": 2}, "gptq": {"bits": 2}, "vq-nas": {"candidates": "vq:4x2,lin:2", "search_steps": 1}}


def data(kind: str, n_batches: int, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    make = KINDS[kind][1]
    return [(make(16, g), torch.randint(0, 4, (16,), generator=g)) for _ in range(n_batches)]


def model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return KINDS[kind][0]().eval()


def test_compressible_layers_follow_from_module_types():
    assert set(select_params(model("depthwise"))) == {"stem.weight", "dw.weight", "pw.weight", "head.weight"}
    assert set(select_params(model("conv1d"))) == {"conv.weight", "head.weight"}
    assert set(select_params(model("attention"))) == {"attn.in_proj_weight", "attn.out_proj.weight", "head.weight"}
    assert not_compressed(model("attention")) == {"embed.weight": "Embedding"}  # listed, not silently skipped
    assert set(select_params(model("attention"), "weights,+embed.weight,-head.*")) == {
        "attn.in_proj_weight", "attn.out_proj.weight", "embed.weight"}
    with pytest.raises(ValueError, match="matches no parameter"):
        select_params(model("mlp"), "weights,-nothing.*")
    with pytest.raises(ValueError, match="PATTERN"):
        select_params(model("mlp"), "weights,head")


@pytest.mark.parametrize("method, kind", [(m, k) for m in sorted(METHODS) for k in KINDS
                                          if m not in IMAGE_ONLY or k == "depthwise"])
def test_every_method_trains_and_clamps_any_model(kind, method, tmp_path):
    net = model(kind)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    settings = dict(SETTINGS[method])
    if method in ("vq", "vq-nas", "lsq", "dkm", "gptq") and kind == "attention":  # a conv/linear module's forward
        with pytest.raises(ValueError, match="attn.in_proj_weight"):
            ls.compress_model(net, data(kind, 1, 0), data(kind, 1, 1), out=tmp_path / "x.h5", method=method,
                              progress=False, **settings)
        settings["params"] = "weights,-attn.in_proj_weight"
    if method == "gptq" and kind == "attention":  # out_proj's weight is used by its parent: no inputs to hook
        with pytest.raises(ValueError, match="attn.out_proj.weight"):
            ls.compress_model(net, data(kind, 1, 0), data(kind, 1, 1), out=tmp_path / "y.h5", method=method,
                              epochs=1, progress=False, **settings)
        settings["params"] += ",-attn.out_proj.weight"
    run = ls.compress_model(net, data(kind, 3, 0), data(kind, 2, 1), out=tmp_path / "run.h5", method=method,
                            epochs=1, lr=0.01, progress=False, recalibrate_bn=1, **settings)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the caller's model untouched
    evals = run.evals()
    assert set(evals) >= {"pretrained", "compressed", "clamped", "recalibrated"}
    assert all(math.isfinite(e["loss"]) and e["n"] == 32 for e in evals.values())
    clamped = run.model("clamped", template=net)
    if method not in IMAGE_ONLY:
        for name, w in select_params(clamped, settings.get("params", "weights")).items():
            assert len(torch.unique(w)) <= 2 ** 6, name  # every compressed layer is clamped onto a few values
    assert math.isfinite(run.bits()["mean_effective"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_analysis_runs_on_any_model(kind, tmp_path):
    net = model(kind)
    test, train = data(kind, 2, 1), data(kind, 2, 2)
    run = ls.compress_model(net, train, test, out=tmp_path / "run.h5", epochs=1, lr=0.01, progress=False, h=0.5, w=0.5)
    kw = {"template": net}
    path = ls.loss_path(run.path, ["pretrained", "compressed", "clamped"], test, points=3, **kw)
    assert path.metrics["test"]["loss"].shape == (5,)
    assert path.metrics["test"]["loss"][-1] == pytest.approx(run.evals()["clamped"]["loss"], rel=1e-5)
    test_result = ls.perturbation_test(run, "clamped", test, directions=3, bn="recalibrate", bn_data=train, **kw)
    assert len(test_result.random_delta_loss) == 3 and math.isfinite(test_result.zscore)
    surf = ls.loss_surface(run, test, plane="states", resolution=3, save="states", **kw)
    assert surf.loss.shape == (3, 3) and np.all(np.isfinite(surf.loss))
    rand = ls.loss_surface(net, test, plane="random", dims=1, resolution=5)  # a bare model: around its own state
    assert rand.loss[2] == pytest.approx(ls.evaluate_model(net, test)["loss"], rel=1e-5)
    spectrum = ls.hessian_spectrum(run, test, states=["compressed"], trace=True, samples=4, **kw)
    assert math.isfinite(spectrum.states["compressed"]["top"][0])


def test_a_regression_loss_and_non_classifier_outputs(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)) for _ in range(3)]
    mse = torch.nn.functional.mse_loss
    run = ls.compress_model(net, batches, batches, out=tmp_path / "reg.h5", loss_fn=mse, epochs=1, progress=False,
                      h=0.5, w=0.5)
    e = run.evals()["clamped"]
    assert math.isnan(e["accuracy"]) and e["loss"] == pytest.approx(
        ls.evaluate_model(run.model("clamped", template=net), batches, loss_fn=mse)["loss"], rel=1e-6)


def test_a_model_with_nothing_to_compress_is_a_clear_error(tmp_path):
    net = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Flatten())
    batches = [(torch.randint(0, 10, (4, 3)), torch.randint(0, 4, (4,)))]
    with pytest.raises(LandscapeError, match="no compressible layer") as info:
        ls.compress_model(net, batches, batches, out=tmp_path / "none.h5", epochs=1, progress=False)
    assert "\n" not in str(info.value) and not (tmp_path / "none.h5").exists()


def test_runs_of_a_python_model_name_what_they_need(tmp_path):
    net = model("mlp")
    run = ls.compress_model(net, data("mlp", 2, 0), data("mlp", 1, 1), out=tmp_path / "r.h5", epochs=1, progress=False,
                      h=0.5, w=0.5)
    with pytest.raises(LandscapeError, match="Python object"):
        run.model("clamped")  # no arch spec: the error says to pass the model
    spec = ls.compress_model(net, data("mlp", 2, 0), data("mlp", 1, 1), out=tmp_path / "s.h5", epochs=1, progress=False,
                       arch="test_any_model:mlp", h=0.5, w=0.5)  # an importable factory: the run rebuilds it
    rebuilt = spec.model("clamped")
    x = data("mlp", 1, 3)[0][0]
    assert torch.equal(rebuilt(x), spec.model("clamped", template=net)(x))
