"""A classifier's last Dense layer in a training step: its product and its two gradient
products, for a thin layer (a few output units: 10 classes) on a mini-batch.

Such a layer's products are small (128 x 512 x 10 in the `keras` recipe: 0.66 M
multiply-adds each), and a step on compressed rows runs BLAS on one thread (its big
products are fastnn's own): there BLAS took 21-27 us for each of them, these kernels
9.5 us for the product and 32 us for both gradients, over both cores (hot, on the arrays
of a step). Between them the fused loss (``kernels/loss_steps.py``) turns the logits into
their gradient ``dz``.

* :func:`forward`: ``z (B, K) = x (B, H) @ w (H, K)``, as dot products of x's rows with
  w's columns (``matmul._dots``), from a copy of w transposed (K x H, small), which
  :func:`backward` reads too.
* :func:`backward`: the input's gradient ``dx (B, H) = dz @ w.T``, each row the rows of
  w.T scaled by its row of dz and summed (``sparse.combine_rows``, eight at a time), and
  the weight's ``dw (H, K) = x.T @ dz``, each thread summing its rows into a K x H
  partial, eight rows at a time (``matmul._rank_updates``); the partials are then added,
  in order, into ``dw``.

Rows are split over the thread pool in ``parts``; a mini-batch's rows only (the sums of
``dw`` run over each part's rows in float32, in one run: long ones drift; the backend
sends full batches to ``kernels/matmul.py``, which sums in blocks).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastnn.kernels.jit import parallel_kernel
from fastnn.kernels.matmul import _dots, _rank_updates
from fastnn.kernels.sparse import combine_rows


@parallel_kernel
def forward(x: np.ndarray, w: np.ndarray, wt: np.ndarray, z: np.ndarray, parts: int) -> None:
    """``z (B, K) = x (B, H) @ w (H, K)``; ``wt`` (K, H) receives w transposed."""
    for k in range(w.shape[1]):
        for c in range(w.shape[0]):
            wt[k, c] = w[c, k]
    rows = x.shape[0]
    size = (rows + 2 * parts - 1) // (2 * parts) * 2  # even: _dots takes rows in pairs
    for part in prange(parts):
        _dots(x, wt, z, min(rows, part * size), min(rows, (part + 1) * size))


@parallel_kernel
def backward(
    x: np.ndarray,
    dz: np.ndarray,
    wt: np.ndarray,
    dw: np.ndarray,
    dx: np.ndarray,
    partial: np.ndarray,
) -> None:
    """``dw (H, K) = x.T @ dz`` and, unless ``dx`` is empty, ``dx (B, H) = dz @ wt``;
    x (B, H), dz (B, K), wt (K, H) (:func:`forward`'s), partial (parts, K, H) scratch."""
    rows, width = x.shape
    units = dz.shape[1]
    parts = partial.shape[0]
    picks = np.arange(units)
    size = (rows + parts - 1) // parts
    for part in prange(parts):
        start, stop = min(rows, part * size), min(rows, (part + 1) * size)
        if dx.shape[0] > 0:
            for r in range(start, stop):
                combine_rows(dx[r], wt, picks, dz[r], 0, units)
        partial[part] = 0
        _rank_updates(x, dz, partial[part], start, stop)
    for c in range(width):
        for k in range(units):
            total = partial[0, k, c]
            for part in range(1, parts):
                total += partial[part, k, c]
            dw[c, k] = total
