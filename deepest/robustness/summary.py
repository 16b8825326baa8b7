"""One robustness summary of a trained classifier, as plain numbers for summary.json.

The experiment runner calls this on the analysis subset of the test split
(`[analysis] robustness = true`); it is also the one-call overview in a notebook.
"""

import functools

import numpy as np

from ..layers import check_one_step
from ..network import SolverNet
from ._classifier import check_norm, check_positive_integer, predict
from .bounds import gronwall_bound
from .deepfool import deepfool
from .evaluation import adversarial_ratio, robust_accuracy
from .fgsm import fgsm
from .pgd import pgd
from .search import minimal_epsilon

ATTACKS = ("fgsm", "pgd")


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
) -> dict:
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
        A dict of floats and lists of floats (JSON-ready; NaN becomes None).

    Example:
        >>> deepest.robustness.robustness_summary(net, xs, labels, epsilons=[0.1, 0.2], key=key)

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
    attacked = robust_accuracy(model, xs, labels, epsilons, attack=chosen)
    # Shares counted in float64 from the per-sample outcomes: exactly k/n, whatever the input dtype.
    accuracy, clean_accuracy = np.mean(np.asarray(attacked.correct), axis=-1), np.mean(np.asarray(attacked.clean))
    predicted = predict(model, xs)
    fooled = deepfool(model, xs)
    smallest_fgsm = minimal_epsilon(fgsm, model, xs, predicted, high=fgsm_high, num_bisections=16)
    return {
        "attack": attack,
        "norm": norm,
        "epsilons": [float(epsilon) for epsilon in epsilons],
        "clean_accuracy": _float(clean_accuracy),
        "robust_accuracy": _floats(accuracy),
        "mean_robust_accuracy": _float(np.mean(accuracy)),
        "rho_deepfool": _float(adversarial_ratio(xs, fooled.perturbation)),
        "deepfool_flipped": _float(np.mean(fooled.flipped)),
        "rho_fgsm": _float(adversarial_ratio(xs, smallest_fgsm.perturbation)),
        "fgsm_flipped": _float(np.mean(smallest_fgsm.found)),
        "growth_bound": _growth_bound(model, xs),
    }


def _growth_bound(model, xs):
    if not isinstance(model, SolverNet) or model.num_steps is None:
        return None
    try:
        check_one_step(model, "The growth bound")
    except ValueError:  # two-step solvers have no one-step layer map to take the norm of
        return None
    return _float(np.median(gronwall_bound(model, xs).discrete))


def _float(value):
    value = float(value)
    return value if np.isfinite(value) else None


def _floats(values):
    return [_float(value) for value in np.asarray(values)]
