"""bench/lm.py runs end to end on a small GPT: both loops timed in the same rounds, characters/s and the ratio to
the plain loop, and no drift between them (the trainer's step computes the plain loop's update)."""

from __future__ import annotations

import importlib.util
import json
import sys

from conftest import REPO


def test_trainer_and_plain_loop_take_the_same_steps(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_lm", REPO / "bench" / "lm.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    small = ["--layers", "1", "--heads", "2", "--width", "16", "--context", "8", "--batch", "2"]
    assert module.main(["--rounds", "3", "--json", *small]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["loop"] for r in result["rows"]] == ["trainer", "plain", "soft-quant"] and result["rounds"] == 3
    assert all(r["chars_per_s"] > 0 for r in result["rows"]) and result["rows"][1]["vs_plain"] == 1.0
    assert result["drift"] < 1e-6
    assert module.main(["--rounds", "2", *small]) == 0
    assert "| trainer |" in capsys.readouterr().out
