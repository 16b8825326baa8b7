"""Many equinox Modules of one architecture as one Module with a leading axis on every array.

Per-layer weights (`fields.PerLayer`) and independently seeded replicas trained together with
`vmap` (`train.fit_replicas`) are both stored this way.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp


def stack(modules: Sequence[eqx.Module], what: str = "modules"):
    """One Module whose arrays are those of `modules` stacked on a new leading axis."""
    if len(modules) == 0:
        raise ValueError(f"Stacking needs at least one of the {what}.")
    parameters, structures = zip(*(eqx.partition(module, eqx.is_array) for module in modules))
    treedefs = {jax.tree.structure(part) for part in parameters}
    if len(treedefs) > 1 or any(structure != structures[0] for structure in structures):
        raise ValueError(f"The {what} must share one architecture (same class, sizes and options).")
    return eqx.combine(jax.tree.map(lambda *leaves: jnp.stack(leaves), *parameters), structures[0])


def index(stacked, position):
    """The Module at `position` (an int or a traced integer) of a stacked Module."""
    parameters, structure = eqx.partition(stacked, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda leaf: leaf[position], parameters), structure)


def select(keep, new, old):
    """Entry i of the stacked `new` where keep[i], else entry i of `old` (same structure)."""
    keep = jnp.asarray(keep)
    new_arrays, structure = eqx.partition(new, eqx.is_array)
    old_arrays = eqx.filter(old, eqx.is_array)

    def choose(new_leaf, old_leaf):
        return jnp.where(keep.reshape(keep.shape + (1,) * (new_leaf.ndim - 1)), new_leaf, old_leaf)

    return eqx.combine(jax.tree.map(choose, new_arrays, old_arrays), structure)
