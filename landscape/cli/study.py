"""landscape study: many compression runs on Optuna — a grid of settings × seeds, or a multi-objective
search — resumable, and shared out over worker processes and machines.

  create NAME --grid h=0.01,0.05 w=0.15,0.3 --seeds 0,1 [train options…]      every point × seed once
  create NAME --search tpe|nsga2 --trials N --space h=0.01:0.25:log w=0.15:0.45 [--max-bits 3] [train options…]
  run NAME [-j WORKERS]          the same command on every machine; rerun it after a crash or Ctrl-C
                                 (--device cuda: worker i trains on cuda:i mod the visible GPUs; cuda:N: all on N)
  migrate NAME                   once, for a study made by an older landscape (train options stored as argv)
  report NAME [--json]           table of every run, mean ± std over seeds per point, Pareto front, PTQ baselines,
                                 and figures/study-NAME.{png,csv,json}

Objectives: test accuracy of the clamped model (maximize; `--objective recalibrated`: of its BN-recalibrated copy,
which needs the train option --recalibrate-bn N; a language model's study, `--dataset text`: its validation loss
in nats/token, minimize) and mean effective bits per weight (minimize); Optuna's
`best_trials` is the Pareto front. Train options are those of `python -m landscape.train` (--arch, --checkpoint,
--method, --epochs, --limit-train, --recalibrate-bn, any method setting…) and hold for every run.

Storage: by default Optuna's journal file DIR/NAME/journal.log (no server; the workers of one machine). For many
machines, a PostgreSQL database: `--storage postgresql://USER:PASSWORD@HOST/DB` on create, run and report, and
--runs on a folder every machine sees at the same path. Run files are DIR/NAME/runs/<digest>.h5 (settings
inside). Killed workers: see landscape/studies/engine.py (their trials are retried and resume their run files).

Example (the soft-quantization paper's Fig. 2 grid, 2 seeds, one epoch over 20,000 images):
  landscape study create fig2 --grid h=0.01,0.05,0.1,0.25 w=0.15,0.3,0.45 --seeds 0,1 \\
      --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --epochs 1 --limit-train 20000 \\
      --recalibrate-bn 10
  landscape study run fig2 -j 1
  landscape study report fig2
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from .. import cli
from ..errors import LandscapeError
from ..studies import engine, report
from ..studies import spec as specs

PROG = "landscape study"


def _common(p) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("--storage", default=None, help="postgresql://USER:PASSWORD@HOST/DB (Optuna RDB storage, for many "
                   "machines) or a journal file path (default: DIR/NAME/journal.log)")
    p.add_argument("--dir", default="studies", help="folder of the default journal storage and run files "
                   "(default: studies/)")


def parser() -> cli.Parser:
    p = cli.Parser(PROG, __doc__, allow_abbrev=False)  # train options pass through: no prefix matching
    sub = p.add_subparsers(dest="command", required=True, parser_class=cli.Parser)
    c = sub.add_parser("create", allow_abbrev=False, help="create a study (train options follow the study options)")
    _common(c)
    kind = c.add_mutually_exclusive_group(required=True)
    kind.add_argument("--grid", nargs="+", metavar="NAME=V1,V2", help="grid: every combination × every seed")
    kind.add_argument("--search", choices=["tpe", "nsga2"], help="multi-objective search with Optuna's sampler")
    c.add_argument("--space", nargs="+", metavar="NAME=LO:HI[:log]", help="search: ranges of the method settings")
    c.add_argument("--trials", type=cli.positive_int, default=0, help="search: trials to finish")
    c.add_argument("--max-bits", type=float, default=None, help="search: constraint mean effective bits ≤ this")
    c.add_argument("--seeds", default="0", help="training seeds, comma-separated (default: 0)")
    c.add_argument("--objective", default="clamped", choices=specs.OBJECTIVES,
                   help="accuracy objective: the clamped model, or its BN-recalibrated copy (default: clamped)")
    c.add_argument("--sampler-seed", type=int, default=0, help="search: sampler seed (default: 0)")
    c.add_argument("--runs", default=None, help="folder of the run files (default: DIR/NAME/runs)")
    r = sub.add_parser("run", allow_abbrev=False,
                       help="work on a study until nothing is left (same command on every machine)")
    _common(r)
    r.add_argument("-j", "--workers", type=cli.positive_int, default=1, help="worker processes here (default: 1)")
    r.add_argument("--heartbeat", type=cli.positive_int, default=engine.HEARTBEAT_S, metavar="SECONDS",
                   help=f"PostgreSQL/MySQL storage: a running trial's heartbeat period; a trial silent for "
                   f"{engine.GRACE_FACTOR} periods is failed and retried (default: {engine.HEARTBEAT_S})")
    r.add_argument("--threads", type=cli.positive_int, default=None,
                   help="torch threads per worker (default: CPU cores // workers)")
    cli.add_data_args(r)
    r.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)  # be worker i, in this process
    o = sub.add_parser("report", allow_abbrev=False, help="tables, Pareto front, PTQ baselines and the figure")
    _common(o)
    cli.add_data_args(o)
    o.add_argument("--out-dir", default="figures", help="where study-NAME.{png,csv,json} go (default: figures/)")
    o.add_argument("--no-ptq", action="store_true", help="leave out the PTQ baselines (they evaluate 15 models)")
    o.add_argument("--force", action="store_true", help="overwrite existing report files")
    o.add_argument("--json", action="store_true", help="print the report as one JSON object")
    m = sub.add_parser("migrate", allow_abbrev=False, help="rewrite the spec of a study made by an older landscape "
                       "(train options stored as command-line strings) as a typed spec")
    _common(m)
    return p


def _storage(args) -> str:
    return args.storage or str(Path(args.dir) / args.name / "journal.log")


def _open(args):
    return engine.open_study(_storage(args), args.name, heartbeat_s=getattr(args, "heartbeat", engine.HEARTBEAT_S))


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "create":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"create": _create, "run": _run, "report": _report, "migrate": _migrate}[args.command](args, rest)


# train options a study sets itself (per trial or per worker), so they may not be among the shared ones
RESERVED = ("--out", "--resume", "--force", "--json", "--seed", "--device", "--data", "--download")


def _base_run(train_args: list[str]):
    """The RunSpec every run of a study shares, from the train options typed at `create` (or stored by an older
    landscape, for `migrate`): parsed here once, the CLI's job; the study stores the spec."""
    from . import train

    for option in train_args:
        if option.split("=")[0] in RESERVED:
            raise ValueError(f"{option.split('=')[0]} is set by the study itself; leave it out of the train "
                             "options (seeds: --seeds; device, data: on `study run`)")
    tp, owners = train.parser()
    return train.spec_from_args(tp.parse_args(train_args), owners, "cpu")


