"""Batch normalization: column statistics, the normalizing pass, and the backward pass.

Every loop walks rows in the outer loop and columns in the inner one, so the inner
loop runs along contiguous memory and vectorizes, with per-column accumulators in
small arrays. x, dy, out (B, N); statistics, gamma, beta (N,).
"""

from __future__ import annotations

import numpy as np

from fastnn.kernels.jit import kernel, sum_kernel


@sum_kernel
def column_statistics(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> None:
    """Column means and biased variances of x, the variance from a second pass over
    ``x - mean`` (the one-pass ``E[x^2] - E[x]^2`` cancels away float32's digits)."""
    rows, cols = x.shape
    mean[:] = 0
    variance[:] = 0
    for i in range(rows):
        for j in range(cols):
            mean[j] += x[i, j]
    for j in range(cols):
        mean[j] /= rows
    for i in range(rows):
        for j in range(cols):
            d = x[i, j] - mean[j]
            variance[j] += d * d
    for j in range(cols):
        variance[j] /= rows


@kernel
def normalize(
    x: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    epsilon: float,
    out: np.ndarray,
) -> None:
    """``out = (x - mean) * gamma / sqrt(variance + epsilon) + beta``; may be in place on x."""
    rows, cols = x.shape
    scale = np.empty(cols, dtype=x.dtype)
    for j in range(cols):
        scale[j] = gamma[j] / np.sqrt(variance[j] + epsilon)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = (x[i, j] - mean[j]) * scale[j] + beta[j]


# Not a sum_kernel: its sums are per-column accumulators, which vectorize along the columns
# without reassociation (measured: the same time), and reassociation rewrote
# dy * ((x - mean) * inv_std) as (dy * inv_std) * (x - mean), whose first product
# underflows to 0 for a tiny dy: 0 * inf = NaN where NumPy gives inf (found by the property
# tests).
@kernel
def backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    gamma: np.ndarray,
    epsilon: float,
    dgamma: np.ndarray,
    dbeta: np.ndarray,
    out: np.ndarray,
) -> None:
    """Two passes: the column sums dbeta = sum(dy), dgamma = sum(dy * xhat); then
    ``dx = gamma * inv_std * (dy - dbeta / B - xhat * dgamma / B)``. May be in place on dy."""
    rows, cols = dy.shape
    inv_std = np.empty(cols, dtype=dy.dtype)
    for j in range(cols):
        inv_std[j] = 1 / np.sqrt(variance[j] + epsilon)
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(rows):
        for j in range(cols):
            g = dy[i, j]
            dbeta[j] += g
            dgamma[j] += g * ((x[i, j] - mean[j]) * inv_std[j])
    scale = np.empty(cols, dtype=dy.dtype)
    mean_dy = np.empty(cols, dtype=dy.dtype)
    mean_dy_xhat = np.empty(cols, dtype=dy.dtype)
    for j in range(cols):
        scale[j] = gamma[j] * inv_std[j]
        mean_dy[j] = dbeta[j] / rows
        mean_dy_xhat[j] = dgamma[j] / rows
    for i in range(rows):
        for j in range(cols):
            xhat = (x[i, j] - mean[j]) * inv_std[j]
            out[i, j] = scale[j] * (dy[i, j] - mean_dy[j] - xhat * mean_dy_xhat[j])


@kernel
def moving_average(
    average: np.ndarray, value: np.ndarray, momentum: float, one_minus_momentum: float
) -> None:
    """``average = momentum * average + (1 - momentum) * value``; 1-D. ``1 - momentum`` comes
    from the caller, rounded once (computed here in float32 it would carry the rounding of
    ``momentum``: 2e-4 relative for 0.9999)."""
    rest = one_minus_momentum
    for j in range(average.shape[0]):
        average[j] = momentum * average[j] + rest * value[j]
