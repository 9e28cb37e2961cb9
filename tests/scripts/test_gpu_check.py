"""bench/gpu_check.py on CPU (--quick): the script a session with a lent GPU runs in one go must itself run, print
one row per check, and pass every check that applies on the CPU (the device-vs-CPU rows say n/a here)."""

import json
import subprocess
import sys

from conftest import REPO, SHARED


def test_gpu_check_runs_on_cpu_and_passes_what_applies(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick", "--data",
                           str(SHARED / "data"), "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["check"]: r for r in report["rows"]}
    assert report["failed"] == [] and report["device"] == "cpu"
    assert {"coupling exact", "train step", "speed (soft-quant images/s)", "evaluate reference model", "resume",
            "study -j 2", "analyses"} <= set(rows)
    assert {f"method {m}" for m in ("weight-coupling", "ptq", "centroid", "dsmm", "vq", "input-bitwise")} <= set(rows)
    assert rows["train step"]["ok"] is None and rows["coupling exact"]["ok"] is None  # CPU vs CPU: n/a, not "ok"
    assert rows["evaluate reference model"]["ok"] and rows["evaluate reference model"]["accuracy"] == 0.881
    assert rows["resume"]["max_diff"] == 0.0
    assert "| evaluate reference model | accuracy 0.8810" in done.stdout and "0 failed" in done.stdout  # the table
