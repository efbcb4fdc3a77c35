"""The first layer's weight gradient on compressed rows, fused with its optimizer update.

With a compressed batch X (B, F), the gradient ``X^T @ dZ`` (F, H) has a zero row for
every input column with no nonzero in the batch (a third of MNIST's 784 pixels on a
128-image batch). ``kernels/sparse.py`` writes the whole (F, H) gradient, and the update
reads it back; here each row of the gradient is made in a per-thread row (L1) and goes
straight into the update of that row of the weights, so the gradient is never written
and the zero rows are never touched:

* SGD: a zero gradient row leaves the weights as they are; nothing to do.
* RMSprop (plain: no momentum, not centered, ``epsilon > 0``): a zero gradient row
  leaves the weights as they are and multiplies the velocity by ``rho``. Each row keeps
  the step its velocity is current at (``stamps``); the steps it missed are applied as
  one ``rho ** missed`` when the row is next touched, or when :func:`settle` brings every
  row up to the current step (before anyone reads the state). Exact up to rounding:
  ``v * rho**k`` against ``k`` roundings of ``v * rho``, both flushed to 0 below the
  smallest normal number as ``kernels/optimizers.py`` does.

Adam's and momentum's rows move with a zero gradient too, so they have no shortcut here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from fastnn.kernels.jit import parallel_kernel
from fastnn.kernels.optimizers import _flush
from fastnn.kernels.sparse import combine_rows, run_start


@parallel_kernel
def update_rows(
    starts: np.ndarray,
    rows_of: np.ndarray,
    values_of: np.ndarray,
    dz: np.ndarray,
    param: np.ndarray,
    velocity: np.ndarray,
    stamps: np.ndarray,
    state: np.ndarray,
    learning_rate: float,
    rho: float,
    one_minus_rho: float,
    epsilon: float,
    tiny: float,
    grad_rows: np.ndarray,
) -> None:
    """One step of SGD (``velocity`` empty) or RMSprop on the rows of ``param`` (F, H)
    whose input column has a nonzero in the batch.

    X^T in compressed rows (column j's entries: ``rows_of`` and ``values_of`` at
    ``starts[j]:starts[j + 1]``, from ``kernels/sparse.by_column``), dz (B, H); RMSprop
    also takes ``velocity`` (F, H) and ``stamps`` (F,) int64 (the step each row's
    velocity is current at); ``state[0]`` is the number of this step (the optimizer's
    count, uint64). ``grad_rows`` (parts, H): a gradient row per part; the rows of
    ``param`` are split into that many runs of about the same number of entries
    (``kernels/sparse.run_start``) over the thread pool.
    """
    rmsprop = velocity.shape[0] > 0
    parts = grad_rows.shape[0]
    step = np.int64(state[0])
    for part in prange(parts):
        g = grad_rows[part]
        for j in range(run_start(starts, part, parts), run_start(starts, part + 1, parts)):
            if starts[j] == starts[j + 1]:  # a zero gradient row
                continue
            combine_rows(g, dz, rows_of, values_of, starts[j], starts[j + 1])  # (H,)
            p = param[j]
            if not rmsprop:
                for c in range(p.shape[0]):
                    p[c] -= learning_rate * g[c]
                continue
            v = velocity[j]
            missed = step - 1 - stamps[j]
            if missed > 0:  # the steps since its last touch, each of which was v = rho * v
                decay = v.dtype.type(np.float64(rho) ** missed)
                for c in range(v.shape[0]):
                    v[c] = _flush(v[c] * decay, tiny)
            stamps[j] = step
            for c in range(p.shape[0]):
                vc = _flush(rho * v[c] + one_minus_rho * g[c] * g[c], tiny)
                v[c] = vc
                p[c] -= learning_rate * g[c] / math.sqrt(vc + epsilon)


@parallel_kernel
def settle(velocity: np.ndarray, stamps: np.ndarray, step: int, rho: float, tiny: float) -> None:
    """Bring every row of ``velocity`` (F, H) to step ``step``: a row current at step
    ``stamps[j]`` is multiplied by ``rho ** (step - stamps[j])``."""
    for j in prange(velocity.shape[0]):
        missed = step - stamps[j]
        if missed > 0:
            v = velocity[j]
            decay = v.dtype.type(np.float64(rho) ** missed)
            for c in range(v.shape[0]):
                v[c] = _flush(v[c] * decay, tiny)
        stamps[j] = step
