"""A compiled function of equinox trees, called with their array leaves alone.

`eqx.filter_jit` splits its arguments into arrays and the rest on every call, walking and
rebuilding each equinox module in Python. For a SolverNet and its Adam state that took
~0.3 ms a call (measured 2026-12-05 on the 2-core machine: a training step of the issue-7
model, Euler 10, batch 256, 2.01 ms through `eqx.filter_jit`, 1.71 ms as a `jax.jit` of the
leaves), a sixth of a small model's step. A training loop calls its step thousands of times
on trees of one structure, so `ArrayLeaves` splits them once: the array leaves travel as a
flat list, which `jax.jit` dispatches in C++, the rest is closed over, and the trees are
rebuilt only where the loop needs them.
"""

import equinox as eqx
import jax


class ArrayLeaves:
    """The array leaves of `trees` (`leaves`), and what rebuilds trees of that structure
    from such leaves (`rebuild`); `of` flattens trees of the same structure."""

    def __init__(self, trees):
        arrays, self._static = eqx.partition(trees, eqx.is_array)
        self.leaves, self._structure = jax.tree.flatten(arrays)

    def rebuild(self, leaves):
        return eqx.combine(jax.tree.unflatten(self._structure, leaves), self._static)

    def of(self, trees) -> list:
        leaves, structure = jax.tree.flatten(eqx.filter(trees, eqx.is_array))
        if structure != self._structure:
            raise ValueError(f"Expected trees of the structure {self._structure}, got {structure}.")
        return leaves

    def jit(self, function):
        """`function(trees, *arguments) → (trees, outputs)`, the trees of this structure in and
        out, compiled as (leaves, *arguments) → (leaves, outputs)."""

        def on_leaves(leaves, *arguments):
            trees, outputs = function(self.rebuild(leaves), *arguments)
            return self.of(trees), outputs

        return jax.jit(on_leaves)
