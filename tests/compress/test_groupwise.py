"""Group-wise RTN and HQQ (compress/groupwise.py): every group on its own grid of 2^B levels, the rows of a layer
as its output channels whatever the storage (a Conv1D's transpose), bits counted with the scales, the caller's
model untouched, bad group sizes one line."""

import pytest
import torch
import torch.nn as nn

from landscape.compress.groupwise import GroupwiseConfig, groupwise_quantize, hqq_groups, rtn_groups
from landscape.errors import LandscapeError


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 8))


@pytest.mark.parametrize("quantizer", ["rtn", "hqq"])
@pytest.mark.parametrize("group_size", [None, 32])
def test_every_group_has_at_most_2_to_the_b_values_and_the_model_is_untouched(quantizer, group_size):
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = groupwise_quantize(model, GroupwiseConfig(quantizer, bits=3, group_size=group_size))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    w = q.model[0].weight.detach()
    size = group_size or 128
    groups = w.reshape(-1, size)
    assert max(len(torch.unique(g)) for g in groups) <= 8
    assert not torch.equal(w, model[0].weight) and torch.equal(q.model[0].bias, model[0].bias)
    assert q.bits["0.weight"] == 3 + 32 / size and q.bits["2.weight"] == 3 + 32 / (group_size or 64)


def test_rtn_is_min_max_round_to_nearest():
    g = torch.randn(50, 16, dtype=torch.float64)
    out = rtn_groups(g, 4)
    step = (g.max(1, keepdim=True).values - g.min(1, keepdim=True).values) / 15
    assert ((out - g).abs() <= step / 2 + 1e-12).all()  # within half a step of every weight
    assert torch.equal(rtn_groups(torch.full((2, 4), 0.3), 2), torch.full((2, 4), 0.3))  # constant group kept


def test_hqq_fits_its_own_grid_per_group():
    torch.manual_seed(1)
    g = torch.randn(64, 32)
    out = hqq_groups(g, 2)
    assert out.shape == g.shape and torch.isfinite(out).all()
    assert max(len(torch.unique(row)) for row in out) <= 4
    assert not torch.allclose(out, rtn_groups(g, 2))  # HQQ moves scale and zero from min-max


def test_a_conv1d_is_grouped_along_its_inputs_as_the_linear_holding_its_transpose():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    conv, lin = nn.Sequential(Conv1D(8, 32)), nn.Sequential(nn.Linear(32, 8))
    with torch.no_grad():
        lin[0].weight.copy_(conv[0].weight.T)
    config = GroupwiseConfig("rtn", bits=2, group_size=16)
    assert torch.equal(groupwise_quantize(conv, config).model[0].weight.T,
                       groupwise_quantize(lin, config).model[0].weight)


def test_mean_bits_are_weighted_and_bad_settings_refused():
    q = groupwise_quantize(net(), GroupwiseConfig("rtn", bits=4, group_size=64))
    assert q.mean_bits() == pytest.approx(4.5)
    with pytest.raises(LandscapeError, match="group size 48 does not divide the 128 inputs of 0.weight"):
        groupwise_quantize(net(), GroupwiseConfig("rtn", bits=4, group_size=48))
    with pytest.raises(ValueError, match="bits must be an integer in 1..8"):
        GroupwiseConfig("hqq", bits=9)
    with pytest.raises(ValueError, match="unknown group-wise method"):
        GroupwiseConfig("awq")
