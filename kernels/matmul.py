"""Matrix products: NumPy's BLAS, or Numba kernels of our own, chosen per shape.

Three loop orders cover ``op(a) @ op(b)`` without copying either operand:

* ``dots``  (NT): ``out[i, j] = a[i, :] . bt[j, :]``: both operands run along the
  reduction axis, so the inner loop is a vectorized dot product. Rows of ``out``
  come two at a time and columns four at a time: 8 accumulators share each load,
  which keeps the FMA units, not the loads, the limit.
* ``rank_updates`` (TN): ``out += a[r, :]^T b[r, :]`` for each row r of the
  operands, eight rows by two of ``out``'s columns at a time, so each store of
  ``out`` carries eight products and each load of ``a`` feeds two of them.
* ``row_combinations`` (NN): ``out[i, :] = sum_k a[i, k] b[k, :]``, vectorized
  along ``out``'s rows: the textbook blocked kernel for wide outputs.

Each has a parallel driver that splits the rows of ``out`` (or, for
``rank_updates``, the rows of the operands, summing per-thread partials) over
numba's thread pool. A product ``a @ b`` with a thin ``b`` (few columns) runs as
``dots`` against ``b``'s transpose, copied once (it is small).

Which path wins depends on the shape; :func:`choose` encodes the measurements
of ``bench/test_matmul.py`` on the 2-core target machine: BLAS (2 threads)
for every product with more than 32 output columns; our kernels for thin
products (at most 32 columns) with many rows, where BLAS's blocking for wide
outputs wastes most of its vector lanes.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import prange

from fastnn.kernels.jit import kernel, parallel_kernel, sum_kernel

#: reductions of rank updates are summed in blocks of this many terms, then the block
#: sums added: float32 sums over 59,000 terms drift past BLAS's rounding error otherwise
BLOCK = 256
#: dot products longer than this go to BLAS (our dots kernel sums them in one run)
MAX_DOT_DEPTH = 4096
#: tile of the wide-output kernel: 64 rows of b by 256 of its columns
TILE_DEPTH = 64
TILE_COLS = 256
#: products with more output columns than this always go to BLAS
THIN_COLUMNS = 32
#: and thin ones need at least this many multiply-adds to pay for our thread pool
OWN_KERNEL_MIN_WORK = 1 << 20


@sum_kernel
def _dots(a: np.ndarray, bt: np.ndarray, out: np.ndarray, row_start: int, row_stop: int) -> None:
    """``out[i, j] = a[i] . bt[j]`` for rows i in [row_start, row_stop); a (M, K), bt (N, K).

    Past the last row or column the clamped indices repeat it: the same values are
    computed twice and written to the same place, instead of a scalar tail loop.
    (Summing the reduction in blocks, as ``_rank_updates`` does, stopped LLVM from
    vectorizing this loop: 4 GMAC/s instead of 27; long reductions go to BLAS.)
    """
    depth = a.shape[1]
    cols = bt.shape[0]
    zero = out.dtype.type(0)
    i = row_start
    while i < row_stop:
        i1 = min(i + 1, row_stop - 1)
        a0 = a[i]
        a1 = a[i1]
        j = 0
        while j < cols:
            j1 = min(j + 1, cols - 1)
            j2 = min(j + 2, cols - 1)
            j3 = min(j + 3, cols - 1)
            b0 = bt[j]
            b1 = bt[j1]
            b2 = bt[j2]
            b3 = bt[j3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for k in range(depth):
                x0 = a0[k]
                x1 = a1[k]
                c0 = b0[k]
                c1 = b1[k]
                c2 = b2[k]
                c3 = b3[k]
                s00 += x0 * c0
                s01 += x0 * c1
                s02 += x0 * c2
                s03 += x0 * c3
                s10 += x1 * c0
                s11 += x1 * c1
                s12 += x1 * c2
                s13 += x1 * c3
            out[i, j] = s00
            out[i, j1] = s01
            out[i, j2] = s02
            out[i, j3] = s03
            out[i1, j] = s10
            out[i1, j1] = s11
            out[i1, j2] = s12
            out[i1, j3] = s13
            j += 4
        i += 2


@kernel
def _rank_updates(
    a: np.ndarray, b: np.ndarray, out_t: np.ndarray, row_start: int, row_stop: int
) -> None:
    """``out_t += b[r]^T a[r]`` for rows r in [row_start, row_stop): (a.T @ b) transposed.

    a (R, K), b (R, N), out_t (N, K): the inner loop runs along a's contiguous rows.
    Eight rows of ``a`` and two rows of ``out_t`` at a time: each load of ``a`` feeds
    two outputs and each store of ``out_t`` carries eight products, so the FMA units,
    not the loads and stores, set the pace (31 GMAC/s on one core against 16 with
    four rows and one output row).
    """
    cols_b = b.shape[1]
    width = a.shape[1]
    r = row_start
    while r + 8 <= row_stop:
        a0, a1, a2, a3 = a[r], a[r + 1], a[r + 2], a[r + 3]
        a4, a5, a6, a7 = a[r + 4], a[r + 5], a[r + 6], a[r + 7]
        for j in range(0, cols_b - 1, 2):
            c0, c1, c2, c3 = b[r, j], b[r + 1, j], b[r + 2, j], b[r + 3, j]
            c4, c5, c6, c7 = b[r + 4, j], b[r + 5, j], b[r + 6, j], b[r + 7, j]
            d0, d1, d2, d3 = b[r, j + 1], b[r + 1, j + 1], b[r + 2, j + 1], b[r + 3, j + 1]
            d4, d5, d6, d7 = b[r + 4, j + 1], b[r + 5, j + 1], b[r + 6, j + 1], b[r + 7, j + 1]
            first = out_t[j]
            second = out_t[j + 1]
            for k in range(width):
                x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
                x4, x5, x6, x7 = a4[k], a5[k], a6[k], a7[k]
                first[k] += (c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3) + (
                    c4 * x4 + c5 * x5 + c6 * x6 + c7 * x7
                )
                second[k] += (d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3) + (
                    d4 * x4 + d5 * x5 + d6 * x6 + d7 * x7
                )
        if cols_b % 2:  # the last, unpaired column
            j = cols_b - 1
            c0, c1, c2, c3 = b[r, j], b[r + 1, j], b[r + 2, j], b[r + 3, j]
            c4, c5, c6, c7 = b[r + 4, j], b[r + 5, j], b[r + 6, j], b[r + 7, j]
            last = out_t[j]
            for k in range(width):
                last[k] += (c0 * a0[k] + c1 * a1[k] + c2 * a2[k] + c3 * a3[k]) + (
                    c4 * a4[k] + c5 * a5[k] + c6 * a6[k] + c7 * a7[k]
                )
        r += 8
    while r < row_stop:
        row = a[r]
        for j in range(cols_b):
            c = b[r, j]
            target = out_t[j]
            for k in range(width):
                target[k] += c * row[k]
        r += 1


@kernel
def _blocked_rank_updates(
    a: np.ndarray,
    b: np.ndarray,
    total: np.ndarray,
    scratch: np.ndarray,
    row_start: int,
    row_stop: int,
) -> None:
    """``total += b[r]^T a[r]`` over the rows, summed BLOCK rows at a time into ``scratch``."""
    for start in range(row_start, row_stop, BLOCK):
        scratch[:, :] = 0
        _rank_updates(a, b, scratch, start, min(start + BLOCK, row_stop))
        total += scratch


@kernel
def _tiled_row_combinations(
    a: np.ndarray, b: np.ndarray, out: np.ndarray, row_start: int, row_stop: int
) -> None:
    """``out[i] = sum_k a[i, k] b[k]`` for rows i in [row_start, row_stop), tiled.

    A tile of TILE_DEPTH rows of ``b`` by TILE_COLS of its columns (64 KiB in float32)
    stays in the L2 cache while every row of the block sweeps over it.
    """
    depth = a.shape[1]
    cols = b.shape[1]
    for i in range(row_start, row_stop):
        out[i, :] = 0
    for k0 in range(0, depth, TILE_DEPTH):
        k1 = min(k0 + TILE_DEPTH, depth)
        for j0 in range(0, cols, TILE_COLS):
            j1 = min(j0 + TILE_COLS, cols)
            for i in range(row_start, row_stop):
                # slices, not out[i, j]: with two-index stores LLVM kept the loop scalar
                row = out[i, j0:j1]
                for k in range(k0, k1):
                    x = a[i, k]
                    b_row = b[k, j0:j1]
                    for j in range(j1 - j0):
                        row[j] += x * b_row[j]


# The drivers take the thread count as an argument: reading it inside a kernel
# (numba.get_num_threads) would keep numba from caching the compiled code.
@parallel_kernel
def parallel_dots(a: np.ndarray, bt: np.ndarray, out: np.ndarray, parts: int) -> None:
    """``out = a @ bt.T`` with the rows of out split in ``parts`` over the thread pool."""
    rows = a.shape[0]
    size = (rows + 2 * parts - 1) // (2 * parts) * 2  # even, so row pairs stay whole
    for part in prange(parts):
        _dots(a, bt, out, min(rows, part * size), min(rows, (part + 1) * size))


@parallel_kernel
def parallel_tiled_row_combinations(
    a: np.ndarray, b: np.ndarray, out: np.ndarray, parts: int
) -> None:
    """``out = a @ b`` with the rows of out split in ``parts`` over the thread pool."""
    rows = a.shape[0]
    size = (rows + parts - 1) // parts
    for part in prange(parts):
        _tiled_row_combinations(a, b, out, min(rows, part * size), min(rows, (part + 1) * size))


@parallel_kernel
def parallel_rank_updates(
    a: np.ndarray, b: np.ndarray, out_t: np.ndarray, partials: np.ndarray, scratch: np.ndarray
) -> None:
    """``out_t = (a.T @ b).T = b.T @ a``; each of the ``len(partials)`` parts sums its rows
    into its own partial (the caller provides partials and scratch, (parts, N, K) each)."""
    rows = a.shape[0]
    parts = partials.shape[0]
    size = (rows + parts - 1) // parts
    for part in prange(parts):
        start, stop = min(rows, part * size), min(rows, (part + 1) * size)
        partials[part] = 0
        _blocked_rank_updates(a, b, partials[part], scratch[part], start, stop)
    out_t[:, :] = partials[0]
    for part in range(1, parts):
        out_t += partials[part]


def choose(rows: int, depth: int, cols: int, transpose_a: bool, transpose_b: bool) -> str:
    """Which path computes an (rows x depth) @ (depth x cols) product: "blas" or "own".

    Thin products with enough work go to our kernels, even those whose inner loop
    is short (BLAS alone is faster on a 59000x10 @ 10x10): handing those few to BLAS
    in the middle of our parallel kernels woke BLAS's threads, which then fought ours
    for the cores, and a scratch step ran slower mixed than all ours or all BLAS
    (``bench/test_matmul.py`` times the paths).
    """
    if cols > THIN_COLUMNS or rows * depth * cols < OWN_KERNEL_MIN_WORK:
        return "blas"
    uses_dots = not (transpose_a and not transpose_b)
    if uses_dots and depth > MAX_DOT_DEPTH:
        return "blas"
    return "own"


def blas(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """NumPy's BLAS; ``a``, ``b`` already transposed as the product needs."""
    return np.matmul(a, b, out=out)