def _create(args, train_args: list[str]) -> int:
    base = _base_run(train_args)
    seeds = specs.parse_seeds(args.seeds)
    if args.grid and (args.space or args.trials or args.max_bits is not None):
        raise ValueError("--space, --trials and --max-bits are for --search studies")
    spec = specs.StudySpec(
        name=args.name, method=base.method, kind="grid" if args.grid else args.search, seeds=seeds,
        runs=str(Path(args.runs or Path(args.dir) / args.name / "runs").resolve()), base=base,
        grid=specs.parse_grid(base.method, args.grid) if args.grid else {},
        space=specs.parse_space(base.method, args.space or []) if args.search else {}, trials=args.trials,
        objective=args.objective, max_bits=args.max_bits, sampler_seed=args.sampler_seed)
    if args.storage is None:
        Path(_storage(args)).parent.mkdir(parents=True, exist_ok=True)
    study, created = engine.create(engine.open_storage(_storage(args)), spec)
    n = len(spec.grid_runs()) if spec.kind == "grid" else spec.trials
    what = "runs" if spec.kind == "grid" else f"trials × {len(seeds)} seed(s)"
    print(f"study {spec.name!r} {'created' if created else 'exists with this spec'}: {n} {what}, storage "
          f"{engine.masked(_storage(args))}, run files in {spec.runs}/")
    if args.runs is None and args.storage:
        print("note: on several machines the run files must be in one shared folder: pass --runs to create")
    return 0


def _migrate(args, _rest) -> int:
    """Rewrite the spec of a study made before specs held the base run (its train options were stored as argv)."""
    import json

    storage = engine.open_storage(_storage(args))
    try:
        import optuna

        study = optuna.load_study(study_name=args.name, storage=storage)
    except KeyError:
        raise LandscapeError(f"no study named {args.name!r} in this storage") from None
    data = json.loads(study.user_attrs.get(engine.SPEC_ATTR, "{}"))
    if "train_args" not in data:
        print(f"study {args.name!r}: its spec is current; nothing to migrate")
        return 0
    base = _base_run([*data.pop("train_args"), "--method", data["method"]])
    spec = specs.StudySpec(**data, base=base)
    study.set_user_attr(engine.SPEC_ATTR, spec.to_json())
    print(f"study {args.name!r}: spec migrated (base run {base.arch} from {base.checkpoint}, method {base.method})")
    return 0


