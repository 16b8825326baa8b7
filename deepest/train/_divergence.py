"""Divergence as data: which steps are refused, and the replicas frozen by them."""

import numpy as np

from .. import _stacking
from ._objective import failure_reason


def divergence(metrics: dict, max_state_norm: float) -> str | None:
    """Why the step with these (host) metrics diverged, or None: a non-finite loss, a final
    state norm over `max_state_norm`, a failed solve (saying what failed, `failure_reason`), or a
    non-finite gradient or update."""
    if not np.isfinite(metrics["loss"]):
        return f"loss is {metrics['loss']}"
    if not np.isfinite(metrics["max_state_norm"]) or metrics["max_state_norm"] > max_state_norm:
        return f"state norm {metrics['max_state_norm']:.3g} > {max_state_norm:.3g}"
    if metrics["solver_failures"] > 0:
        return failure_reason(metrics["solver_failures"], metrics["solver_result"])
    if not np.isfinite(metrics["gradient_norm"]) or not metrics["finite_update"]:
        return "non-finite gradient or parameter update"
    return None


class Replicas:
    """The status of each of `count` models trained together (one for `fit`): a replica whose
    step diverges is frozen, its update refused, while the others train on.

    `stopped` maps the replicas that had diverged before the run resumed to (step, reason).
    """

    def __init__(self, count: int, max_state_norm: float, stopped: dict | None = None):
        self.count, self._max_state_norm = count, max_state_norm
        self.statuses = ["completed"] * count
        self.diverged_at: list[int | None] = [None] * count
        self.reasons: list[str | None] = [None] * count
        for replica, (at, reason) in (stopped or {}).items():
            self.statuses[replica], self.diverged_at[replica], self.reasons[replica] = "diverged", at, reason
        self._update_alive()

    def _update_alive(self):
        self.alive = [status == "completed" for status in self.statuses]
        self.any_alive, self._all_alive = any(self.alive), all(self.alive)

    def refuse_diverged(self, step: int, metrics: list[dict]) -> list[int]:
        """Mark the live replicas whose `metrics` (one dict each) diverged at `step` as
        diverged; returns them."""
        refused = []
        for replica in range(self.count):
            reason = divergence(metrics[replica], self._max_state_norm) if self.alive[replica] else None
            if reason is not None:
                self.statuses[replica], self.diverged_at[replica], self.reasons[replica] = "diverged", step, reason
                refused.append(replica)
        if refused:
            self._update_alive()
        return refused

    def kept(self, new_leaves: list, old_leaves: list) -> list:
        """The array leaves (each with a leading replica axis when replicated) of the replicas
        still training from `new_leaves`, of the frozen ones from `old_leaves`."""
        if self._all_alive:
            return new_leaves
        return _stacking.select(self.alive, new_leaves, old_leaves)
