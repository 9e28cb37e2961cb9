"""State specs: how the analysis CLIs name a parameter state of a run (a run-file state, a checkpoint step, a PTQ
of the pretrained state, or a checkpoint file)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..errors import LandscapeError

STATE_SPECS = "pretrained, compressed, clamped, step:N, ptq:METHOD:BITS, or a checkpoint file"


def load_state_spec(run, spec: str) -> dict[str, Tensor]:
    """A full state dict for the model of `run` (a store.Run) named by `spec`:
    "pretrained" | "compressed" | "clamped"   the run file's states;
    "step:N" (or "N")                         the run's complete checkpoint at SGD step N;
    "ptq:METHOD:BITS"                         post-training quantization (uniform | heq | kmeans, per layer,
                                              conv and linear weights) of the run's pretrained state;
    anything else                             a checkpoint file (.th/.pt), checked against the run's arch."""
    from ..models import build_model, load_state, read_checkpoint
    from ..store import STATES

    spec = str(spec)
    if spec in STATES:
        return run.state(spec)
    step = spec.removeprefix("step:")
    if step.isdigit():
        return run.state(int(step))
    if spec.startswith("ptq:"):
        from ..compress.ptq import quantize_model

        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"state {spec!r}: write PTQ states as ptq:METHOD:BITS, e.g. ptq:heq:4")
        return quantize_model(run.model("pretrained"), parts[1], int(parts[2])).model.state_dict()
    path = Path(spec)
    if not path.is_file():
        raise LandscapeError(f"state {spec!r} is not one of {STATE_SPECS} (no such file)")
    ckpt = read_checkpoint(path)
    if ckpt.get("arch") not in (None, run.arch):
        raise LandscapeError(f"checkpoint {path} is a {ckpt['arch']}, the run's model is a {run.arch}")
    model = load_state(build_model(run.arch, run.arch_kwargs), ckpt["state_dict"], source=f"checkpoint {path}")
    return model.state_dict()


def spec_label(spec: str) -> str:
    """A short name for a state spec (file specs by their stem)."""
    from ..store import STATES

    spec = str(spec)
    if spec in STATES or spec.startswith(("ptq:", "step:")) or spec.isdigit():
        return spec
    return Path(spec).stem


