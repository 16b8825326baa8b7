"""Encoders: maps from the input space into the state space the field acts on.

A linear lift needs nothing new: `eqx.nn.Linear(in_features, state_dim, key=key)` is one.
"""

import equinox as eqx
import jax.numpy as jnp


class ZeroAugmentation(eqx.Module):
    """x ↦ (x, 0, …, 0) with `extra_dims` zeros: the augmented neural ODE lift.

    Flows of ODEs are homeomorphisms and cannot untangle some data sets (concentric circles)
    in the input dimension; extra zero dimensions give the flow room.

    Reference: Dupont, Doucet & Teh, "Augmented Neural ODEs" (2019, arXiv:1904.01681).
    """

    extra_dims: int = eqx.field(static=True)

    def __check_init__(self):
        if self.extra_dims < 0:
            raise ValueError(f"ZeroAugmentation needs extra_dims ≥ 0, got {self.extra_dims}.")

    def __call__(self, x):
        return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (self.extra_dims,), x.dtype)], axis=-1)
