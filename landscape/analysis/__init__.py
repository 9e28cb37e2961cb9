"""The analysis layer: where in the loss landscape a compressed model sits.

  evaluator     StateEvaluator: many states of one architecture, evaluated in one working copy (BN folded)
  directions    the one place that draws directions (Gaussian; equal-norm; filter-normalized; Gram–Schmidt)
  paths         loss and accuracy along pretrained → compressed → clamped (python -m landscape.interpolate)
  perturbation  the real displacement against equal-norm random ones (python -m landscape.perturb)
  hessian       Hessian λ_max, trace, SLQ density, per layer, path, clamp cost (python -m landscape.hessian)
  sweep         journaled, torchrun-sharded evaluation of independent points (every analysis above)
  states        state specs: pretrained | compressed | clamped | step:N | ptq:METHOD:BITS | FILE
  storage       results under /analysis/<kind>/<name> of a run file, written all at once
"""