def _run(args, _rest) -> int:
    from ..studies.workers import WorkerSpec, worker

    study, spec = _open(args)
    cores = os.cpu_count() or 1
    workers = WorkerSpec(storage=_storage(args), name=args.name, device=args.device, data=args.data,
                         download=args.download, eval_batch_size=args.batch_size,
                         threads=args.threads or max(1, cores // args.workers), heartbeat_s=args.heartbeat)
    if args.worker_index is not None:  # one worker, in this process
        worker(workers, args.worker_index)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` of this command stops its workers too (run_workers)
    return _watch(workers, args.workers, study, spec)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _watch(workers, n: int, study, spec) -> int:
    """Run the n workers (studies.workers.run_workers) under the study's bar (finished / total, polled from the
    storage), their lines shown above it."""
    from tqdm import tqdm

    from ..studies.workers import run_workers

    done, total = engine.done_count(study, spec)
    bar = tqdm(total=total, initial=done, desc=f"study {spec.name}", unit="run" if spec.kind == "grid" else "trial",
               dynamic_ncols=True)

    def poll() -> None:
        n_done = engine.done_count(study, spec)[0]
        if n_done != bar.n:  # redraw only on change: a log file of a long study stays short
            bar.n = n_done
            bar.refresh()

    try:
        codes = run_workers(workers, n, on_line=bar.write, poll=poll)
    finally:
        bar.n = engine.done_count(study, spec)[0]
        bar.close()
    done, total = engine.done_count(study, spec)
    if any(codes):
        bad = ", ".join(f"worker {i} exited with {c}" for i, c in enumerate(codes) if c)
        raise LandscapeError(f"{bad}; {done}/{total} done — rerun the same command to continue")
    print(f"study {spec.name!r}: {done}/{total} done", file=sys.stderr)
    return 0


def _report(args, _rest) -> int:
    study, spec = _open(args)
    result, files = report.write(study, spec, spec.base, args.out_dir, f"study-{spec.name}", force=args.force,
                                 ptq=not args.no_ptq, data=args.data, download=args.download,
                                 device=str(cli.device(args.device)), command=" ".join(sys.argv))
    if args.json:
        cli.print_json({**result, "files": files})
    else:
        _print_tables(result, spec)
        print(f"files: {', '.join(files.values())}")
    return 0


def _print_tables(result: dict, spec: specs.StudySpec) -> None:
    names = spec.parameters
    loss = spec.metric == "loss"  # a language model's study: validation loss in nats/token, no accuracy
    metric, unit, k100 = ("loss", "validation loss, nats/token", 1.0) if loss else ("accuracy", "accuracy %", 100.0)
    kinds = [k for k in ("clamped", "recalibrated") if any(f"{metric}_{k}" in r for r in result["runs"])]
    print(f"study {spec.name!r}: {result['finished']}/{result['total']} done; trial states {result['trial_states']}")
    print(f"per point, mean ± std over seeds ({unit}, mean effective bits):")
    print("  " + "  ".join(f"{n:>8}" for n in names) + "  seeds" + "".join(f"  {k:>17}" for k in kinds) + "  bits")
    digits = 4 if loss else 2
    for r in result["points"]:
        values = "".join(f"  {k100 * r[f'{metric}_{k}']:8.{digits}f} ± {k100 * r[f'{metric}_{k}_std']:5.{digits}f}"
                         for k in kinds)
        print("  " + "  ".join(f"{r[n]:8g}" for n in names) + f"  {r['seeds']:5d}{values}  "
              f"{r['mean_bits']:.2f} ± {r['mean_bits_std']:.2f}")
    print(f"Pareto front ({spec.objective} {metric} vs bits, Optuna best_trials):")
    if not result["pareto_front"] and spec.max_bits is not None:
        print(f"  (empty: no trial met the constraint mean bits ≤ {spec.max_bits:g})")
    for r in result["pareto_front"]:
        shown = " ".join(f"{k}={v:g}" for k, v in r.items() if k not in ("trial", metric, "mean_bits"))
        value = f"{r[metric]:.4f} nats/token" if loss else f"{100 * r[metric]:.2f}%"
        print(f"  trial {r['trial']:4d} {shown}: {value} at {r['mean_bits']:.2f} bits")
    if result["ptq_baselines"]:
        print(f"PTQ baselines ({unit}; effective bits):")
        for b in result["ptq_baselines"]:
            extra = f", recalibrated {100 * b['accuracy_recalibrated']:.2f}" if "accuracy_recalibrated" in b else ""
            print(f"  {b['method']:>14} {b['bits']:2d} bits ({b['mean_bits']:.2f}): "
                  f"{k100 * b[f'{metric}_clamped']:.{digits}f}{extra}")


if __name__ == "__main__":
    cli.run(main, "landscape.study")
