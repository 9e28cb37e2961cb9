"""landscape: soft quantization and loss-landscape analysis of compressed neural networks.

The public API (landscape/api.py), for any nn.Module, any iterable of (x, y) batches and any loss function:

    compress_model(model, train, test, out=..., method=...) -> Run   fine-tune with a compression loss, clamp
    clamp(model | run, ...)                   a clamped copy     evaluate_model(model, data)    loss and accuracy
    loss_path(model | run, states, data)                  the path through states (analysis/paths.py)
    perturbation_test(model | run, target, data)          the equal-norm random baseline (analysis/perturbation.py)
    loss_surface(model | run, data, plane=...)            a 2-D loss surface (analysis/surface.py)
    hessian_spectrum(model | run, data, ...)              Hessian spectra (analysis/hessian.py)
    export_model(run, out) / load_exported(path)          codebooks + bit-packed indices (codec/)
    open_run(path) / Run                                  read a run file (store.py)
    run_analysis(spec)                                    an analysis spec (specs.PathSpec, PerturbSpec, SurfaceSpec,
                                                          HessianSpec) run on its run file (analysis/engine.py)

Imports are lazy: `import landscape` is cheap, and the entry points (`python -m landscape.<tool>`) load only what
they use.
"""

__version__ = "0.1.0"

_API = ("compress_model", "clamp", "evaluate_model", "loss_path", "perturbation_test", "loss_surface",
        "hessian_spectrum", "export_model", "load_exported", "open_run")
__all__ = [*_API, "Run", "run_analysis", "__version__"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "run_analysis":
        from .analysis.engine import run_analysis

        return run_analysis
    if name == "Run":
        from .store import Run

        return Run
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
