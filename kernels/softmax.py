"""Row-wise softmax and the fused losses: activation + loss + gradient in one kernel.

The rows of a classifier's output are short (10 classes), too short to vectorize
along. So each kernel works in sweeps over the whole batch: (1) subtract each
row's maximum into the output, (2) exponentiate the output as one flat array,
which LLVM vectorizes fully (see ``fastnn.kernels.exp``), (3) per row, sum, take
the loss and scale into probabilities or gradients (the row maximum is found
again there: 10 compares are cheaper than a buffer to keep it in). On (128, 10) and
(59000, 10) float32 this was faster than doing the three steps row by row (the
per-op figures of bench/results/ time the kernels as they are).

The output array (``out`` / ``grad``) must be C-contiguous, so step 2 can view it
flat; inputs may have any layout. Loss values are accumulated in float64.
A NaN in a row makes the whole row (and the loss) NaN, as in the NumPy reference.
"""

from __future__ import annotations

import math

import numpy as np

from fastnn.kernels.exp import exp_nonpositive
from fastnn.kernels.jit import kernel


@kernel
def _row_max(x: np.ndarray, i: int) -> float:
    """Largest entry of row i (NaNs are left to poison the row's sum later)."""
    top = x[i, 0]
    for j in range(1, x.shape[1]):
        v = x[i, j]
        top = v if v > top else top
    return top


@kernel
def _exp_of_shifted_rows(x: np.ndarray, out: np.ndarray) -> None:
    """``out = exp(x - rowmax(x))``; out C-contiguous (x may be out)."""
    rows, cols = x.shape
    for i in range(rows):
        top = _row_max(x, i)
        for j in range(cols):
            out[i, j] = x[i, j] - top
    flat = out.reshape(rows * cols)
    for k in range(rows * cols):
        flat[k] = exp_nonpositive(flat[k])


@kernel
def _row_sum(a: np.ndarray, i: int) -> float:
    total = a.dtype.type(0)
    for j in range(a.shape[1]):
        total += a[i, j]
    return total


@kernel
def softmax(x: np.ndarray, out: np.ndarray) -> None:
    """Row-wise softmax; x, out (B, K). Stable for large values (the max is subtracted)."""
    _exp_of_shifted_rows(x, out)
    for i in range(x.shape[0]):
        scale = 1 / _row_sum(out, i)
        for j in range(x.shape[1]):
            out[i, j] *= scale


@kernel
def softmax_backward(dy: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """``out = y * (dy - sum(dy * y))`` row by row; (B, K)."""
    for i in range(dy.shape[0]):
        dot = dy.dtype.type(0)
        for j in range(dy.shape[1]):
            dot += dy[i, j] * y[i, j]
        for j in range(dy.shape[1]):
            out[i, j] = y[i, j] * (dy[i, j] - dot)


@kernel
def _weight(weights: np.ndarray | None, i: int) -> float:
    """Row i's sample weight; 1 without weights (None: Numba compiles the kernel for it
    without this work)."""
    if weights is None:
        return 1.0
    return weights[i]


@kernel
def sparse_softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, grad: np.ndarray, weights: np.ndarray | None
) -> float:
    """Mean of ``-log softmax(logits)[label]`` and its gradient ``(p - onehot) / B`` into grad.

    logits, grad (B, K); labels (B,) integers in [0, K); grad must not alias logits.
    ``weights`` (B,), Keras's sample weights: each row's loss and gradient times its weight.
    """
    rows, cols = logits.shape
    for i in range(rows):
        if labels[i] < 0 or labels[i] >= cols:
            raise IndexError("label outside [0, number of classes)")
    _exp_of_shifted_rows(logits, grad)
    total = 0.0
    for i in range(rows):
        label = labels[i]
        weight = _weight(weights, i)
        row_scale = weight / rows
        sum_exp = _row_sum(grad, i)
        total += weight * (math.log(sum_exp) - (logits[i, label] - _row_max(logits, i)))
        scale = row_scale / sum_exp
        for j in range(cols):
            grad[i, j] *= scale
        grad[i, label] -= row_scale
    return total / rows


@kernel
def softmax_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, grad: np.ndarray, weights: np.ndarray | None
) -> float:
    """Mean of ``-sum(t * log softmax(z))`` and its gradient ``(p * sum(t) - t) / B``.

    logits, targets, grad (B, K); grad must not alias logits; weights as above.
    """
    rows, cols = logits.shape
    _exp_of_shifted_rows(logits, grad)
    total = 0.0
    for i in range(rows):
        weight = _weight(weights, i)
        row_scale = weight / rows
        row_total = 0.0
        sum_exp = _row_sum(grad, i)
        log_sum = math.log(sum_exp)
        top = _row_max(logits, i)
        mass = grad.dtype.type(0)
        for j in range(cols):
            t = targets[i, j]
            mass += t
            row_total += t * (log_sum - (logits[i, j] - top))
        total += weight * row_total
        scale = mass / sum_exp
        for j in range(cols):
            grad[i, j] = (grad[i, j] * scale - targets[i, j]) * row_scale
    return total / rows


@kernel
def sigmoid_binary_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, grad: np.ndarray, weights: np.ndarray | None
) -> float:
    """Mean over all entries of binary cross-entropy of ``sigmoid(z)``, and its gradient.

    Uses ``max(z, 0) - z t + log(1 + exp(-|z|))``, finite for any logit; weights as above.
    """
    rows, cols = logits.shape
    inv_count = 1.0 / (rows * cols)
    total = 0.0
    for i in range(rows):
        weight = _weight(weights, i)
        row_scale = weight * inv_count
        row_total = 0.0
        for j in range(cols):
            z = logits[i, j]
            t = targets[i, j]
            e = exp_nonpositive(-abs(z))
            row_total += max(z, 0) - z * t + math.log1p(e)
            probability = 1 / (1 + e) if z >= 0 else e / (1 + e)
            grad[i, j] = (probability - t) * row_scale
        total += weight * row_total
    return total * inv_count


@kernel
def mean_squared_error(
    predictions: np.ndarray, targets: np.ndarray, grad: np.ndarray, weights: np.ndarray | None
) -> float:
    """Mean over all entries of ``(p - t)**2``, and its gradient ``2 (p - t) / count``;
    weights as above."""
    rows, cols = predictions.shape
    total = 0.0
    for i in range(rows):
        weight = _weight(weights, i)
        scale = 2 * weight / (rows * cols)
        row_total = 0.0
        for j in range(cols):
            d = predictions[i, j] - targets[i, j]
            row_total += d * d
            grad[i, j] = d * scale
        total += weight * row_total
    return total / (rows * cols)
