"""What the reproduction report tests: the budgets, the steps (the toolkit's own commands) and one row per claim.

A *step* is one or more commands of the toolkit (a study, a perturbation test, a figure script) whose outputs
rows read; a *row* is one claim of one paper with the steps it needs and the function that turns their outputs
into a number, a verdict and a sentence (analyses/repro_rows.py, repro_rows_bl.py). analyses/reproduce.py runs them.

Budgets (`BUDGETS`; units beside each field). `quick` is what fits in about an hour on the 2-core CPU this
project develops on — enough to exercise every row, not enough to settle most claims; `full` is the budget the
claims are judged at (the headline's 4 epochs and 3 seeds, 100 random directions, 1,000 images per
evaluation, BN statistics re-estimated on 500 training images). The soft-quantization Fig. 2 sweep is the
studies issue's `fig2` study (one epoch per run, two seeds) at both budgets: it already exists and a longer sweep
does not fit here.

Decisions the papers leave open, and why:
- "Failed" vs "successful" runs at matched bits (§4.2 of the workshop paper): centroid–weight coupling fixes the
  bits (K = 2^b centroids), so runs at the same b with a weak (λ = 0.1) and a strong (λ = 1) pull are at matched
  bits by construction; the row tests the paper's description (the run that climbs the loss more while
  fine-tuning is the one that loses less at the clamp) without labelling runs in advance.
- Naive PTQ (Table 1) is uniform min–max PTQ per layer (the paper cites Jacob et al.); HEQ and k-means PTQ are
  shown beside it.
- DSMM is judged with uniform PTQ after it (a range-restricting loss can only help a range-based quantizer) and
  against the same fine-tuning without the loss (λ = 0), so the fine-tuning itself gets no credit. The paper's
  α₀ = 0.1 suits its training from scratch at lr 0.4–1.0; fine-tuned here at lr 1e-3 it keeps α·range ≪ 1, where
  the loss barely acts. A second design starts α at 10 (the paper's fixed-α value) at λ = 0.01, 0.1 and 1 — a
  protocol variant, added after the first design's result, and reported as such.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    name: str
    arch: str = "resnet20"
    checkpoint: str = "../shared/models/resnet20-cifar10jpeg.pt"  # relative to the checkout
    epochs: int = 4  # training epochs of the headline and failure settings (soft quantization, h = 0.05 / 0.001)
    limit_train: int | None = None  # training images per epoch (None: all 50,000)
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds of the headline and failure settings
    sweep_epochs: int = 1  # epochs of the other trainings (CWC, DSMM, N_b, estimators, methods table)
    sweep_seeds: tuple[int, ...] = (0, 1)  # their seeds
    cwc_epochs: int = 3  # epochs of the centroid–weight coupling runs (Table 1 used 10 on WRN-16, 3 on ResNet-50)
    cwc_seeds: tuple[int, ...] = (0, 1)  # their seeds (§4.2 asks for ≥ 2 per setting)
    recalibrate_bn: int = 20  # BN-recalibration batches stored with every run (train --recalibrate-bn)
    directions: int = 100  # random directions per perturbation test
    images: int = 1000  # images per evaluation of perturbation tests and paths (class-balanced prefix)
    bn_batches: int = 1  # BN-recalibration batches of 500 images per perturbed state
    points: int = 11  # points per path segment
    fig2: tuple[str, str] = ("studies", "fig2")  # (dir, name) of the Fig. 2 sweep study
    train_extra: tuple[str, ...] = ()  # more train options for every run (tests: --limit-test)
    eval_extra: tuple[str, ...] = ()  # more options for every analysis command (tests: --batch-size)

    def train_args(self, epochs: int, *extra: str) -> list[str]:
        return ["--arch", self.arch, "--checkpoint", self.checkpoint, "--epochs", str(epochs),
                *(["--limit-train", str(self.limit_train)] if self.limit_train else []),
                "--recalibrate-bn", str(self.recalibrate_bn), *extra, *self.train_extra]


BUDGETS = {
    "quick": Budget("quick", epochs=1, limit_train=10_000, seeds=(0, 1), sweep_seeds=(0,), cwc_epochs=1,
                    cwc_seeds=(0, 1), directions=20, images=500, bn_batches=1, points=7),
    "full": Budget("full"),
}


@dataclass
class Context:
    budget: Budget
    repo: Path
    studies: Path  # this budget's study folder
    figures: Path  # this budget's figures
    work: Path  # ledger, row results, logs
    # study name → ((journal mtime, size), its run rows): a journal is read once until a worker appends to it
    _rows_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def for_budget(cls, budget: Budget, repo: Path, root: Path | None = None) -> Context:
        root = root or repo
        return cls(budget, repo, root / "studies" / f"repro-{budget.name}", root / "figures" / "reproduction" /
                   budget.name, root / "reproduction" / budget.name)

    def study_dir(self, name: str) -> Path:
        return (self.repo / self.budget.fig2[0]) if name == self.budget.fig2[1] else self.studies

    def study_rows(self, name: str) -> list[dict]:
        """Every finished run of a study: its grid point, seed, run file and numbers (common.study_runs)."""
        import common

        path = self.study_dir(name) / name / "journal.log"
        if not path.is_file():
            return []
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._rows_cache.get(name)
        if cached is None or cached[0] != key:
            cached = self._rows_cache[name] = (key, common.study_runs(name, self.study_dir(name))[1])
        return [dict(r) for r in cached[1]]

    def at(self, name: str, **point) -> list[dict]:
        """The study's finished runs at this grid point (all of them if no point is given)."""
        return [r for r in self.study_rows(name)
                if all(abs(r[k] - v) <= 1e-12 * max(1.0, abs(v)) for k, v in point.items())]

    def runs(self, name: str, **point) -> dict[int, str]:
        """seed → run file of the study's runs at this grid point (all finished runs if no point given)."""
        return {r["seed"]: r["run"] for r in self.at(name, **point)}

    def figure(self, stem: str, suffix: str) -> Path:
        return self.figures / f"{stem}{suffix}"


