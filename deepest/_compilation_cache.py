"""A compilation cache for the runs of `deepest run`: each XLA program compiled once, not once per run.

Compiling is most of a small run's time, and a sweep compiles the same programs again and
again: runs that differ only in their seeds trace identical programs, and the settings of one
model share most of the rest (the initial weights, the minibatch order, the analyses'
operations). JAX's persistent compilation cache keeps each compiled program on disk under a key
of the program, the compiler's version and its options; a process that meets a program already
there loads it instead of compiling it. `deepest run` turns it on, in <out>/.compilation_cache,
for its own process and its pool's workers, so that workers share what the others compiled and
a later invocation with the same --out reuses it all (`--no-compilation-cache` turns it off;
deleting the directory clears it; measured, a copy of the directory elsewhere missed every
entry: the compile options JAX hashes into each key differed). The library never turns it on by
itself: a process-wide setting belongs to whoever owns the process. JAX does not cache programs
with host callbacks. Measured in `benchmarks/sweep.py` (benchmarks/README.md).
"""

import pathlib

import jax


def use_compilation_cache(directory: str | pathlib.Path) -> None:
    """Store and look up this process's compiled programs in `directory`, the smallest and
    quickest included (JAX's defaults skip programs that compile in under a second: every
    program of a small run). Call before the process compiles anything: JAX reads the
    setting once, at its first compilation."""
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
