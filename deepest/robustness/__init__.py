"""Adversarial attacks on classifiers and perturbation-growth bounds from the dynamics.

Attacks (FGSM, PGD, DeepFool) act on a batch xs of shape (batch, ...) and take any
classifier `model(x) -> logits` for one sample: a `deepest.SolverNet` with a readout, an
`eqx.Module` or a plain function; they batch it with `jax.vmap` and are jitted. Each returns
an `AbstractAttackResult` (`.adversarial`, `.perturbation`); the functions that use an attack
take it as the keyword `attack=`. A model whose
output has shape (num_classes,) gives logits; one whose output has shape () or (1,) is a
binary classifier f with decision f(x) > 0 ↦ class 1, read as the logits (0, f(x)).

The bounds look at the network as a dynamical system: how much its layers can amplify a
perturbation of the state (`gronwall_bound`), against what is measured (`perturbation_growth`,
`empirical_sensitivity`).
"""

from ._classifier import NORMS as NORMS
from ._classifier import predict as predict
from .attack_result import AbstractAttackResult as AbstractAttackResult
from .attack_result import AttackResult as AttackResult
from .bounds import GronwallBound as GronwallBound
from .bounds import gronwall_bound as gronwall_bound
from .deepfool import DeepFoolResult as DeepFoolResult
from .deepfool import deepfool as deepfool
from .evaluation import RobustAccuracy as RobustAccuracy
from .evaluation import adversarial_ratio as adversarial_ratio
from .evaluation import robust_accuracy as robust_accuracy
from .fgsm import fgsm as fgsm
from .pgd import pgd as pgd
from .search import MinimalEpsilon as MinimalEpsilon
from .search import minimal_epsilon as minimal_epsilon
from .sensitivity import EmpiricalSensitivity as EmpiricalSensitivity
from .sensitivity import PerturbationGrowth as PerturbationGrowth
from .sensitivity import empirical_sensitivity as empirical_sensitivity
from .sensitivity import perturbation_growth as perturbation_growth
from .summary import ATTACKS as ATTACKS
from .summary import RobustnessSummary as RobustnessSummary
from .summary import robustness_summary as robustness_summary