# -- steps ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str
    build: Callable[[Context], list[list[str]] | None]  # the commands (None: an input is not there yet)
    produces: Callable[[Context], list[Path]] = lambda ctx: []  # outputs that must exist for "done"

    def commands(self, ctx: Context) -> list[list[str]] | None:
        return self.build(ctx)

    def outputs(self, ctx: Context) -> list[Path]:
        return self.produces(ctx)


@dataclass(frozen=True)
class StudyDef:
    """A grid study: name, method, grid, seeds and epochs per budget, extra train options."""
    name: str
    method: str
    grid: dict[str, str]
    seeds: Callable[[Budget], tuple[int, ...]]
    epochs: Callable[[Budget], int]
    extra: tuple[str, ...] = ()


STUDIES = [
    # The headline setting and the failure setting of the soft-quantization paper.
    StudyDef("sq", "weight-coupling", {"h": "0.001,0.05", "w": "0.3"}, lambda b: b.seeds, lambda b: b.epochs),
    StudyDef("fig2", "weight-coupling", {"h": "0.01,0.05,0.1,0.25", "w": "0.15,0.3,0.45"},
             lambda b: (0, 1), lambda b: 1),
    StudyDef("cwc", "centroid", {"bits": "2,3,4", "strength": "0.1,1"}, lambda b: b.cwc_seeds,
             lambda b: b.cwc_epochs),
    StudyDef("nbins", "weight-coupling", {"n_bins": "1024,4096,16384,65536", "h": "0.05", "w": "0.3"},
             lambda b: b.sweep_seeds[:1], lambda b: b.sweep_epochs),
    StudyDef("est-subsampled", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, ("--estimator", "subsampled")),
    # the workshop paper's own design: all pairs among a random ⌈√N_l⌉-subset of the weights (added after the
    # random-pair design above failed at the quick budget; the row judges both)
    StudyDef("est-subset", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, ("--estimator", "subset")),
    StudyDef("est-sorted", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, ("--estimator", "sorted")),
    StudyDef("est-histogram", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, ("--estimator", "histogram")),
    StudyDef("dsmm", "dsmm", {"bits": "2,3,4", "strength": "0,0.01"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, ("--then", "uniform")),
    # DSMM with α₀ = 10, the paper's fixed-α value (Table 1), at three strengths: one training per λ, PTQ at every
    # bit width afterwards (table:dsmm). Added after the paper's α₀ = 0.1 left every weight range unchanged.
    StudyDef("dsmm-alpha10", "dsmm", {"strength": "0.01,0.1,1"}, lambda b: b.sweep_seeds, lambda b: b.sweep_epochs,
             ("--then", "uniform", "--bits", "2", "--alpha-init", "10")),
]
STUDY = {s.name: s for s in STUDIES}
ESTIMATOR_STUDIES = ("est-subsampled", "est-subset", "est-sorted", "est-histogram")


def study_step(d: StudyDef) -> Step:
    def build(ctx: Context) -> list[list[str]]:
        b, folder = ctx.budget, str(ctx.study_dir(d.name))
        grid = [f"{k}={v}" for k, v in d.grid.items()]
        method = [] if d.method == "weight-coupling" else ["--method", d.method]  # the default, left out
        train = b.train_args(d.epochs(b), *method, *d.extra) if d.name != "fig2" else [
            "--arch", b.arch, "--checkpoint", b.checkpoint, "--epochs", "1", "--recalibrate-bn", "20",
            *b.train_extra]
        create = [PY, "-m", "landscape.study", "create", d.name, "--dir", folder, "--grid", *grid, "--seeds",
                  ",".join(map(str, d.seeds(b))), *train]
        return [create, [PY, "-m", "landscape.study", "run", d.name, "--dir", folder, "-j", "1"]]

    return Step(f"study:{d.name}", build, lambda ctx: [ctx.study_dir(d.name) / d.name / "journal.log"])


def report_step(name: str, *, ptq: bool = True) -> Step:
    """`study report`, with the PTQ baselines (uniform, HEQ, k-means at 2–8 bits, each also BN-recalibrated) on the
    study's test images unless `ptq` is False (the rows then read table:ptq, which evaluates them once)."""
    def build(ctx: Context) -> list[list[str]]:
        return [[PY, "-m", "landscape.study", "report", name, "--dir", str(ctx.study_dir(name)), "--out-dir",
                 str(ctx.figures), "--force", *([] if ptq else ["--no-ptq"]), *ctx.budget.eval_extra]]

    return Step(f"report:{name}", build, lambda ctx: [ctx.figure(f"study-{name}", ".json")])


# Perturbation protocols of Fig. 3: the task loss on training or test images, random directions matched to the
# global or the per-layer norm of Δθ, BN statistics kept (pretrained) or re-estimated for every state.
PROTOCOLS = [(split, norm, bn) for split in ("train", "test") for norm in ("global", "per-layer")
             for bn in ("recalibrate", "keep")]


def displacements(ctx: Context, *, compare: bool = True) -> list[tuple[str, int, float, str]]:
    """(label, seed, h, target) of the Fig. 3 displacements: the headline setting's compressed and clamped states
    for every seed; with `compare`, also the failure setting's for the first seed and HEQ-4 and k-means-4 PTQ of
    the pretrained model (on the first seed's run file, which holds it)."""
    first = ctx.budget.seeds[0]
    out = [("h=0.05", s, 0.05, t) for s in ctx.budget.seeds for t in ("compressed", "clamped")]
    if compare:
        out += [("h=0.001", first, 0.001, t) for t in ("compressed", "clamped")]
        out += [("HEQ-4", first, 0.05, "ptq:heq:4"), ("k-means-4", first, 0.05, "ptq:kmeans:4")]
    return out


def perturb_name(target: str, split: str, norm: str, bn: str) -> str:
    return f"repro-{target.replace(':', '-')}-{split}-{norm}-{bn}"


def perturb_step(label: str, seed: int, h: float, target: str, protocol: tuple[str, str, str]) -> Step:
    split, norm, bn = protocol

    def build(ctx: Context) -> list[list[str]] | None:
        run = ctx.runs("sq", h=h, w=0.3).get(seed)
        if run is None:
            return None
        b = ctx.budget
        return [[PY, "-m", "landscape.perturb", run, "--directions", str(b.directions), "--target", target,
                 "--norm", norm, "--split", split, "--bn", bn, "--bn-batches", str(b.bn_batches), "--limit",
                 str(b.images), "--seed", "0", "--name", perturb_name(target, split, norm, bn), "--force",
                 *b.eval_extra]]

    return Step(f"perturb:{label}:s{seed}:{target}:{split}-{norm}-{bn}", build)


def script_step(name: str, script: str, args: Callable[[Context], list[str] | None], stem: str,
                suffix: str = ".csv") -> Step:
    """`python analyses/<script> ARGS --out-dir <budget figures> --force` (outputs <stem><suffix>)."""
    def build(ctx: Context) -> list[list[str]] | None:
        a = args(ctx)
        return None if a is None else [[PY, str(ctx.repo / "analyses" / script), *a, "--out-dir", str(ctx.figures),
                                        "--force"]]

    return Step(name, build, lambda ctx: [ctx.figure(stem, suffix)])


def _labelled(ctx: Context, name: str, label: Callable[[dict], str]) -> tuple[list[str], list[str]]:
    rows = ctx.at(name)
    rows.sort(key=lambda r: (label(r), r["seed"]))
    return [r["run"] for r in rows], [label(r) for r in rows]


def fig3_args(ctx: Context, *, compare: bool = False) -> list[str] | None:
    """The headline seeds' run files (and with `compare` the failure setting's); the PTQ displacements are stored
    in the first seed's file, so only `compare` shows them."""
    runs = [ctx.runs("sq", h=0.05, w=0.3).get(s) for s in ctx.budget.seeds]
    if None in runs:
        return None
    names = [perturb_name(t, *p) for t in ("compressed", "clamped") for p in PROTOCOLS]
    if not compare:
        return ["--run", *runs, "--labels", *["h=0.05"] * len(runs), "--names", *names, "--stem",
                "fig3_protocols"]
    failed = ctx.runs("sq", h=0.001, w=0.3).get(ctx.budget.seeds[0])
    if failed is None:
        return None
    names += [perturb_name(t, *p) for t in ("ptq:heq:4", "ptq:kmeans:4") for p in PROTOCOLS]
    return ["--run", *runs, failed, "--labels", *["h=0.05"] * len(runs), "h=0.001", "--names", *names,
            "--stem", "fig3_compare"]


def paths_args(ctx: Context) -> list[str] | None:
    runs, labels = _labelled(ctx, "cwc", lambda r: f"K={2 ** int(r['bits'])}, λ={r['strength']:g}")
    if not runs:
        return None
    b = ctx.budget
    return ["--run", *runs, "--labels", *labels, "--split", "both", "--limit", str(b.images), "--points",
            str(b.points), "--stem", "paths_cwc", *b.eval_extra]


def headline_args(ctx: Context) -> list[str] | None:
    """The headline setting's run files, one per seed (mixed precision and the seeds figure)."""
    runs = [ctx.runs("sq", h=0.05, w=0.3).get(s) for s in ctx.budget.seeds]
    return None if None in runs else ["--run", *runs]


def alpha_args(ctx: Context) -> list[str] | None:
    run = ctx.runs("sq", h=0.05, w=0.3).get(ctx.budget.seeds[0])
    return None if run is None else ["--run", run, "--every", "1"]


def methods_step(seed: int, first: bool) -> Step:
    """The methods table (VQ-QAT, bitwise input) for one sweep seed: the first seed's outputs plain
    (table:methods), each other seed's beside them with the suffix _s<seed> (table:methods:s<seed>)."""
    suffix = "" if first else f"_s{seed}"

    def args(ctx: Context) -> list[str]:
        b = ctx.budget
        return ["--arch", b.arch, "--checkpoint", b.checkpoint, "--epochs", str(b.sweep_epochs), "--train-limit",
                str(b.limit_train or 50_000), "--seed", str(seed), "--methods", "vq", "vq-euclidean",
                "input-bitwise", *(["--suffix", suffix] if suffix else [])]

    name = "table:methods" if first else f"table:methods:s{seed}"
    return script_step(name, "table_methods.py", args, f"methods_table{suffix}")


def methods_steps(ctx: Context) -> list[str]:
    seeds = ctx.budget.sweep_seeds
    return [methods_step(seed, i == 0).name for i, seed in enumerate(seeds)]


def steps(ctx: Context) -> list[Step]:
    b = ctx.budget
    out = [study_step(d) for d in STUDIES]
    out += [report_step(n) for n in ("sq", "fig2")] + [report_step(n, ptq=False) for n in ("cwc", "dsmm")]
    out += [perturb_step(*d, p) for d in displacements(ctx) for p in PROTOCOLS]
    out += [script_step("fig:fig3", "fig3_protocols.py", fig3_args, "fig3_protocols", "_summary.csv"),
            script_step("fig:fig3-compare", "fig3_protocols.py", lambda c: fig3_args(c, compare=True),
                        "fig3_compare", "_summary.csv"),
            script_step("fig:paths", "fig_paths.py", paths_args, "paths_cwc"),
            script_step("fig:mixed", "fig_mixed_precision.py", headline_args, "mixed_precision"),
            script_step("fig:seeds", "fig_seeds.py", headline_args, "seeds_clusters", ".png"),
            script_step("fig:alpha", "fig_alpha.py", alpha_args, "alpha_fit"),
            script_step("fig:estimators", "fig_estimators.py",
                        lambda c: ["--study", *ESTIMATOR_STUDIES, "--dir", str(c.studies)], "estimators_force"),
            script_step("fig:nbins", "table_nbins.py",
                        lambda c: ["--study", "nbins", "--dir", str(c.studies), *c.budget.eval_extra], "nbins"),
            script_step("table:ptq", "table_ptq.py",
                        lambda c: ["--arch", b.arch, "--checkpoint", b.checkpoint, "--bits", "2", "3", "4",
                                   "--methods", "uniform", "heq", "kmeans"], "ptq_table"),
            script_step("table:dsmm", "table_dsmm.py",
                        lambda c: ["--study", "dsmm", "dsmm-alpha10", "--dir", str(c.studies), "--limit", "10000",
                                   *c.budget.eval_extra], "dsmm_ptq"),
            *[methods_step(seed, i == 0) for i, seed in enumerate(b.sweep_seeds)],
            Step("bench:coupling", lambda c: [[PY, str(c.repo / "bench" / "coupling.py"), "--quick", "--json",
                                               "--out", str(c.figure("bench_coupling", ".json"))]],
                 lambda c: [c.figure("bench_coupling", ".json")]),
            script_step("fig:cost", "fig_cost.py", lambda c: ["--bench", str(c.figure("bench_coupling", ".json"))],
                        "coupling_cost")]
    return out


# -- rows -------------------------------------------------------------------------------------------------------
SQ = "Soft quantization (arXiv 2601.21219)"
BL = "Quantization and the bottom of the loss landscape (HiLD workshop 2025)"
DSMM = "Differentiable soft min-max loss (ICML DiffAE workshop 2024)"
VQ = "Efficient VQ-QAT (cosine assignment, top-1 STE)"
BW = "Trainable bitwise soft quantization of input features (arXiv 2603.05172)"


@dataclass(frozen=True)
class Row:
    id: str
    paper: str
    where: str  # section / figure / table of the paper
    claim: str  # one line, with the paper's numbers
    step_names: Callable[[Context], list[str]] = lambda ctx: []
    evaluate: Callable[[Context], dict] | None = None  # None: not testable here
    reason: str = ""  # why not testable
    untested: str = "not testable here"  # the verdict column of a row without an evaluation
    figure: str = ""  # stem of its figure in the budget's figures folder
    csv: str = ""  # its CSV

    @property
    def testable(self) -> bool:
        return self.evaluate is not None

    def steps(self, ctx: Context) -> list[str]:
        return self.step_names(ctx)


def _fixed(*names: str) -> Callable[[Context], list[str]]:
    return lambda ctx: list(names)


def _fig3_steps(ctx: Context) -> list[str]:
    return ["study:sq", *[perturb_step(*d, p).name for d in displacements(ctx, compare=False) for p in PROTOCOLS],
            "fig:fig3"]


def _fig3_compare_steps(ctx: Context) -> list[str]:
    return ["study:sq", *[perturb_step(*d, p).name for d in displacements(ctx) for p in PROTOCOLS],
            "fig:fig3-compare"]


def rows() -> list[Row]:
    import repro_rows as r
    import repro_rows_bl as rb

    return [
        Row("sq-bits", SQ, "§4, experiment 1", "(h, w) = (0.05, 0.3) gives ≈ 3.8 mean bits on ResNet-20/CIFAR-10, "
            "more accurate than 4-bit HEQ", _fixed("study:sq", "report:sq"), r.sq_bits, figure="study-sq",
            csv="study-sq-points"),
        Row("sq-fig2", SQ, "Fig. 2", "soft quantization reaches higher accuracy than HEQ PTQ at lower bits",
            _fixed("study:fig2", "report:fig2"), r.sq_fig2, figure="study-fig2", csv="study-fig2-points"),
        Row("sq-fig3", SQ, "Fig. 3, Mechanism 3", "ΔL_task/‖Δθ‖ of soft quantization lies outside the "
            "distribution of equal-norm random perturbations", _fig3_steps, r.sq_fig3, figure="fig3_protocols",
            csv="fig3_protocols_summary"),
        Row("sq-fig3-ptq", SQ, "Fig. 3, abstract", "soft quantization's displacement costs less task loss per "
            "unit distance than standard quantization's (HEQ-4, k-means-4)", _fig3_compare_steps, r.sq_fig3_ptq,
            figure="fig3_compare", csv="fig3_compare_summary"),
        Row("sq-failure", SQ, "Failure signatures", "h = 0.001 fails at the clustering refinement step (coupling "
            "too weak to form clusters)", _fixed("study:sq", "report:sq"), r.sq_failure, figure="study-sq",
            csv="study-sq-points"),
        Row("sq-mixed", SQ, "Mechanism 2, abstract", "layer-dependent (mixed-precision) bit widths emerge from the "
            "two global hyperparameters", _fixed("study:sq", "fig:mixed"), r.sq_mixed, figure="mixed_precision",
            csv="mixed_precision"),
        Row("sq-alpha", SQ, "Mechanism 2, Next check 1", "the layer-size power law with α ≈ 0.66 holds at the "
            "pretrained state and throughout fine-tuning", _fixed("study:sq", "fig:alpha"), r.sq_alpha,
            figure="alpha_powerlaw", csv="alpha_fit"),
        Row("sq-nbins", SQ, "Design trade-offs, Next check 2", "N_b = 2^14 histogram bins balances approximation "
            "quality against cost (N_b ∈ 2^10…2^16 vs accuracy, bits, step time)", _fixed("study:nbins", "fig:nbins"),
            r.sq_nbins, figure="nbins", csv="nbins"),
        Row("sq-cost", SQ, "§3, complexity", "the histogram estimator costs O(N + N_b log N_b) instead of O(N²) at "
            "small error", _fixed("bench:coupling", "fig:cost"), r.sq_cost, figure="coupling_cost",
            csv="coupling_cost"),
        Row("sq-arch", SQ, "Next check 3", "the same (h, w) carries over to another architecture",
            reason="tested at a brief budget outside this report (README, MobileNetV2 via analyses/"
                   "fig_other_arch.py: partly carries over — (0.05, 0.3) gives 4.54 bits, 4.45 pt below its full "
                   "precision, one seed); the default-budget run (≈ 1.5 h here) is not part of this report",
            untested="not in this report (README: partly, brief budget)"),
        Row("sq-llm", SQ, "Open question 2", "soft quantization scales to language models",
            reason="no language model or corpus here; the toolkit accepts any nn.Module (README) but the claim "
                   "is the paper's open question, not a result"),
        Row("bl-cwc-ptq", BL, "Table 1", "centroid–weight coupling (CWC) beats naive PTQ at 3 and 4 bits (WRN-16: "
            "90.93 vs 84.17, 92.41 vs 90.74; 2 bits: 72.92 vs 73.91)", _fixed("study:cwc", "report:cwc", "table:ptq"),
            rb.bl_cwc_ptq, figure="study-cwc", csv="study-cwc-points"),
        Row("bl-cwc-fp", BL, "Table 1, §4.2", "CWC stays within 2 points of full precision at 3 and 4 bits "
            "(WRN-16: −1.80 and −0.32)", _fixed("study:cwc", "report:cwc", "table:ptq"), rb.bl_cwc_fp,
            figure="study-cwc", csv="study-cwc-points"),
        Row("bl-paths", BL, "§4.2, Fig. 2A", "successful runs climb the loss while fine-tuning and clamp cheaply; "
            "failed ones stay near the pretrained loss and lose at the clamp", _fixed("study:cwc", "fig:paths"),
            rb.bl_paths, figure="paths_cwc", csv="paths_cwc"),
        Row("bl-barrier", BL, "§4.2, Fig. 2B", "the barrier to climb before clamping decreases as K grows (2, 3, "
            "4 bits)", _fixed("study:cwc", "fig:paths"), rb.bl_barrier, figure="paths_cwc", csv="paths_cwc"),
        Row("bl-estimators", BL, "§3.1, App. A.1", "subsampling the pairwise interactions (N_l of the N_l² pairs "
            "per step) reaches the same compression as the exact pair sum (the paper adds that subsampling "
            "regularizes against overly aggressive clustering)",
            _fixed(*(f"study:{n}" for n in ESTIMATOR_STUDIES), "fig:estimators"), rb.bl_estimators,
            figure="estimators_force", csv="estimators"),
        Row("bl-seeds", BL, "§4.1, Fig. 1B", "different seeds reach different clustering configurations from the "
            "same pretrained model", _fixed("study:sq", "fig:seeds"), rb.bl_seeds, figure="seeds_clusters",
            csv="seeds_clusters"),
        Row("bl-imagenet", BL, "Table 1, §4.1", "WRN-16 (CIFAR-10) and ResNet-50 (ImageNet) numbers; CWC vs PARQ "
            "and BinaryRelax", reason="no WRN-16 checkpoint, no ImageNet copy, and no PARQ/BinaryRelax "
            "implementation here; the ResNet-20 rows above test the same comparisons"),
        Row("dsmm-ptq", DSMM, "abstract, Fig. 1", "DSMM improves lower-bit (2–4 bit) post-training quantization "
            "accuracy", _fixed("study:dsmm", "report:dsmm", "table:ptq", "study:dsmm-alpha10", "table:dsmm"),
            rb.dsmm_ptq, figure="dsmm_ptq", csv="dsmm_ptq"),
        Row("dsmm-qat", DSMM, "abstract, §4", "DSMM also helps QAT (LSQ, PACT), weight clustering (DKM) and NLP "
            "models", reason="the toolkit has no LSQ/PACT/DKM or language models; only the PTQ claim is tested"),
        Row("vq-cosine", VQ, "abstract", "cosine-similarity assignment mitigates codebook collapse and enables "
            "end-to-end VQ training", methods_steps, rb.vq_cosine, figure="methods_accuracy_vs_bits",
            csv="methods_table"),
        Row("vq-nas", VQ, "abstract", "differentiable NAS chooses per-layer VQ/linear settings",
            reason="NAS is not implemented in the toolkit"),
        Row("bw-input", BW, "abstract", "trainable bitwise input quantization outperforms standard (untrained "
            "uniform) input quantization and stays close to full precision",
            methods_steps, rb.bw_input,
            figure="methods_accuracy_vs_bits", csv="methods_table"),
    ]


def select(ids: list[str] | None) -> list[Row]:
    every = rows()
    if not ids:
        return every
    known = {r.id for r in every}
    unknown = [i for i in ids if i not in known]
    if unknown:
        from landscape.errors import LandscapeError

        raise LandscapeError(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(sorted(known))}")
    return [r for r in every if r.id in ids]


def budget_for_tests(checkpoint: str, **overrides) -> Budget:
    """A budget small enough for the test suite (the tiny model)."""
    return replace(Budget("test", arch="tiny", checkpoint=checkpoint, epochs=1, limit_train=128, seeds=(0,),
                          sweep_seeds=(0,), cwc_epochs=1, cwc_seeds=(0,), directions=2, images=64, bn_batches=1,
                          points=3,
                          train_extra=("--limit-test", "64", "--batch-size", "64")), **overrides)


