"""Row-wise data movement and reductions: the mini-batch gather, column sums, argmax,
the accuracy counts and the confusion matrix."""

from __future__ import annotations

import numpy as np

from fastnn.kernels.jit import kernel, unsigned


@kernel
def take_rows(x: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None:
    """``out[r] = x[indices[r]]``; x (N, F), indices (B,), out (B, F). Indices are checked."""
    n = x.shape[0]
    for r in range(indices.shape[0]):
        source = indices[r]
        if source < 0:  # negative indices count from the end, as in NumPy
            source += n
        if source < 0 or source >= n:
            raise IndexError("row index out of range")
        for j in range(x.shape[1]):
            out[r, j] = x[source, j]


@kernel
def next_batch(order: np.ndarray, cursor: np.ndarray, batch_size: int, picks: np.ndarray) -> None:
    """``picks (B,)`` = the rows of batch ``i = cursor[0]`` of a pass in ``order`` (n,):
    ``order[i * batch_size :][:B]``; then ``cursor[0] += 1`` (cursor uint64)."""
    start = np.int64(cursor[0]) * batch_size
    if start < 0 or start + picks.shape[0] > order.shape[0]:
        raise IndexError("the pass's order has no rows left for this batch")
    for i in range(picks.shape[0]):
        picks[i] = order[start + i]
    cursor[0] = cursor[0] + unsigned(1)


@kernel
def sum_rows(x: np.ndarray, out: np.ndarray) -> None:
    """``out = x.sum(axis=0)``: (B, N) -> (N,), the bias gradient.

    Rows are added one after another into ``out`` so the inner loop runs along
    contiguous memory and vectorizes.
    """
    rows, cols = x.shape
    for j in range(cols):
        out[j] = 0
    for i in range(rows):
        for j in range(cols):
            out[j] += x[i, j]


@kernel
def _argmax_row(x: np.ndarray, i: int) -> int:
    """Index of the first largest entry of row i (of the first NaN, if any: as np.argmax)."""
    best = 0
    top = x[i, 0]
    if top != top:
        return 0
    for j in range(1, x.shape[1]):
        v = x[i, j]
        if v != v:
            return j
        if v > top:
            top = v
            best = j
    return best


@kernel
def argmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = argmax(x[i])``; x (B, K), out (B,) integers."""
    for i in range(x.shape[0]):
        out[i] = _argmax_row(x, i)


@kernel
def count_argmax_matches(scores: np.ndarray, labels: np.ndarray) -> int:
    """How many rows of scores (B, K) have their largest entry at ``labels[i]``."""
    count = 0
    for i in range(scores.shape[0]):
        if _argmax_row(scores, i) == labels[i]:
            count += 1
    return count


@kernel
def count_threshold_matches(scores: np.ndarray, targets: np.ndarray, threshold: float) -> int:
    """How many entries have ``(scores > threshold) == targets``; (B, K) each."""
    count = 0
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            predicted = 1.0 if scores[i, j] > threshold else 0.0
            if predicted == targets[i, j]:
                count += 1
    return count


@kernel
def confusion_argmax(scores: np.ndarray, labels: np.ndarray, matrix: np.ndarray) -> None:
    """``matrix[labels[i], argmax(scores[i])] += 1``; scores (B, K), matrix (K, K)."""
    classes = matrix.shape[0]
    for i in range(scores.shape[0]):
        label = labels[i]
        if label < 0 or label >= classes:  # an index past the matrix would corrupt memory
            raise IndexError("label out of range")
        matrix[label, _argmax_row(scores, i)] += 1


@kernel
def confusion_threshold(
    scores: np.ndarray, targets: np.ndarray, threshold: float, matrix: np.ndarray
) -> None:
    """``matrix[target > 0.5, score > threshold] += 1`` over every entry; (B, K), matrix (2, 2)."""
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            predicted = 1 if scores[i, j] > threshold else 0
            true = 1 if targets[i, j] > 0.5 else 0
            matrix[true, predicted] += 1
