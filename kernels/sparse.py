"""Compressed-row (CSR) inputs: compressing dense rows, gathering mini-batches, and the
first layer's two products with only the nonzeros.

A CSR matrix here is ``indptr`` (n + 1,) int64, ``indices`` (nnz,) uint16 or int32
column numbers, ``values`` (nnz,) floats; row r's entries are positions
``indptr[r]:indptr[r + 1]`` of the other two. ``indptr`` need not start at 0: a slice of
rows shares the whole ``indices`` and ``values`` (see ``fastnn/sparse.py``).

Both products stream the nonzeros against rows of the dense operand:

* ``matmul``: ``out (B, H) = X (B, F) @ W (F, H)``: each row of ``out`` is the sum of the
  rows of W its nonzeros pick, scaled by them, eight at a time (``combine_rows``), so
  each load and store of the output row carries eight products. W's rows come from L3
  (W is 1.6 MB for 784 x 512): blocking its columns so a block stays in L2 did not help
  (measured: 22.0 ms against 19.6 ms for 10,000 MNIST rows with 128-column blocks).
* ``weight_gradient``: ``out (F, H) = X^T @ dZ (B, H)``: X's entries sorted by column
  (a counting sort of the batch) are X^T in compressed rows, so ``matmul`` makes the
  product: each input column with a nonzero sums its rows of dZ (B x H: 256 KB for batch
  128, in L2); the columns with none get zero rows.
  ``weight_gradient_by_rows`` skips the sort when (F, H) is small: each thread adds
  ``value * dZ[r]`` into its own copy of ``out``, and the copies are summed.

Rows of ``out`` are split over numba's thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from fastnn.kernels.jit import kernel, parallel_kernel, unsigned


@parallel_kernel
def count_nonzeros(x: np.ndarray, counts: np.ndarray) -> None:
    """``counts[r]``: how many entries of ``x[r]`` are nonzero; x (n, F). NaN is nonzero."""
    for r in prange(x.shape[0]):
        row = x[r]
        count = 0
        for j in range(row.shape[0]):
            count += row[j] != 0
        counts[r] = count


@parallel_kernel
def compress(x: np.ndarray, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
    """x's nonzeros into ``indices`` and ``values``, row r at ``indptr[r]`` (the running
    sum of :func:`count_nonzeros`'s counts)."""
    for r in prange(x.shape[0]):
        row = x[r]
        k = unsigned(indptr[r])
        one = unsigned(1)
        for j in range(row.shape[0]):
            v = row[j]
            if v != 0:
                indices[k] = j
                values[k] = v
                k += one


@parallel_kernel
def take_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    out_indptr: np.ndarray,
    out_indices: np.ndarray,
    out_values: np.ndarray,
) -> None:
    """Rows ``rows`` (B,) of a CSR matrix into a CSR batch whose ``out_indptr`` (B + 1,)
    starts at 0; the out arrays must hold the batch's nonzeros (checked). Negative row
    numbers count from the end, as in NumPy; others out of range raise IndexError.

    The row pointers first (serial: B additions), then the rows' entries copied over the
    thread pool: each row is a read from somewhere in the data, which two threads wait
    for side by side. Positions are unsigned (:func:`~fastnn.kernels.jit.unsigned`), so
    the copy has no wrap-around checks: a 128-row MNIST batch took 7.5 us against 68 us
    (two threads, medians of 460 batches; one thread: 11 against 129 us)."""
    n = indptr.shape[0] - 1
    out_indptr[0] = 0
    for b in range(rows.shape[0]):
        r = rows[b]
        if r < 0:
            r += n
        if r < 0 or r >= n:
            raise IndexError("row index out of range")
        out_indptr[b + 1] = out_indptr[b] + (indptr[r + 1] - indptr[r])
    if out_indptr[rows.shape[0]] > out_values.shape[0]:
        raise IndexError("the batch's nonzeros do not fit its buffers")
    for b in prange(rows.shape[0]):
        r = rows[b]
        if r < 0:
            r += n
        start, k = unsigned(indptr[r]), unsigned(out_indptr[b])
        for i in range(unsigned(indptr[r + 1]) - start):
            out_indices[k + i] = indices[start + i]
            out_values[k + i] = values[start + i]


