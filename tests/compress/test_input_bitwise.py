"""Bitwise soft quantization of the inputs: a sum-of-sigmoids staircase per channel while training, hard
steps in eval mode (at most 2^B values per channel, a function of a B-bit code), uniform initialisation
over the pixel range, trainable thresholds and levels, and the compression factor 32/B."""

import copy

import pytest
import torch
import torch.nn.functional as F

from landscape.compress import make_compressor
from landscape.compress.input_bitwise import InputBitwise, InputBitwiseConfig, InputQuantized
from landscape.data import normalize
from landscape.models import build_model


def prepared(**settings):
    comp = InputBitwise(InputBitwiseConfig(**settings))
    return comp.prepare(build_model("tiny")), comp


def pixels(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def literal_hard(q, x):
    """v_0 + Σ_j (v_j − v_{j−1}) H(x − t_j), per channel, as written in the module docstring."""
    v, t = q.levels.detach(), q.thresholds.detach()
    out = v[None, :, None, None, 0].expand_as(x).clone()
    for j in range(t.shape[1]):
        out += (v[:, j + 1] - v[:, j])[None, :, None, None] * (x > t[None, :, None, None, j])
    return out


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_eval_is_hard_with_at_most_2_to_the_b_values_per_channel(bits):
    model, comp = prepared(input_bits=bits)
    x = normalize(pixels())
    q = model.quantizer.eval()(x)
    for c in range(3):
        assert torch.unique(q[:, c]).numel() <= 2**bits
    torch.testing.assert_close(q, literal_hard(model.quantizer, x))
    code = model.quantizer.encode(x)
    assert code.min() >= 0 and code.max() <= 2**bits - 1 and code.shape == x.shape
    clamped = comp.clamp(model)
    assert clamped.bits == {f"input.channel{c}": float(bits) for c in range(3)}
    assert comp.stats(model)["compression_factor"] == 32 / bits


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_initial_quantizer_is_uniform_over_the_pixel_range(bits):
    """Levels at k·255/(2^B − 1) in pixel units, thresholds at the midpoints (no 8-bit pixel sits on one)."""
    model, _ = prepared(input_bits=bits)
    p = pixels()
    steps = 2**bits - 1
    expected_pixels = torch.round(p.double() * steps / 255) * 255 / steps
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    expected = (expected_pixels / 255 - mean) / std
    torch.testing.assert_close(model.quantizer.eval()(normalize(p)), expected.float(), rtol=0, atol=1e-5)


def test_eight_bits_is_lossless_on_8_bit_pixels_at_initialisation():
    model, _ = prepared(input_bits=8)
    x = normalize(pixels(2))
    torch.testing.assert_close(model.quantizer.eval()(x), x, rtol=0, atol=1e-5)


def test_soft_staircase_tends_to_the_hard_one():
    model, _ = prepared(input_bits=3, temperature=1e-4)
    x = normalize(pixels())
    torch.testing.assert_close(model.quantizer.train()(x), model.quantizer.eval()(x), rtol=0, atol=1e-4)
    soft = prepared(input_bits=3, temperature=0.5)[0].quantizer.train()(x)
    assert (soft - model.quantizer.eval()(x)).abs().max() > 0.01  # a real relaxation at τ = 0.5


def test_crossed_thresholds_decode_the_code_consistently():
    model, _ = prepared(input_bits=3)
    q = model.quantizer
    with torch.no_grad():
        q.thresholds[:, [2, 4]] = q.thresholds[:, [4, 2]].clone()  # two thresholds swapped
        q.levels.add_(0.05 * torch.randn_like(q.levels))
    x = normalize(pixels())
    torch.testing.assert_close(q.eval()(x), literal_hard(q, x))


def test_soft_forward_is_differentiable_in_thresholds_levels_and_weights():
    model, comp = prepared(input_bits=2)
    x, y = normalize(pixels(16)), torch.arange(16) % 10
    model.train()
    loss = F.cross_entropy(model(x), y) + comp.penalty(model)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    assert model.quantizer.thresholds.grad.abs().sum() > 0 and model.quantizer.levels.grad.abs().sum() > 0
    assert comp.penalty(model).item() == 0.0 and comp.param_groups() == []


def test_training_lowers_the_loss_of_the_hard_quantized_network_and_moves_thresholds():
    torch.manual_seed(0)
    model, _ = prepared(input_bits=2, temperature=0.3)
    x, y = normalize(pixels(32)), torch.arange(32) % 10
    t0 = model.quantizer.thresholds.detach().clone()
    model.eval()
    before = F.cross_entropy(model(x), y).item()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert F.cross_entropy(model(x), y).item() < before
    assert not torch.equal(model.quantizer.thresholds.detach(), t0)


def test_inputs_and_model_unchanged():
    net = build_model("tiny")
    before = copy.deepcopy(net.state_dict())
    comp = make_compressor("input-bitwise")
    model = comp.prepare(net)
    assert isinstance(model, InputQuantized) and model.net is net
    x = normalize(pixels())
    x0 = x.clone()
    model.train()(x)
    model.eval()(x)
    clamped = comp.clamp(model)
    assert torch.equal(x, x0)
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters())  # (train mode moves BN stats)
    assert clamped.model is not model and all(
        torch.equal(v, model.state_dict()[k]) for k, v in clamped.model.state_dict().items())


def test_clamp_before_prepare_is_an_error():
    with pytest.raises(RuntimeError, match="prepare"):
        make_compressor("input-bitwise").codebooks(build_model("tiny"))


@pytest.mark.parametrize("settings,needle", [
    ({"input_bits": 0}, "input_bits must be an integer in 1..8"),
    ({"input_bits": 9}, "input_bits must be an integer in 1..8"),
    ({"temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
    ({"temperature": -0.1}, "temperature must be a finite number > 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle):
        make_compressor("input-bitwise", settings)