_scratch_arrays = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A buffer kept per thread for reuse, so repeated products allocate nothing."""
    arrays = _scratch_arrays.__dict__.setdefault("arrays", {})
    key = (name, shape, dtype.str)
    array = arrays.get(key)
    if array is None:
        array = arrays[key] = np.empty(shape, dtype=dtype)
    return array


def own(
    a: np.ndarray, b: np.ndarray, transpose_a: bool, transpose_b: bool, out: np.ndarray
) -> np.ndarray:
    """Our kernels: ``op(a) @ op(b)`` into a C-contiguous ``out``."""
    parts = numba.get_num_threads()
    rows, cols = out.shape
    if transpose_a and not transpose_b:  # a.T @ b: rank updates into out's transpose
        out_t = _scratch("out_t", (cols, rows), out.dtype)
        partials = _scratch("partials", (parts, cols, rows), out.dtype)
        blocks = _scratch("blocks", (parts, cols, rows), out.dtype)
        parallel_rank_updates(a, b, out_t, partials, blocks)
        out[...] = out_t.T
    elif transpose_b:  # op(a) @ b.T: dot products against b's rows
        parallel_dots(a.T if transpose_a else a, b, out, parts)
    elif cols <= THIN_COLUMNS:  # a @ thin b: dot products against b's transpose (small)
        bt = _scratch("bt", (cols, b.shape[0]), b.dtype)
        bt[...] = b.T
        parallel_dots(a, bt, out, parts)
    else:
        parallel_tiled_row_combinations(a, b, out, parts)
    return out


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    transpose_a: bool = False,
    transpose_b: bool = False,
    out: np.ndarray | None = None,
    path: str | None = None,
) -> np.ndarray:
    """``op(a) @ op(b)``: (M, K) @ (K, N) -> (M, N), by ``path`` or by :func:`choose`."""
    left = a.T if transpose_a else a
    right = b.T if transpose_b else b
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[0]:
        raise ValueError(f"matmul needs (M, K) @ (K, N); received {left.shape} @ {right.shape}")
    rows, depth = left.shape
    cols = right.shape[1]
    if out is not None and out.shape != (rows, cols):
        raise ValueError(f"out has shape {out.shape}; expected {(rows, cols)}")
    dtype_ok = a.dtype == b.dtype and a.dtype.kind == "f" and (out is None or out.dtype == a.dtype)
    chosen = path or choose(rows, depth, cols, transpose_a, transpose_b)
    if chosen == "blas" or not dtype_ok:
        return blas(left, right, out)
    # Our kernels read a and b while they write out: an out that shares memory with either
    # gets the product through a buffer, as NumPy gives it.
    overlaps = out is not None and (np.may_share_memory(out, a) or np.may_share_memory(out, b))
    if out is None or overlaps or not out.flags.c_contiguous:
        result = own(a, b, transpose_a, transpose_b, np.empty((rows, cols), dtype=a.dtype))
        if out is None:
            return result
        out[...] = result
        return out
    return own(a, b, transpose_a, transpose_b, out)
