"""GPTQ (compress/gptq.py): the blocked Cholesky sweep equals the plain sequential OBS update with an explicit
inverse Hessian for any block size, orthonormal inputs give round-to-nearest, correlated inputs a smaller layer
output error than round-to-nearest (act-order too), conv layers are linear layers on their unfolded patches (grouped
convs one problem per group), dead input channels stay finite, the layers are quantized sequentially; the whole
method through the trainer, the API and `landscape ptq --method gptq`, and its one-line errors."""

import copy
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import SHARED, assert_one_line_error

import landscape as ls
from landscape.compress import METHODS, make_compressor
from landscape.compress.gptq import GPTQ, GPTQConfig, _hessian, _sweep, gptq_quantize, gptq_sweep, layer_columns
from landscape.data import Split
from landscape.models import build_model
from landscape.params import select_params
from landscape.quantize import nearest, uniform
from landscape.specs import RunSpec
from landscape.trainer import TrainConfig
from landscape.training import calibration_batches, fit_and_clamp

D64 = torch.float64


def correlated(d: int, n: int, seed: int, rho: float = 0.9) -> torch.Tensor:
    """[d, n] inputs with corr(x_i, x_j) = rho^|i−j| (strongly correlated neighbours) and unequal scales."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(d, dtype=D64)
    cov = rho ** (i[:, None] - i[None, :]).abs() * torch.outer(1 + i / d, 1 + i / d)
    return torch.linalg.cholesky(cov) @ torch.randn(d, n, generator=g, dtype=D64)


def hessian(x: torch.Tensor) -> torch.Tensor:
    return 2 * x @ x.T / x.shape[1]


def obs_reference(w: torch.Tensor, h: torch.Tensor, grid: torch.Tensor, damp: float):
    """The plain sequential OBS/GPTQ update, written from the formulas: explicit inverse, no Cholesky, no blocks.
    Returns (grid index, each weight's value when it was rounded)."""
    w = w.clone()
    hinv = torch.linalg.inv(h + damp * h.diagonal().mean() * torch.eye(len(h), dtype=h.dtype))
    index = torch.empty(w.shape, dtype=torch.long)
    swept = torch.empty_like(w)
    for q in range(w.shape[1]):
        swept[:, q] = w[:, q]
        index[:, q] = torch.argmin((w[:, q, None] - grid[None, :]).abs(), 1)  # nearest (ties: the lower)
        err = (w[:, q] - grid[index[:, q]]) / hinv[q, q]
        w[:, q + 1:] -= err[:, None] * hinv[q, q + 1:][None, :]
        hinv = hinv - torch.outer(hinv[:, q], hinv[q, :]) / hinv[q, q]  # q eliminated
    return index, swept


def output_error(w: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    return float(((w - q) @ x).square().sum())


def layer_case(rows=12, d=20, n=400, bits=3, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    w = torch.randn(rows, d, generator=g, dtype=D64)
    x = correlated(d, n, seed)
    return w, x, uniform(w.flatten(), bits).values


def test_registered_and_its_settings():
    assert METHODS["gptq"] == (GPTQ, GPTQConfig) and GPTQ.display_name() == "GPTQ"
    assert GPTQ.settings_for_bits(3) == {"bits": 3}
    assert make_compressor("gptq").calibration() == 1024 and make_compressor("ptq").calibration() == 0
    assert make_compressor("gptq").penalty(nn.Linear(2, 2)).item() == 0.0


@pytest.mark.parametrize("settings,needle", [
    ({"bits": 1}, "bits must be an integer in 2..8"), ({"bits": 9}, "bits must be an integer in 2..8"),
    ({"damp": 0}, "damp"), ({"damp": -0.1}, "damp"), ({"damp": math.nan}, "damp"), ({"damp": math.inf}, "damp"),
    ({"block_size": 0}, "block_size"), ({"grid": "lloyd"}, "unknown GPTQ grid"),
    ({"calibration_images": 0}, "calibration_images"),
])
def test_bad_config_is_one_line_value_error(settings, needle):
    with pytest.raises(ValueError, match=needle) as e:
        GPTQConfig(**settings)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("block_size", [1, 3, 128])
def test_blocked_cholesky_sweep_equals_the_explicit_inverse_update(block_size):
    w, x, grid = layer_case()
    h = hessian(x)
    ref_index, ref_swept = obs_reference(w, h, grid, 0.01)
    index, swept = _sweep(w, h, grid, block_size=block_size, damp=0.01, act_order=False)
    assert torch.equal(index, ref_index)
    torch.testing.assert_close(swept, ref_swept, rtol=0, atol=1e-10)
    assert torch.equal(gptq_sweep(w, h, grid, block_size=block_size), index)
    assert not torch.equal(index, nearest(w.flatten(), grid).index.view_as(index))  # the updates matter here


def test_act_order_is_the_reference_update_on_permuted_columns():
    w, x, grid = layer_case(seed=1)
    h = hessian(x)
    perm = torch.argsort(h.diagonal(), descending=True, stable=True)
    assert not torch.equal(perm, torch.arange(len(perm)))  # the order does change
    ref_index, _ = obs_reference(w[:, perm], h[perm][:, perm], grid, 0.01)
    index = gptq_sweep(w, h, grid, block_size=3, act_order=True)
    assert torch.equal(index[:, perm], ref_index)


def test_orthonormal_inputs_give_round_to_nearest():
    g = torch.Generator().manual_seed(0)
    x = torch.linalg.qr(torch.randn(200, 16, generator=g, dtype=D64)).Q  # [n, d], orthonormal columns: XᵀX = I
    model = nn.Sequential(nn.Linear(16, 8)).double()
    gptq = GPTQ(GPTQConfig(bits=3))
    gptq.calibrate(model, [(x[:120], None), (x[120:], None)])
    w = model[0].weight.detach().flatten()
    book = gptq.codebooks(model)["0.weight"]
    rtn = nearest(w, uniform(w, 3).values)
    assert torch.equal(book.apply(), rtn.apply())


def test_correlated_inputs_beat_round_to_nearest():
    """GPTQ's layer-output error is below round-to-nearest's on the same grid (the ratio is printed, -s)."""
    w, x, grid = layer_case(rows=32, d=64, n=2000, bits=2, seed=2)
    h = hessian(x)
    rtn = nearest(w.flatten(), grid).apply().view_as(w)
    errors = {"rtn": output_error(w, rtn, x)}
    for act_order in (False, True):
        index = gptq_sweep(w, h, grid, act_order=act_order)
        assert index.min() >= 0 and index.max() < len(grid)
        errors[f"gptq act_order={act_order}"] = output_error(w, grid[index], x)
    print({k: round(v / errors["rtn"], 4) for k, v in errors.items()})
    assert errors["gptq act_order=False"] < 0.8 * errors["rtn"]
    assert errors["gptq act_order=True"] < 0.8 * errors["rtn"]


def test_act_order_through_the_compressor_gives_a_valid_codebook():
    torch.manual_seed(0)
    d = 24
    model = nn.Sequential(nn.Linear(d, 10)).double()
    x = correlated(d, 600, 3).T.contiguous()
    books = {}
    for act_order in (False, True):
        gptq = GPTQ(GPTQConfig(bits=2, act_order=act_order))
        gptq.calibrate(model, [(x, None)])
        books[act_order] = book = gptq.codebooks(model)["0.weight"]
        w = model[0].weight.detach()
        grid = uniform(w.flatten(), 2).values
        assert book.k <= 4 and bool(torch.isin(book.values, grid).all())
        assert book.index.shape == (w.numel(),) and int(book.counts.sum()) == w.numel()
        assert output_error(w, book.apply().view_as(w), x.T) < output_error(w, nearest(w.flatten(), grid).apply()
                                                                            .view_as(w), x.T)
    assert not torch.equal(books[False].apply(), books[True].apply())


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 5, 3, stride=2, padding=1, dilation=2),
    nn.Conv2d(3, 4, (3, 2), padding="same", padding_mode="reflect"),
    nn.Conv2d(4, 6, 3, padding=1, groups=2),
    nn.Conv2d(4, 4, 3, padding=1, groups=4, padding_mode="circular"),  # depthwise
    nn.Conv1d(2, 3, 5, stride=2, padding=2),
])
def test_unfolded_columns_reproduce_the_conv(conv):
    conv = conv.double()
    x = torch.randn(3, conv.in_channels, *([9] * (conv.weight.dim() - 2)), dtype=D64)
    cols = layer_columns(conv, x)
    g = conv.groups
    out = torch.bmm(conv.weight.reshape(g, conv.out_channels // g, -1), cols)  # [g, out/g, N·L]
    expected = conv(x) - conv.bias.view(1, -1, *([1] * (x.dim() - 2)))
    assert torch.allclose(out.reshape(conv.out_channels, x.shape[0], -1).transpose(0, 1),
                          expected.reshape(x.shape[0], conv.out_channels, -1), atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_is_gptq_of_a_linear_layer_on_its_patches(groups):
    """The reference's conv path, written here: nn.Unfold with the conv's kernel, dilation, padding and stride;
    H from the patches; the weight as [out, in·kh·kw] (per group)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=1, padding=1, dilation=1, groups=groups).double()
    x = torch.randn(6, 4, 7, 7, dtype=D64)
    x[:, 1] = x[:, 0] + 0.2 * x[:, 1]  # correlated channels
    gptq = GPTQ(GPTQConfig(bits=2, block_size=5))
    gptq.calibrate(nn.Sequential(conv), [(x[:4], None), (x[4:], None)])
    book = gptq.codebooks(nn.Sequential(conv))["0.weight"]
    patches = nn.Unfold(conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)(x)
    patches = patches.permute(1, 0, 2).flatten(1)  # [in·kh·kw, N·L]
    grid = uniform(conv.weight.detach().flatten(), 2).values
    w = conv.weight.detach().reshape(6, -1)
    rows, d = 6 // groups, 4 // groups * 9
    assert w.shape == (6, d)
    expected = torch.cat([grid[gptq_sweep(w[j * rows:(j + 1) * rows], hessian(patches[j * d:(j + 1) * d]), grid,
                                          block_size=5)] for j in range(groups)])
    assert torch.equal(book.apply(), expected.flatten())


def test_dead_input_channels_give_no_nan():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 6, 6)
    x[:, 1] = 0  # a dead channel
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    with torch.no_grad():
        model[0].weight[2] = 0
        model[0].bias[2] = -1  # output channel 2 is ReLU(−1) = 0: 36 dead inputs of the linear layer
    q = gptq_quantize(model, [(x, None)], GPTQConfig(bits=2))
    for name, p in select_params(q.model).items():
        assert torch.isfinite(p).all() and torch.unique(p).numel() <= 4, name
    assert torch.isfinite(q.model(x)).all()
    book = q.codebooks["0.weight"]
    w = model[0].weight.detach()
    grid = uniform(w.flatten(), 2).values
    zero = grid[torch.argmin(grid.abs())]
    assert torch.equal(book.apply().view_as(w)[:, 1], torch.full_like(w[:, 1], float(zero)))  # w_dead → 0 → grid


def test_layers_are_quantized_sequentially_through_the_quantized_earlier_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = correlated(6, 300, 4).T.contiguous()
    q = gptq_quantize(model, [(x[:200], None), (x[200:], None)], GPTQConfig(bits=2, calibration_images=300))
    first = q.model[0]
    for inputs, same in ((torch.relu(first(x)), True), (torch.relu(model[0](x)), False)):  # quantized vs float
        w = model[2].weight.detach()
        grid = uniform(w.flatten(), 2).values
        expected = grid[gptq_sweep(w, hessian(inputs.detach().T), grid)]
        assert torch.equal(q.model[2].weight.detach(), expected) == same


def test_calibration_forwards_stop_after_the_layer_and_keep_every_call():
    """A layer's H sums all its calls of a forward (here a module used twice); the forwards after the first stop
    once the layer has had as many inputs, so the tail runs for the first batch only."""
    torch.manual_seed(0)
    shared, tail = nn.Linear(4, 4).double(), nn.Linear(4, 2).double()
    model = nn.Sequential(shared, nn.ReLU(), shared, tail)
    calls = []
    tail.register_forward_pre_hook(lambda m, a: calls.append(len(a[0])))
    xs = [torch.randn(8, 4, dtype=D64) for _ in range(3)]
    h = _hessian(model, shared, "0.weight", [(x, None) for x in xs], torch.device("cpu"))
    with torch.no_grad():
        inputs = torch.cat([torch.cat([x, torch.relu(shared(x))]) for x in xs])
    torch.testing.assert_close(h[0], 2 * inputs.T @ inputs / len(inputs), rtol=1e-12, atol=1e-12)
    assert calls == [8]


def test_gptq_quantize_takes_calibration_images_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    before = copy.deepcopy(model.state_dict())
    seen = []
    model.conv1.register_forward_pre_hook(lambda m, a: seen.append(len(a[0])))  # deep-copied with the model
    batches = [(torch.randn(16, 3, 32, 32), torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    q = gptq_quantize(model, batches, GPTQConfig(bits=3, calibration_images=40))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert seen == [16, 16, 8] * len(select_params(model))  # 40 images, one pass per layer
    assert set(q.codebooks) == set(select_params(model))
    for name, p in select_params(q.model).items():
        assert torch.unique(p).numel() <= 8 and q.codebooks[name].k == torch.unique(p).numel(), name
    for name, value in q.model.state_dict().items():
        if name not in q.codebooks:
            assert torch.equal(value, before[name]), name  # BN, biases untouched


def test_clamping_before_calibrating_is_an_error():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(RuntimeError, match=r"GPTQ needs calibrate\(model, batches\) before clamping"):
        GPTQ().clamp(model)
    assert GPTQ().stats(model) == {}
    gptq = GPTQ(GPTQConfig(bits=2))
    gptq.calibrate(model, [(torch.randn(8, 4), None)])
    with pytest.raises(RuntimeError, match="other layers"):
        gptq.codebooks(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))


def test_unsupported_layers_are_named():
    with pytest.raises(ValueError, match=r"attn\.in_proj_weight \(MultiheadAttention\)"):
        GPTQ().prepare(nn.ModuleDict({"attn": nn.MultiheadAttention(4, 1)}))
    with pytest.raises(ValueError, match=r"0\.weight \(Conv3d\)"):
        GPTQ().prepare(nn.Sequential(nn.Conv3d(1, 2, 1)))

    class Uncalled(nn.Module):  # the linear's weight used by its parent, the module never called
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x):
            return F.linear(x, self.proj.weight)

    with pytest.raises(ValueError, match=r"proj\.weight \(Linear\) was not called"):
        GPTQ().calibrate(Uncalled(), [(torch.randn(2, 4), None)])


def test_calibration_batches_are_the_unaugmented_start_of_the_split():
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(50) % 10)
    batches = calibration_batches(split, 20, 8, torch.device("cpu"))
    assert [len(x) for x, _ in batches] == [8, 8, 4]
    again = calibration_batches(split, 20, 8, torch.device("cpu"))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))  # no augmentation draws
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels[:20])


def test_fit_and_clamp_calibrates_before_the_clamp(tmp_path, monkeypatch):
    """Zero penalty, one epoch of plain fine-tuning, then GPTQ on `calibration_images` unaugmented images."""
    torch.manual_seed(0)
    model = build_model("tiny")
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(48) % 10)
    test = [(torch.randn(16, 3, 32, 32, generator=g), torch.arange(16) % 10)]
    seen = []
    calibrate = GPTQ.calibrate

    def recorded(self, model, batches):
        seen.append(sum(len(x) for x, _ in batches))
        return calibrate(self, model, batches)

    monkeypatch.setattr(GPTQ, "calibrate", recorded)
    spec = RunSpec(arch="tiny", checkpoint=None, method="gptq", compressor={"bits": 2, "calibration_images": 40},
                   train=TrainConfig(epochs=1, batch_size=16, compile="off"))
    summary = fit_and_clamp(tmp_path / "run.h5", model, train, test, spec, progress=False)
    assert seen == [40] and summary["steps"] == 3
    assert 1 < summary["mean_bits"] <= 2
    clamped = ls.open_run(summary["run"]).state("clamped")
    for name in select_params(model):
        assert torch.unique(clamped[name]).numel() <= 4, name


def test_compress_model_any_model_and_the_caller_model_untouched(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, groups=3),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()
    before = copy.deepcopy(net.state_dict())
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 4, (16,), generator=g)) for _ in range(2)]
    run = ls.compress_model(net, data, data, out=tmp_path / "run.h5", method="gptq", bits=2, epochs=1, lr=0.01,
                            progress=False)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    clamped = run.model("clamped", template=net)
    for name, w in select_params(clamped).items():
        assert torch.unique(w).numel() <= 4, name
    assert run.bits()["mean_effective"] <= 2 and math.isfinite(run.evals()["clamped"]["loss"])


# --------------------------------------------------------------------------------------------------- the CLI


def ptq_args(checkpoint, out, *extra):
    return ["--method", "gptq", "--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--limit",
            100, "--out", out, "--json", *extra]


def test_ptq_cli_gptq_writes_a_checkpoint_with_its_numbers(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "q.pt"
    r = run_cli("ptq", *ptq_args(tiny_checkpoint, out, "--bits", 2, "--calibration-images", 200, "--act-order"))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == "gptq" and summary["bits"] == 2 and summary["calibration_images"] == 200
    assert summary["act_order"] is True and summary["grid"] == "uniform" and summary["n"] == 100
    saved = torch.load(out, weights_only=False)
    assert saved["ptq"]["accuracy"] == summary["accuracy"] and saved["ptq"]["method"] == "gptq"
    for name in summary["bits_per_layer"]:
        assert torch.unique(saved["state_dict"][name]).numel() <= 4, name


@pytest.mark.parametrize("extra,needle", [
    (["--bits", "9"], "bits must be an integer in 2..8"),
    (["--bits", "2", "--damp", "0"], "damp"),
    (["--bits", "2", "--grid", "lloyd"], "--grid"),
    (["--bits", "2", "--calibration-images", "0"], "calibration-images"),
])
def test_ptq_cli_gptq_bad_inputs_are_one_line_errors(extra, needle, run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "bad.pt"
    r = run_cli("ptq", *ptq_args(tiny_checkpoint, out, *extra))
    assert r.code == 2
    assert_one_line_error(r, needle)
    assert not out.exists()


def test_ptq_cli_gptq_options_apply_to_gptq_only(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "bad.pt"
    r = run_cli("ptq", "--method", "heq", "--bits", "2", "--arch", "tiny", "--checkpoint", tiny_checkpoint,
                "--damp", "0.1", "--out", out)
    assert_one_line_error(r, "--damp applies to --method gptq only")
    assert not out.exists()
