"""What the reproduction report tests: one row per claim of the five papers in ../shared/papers/ — the claim in
one line with the paper's numbers, where in the paper it is, the steps whose outputs it reads (steps.py), and
the rule that turns them into a number, a verdict and a sentence (rules.py, rules_bl.py); a row the toolkit
cannot test here says why.

    >>> from landscape.reproduce import select
    >>> [row.id for row in select(["sq-bits", "sq-llm"])], select(["sq-llm"])[0].testable
    (['sq-bits', 'sq-llm'], False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .budgets import Context
from .steps import (
    COMPARISON_STUDIES,
    ESTIMATOR_STUDIES,
    LONGER,
    NAS_STUDIES,
    PROTOCOLS,
    VQ_ABLATION_STUDIES,
    PerturbStep,
    displacements,
    methods_steps,
)

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
    return ["study:sq", *[PerturbStep(*d, p).name for d in displacements(ctx, compare=False) for p in PROTOCOLS],
            "fig:fig3"]


def _fig3_compare_steps(ctx: Context) -> list[str]:
    return ["study:sq", *[PerturbStep(*d, p).name for d in displacements(ctx) for p in PROTOCOLS],
            "fig:fig3-compare"]


def _cmp_steps(ctx: Context) -> list[str]:
    return [*(f"study:{n}" for n in COMPARISON_STUDIES), "table:comparison"]


def _cmp_long_steps(ctx: Context) -> list[str]:
    """The comparison, then the longer budget of its best two methods (the sq-qat row reports both)."""
    return [*_cmp_steps(ctx), *(f"study:{n}" for n in LONGER), "table:comparison-long"]


def _nas_steps(ctx: Context) -> list[str]:
    return [*(f"study:{n}" for n in NAS_STUDIES), "table:nas", "fig:nas-allocation"]


def _vq_ablation_steps(ctx: Context) -> list[str]:
    return [*(f"study:{n}" for n in VQ_ABLATION_STUDIES), "table:vq-ablation"]


def rows() -> list[Row]:
    """Every row of the report, in its order."""
    from . import rules as r
    from . import rules_bl as rb
    from . import rules_cmp as rc
    from . import rules_vq as rv

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
        Row("sq-qat", SQ, "Open question 3", "how soft quantization compares with modern QAT (LSQ, PARQ, "
            "BinaryRelax, DKM) at matched bits: within a point of the best of them", _cmp_long_steps, rc.sq_qat,
            figure="comparison", csv="comparison"),
        Row("sq-fig2-qat", SQ, "Fig. 2, restated", "soft quantization reaches higher accuracy than the best "
            "baseline (PTQ incl. GPTQ and k-means at its own per-layer levels, and every QAT method) at no more bits, "
            "with a point at ≤ 3 bits", _cmp_steps, rc.sq_fig2_qat, figure="comparison", csv="comparison"),
        Row("sq-llm", SQ, "Open question 2", "soft quantization scales to language models",
            reason="a character-level GPT pretrained on tinyshakespeare and `landscape train --dataset text` exist "
                   "(docs/language-models.md: one soft-quantization run of it is measured there), but the row's study "
                   "— soft quantization against RTN, k-means and GPTQ on the GPT at matched bits, ≥ 2 seeds — is not "
                   "built yet"),
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
        Row("bl-parq", BL, "Table 1", "CWC vs PARQ and BinaryRelax (ResNet-50: 50.78 / 73.50 / 75.55% vs 72.43 / "
            "73.91 / 74.52% and 72.64 / 74.02 / 74.58% at 2 / 3 / 4 bits): competitive at 3 and 4 bits, behind at "
            "2 bits", _cmp_steps, rc.bl_parq, figure="comparison", csv="comparison"),
        Row("bl-imagenet", BL, "Table 1, §4.1", "WRN-16 (CIFAR-10) and ResNet-50 (ImageNet) numbers",
            reason="no WRN-16 checkpoint and no ImageNet copy here; bl-cwc-ptq, bl-cwc-fp and bl-parq test the same "
                   "comparisons on ResNet-20"),
        Row("dsmm-ptq", DSMM, "abstract, Fig. 1", "DSMM improves lower-bit (2–4 bit) post-training quantization "
            "accuracy", _fixed("study:dsmm", "report:dsmm", "table:ptq", "study:dsmm-alpha10", "table:dsmm"),
            rb.dsmm_ptq, figure="dsmm_ptq", csv="dsmm_ptq"),
        Row("dsmm-qat", DSMM, "abstract, §4", "DSMM also helps QAT (LSQ, PACT), weight clustering (DKM) and NLP "
            "models; tested: DSMM + LSQ vs LSQ and DSMM + DKM vs DKM (weights only, no NLP model)", _cmp_steps,
            rc.dsmm_qat, figure="comparison", csv="comparison"),
        Row("vq-cosine", VQ, "abstract", "cosine-similarity assignment mitigates codebook collapse and enables "
            "end-to-end VQ training; tested: usage perplexity per layer (collapse) and accuracy, cosine vs "
            "Euclidean, with top-1 STE vs the soft A·C forward beside them", _vq_ablation_steps, rv.vq_cosine,
            figure="vq_ablation", csv="vq_ablation_summary"),
        Row("vq-nas", VQ, "abstract", "differentiable NAS chooses per-layer VQ/linear settings; tested: the "
            "search at 2, 3 and 4-bit budgets against the best fixed uniform configuration at the same size",
            _nas_steps, rv.vq_nas, figure="nas_comparison", csv="nas_comparison"),
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
        from ..errors import LandscapeError

        raise LandscapeError(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(sorted(known))}")
    return [r for r in every if r.id in ids]
