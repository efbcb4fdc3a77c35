"""Elementwise kernels: bias + activation fused, and the activations' backward passes.

Every kernel loops over a 2-D ``(rows, cols)`` index space, so one source serves
contiguous arrays (where LLVM vectorizes the inner loop) and strided views alike.
``out`` may be the same array as an input: each entry is read before it is written.

Tanh forward stays with NumPy: numba calls libm's ``tanh`` one element at a time
(this llvmlite build has no SIMD math library), far slower than NumPy's SIMD
``tanh``; and ``tanh`` through ``exp`` loses relative precision near 0.
Sigmoid only needs ``exp(-|z|)``, which :mod:`fastnn.kernels.exp` vectorizes.
"""

from __future__ import annotations

import numpy as np

from fastnn.kernels.exp import exp_nonpositive
from fastnn.kernels.jit import kernel

#: activation codes of :func:`bias_activation`
LINEAR = 0
RELU = 1
SIGMOID = 2


@kernel
def _sigmoid(z: float) -> float:
    """``1 / (1 + exp(-z))`` with a denominator >= 1 whatever the sign of z."""
    e = exp_nonpositive(-abs(z))
    return 1 / (1 + e) if z >= 0 else e / (1 + e)


@kernel
def bias_activation(x: np.ndarray, bias: np.ndarray, out: np.ndarray, activation: int) -> None:
    """``out = act(x + bias)`` in one pass; x, out (B, N), bias (N,); act LINEAR/RELU/SIGMOID."""
    rows, cols = x.shape
    zero = x.dtype.type(0)
    for i in range(rows):
        for j in range(cols):
            z = x[i, j] + bias[j]
            if activation == RELU and not (z > zero or z != z):  # NaN passes, as in np.maximum
                z = zero
            elif activation == SIGMOID:
                z = _sigmoid(z)
            out[i, j] = z


@kernel
def relu(x: np.ndarray, out: np.ndarray) -> None:
    """``out = max(x, 0)``; (B, N)."""
    rows, cols = x.shape
    zero = x.dtype.type(0)
    for i in range(rows):
        for j in range(cols):
            z = x[i, j]
            out[i, j] = z if z > zero or z != z else zero  # NaN passes, as in np.maximum


@kernel
def sigmoid(x: np.ndarray, out: np.ndarray) -> None:
    """``out = 1 / (1 + exp(-x))``; (B, N)."""
    rows, cols = x.shape
    for i in range(rows):
        for j in range(cols):
            out[i, j] = _sigmoid(x[i, j])


@kernel
def relu_backward(dy: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """``out = dy * (y > 0)``: the gradient through ReLU from its output; (B, N)."""
    rows, cols = dy.shape
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    for i in range(rows):
        for j in range(cols):
            # a product, not a select, so NaN/inf in dy propagate exactly as in the reference
            out[i, j] = dy[i, j] * (one if y[i, j] > zero else zero)


@kernel
def relu_backward_sums(g: np.ndarray, y: np.ndarray, sums: np.ndarray) -> None:
    """``g = g * (y > 0)`` in place, as :func:`relu_backward` with ``out`` its ``dy``, and
    ``sums (N,) = g.sum(axis=0)`` (a Dense layer's bias gradient); g, y (B, N).

    Row by row, the sums from the row just written (in L1), added in row order as
    ``kernels/rows.sum_rows`` adds them: the same sums without a second pass over g.
    In place because out-of-place with ``out`` the same array as ``dy`` fails LLVM's
    overlap check and runs scalar (measured on 128 x 512: 29-38 us against 9-10 us)."""
    rows, cols = g.shape
    one, zero = g.dtype.type(1), g.dtype.type(0)
    for j in range(cols):
        sums[j] = 0
    for i in range(rows):
        for j in range(cols):
            g[i, j] *= one if y[i, j] > zero else zero
        for j in range(cols):
            sums[j] += g[i, j]


@kernel
def sigmoid_backward(dy: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """``out = dy * y * (1 - y)``; (B, N). In y's precision, as the reference: an int 1
    would promote float32 to float64, where y * (1 - y) need not overflow as it does there."""
    rows, cols = dy.shape
    one = y.dtype.type(1)
    for i in range(rows):
        for j in range(cols):
            s = y[i, j]
            out[i, j] = dy[i, j] * (s * (one - s))


@kernel
def tanh_backward(dy: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """``out = dy * (1 - y**2)``; (B, N), in y's precision (see sigmoid_backward)."""
    rows, cols = dy.shape
    one = y.dtype.type(1)
    for i in range(rows):
        for j in range(cols):
            t = y[i, j]
            out[i, j] = dy[i, j] * (one - t * t)
