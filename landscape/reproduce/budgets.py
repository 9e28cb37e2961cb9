"""How much the reproduction report trains and evaluates (`Budget`, units beside each field), and where a budget's
studies, figures and ledger live (`Context`).

`quick` is what fits in about an hour on the 2-core CPU this project develops on — enough to exercise every row,
not enough to settle most claims; `full` is the budget the claims are judged at (the headline's 4 epochs and 3
seeds, 100 random directions, 1,000 images per evaluation, BN statistics re-estimated on 500 training images).
The soft-quantization Fig. 2 sweep is the studies issue's `fig2` study (one epoch per run, two seeds) at both
budgets: it already exists and a longer sweep does not fit here.

    >>> from landscape.reproduce import BUDGETS
    >>> BUDGETS["full"].epochs, BUDGETS["full"].seeds, BUDGETS["quick"].limit_train
    (4, (0, 1, 2), 10000)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: the budgets' studies, figures and ledgers live in it


@dataclass(frozen=True)
class Budget:
    """How much one budget of the report trains and evaluates (module docstring); units beside each field.

    Examples:
        >>> quick = BUDGETS["quick"]
        >>> quick.epochs, quick.seeds, quick.directions, quick.images
        (1, (0, 1), 20, 500)
        >>> Budget("mine", epochs=0)
        Traceback (most recent call last):
        ...
        ValueError: budget mine: epochs must be ≥ 1, got 0
    """

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
    recalibrate_bn: int = 20  # BN-recalibration batches stored with every run (RunSpec.recalibrate_bn)
    directions: int = 100  # random directions per perturbation test
    images: int = 1000  # images per evaluation of perturbation tests and paths (class-balanced prefix)
    bn_batches: int = 1  # BN-recalibration batches of 500 images per perturbed state
    points: int = 11  # points per path segment
    fig2: tuple[str, str] = ("studies", "fig2")  # (dir, name) of the Fig. 2 sweep study
    cmp_epochs: int = 4  # epochs of every run of the QAT comparison (issue 25: at least the headline's 4)
    cmp_seeds: tuple[int, ...] = (0, 1)  # its seeds (≥ 2 at the budget the rows are judged at)
    cmp_long_epochs: int = 12  # epochs of its longer budget (the best two methods at 2 and 3 bits)
    nas_epochs: int = 4  # epochs of the VQ/linear search and its fixed baselines, and of the VQ ablations (issue 26)
    nas_seeds: tuple[int, ...] = (0, 1)  # seeds of the search and its fixed baselines (the row asks for ≥ 2)
    vq_seeds: tuple[int, ...] = (0, 1)  # seeds of the VQ ablations (cosine/euclidean × top-1 STE/soft)
    limit_test: int | None = None  # test images of every training run's evaluations (None: all; tests: 64)
    train_batch_size: int | None = None  # images per SGD step of every training (None: TrainConfig's default)

    def __post_init__(self):
        for name in ("epochs", "sweep_epochs", "cwc_epochs", "cmp_epochs", "cmp_long_epochs", "nas_epochs",
                     "directions", "images", "bn_batches", "points"):
            if getattr(self, name) < 1:
                raise ValueError(f"budget {self.name}: {name} must be ≥ 1, got {getattr(self, name)}")
        if not (self.seeds and self.sweep_seeds and self.cwc_seeds and self.cmp_seeds and self.nas_seeds
                and self.vq_seeds):
            raise ValueError(f"budget {self.name}: every group of trainings needs at least one seed")


BUDGETS = {
    "quick": Budget("quick", epochs=1, limit_train=10_000, seeds=(0, 1), sweep_seeds=(0,), cwc_epochs=1,
                    cwc_seeds=(0, 1), cmp_epochs=1, cmp_seeds=(0,), cmp_long_epochs=3, nas_epochs=1, vq_seeds=(0,),
                    directions=20, images=500, bn_batches=1, points=7),
    "full": Budget("full"),
}


def budget_for_tests(checkpoint: str, **overrides) -> Budget:
    """A budget small enough for the test suite (the tiny model)."""
    return replace(Budget("test", arch="tiny", checkpoint=checkpoint, epochs=1, limit_train=128, seeds=(0,),
                          sweep_seeds=(0,), cwc_epochs=1, cwc_seeds=(0,), cmp_epochs=1, cmp_seeds=(0,),
                          cmp_long_epochs=2, nas_epochs=1, nas_seeds=(0,), vq_seeds=(0,), directions=2, images=64,
                          bn_batches=1,
                          points=3, limit_test=64, train_batch_size=64), **overrides)


@dataclass
class Context:
    """A budget at work: its folders under `root` (the checkout unless a test gives another) and the device its
    in-process steps (studies, perturbation tests) run on."""

    budget: Budget
    repo: Path
    studies: Path  # this budget's study folder
    figures: Path  # this budget's figures
    work: Path  # ledger, row results, logs
    device: str = "cpu"  # torch device of the studies' trainings and the perturbation tests
    # study name → ((journal mtime, size), its run rows): a journal is read once until a worker appends to it
    _rows_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def for_budget(cls, budget: Budget, repo: Path = REPO, root: Path | None = None, *,
                   device: str = "cpu") -> Context:
        root = root or repo
        return cls(budget, repo, root / "studies" / f"repro-{budget.name}", root / "figures" / "reproduction" /
                   budget.name, root / "reproduction" / budget.name, device)

    def study_dir(self, name: str) -> Path:
        return (self.repo / self.budget.fig2[0]) if name == self.budget.fig2[1] else self.studies

    def journal(self, name: str) -> Path:
        """The Optuna journal file of a study of this budget."""
        return self.study_dir(name) / name / "journal.log"

    def study_rows(self, name: str) -> list[dict]:
        """Every finished run of a study: its grid point, seed, run file and numbers (studies.report.run_rows)."""
        from ..studies import engine, report

        path = self.journal(name)
        if not path.is_file():
            return []
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._rows_cache.get(name)
        if cached is None or cached[0] != key:
            study, spec = engine.open_study(str(path), name)
            cached = self._rows_cache[name] = (key, report.run_rows(study, spec))
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
