"""A compilation cache for the runs of `deepest run`: each XLA program compiled once, not once per run.

Compiling is most of a small run's time, and a sweep compiles the same programs again and
again: runs that differ only in their seeds trace identical programs, and the settings of one
model share most of the rest (the initial weights, the minibatch order, the analyses'
operations). JAX's persistent compilation cache keeps each compiled program on disk under a key
of the program, the compiler's version and its options; a process that meets a program already
there loads it instead of compiling it. `deepest run` turns it on, in `default_directory()`
(--compilation-cache DIR elsewhere), for its own process and its pool's workers, so that
workers share what the others compiled and later invocations reuse it all
(`--no-compilation-cache` turns it off; deleting the directory clears it). The library never
turns it on by itself: a process-wide setting belongs to whoever owns the process. JAX does not
cache programs with host callbacks. Measured in `benchmarks/sweep.py` (benchmarks/README.md).

Trust: an entry is machine code that the process loads and runs unchecked, so whoever can write
to the cache can run code as whoever uses it. The default is therefore per user (under
$XDG_CACHE_HOME, else ~/.cache, created private), never a shared run directory, and
`use_compilation_cache` refuses a directory that another user owns or that others may write to.
"""

import os
import pathlib
import stat

import jax


class UntrustedCacheError(ValueError):
    """A compilation cache directory that someone else could write machine code into."""


def default_directory() -> pathlib.Path:
    """This user's compilation cache: $XDG_CACHE_HOME/deepest/compilation, else
    ~/.cache/deepest/compilation."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "deepest" / "compilation"


def check_trusted(directory: str | pathlib.Path) -> pathlib.Path:
    """`directory`, created private (mode 0700) if missing; `UntrustedCacheError` if it
    belongs to another user or others may write to it."""
    path = pathlib.Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid != os.getuid():
        raise UntrustedCacheError(
            f"The compilation cache {path} belongs to another user; its entries would run as code: use a directory of your own."
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedCacheError(
            f"The compilation cache {path} is writable by others (mode {stat.S_IMODE(status.st_mode):o}); its entries would run as code: "
            f"`chmod go-w {path}` or use a private directory."
        )
    return path


def use_compilation_cache(directory: str | pathlib.Path) -> None:
    """Store and look up this process's compiled programs in `directory`, the smallest and
    quickest included (JAX's defaults skip programs that compile in under a second: every
    program of a small run). Call before the process compiles anything: JAX reads the
    setting once, at its first compilation. Raises `UntrustedCacheError` for a directory
    someone else could write to (`check_trusted`)."""
    jax.config.update("jax_compilation_cache_dir", str(check_trusted(directory)))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
