"""The training loop, kept one step ahead of the host's reads of the metrics."""

import numpy as np
from tqdm import tqdm

from .._interrupts import raise_if_swallowed
from ._divergence import Replicas
from ._minibatches import Minibatches
from ._records import Records, per_replica


class Dispatch:
    """dispatch(step, leaves) → (leaves, metrics) of the compiled step on the minibatch of
    `step`, returned as soon as JAX has queued it, before the device has computed it."""

    def __init__(self, step_on_leaves, minibatches: Minibatches, x_train, y_train, probe_key):
        self._step, self._minibatches, self._probe_key = step_on_leaves, minibatches, probe_key
        self._x_train, self._y_train = x_train, y_train

    def __call__(self, step: int, leaves: list):
        xs, targets = self._minibatches(step, self._x_train, self._y_train)
        return self._step(leaves, xs, targets, self._probe_key, np.int32(step))


class Progress:
    """A tqdm bar over the steps with the live replicas' mean loss; shown on a terminal
    unless `show` says otherwise."""

    def __init__(self, num_steps: int, start_step: int, show: bool | None):
        self._bar = tqdm(total=num_steps, initial=start_step, disable=None if show is None else not show, leave=False)

    def advance(self, metrics: list[dict], alive: list[bool]) -> None:
        """One step done: the bar moves on and shows the mean loss of the replicas still training."""
        if self._bar.disable:  # a hidden bar's loss would be formatted for nothing, every step
            return
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{np.mean([entry['loss'] for entry, live in zip(metrics, alive) if live]):.4f}", refresh=False)

    def close(self) -> None:
        """Remove the bar (it is not left behind on the terminal)."""
        self._bar.close()


def run(dispatch: Dispatch, replicas: Replicas, records: Records, progress: Progress, *, leaves: list, start_step: int, num_steps: int):
    """Steps start_step … num_steps − 1 from the array leaves `leaves` of (model, state);
    returns (steps done, final leaves). Stops early when every replica has diverged.

    One step ahead: step k + 1 is dispatched from step k's update before the host reads step
    k's metrics, so the host's work (reading them, the divergence checks, records and
    checkpoints) overlaps the device's instead of idling it. A refused update discards the
    step dispatched from it, which is dispatched again from the kept leaves. An interrupt
    (KeyboardInterrupt) checkpoints the steps done (`Records.checkpoint_interrupted`) and
    goes on up.
    """
    step, current = start_step, leaves
    try:
        pending = dispatch(step, current) if step < num_steps and replicas.any_alive else None
        while pending is not None:
            raise_if_swallowed()
            new_leaves, device_metrics = pending
            following = replicas.kept(new_leaves, current)
            ahead = dispatch(step + 1, following) if step + 1 < num_steps else None
            metrics = per_replica(device_metrics, replicas.count)
            refused = replicas.refuse_diverged(step, metrics)
            if refused:
                records.refused(step, metrics, refused, replicas.reasons, current)
                if not replicas.any_alive:
                    break
                following, ahead = replicas.kept(new_leaves, current), None
            # One assignment, so that an interrupt finds the leaves and their step count in step.
            current, step = following, step + 1
            progress.advance(metrics, replicas.alive)
            records.after_step(step, current, metrics, replicas.alive)
            if ahead is None and step < num_steps:
                ahead = dispatch(step, current)
            pending = ahead
    except KeyboardInterrupt:
        records.checkpoint_interrupted(step, current)
        raise
    return step, current
