"""`make demo` (analyses/demo.py) end to end at a tiny budget, into a copy of the committed figures/demo/: every
step must overwrite what a fresh clone already holds (the PTQ table once refused to, and broke the README's first
command for every newcomer), and a second run over the first's outputs must succeed too."""

import shutil
import subprocess
import sys

from conftest import ADAPTED_R20, REPO, SHARED

TINY = ["--limit-train", "128", "--train-batch-size", "64", "--epochs", "1", "--limit", "100", "--directions", "2",
        "--perturb-limit", "100", "--data", str(SHARED / "data")]


def test_demo_overwrites_the_committed_outputs_twice(tmp_path):
    assert ADAPTED_R20.is_file()
    committed = REPO / "figures" / "demo"
    out = tmp_path / "demo"
    shutil.copytree(committed, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"ptq_table.csv", "paths.png", "perturbation.csv", "weight_histograms.png"} <= set(before)
    for attempt in (1, 2):
        done = subprocess.run([sys.executable, "analyses/demo.py", *TINY, "--out-dir", str(out), "--runs-dir",
                               str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"run {attempt}: {done.stderr[-3000:]}"
        assert "| total |" in done.stdout
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)  # the same outputs, no stray files
    rewritten = [name for name in before if after[name] != before[name]]
    # every committed CSV and config comes from the full demo budget: at this tiny budget each one changes
    assert {n for n in before if n.endswith((".csv", ".config.json"))} <= set(rewritten)
    assert sorted((tmp_path / "runs").glob("*.h5")) == [tmp_path / "runs" / "soft-quant.h5",
                                                        tmp_path / "runs" / "weak-coupling.h5"]


def test_the_demo_trains_the_run_its_old_train_command_made():
    """The demo builds its runs' specs in Python; they are the specs `landscape train` parsed from the command the
    demo ran before (as a subprocess) — so its run files and numbers are those of that command."""
    import argparse

    sys.path.insert(0, str(REPO / "analyses"))
    try:
        import demo
    finally:
        sys.path.remove(str(REPO / "analyses"))
    from landscape.cli import train

    args = demo.parser().parse_args([])
    for settings in demo.RUNS.values():
        spe = args.limit_train // args.train_batch_size
        old = ["--arch", "resnet20", "--checkpoint", str(ADAPTED_R20), "--method", "weight-coupling", "--h",
               str(settings["h"]), "--w", str(settings["w"]), "--epochs", str(args.epochs), "--limit-train",
               str(args.limit_train), "--train-batch-size", str(args.train_batch_size), "--limit-test",
               str(args.limit), "--checkpoint-every", str(max(1, spe // 2)), "--stats-every", str(spe), "--device",
               args.device, "--out", "x.h5", "--force"]
        p, owners = train.parser()
        parsed: argparse.Namespace = p.parse_args(old)
        assert demo.run_spec(settings, args) == train.spec_from_args(parsed, owners, args.device)
