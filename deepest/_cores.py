"""The cores a process may run on, and pinning a thread to some of them (CPU affinity)."""

import os


def available_cores() -> list[int]:
    """The cores this process may run on: its affinity mask (which a container, `taskset` or
    a sweep may have narrowed), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin_to(cores) -> None:
    """Run the calling thread on `cores` alone: Linux pins the calling thread only, which in a
    fresh process is the one thread. Without CPU affinity (macOS, Windows), nothing."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
