"""A compiled function of equinox trees, called with their array leaves alone.

`eqx.filter_jit` splits its arguments into arrays and the rest on every call, walking and
rebuilding each equinox module in Python. For a SolverNet and its Adam state that costs
~0.3 ms a call on the 2-core machine, a sixth of a small model's step. A training loop calls its step thousands of times
on trees of one structure, so `split` splits them once: the array leaves travel as a flat
list, which `jax.jit` dispatches in C++, the rest stays in their `TreeLayout`, and the trees
are rebuilt only where the loop needs them.
"""

import equinox as eqx
import jax


class TreeLayout:
    """Where the array leaves of trees of one structure go, and everything else they hold:
    `rebuild` makes trees from such leaves, `of` flattens trees of this layout, `jit` compiles
    a function of such trees over their leaves.

    Hashable, as `eqx.filter_jit` hashes its arguments' non-array parts: trees that differ only
    in their arrays' values (nets differing only in their seeds, and their optimiser states)
    have equal layouts, so a function compiled for one layout, kept under it, serves them all.
    """

    def __init__(self, trees):
        arrays, self._static = eqx.partition(trees, eqx.is_array)
        self._structure = jax.tree.structure(arrays)
        static_leaves, static_structure = jax.tree.flatten(self._static)
        self._key = (self._structure, static_structure, tuple(static_leaves))
        try:
            self._hash = hash(self._key)
        except TypeError:
            unhashable = [leaf for leaf in static_leaves if not _is_hashable(leaf)]
            what = f"{unhashable[0]!r} of type {type(unhashable[0]).__name__}" if unhashable else "a static field of one of its modules"
            raise TypeError(
                f"Every part of the trees that is not an array must be hashable (as `eqx.filter_jit` requires "
                f"of its arguments), but {what} is not. Make it hashable, or hold it as an array."
            ) from None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return isinstance(other, TreeLayout) and self._key == other._key

    def rebuild(self, leaves):
        return eqx.combine(jax.tree.unflatten(self._structure, leaves), self._static)

    def of(self, trees) -> list:
        leaves, structure = jax.tree.flatten(eqx.filter(trees, eqx.is_array))
        if structure != self._structure:
            raise ValueError(f"Expected trees of the structure {self._structure}, got {structure}.")
        return leaves

    def jit(self, function):
        """`function(trees, *arguments) → (trees, outputs)`, the trees of this layout in and
        out, compiled as (leaves, *arguments) → (leaves, outputs)."""

        def on_leaves(leaves, *arguments):
            trees, outputs = function(self.rebuild(leaves), *arguments)
            return self.of(trees), outputs

        return jax.jit(on_leaves)


def split(trees) -> tuple[TreeLayout, list]:
    """The layout of `trees` and their array leaves."""
    layout = TreeLayout(trees)
    return layout, layout.of(trees)


def _is_hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
