"""bench/train.py's methods table (`--only methods`) runs end to end at one timed round: a row for every method
of METHOD_ROWS and the plain step, each a step time and a ratio to the plain step, as JSON and as a table."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
from conftest import ADAPTED_R20, REPO


@pytest.fixture
def bench(monkeypatch):
    if not ADAPTED_R20.is_file():
        pytest.skip(f"no {ADAPTED_R20}")
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "bench" / "train.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_methods_table(bench, capsys):
    from landscape.compress import METHODS

    assert bench.main(["--only", "methods", "--arch", "resnet20", "--rounds", "1", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["archs"] == {}  # the options study was not run
    rows = result["methods"]["resnet20"]["rows"]
    assert set(rows) == {"plain", *bench.METHOD_ROWS}
    assert rows["plain"]["vs_plain"] == 1.0
    assert all(v["step_s"] > 0 and math.isfinite(v["vs_plain"]) for v in rows.values())
    # every training method of the registry has a row (PTQ and GPTQ train nothing of their own)
    trained = {m for m, (cls, _) in METHODS.items() if m not in ("ptq", "gptq")}
    assert trained <= {m for m, _ in bench.METHOD_ROWS.values()}
    assert bench.main(["--only", "methods", "--arch", "resnet20", "--rounds", "1", "--quick"]) == 0
    table = capsys.readouterr().out
    assert "× plain" in table and "DSMM + DKM" in table
