"""Interleaved timing: contenders alternate in rounds, and each reports its median.

Timing A many times and then B many times lets a drift of the machine (another job starting,
thermal throttling, a noisy neighbour on a shared core) land on one contender only. Here every
round times each contender once, in an order rotated by one per round, so that a slow spell
falls on all of them alike; the median over rounds then drops the rounds it spoiled.
"""

import statistics
import time
from collections.abc import Callable, Mapping


def _seconds(function: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def interleaved_medians(
    contenders: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    block_seconds: float = 0.0,
    warmup: bool = True,
) -> dict[str, float]:
    """Median seconds per call of each contender over `rounds` interleaved rounds.

    Each contender is a callable that returns only when its work is done (a JAX one blocks
    on its result). In round r the contenders run in their given order rotated by r.

    Args:
        contenders: name → callable.
        rounds: rounds; each contributes one sample per contender.
        block_seconds: a round times a block of n calls and takes their mean, n sized once
            per contender so that a block lasts about this long (at least one call): calls
            much shorter than the timer's resolution and the loop's overhead are timed in bulk.
            0 times single calls.
        warmup: call each contender once before the rounds (compilation, caches) and once,
            untimed, before each of its blocks, so that the previous contender's worker
            threads (OpenMP ones spin for a while after their work) have settled. False for
            contenders that are fresh processes, which have nothing to warm.

    Returns:
        name → median seconds per call.
    """
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    number = dict.fromkeys(names, 1)
    if block_seconds > 0:
        for name in names:
            number[name] = max(1, round(block_seconds / _seconds(contenders[name], 1)))
    samples = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if warmup:
                contenders[name]()
            samples[name].append(_seconds(contenders[name], number[name]))
    return {name: statistics.median(values) for name, values in samples.items()}
