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
  the weight's ``dw (H, K) = x.T @ dz``, each thread summing four of its rows at a time
  into a K x H partial; the partials are then added, in order, into ``dw``.

Rows are split over the thread pool in ``parts``; a mini-batch's rows only (the sums of
``dw`` run over each part's rows in float32, in one run: long ones drift; the backend
sends full batches to ``kernels/matmul.py``, which sums in blocks).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastnn.kernels.jit import parallel_kernel
from fastnn.kernels.matmul import _dots
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
        acc = partial[part]
        acc[:] = 0
        r = start
        while r + 4 <= stop:
            x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
            for k in range(units):
                e0, e1, e2, e3 = dz[r, k], dz[r + 1, k], dz[r + 2, k], dz[r + 3, k]
                a = acc[k]
                for c in range(width):
                    a[c] += (e0 * x0[c] + e1 * x1[c]) + (e2 * x2[c] + e3 * x3[c])
            r += 4
        while r < stop:
            row = x[r]
            for k in range(units):
                e = dz[r, k]
                a = acc[k]
                for c in range(width):
                    a[c] += e * row[c]
            r += 1
    for c in range(width):
        for k in range(units):
            total = partial[0, k, c]
            for part in range(1, parts):
                total += partial[part, k, c]
            dw[c, k] = total
