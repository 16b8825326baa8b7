"""The minibatch of each training step, a function of (key, step) alone."""

import jax
import numpy as np

from .. import _caches


class Minibatches:
    """minibatches(step, xs, targets) → the samples of `step`: slice step mod E of the
    permutation of epoch ⌊step / E⌋, E = max(1, ⌊n / b⌋) batches an epoch of n samples, batch
    size b; the permutation of epoch e is `jax.random.permutation(fold_in(key, e), n)`.

    A function of (key, step) only, so a run resumed at step s draws the batches of the
    uninterrupted run. The permutation is drawn once an epoch, not at every step: its sort of
    the training set costs more than a small model's step. `fit` draws its batches with one.

    Args:
        key: PRNG key of the order.
        num_samples, batch_size: n and b; the remainder n − E·b of each epoch is left out.
        sharding: the layout of the minibatches (`fit` splits them over its devices); by
            default the layout JAX picks.
    """

    def __init__(self, key, num_samples: int, batch_size: int, *, sharding: jax.sharding.Sharding | None = None):
        self._key, self._per_epoch = key, max(1, num_samples // batch_size)
        self._order_of, self._take = _programs(num_samples, batch_size, sharding)
        self._epoch: int | None = None
        self._order = None

    def __call__(self, step: int, xs, targets):
        epoch, position = divmod(step, self._per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._order_of(self._key, np.int32(epoch))
        return self._take(self._order, np.int32(position), xs, targets)


@_caches.lru_cache(maxsize=16)
def _programs(num_samples: int, batch_size: int, sharding):
    """The compiled (key, epoch) → permutation and (permutation, position, xs, targets) →
    minibatch, one pair per process for all minibatches of these sizes."""

    def order(key, epoch):
        return jax.random.permutation(jax.random.fold_in(key, epoch), num_samples)

    def take(order, position, xs, targets):
        indices = jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)
        return xs[indices], targets[indices]

    return jax.jit(order), jax.jit(take) if sharding is None else jax.jit(take, out_shardings=sharding)
