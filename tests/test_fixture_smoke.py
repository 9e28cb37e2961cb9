def test_tiny_run_has_all_groups(tiny_run):
    from landscape.store import Run

    run = Run(tiny_run)
    assert run.arch == "tiny" and run.method == "weight-coupling"
    assert run.steps() == list(range(2, 9, 2))
    assert set(run.evals()) == {"pretrained", "compressed", "clamped"}
    assert run.bits()["mean_effective"] > 0