@kernel
def combine_rows(
    out: np.ndarray, src: np.ndarray, picks: np.ndarray, scales: np.ndarray, start: int, stop: int
) -> None:
    """``out (H,) = sum of scales[k] * src[picks[k]]`` for k in [start, stop); src (N, H).

    Eight rows at a time, so each load and store of ``out`` carries eight products.
    Loops run over row views from 0: with an offset whose sign numba cannot see, every
    index gets a wrap-around check and the loop does not vectorize (measured: 5x slower).
    """
    width = out.shape[0]
    for c in range(width):
        out[c] = 0
    k = start
    while k + 8 <= stop:
        s0, s1, s2, s3 = src[picks[k]], src[picks[k + 1]], src[picks[k + 2]], src[picks[k + 3]]
        s4, s5, s6, s7 = src[picks[k + 4]], src[picks[k + 5]], src[picks[k + 6]], src[picks[k + 7]]
        v0, v1, v2, v3 = scales[k], scales[k + 1], scales[k + 2], scales[k + 3]
        v4, v5, v6, v7 = scales[k + 4], scales[k + 5], scales[k + 6], scales[k + 7]
        for c in range(width):
            out[c] += (v0 * s0[c] + v1 * s1[c] + v2 * s2[c] + v3 * s3[c]) + (
                v4 * s4[c] + v5 * s5[c] + v6 * s6[c] + v7 * s7[c]
            )
        k += 8
    while k < stop:
        s0 = src[picks[k]]
        v0 = scales[k]
        for c in range(width):
            out[c] += v0 * s0[c]
        k += 1


@kernel
def run_start(indptr: np.ndarray, part: int, parts: int) -> int:
    """The first row of run ``part`` when the rows of ``indptr`` (n + 1,) are split into
    ``parts`` runs of about the same number of entries (``part == parts``: n). Split by
    row counts instead, MNIST's 784 columns put 53% of a batch's entries in the second
    half, and a thread waited for the other."""
    n = indptr.shape[0] - 1
    if part >= parts:
        return n
    target = indptr[0] + (indptr[n] - indptr[0]) * part // parts
    return min(n, int(np.searchsorted(indptr, target)))


@kernel
def bias_relu(row: np.ndarray, bias: np.ndarray, relu: bool) -> None:
    """``row (H,) = act(row + bias)`` in place, act ReLU or none; an empty ``bias`` adds
    nothing. The same operations, in the same order, as ``kernels/elementwise``'s
    ``bias_activation``, so the same results; NaN passes ReLU, as in np.maximum. One
    array read and written, not ``bias_activation(row, bias, row)``: LLVM cannot prove
    an ``out`` that is its input safe and runs such a loop scalar (24 us against 6 us
    on 128 x 512)."""
    zero = row.dtype.type(0)
    add = bias.shape[0] > 0
    for c in range(row.shape[0]):
        z = row[c] + bias[c] if add else row[c]
        if relu and not (z > zero or z != z):
            z = zero
        row[c] = z


@parallel_kernel
def matmul(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
    parts: int,
    bias: np.ndarray,
    relu: bool,
) -> None:
    """``out (B, H) = act(X @ w + bias)``; X the CSR rows (B, F), w (F, H) C-contiguous,
    bias (H,) or empty (none), act ReLU or none; the rows of ``out`` split into ``parts``
    runs of about the same number of entries (:func:`run_start`) over the thread pool.
    Each row gets its bias and activation while it is still in L1: a pass over ``out``
    less (in a `keras` training step, the separate pass over the 128 x 512 batch took
    about 25 us: the step's bias_activation time fell from 27 us to 2 us, layer 2's)."""
    finish = relu or bias.shape[0] > 0
    for part in prange(parts):
        for r in range(run_start(indptr, part, parts), run_start(indptr, part + 1, parts)):
            combine_rows(out[r], w, indices, values, indptr[r], indptr[r + 1])
            if finish:
                bias_relu(out[r], bias, relu)


