"""The papers' figures and tables as library jobs: one frozen spec and one `make` per figure (a module each), and
`make(spec)` to run any of them. The scripts of `analyses/` parse argv into these specs; `make demo`
(`analyses/demo.py`) and the reproduction engine (`landscape.reproduce`) build them in Python.

| spec | module | figure or table (paper) |
|---|---|---|
| `WeightHistogramsFigure` | weight_histograms | weight histograms during soft quantization (SQ Fig. 1) |
| `PerturbationFigure` | perturbation | real vs equal-norm random displacements (SQ Fig. 3) |
| `ProtocolsFigure` | protocols | Fig. 3 under every perturbation protocol, across seeds |
| `PathsFigure` | paths | linear paths pretrained → compressed → clamped (BL §4.2, Fig. 2A) |
| `AccuracyVsBitsFigure` | accuracy_vs_bits | accuracy vs mean bits against HEQ PTQ (SQ Pareto) |
| `MixedPrecisionFigure` | mixed_precision | bits per layer across seeds (SQ mixed precision) |
| `NASAllocationFigure` | nas_allocation | the VQ/linear configuration a vq-nas search chose, and p_l per layer |
| `SeedsFigure` | seeds | cluster structure across seeds (BL Fig. 1B) |
| `AlphaFigure` | alpha | the layer-size power law of the coupling energy (SQ α ≈ 0.66) |
| `EstimatorsFigure` | estimators | coupling estimators: bits, accuracy, force noise (BL) |
| `NbinsTable` | nbins | histogram-estimator resolution N_b: accuracy and cost (SQ) |
| `PTQTable` | ptq_table | PTQ baselines (uniform, HEQ, k-means) vs bits |
| `LMPTQTable` | lm_ptq | a language model's validation loss under RTN, k-means, GPTQ, group-wise RTN and HQQ |
| `DSMMTable` | dsmm_table | DSMM then uniform PTQ vs bits |
| `MethodsTable` | methods_table | VQ-QAT and bitwise input quantization vs bits |
| `CostFigure` | cost | the coupling estimators' time and memory (bench/coupling.py's JSON) |
| `Comparison` | comparison | every method (QAT, soft quantization, CWC, DSMM, VQ) vs PTQ and GPTQ at 2–4 bits |
| `VQAblationFigure` | vq_ablation | VQ-QAT variants' codebook use, churn and reconstruction error (VQ ablations) |

    >>> from landscape.figures import PathsFigure
    >>> PathsFigure(runs=("runs/wc.h5",), out_dir="figures/demo", limit=1000).paths()[".png"].as_posix()
    'figures/demo/paths.png'
"""

from .accuracy_vs_bits import AccuracyVsBitsFigure
from .alpha import AlphaFigure
from .base import FigureResult, FigureSpec, make
from .comparison import Comparison
from .cost import CostFigure
from .dsmm_table import DSMMTable
from .estimators import EstimatorsFigure
from .lm_ptq import LMPTQTable
from .methods_table import MethodsTable
from .mixed_precision import MixedPrecisionFigure
from .nas_allocation import NASAllocationFigure
from .nbins import NbinsTable
from .paths import PathsFigure
from .perturbation import PerturbationFigure
from .protocols import ProtocolsFigure
from .ptq_table import PTQTable
from .seeds import SeedsFigure
from .vq_ablation import VQAblationFigure
from .weight_histograms import WeightHistogramsFigure

__all__ = ["AccuracyVsBitsFigure", "AlphaFigure", "Comparison", "CostFigure", "DSMMTable", "EstimatorsFigure",
           "FigureResult", "FigureSpec", "LMPTQTable", "MethodsTable", "MixedPrecisionFigure", "NASAllocationFigure",
           "NbinsTable", "PTQTable",
           "PathsFigure", "PerturbationFigure", "ProtocolsFigure", "SeedsFigure", "VQAblationFigure",
           "WeightHistogramsFigure", "make"]
