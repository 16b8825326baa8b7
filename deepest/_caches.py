"""The functions deepest keeps for the life of the process, and `clear_caches`, which drops them.

Compiling a training step or an evaluation costs seconds; nets that differ only in their
weights (seeds, a sweep's runs, a notebook's repeated fits) share them, so deepest keeps them
in module-level caches. Each such cache is made with `lru_cache` here, which registers it, so
that `clear_caches` empties every one (equinox keeps its own the same way: `eqx.clear_caches`).
"""

import functools
from collections.abc import Callable

import equinox as eqx

_CACHE_CLEARS: list[Callable[[], None]] = []


def lru_cache(*, maxsize: int | None):
    """`functools.lru_cache(maxsize=maxsize)`, registered so that `clear_caches` empties it."""

    def decorate(function):
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _CACHE_CLEARS.append(cached.cache_clear)
        return cached

    return decorate


def clear_caches() -> None:
    """Drop every compiled function and object deepest keeps between calls, and equinox's.

    Afterwards the next `fit`, evaluation or analysis traces and compiles its programs anew
    (e.g. after monkeypatching what they call, or to free their memory). This empties deepest's
    caches (the training step, minibatch and evaluation programs, the optimisers by name, the
    solvers' characteristic polynomials) and calls `eqx.clear_caches()`, which holds the
    programs of the `eqx.filter_jit` functions of `deepest.analysis` and `deepest.robustness`.
    JAX's own caches are left alone; call `jax.clear_caches()` after this to drop them too.
    """
    for cache_clear in _CACHE_CLEARS:
        cache_clear()
    eqx.clear_caches()
