"""A training step's loss call in one kernel launch: the last layer's bias, the fused
softmax loss and its gradient, the bias's gradient, the accuracy count and the pass's
totals.

The same kernels, in the same order, as ``Backend.loss_and_gradient`` composes them
(``elementwise`` bias add, ``softmax``'s loss, ``rows``' column sums and count), so the
same numbers. One launch instead of four plus Python: the step's loss value and count
never come back to Python, which lets a replayed step (``fastnn/backends/replay.py``)
run this kernel alone.

Optional arrays are None where not wanted: Numba compiles a version of the kernel for
None in which that work is gone.
"""

from __future__ import annotations

import math

import numpy as np

from fastnn.kernels.jit import kernel
from fastnn.kernels.rows import count_argmax_matches, count_threshold_matches, sum_rows
from fastnn.kernels.softmax import softmax_cross_entropy, sparse_softmax_cross_entropy

# The totals' layout: fastnn/backends/base.py's TOTALS_START (a test checks they agree).
LOSS_SUM, CORRECT, STEPS, FIRST_BAD_STEP, FIRST_BAD_LOSS, LAST_LOSS = range(6)


@kernel
def add_to_totals(totals: np.ndarray, value: float, rows: int, correct: float) -> None:
    """One step added to the pass's ``totals`` (float64): its loss ``value`` over ``rows``
    rows and its ``correct`` count; the first non-finite loss and its step are kept."""
    if not math.isfinite(value) and totals[FIRST_BAD_STEP] < 0:
        totals[FIRST_BAD_STEP] = totals[STEPS]
        totals[FIRST_BAD_LOSS] = value
    totals[LOSS_SUM] += value * rows
    totals[CORRECT] += correct
    totals[STEPS] += 1
    totals[LAST_LOSS] = value


@kernel
def _add_bias(outputs: np.ndarray, bias: np.ndarray | None) -> None:
    """``outputs (B, K) += bias (K,)`` in place; nothing for None."""
    if bias is None:
        return
    for i in range(outputs.shape[0]):
        row = outputs[i]
        for j in range(row.shape[0]):
            row[j] = row[j] + bias[j]


@kernel
def _finish(
    outputs: np.ndarray,
    grad: np.ndarray,
    bias_grad: np.ndarray | None,
    totals: np.ndarray,
    value: float,
    labels: np.ndarray | None,
    targets: np.ndarray | None,
    threshold: float,
) -> None:
    """The bias gradient, the count (argmax against ``labels`` (B,), or ``outputs`` on
    the side of ``threshold`` their 0/1 ``targets`` (B, K) name, or none) and the totals."""
    if bias_grad is not None:
        sum_rows(grad, bias_grad)
    correct = 0
    if labels is not None:
        correct = count_argmax_matches(outputs, labels)
    if targets is not None:
        correct = count_threshold_matches(outputs, targets, threshold)
    add_to_totals(totals, value, outputs.shape[0], float(correct))


@kernel
def sparse_softmax_cross_entropy_step(
    logits: np.ndarray,
    labels: np.ndarray,
    grad: np.ndarray,
    weights: np.ndarray | None,
    bias: np.ndarray | None,
    bias_grad: np.ndarray | None,
    totals: np.ndarray,
    count_labels: np.ndarray | None,
    count_targets: np.ndarray | None,
    threshold: float,
) -> float:
    """``softmax``'s :func:`sparse_softmax_cross_entropy` of ``logits + bias`` (B, K) (the
    bias added in place) into ``grad``, then :func:`_finish`; returns the mean loss."""
    _add_bias(logits, bias)
    value = sparse_softmax_cross_entropy(logits, labels, grad, weights)
    _finish(logits, grad, bias_grad, totals, value, count_labels, count_targets, threshold)
    return value


@kernel
def softmax_cross_entropy_step(
    logits: np.ndarray,
    targets: np.ndarray,
    grad: np.ndarray,
    weights: np.ndarray | None,
    bias: np.ndarray | None,
    bias_grad: np.ndarray | None,
    totals: np.ndarray,
    count_labels: np.ndarray | None,
    count_targets: np.ndarray | None,
    threshold: float,
) -> float:
    """As :func:`sparse_softmax_cross_entropy_step`, with (B, K) ``targets``."""
    _add_bias(logits, bias)
    value = softmax_cross_entropy(logits, targets, grad, weights)
    _finish(logits, grad, bias_grad, totals, value, count_labels, count_targets, threshold)
    return value
