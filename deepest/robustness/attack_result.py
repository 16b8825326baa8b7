"""The value every attack returns: the adversarial inputs x' = x + r and the perturbations r.

Every attack returns a result Module rather than a bare array of inputs, because what DeepFool
finds is more than its inputs (the iterations it took, whether it flipped the prediction, the
classes before and after), and one kind of value for every attack lets the functions that use
attacks (`robust_accuracy`, `minimal_epsilon`) take any of them, or one of a user's own, and
read `.adversarial` the same way. `AttackResult` is what FGSM and PGD return;
`DeepFoolResult` adds DeepFool's own fields.
"""

import equinox as eqx
import jax
from equinox import AbstractVar
from jaxtyping import Array, Float

from ._balls import l2_norm


class AbstractAttackResult(eqx.Module):
    """What an attack found, per sample.

    Fields:
        adversarial: (batch, ...) the attacked inputs x' = x + r, to rounding (not clipped to
            any input domain such as [0, 1]).
        perturbation: (batch, ...) r, the attack's step from x (for DeepFool r = (1 + η) Σ r_i).
    """

    adversarial: AbstractVar[Float[Array, "batch ..."]]
    perturbation: AbstractVar[Float[Array, "batch ..."]]

    @property
    def perturbation_norm(self) -> Float[Array, " batch"]:
        """‖r‖₂ per sample (the flattened perturbation)."""
        return jax.vmap(l2_norm)(self.perturbation)


class AttackResult(AbstractAttackResult):
    """The adversarial inputs of a budgeted attack (FGSM, PGD) and their perturbations.

    Fields:
        adversarial: (batch, ...) x' = x + r.
        perturbation: (batch, ...) r, within the attack's budget ‖r‖ ≤ ε in its norm.
    """

    adversarial: Float[Array, "batch ..."]
    perturbation: Float[Array, "batch ..."]