@parallel_kernel
def by_column(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    starts: np.ndarray,
    rows_of: np.ndarray,
    values_of: np.ndarray,
    counts: np.ndarray,
) -> None:
    """The batch's entries sorted by column (a counting sort, stable in row order):
    column j's are ``rows_of[starts[j]:starts[j + 1]]`` with ``values_of`` alike.

    ``counts`` (parts, F) int64: the rows are split into that many runs over the thread
    pool; each run counts its entries per column, the serial pass turns the counts into
    where each run's entries of each column go (the runs in row order, so the sort stays
    stable), and each run then places its own. Unsigned positions, as in
    :func:`take_rows`: 33-38 us against 50-52 us a 128-row MNIST batch (one and two
    threads, medians of 300 batches)."""
    parts, columns = counts.shape
    rows = indptr.shape[0] - 1
    for part in prange(parts):
        count = counts[part]
        count[:] = 0
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            for k in range(unsigned(indptr[r]), unsigned(indptr[r + 1])):
                count[indices[k]] += 1
    total = 0
    for j in range(columns):
        starts[j] = total
        for part in range(parts):
            n = counts[part, j]
            counts[part, j] = total  # from here on: where the run's next entry goes
            total += n
    starts[columns] = total
    for part in prange(parts):
        fill = counts[part]
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            for k in range(unsigned(indptr[r]), unsigned(indptr[r + 1])):
                j = indices[k]
                at = unsigned(fill[j])
                rows_of[at] = r
                values_of[at] = values[k]
                fill[j] += 1


@parallel_kernel
def _scatter_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    dz: np.ndarray,
    partial: np.ndarray,
    parts: int,
) -> None:
    """``partial[p] (F, H) = X[rows of part p]^T @ dz[those rows]``; partial (parts, F, H).

    Each part adds ``value * dz[r]`` into the row of its own accumulator that the nonzero's
    column picks: no counting sort, but one (F, H) accumulator a part, so it pays only
    while F x H is small (rows of it stay in L1/L2)."""
    rows = dz.shape[0]
    for part in prange(parts):
        acc = partial[part]
        acc[:] = 0
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            d = dz[r]
            for k in range(unsigned(indptr[r]), unsigned(indptr[r + 1])):
                v = values[k]
                a = acc[indices[k]]
                for c in range(d.shape[0]):
                    a[c] += v * d[c]


@parallel_kernel
def sum_parts(partial: np.ndarray, out: np.ndarray) -> None:
    """``out (F, H) = partial.sum(axis=0)[:, :H]``; partial (parts, F, H or more: the
    narrow kernels' rows are padded); rows over the pool."""
    width = out.shape[1]
    for j in prange(out.shape[0]):
        o = out[j]
        o[:] = partial[0, j, :width]
        for p in range(1, partial.shape[0]):
            q = partial[p, j]
            for c in range(width):
                o[c] += q[c]


def weight_gradient_by_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    dz: np.ndarray,
    out: np.ndarray,
    partial: np.ndarray,
) -> None:
    """``out (F, H) = X^T @ dz`` by streaming X's rows into ``partial`` (parts, F, H)
    accumulators (one a thread), then summing them; with one part, into ``out`` itself."""
    if partial.shape[0] == 1:
        _scatter_rows(indptr, indices, values, dz, out[np.newaxis], 1)
        return
    _scatter_rows(indptr, indices, values, dz, partial, partial.shape[0])
    sum_parts(partial, out)


def weight_gradient(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    dz: np.ndarray,
    out: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    parts: int,
) -> None:
    """``out (F, H) = X^T @ dz``; X the CSR rows (B, F), dz (B, H). ``scratch``: starts
    (F + 1,) int64, rows (int64) and values (X's dtype) for at least X's nonzeros, and
    the sort's counts (runs, F) int64 (:func:`by_column`)."""
    starts, rows_of, values_of, counts = scratch
    by_column(indptr, indices, values, starts, rows_of, values_of, counts)
    # sorted by column, the batch is X^T in compressed rows: X^T @ dz is the forward product
    matmul(starts, rows_of, values_of, dz, out, parts, dz.reshape(-1)[:0], False)
