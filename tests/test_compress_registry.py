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
