"""One robustness summary of a trained classifier: the attacks' results, and their headline
numbers as plain values for summary.json (`RobustnessSummary.to_dict`).

The experiment runner calls this on the analysis subset of the test split
(`[analysis] robustness = true`); it is also the one-call overview in a notebook.
"""

import dataclasses
import functools

import numpy as np
from jaxtyping import Array

from ..layers import check_one_step
from ..network import SolverNet
from ._classifier import check_norm, check_positive_integer, predict
from .bounds import GronwallBound, gronwall_bound
from .deepfool import DeepFoolResult, deepfool
from .evaluation import RobustAccuracy, adversarial_ratio, robust_accuracy
from .fgsm import fgsm
from .pgd import pgd
from .search import MinimalEpsilon, minimal_epsilon

ATTACKS = ("fgsm", "pgd")


@dataclasses.dataclass(frozen=True)
class RobustnessSummary:
    """The attacks on one classifier and one batch, and the headline numbers drawn from them.

    Fields:
        attack: the robust-accuracy attack, one of `ATTACKS`.
        norm: its norm, "linf" or "l2".
        epsilons: the budgets, as given.
        inputs: (batch, ...) the attacked inputs x, against which ρ_adv is measured.
        accuracy: the robust accuracy at each budget (`robust_accuracy`).
        deepfool: DeepFool's minimal L2 perturbations (`deepfool`).
        minimal_fgsm: the smallest L∞ FGSM budgets that flip the prediction (`minimal_epsilon`).
        growth: the Grönwall bounds (`gronwall_bound`); None for a model that is not a
            fixed-step `SolverNet` with a one-step solver.
    """

    attack: str
    norm: str
    epsilons: tuple[float, ...]
    inputs: Array | np.ndarray
    accuracy: RobustAccuracy
    deepfool: DeepFoolResult
    minimal_fgsm: MinimalEpsilon
    growth: GronwallBound | None

    @property
    def robust_accuracy(self) -> np.ndarray:
        """The share of samples still classified correctly at each budget, counted in float64
        from the per-sample outcomes: exactly k/n, whatever the input dtype."""
        return np.mean(np.asarray(self.accuracy.correct), axis=-1)

    @property
    def clean_accuracy(self) -> float:
        """Accuracy on the unperturbed inputs."""
        return float(np.mean(np.asarray(self.accuracy.clean)))

    @property
    def rho_deepfool(self) -> float:
        """ρ_adv = E‖r‖₂/‖x‖₂ of DeepFool (every sample: it flips the prediction, whatever the label)."""
        return float(adversarial_ratio(self.inputs, self.deepfool.perturbation))

    @property
    def rho_fgsm(self) -> float:
        """ρ_adv of the smallest flipping L∞ FGSM perturbation, over the samples it could flip."""
        return float(adversarial_ratio(self.inputs, self.minimal_fgsm.perturbation))

    @property
    def growth_bound(self) -> float | None:
        """The median over samples of the discrete bound Π_k ‖∂y_{k+1}/∂y_k‖₂."""
        return None if self.growth is None else float(np.median(self.growth.discrete))

    def to_dict(self) -> dict:
        """Headline numbers as plain Python values, NaN where there is no finite one (a run
        directory writes them as null: `deepest.experiment.rundir.json_ready`)."""
        accuracy = self.robust_accuracy
        return {
            "attack": self.attack,
            "norm": self.norm,
            "epsilons": list(self.epsilons),
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": np.asarray(accuracy, dtype=float).tolist(),
            "mean_robust_accuracy": float(np.mean(accuracy)),
            "rho_deepfool": self.rho_deepfool,
            "deepfool_flipped": float(np.mean(self.deepfool.flipped)),
            "rho_fgsm": self.rho_fgsm,
            "fgsm_flipped": float(np.mean(self.minimal_fgsm.found)),
            "growth_bound": self.growth_bound,
        }


def robustness_summary(
    model,
    xs,
    labels,
    *,
    epsilons,
    attack: str = "pgd",
    norm: str = "linf",
    pgd_steps: int = 10,
    fgsm_high: float = 4.0,
    key,
) -> RobustnessSummary:
    """Clean and robust accuracy, the adversarial ratios ρ_adv of DeepFool and FGSM, and the
    discrete growth bound Π_k ‖∂y_{k+1}/∂y_k‖₂ (median over samples).

    - robust accuracy at each budget ε of `epsilons` under `attack` in `norm`;
    - ρ_adv = E‖r‖₂/‖x‖₂ of DeepFool's minimal L2 perturbation (all samples: it flips the
      prediction, whatever the label) and of the smallest L∞ FGSM perturbation that flips the
      prediction, bisected in [0, fgsm_high] (samples FGSM cannot flip there are left out of
      ρ; `fgsm_flipped` is the share it could flip);
    - `growth_bound` for a fixed-step `SolverNet` with a one-step solver, else None.

    Budgets are in the units of the inputs (the datasets of `deepest.data` are standardised:
    ε = 0.1 is a tenth of a feature's standard deviation).

    Args:
        model: a classifier for one sample (see `deepest.robustness`).
        xs, labels: inputs (batch, ...) and integer labels (batch,).
        epsilons: the budgets of the robust accuracy.
        attack: one of `ATTACKS`.
        norm: "linf" or "l2", of the robust-accuracy attack.
        pgd_steps: PGD iterations (step size 2.5 ε / pgd_steps, Madry et al.'s rule).
        fgsm_high: the top of the FGSM bisection bracket.
        key: PGD's random starts.

    Returns:
        A `RobustnessSummary`; its `to_dict()` is what a run's summary.json holds.

    Example:
        >>> summary = deepest.robustness.robustness_summary(net, xs, labels, epsilons=[0.1, 0.2], key=key)
        >>> summary.rho_deepfool, summary.to_dict()

    Reference: Moosavi-Dezfooli, Fawzi & Frossard (2016, arXiv:1511.04599) for ρ_adv.
    """
    if attack not in ATTACKS:
        raise ValueError(f"Unknown attack {attack!r}. Valid attacks are: {', '.join(ATTACKS)}.")
    check_norm(norm)
    check_positive_integer(pgd_steps, "pgd_steps")
    if attack == "pgd":
        chosen = functools.partial(pgd, norm=norm, num_steps=pgd_steps, key=key)
    else:
        chosen = functools.partial(fgsm, norm=norm)
    predicted = predict(model, xs)
    return RobustnessSummary(
        attack=attack,
        norm=norm,
        epsilons=tuple(float(epsilon) for epsilon in epsilons),
        inputs=xs,
        accuracy=robust_accuracy(model, xs, labels, epsilons, attack=chosen),
        deepfool=deepfool(model, xs),
        minimal_fgsm=minimal_epsilon(model, xs, predicted, attack=fgsm, high=fgsm_high, num_bisections=16),
        growth=_growth(model, xs),
    )


def _growth(model, xs) -> GronwallBound | None:
    if not isinstance(model, SolverNet) or model.num_steps is None:
        return None
    try:
        check_one_step(model, "The growth bound")
    except ValueError:  # two-step solvers have no one-step layer map to take the norm of
        return None
    return gronwall_bound(model, xs)
