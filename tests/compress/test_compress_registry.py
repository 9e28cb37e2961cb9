"""What the rest of the toolkit learns about a method comes from its class in the registry (compress/__init__.py):
its name, the label figures give it, what it quantizes, its config dataclass."""

import dataclasses

import pytest

from landscape.compress import METHODS, make_compressor


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_describes_itself(name):
    cls, config = METHODS[name]
    assert cls.name == name and dataclasses.is_dataclass(config)
    assert cls.display_name() and cls.quantizes in ("weights", "inputs")
    assert make_compressor(name).config_dict() == dataclasses.asdict(config())


def test_labels_and_what_is_quantized():
    assert METHODS["weight-coupling"][0].display_name() == "soft quantization"
    assert METHODS["dsmm"][0].display_name() == "dsmm"  # no label: its registry name
    assert [n for n, (c, _) in METHODS.items() if c.quantizes == "inputs"] == ["input-bitwise"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_settings_for_bits_reach_those_bits(name):
    """A method's bit setting (Compressor.settings_for_bits), used by the methods table, gives at most that many
    bits per weight once clamped (fewer where a layer has fewer distinct values); a method that quantizes its
    inputs sets the bits per input channel."""
    import torch

    from landscape.models import build_model

    cls, _ = METHODS[name]
    settings = cls.settings_for_bits(3)
    if name == "weight-coupling":
        assert settings is None  # its bits follow from h and w
        return
    compressor = make_compressor(name, settings)
    if cls.quantizes == "inputs":
        assert compressor.config_dict()["input_bits"] == 3
        return
    torch.manual_seed(0)
    model = compressor.prepare(build_model("tiny"))
    if compressor.calibration():  # e.g. GPTQ: its clamp needs data
        compressor.calibrate(model, [(torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long))])
    bits = compressor.clamp(model).mean_bits()
    assert 1 < bits <= 3 + 1e-9, bits
