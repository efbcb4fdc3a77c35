"""The first layer's two products on compressed rows when the layer is narrow: at most
:data:`LANES` units (a 10-unit layer, as the ``scratch`` recipe's 784-10).

The wide kernels (``kernels/sparse.py``) vectorize along the units, which a 10-unit row
cannot fill: their loops over 10 entries ran scalar, 2-3x slower than BLAS's dense product
for full-batch MNIST. Here the rows of units are padded with zeros to 16 and handled in
halves of :data:`HALF` lanes, each an 8-tuple held in registers: a nonzero of the input
costs one vector load and one fused multiply-add a half, and a layer of at most 8 units
has only the first half.

Against one 16-lane tuple, measured on full-batch MNIST (60,000 rows, two threads, the
two kernels alternated 60 times in one process, median of the pairs' ratios): at most 8
units, the one half takes 0.63x the time forward and 0.60x in the weight gradient; 10
units, 0.96x and 0.88x; 16 units, 1.05x and 0.83x. (LLVM joins the two halves of a
gradient row back into one 64-byte vector; the gain there is the loops below.)

* :func:`matmul`: ``out (B, H) = X @ w`` with w's rows padded to 16 (``padded``, (F, 16));
  each half of an output row is summed in four register tuples (nonzeros k mod 4: four
  dependency chains, so a multiply-add need not wait for the one before) and written
  once (the kernel before had two chains).
* Both walk a row's entries as views from 0, which numba indexes without wrap-around
  checks, and copy rows lane by lane instead of by slices (each slice a view made and
  freed).
* :func:`weight_gradient`: ``out (F, H) = X^T @ dz``: each thread adds ``value * dz[r]``
  (dz's row in registers) into its own (F, 16) accumulator, then the copies are summed.

The tuples are written out lane by lane (:func:`_load`, :func:`_fma`, :func:`_store`);
numba leaves LLVM's straight-line (SLP) vectorizer off by default, so these kernels are
compiled with it on (:func:`fastnn.kernels.jit.lanes_kernel`), which packs the lanes
into vector instructions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from fastnn.kernels.jit import inline_kernel, lanes_kernel, parallel_kernel
from fastnn.kernels.sparse import sum_parts

#: the most units a narrow layer has: its rows padded to this many lanes
LANES = 16
#: lanes of a register tuple: one 32-byte vector of float32 (two of float64)
HALF = 8

Lanes = tuple[Any, ...]  # an 8-tuple of one float type


@inline_kernel
def _load(rows: np.ndarray, r: int, at: int) -> Lanes:
    """``rows[r, at:at + 8]`` as a tuple."""
    return (rows[r, at], rows[r, at + 1], rows[r, at + 2], rows[r, at + 3],
            rows[r, at + 4], rows[r, at + 5], rows[r, at + 6], rows[r, at + 7])  # fmt: skip


@inline_kernel
def _fma(acc: Lanes, v: Any, lanes: Lanes) -> Lanes:
    """``acc + v * lanes``."""
    return (acc[0] + v * lanes[0], acc[1] + v * lanes[1], acc[2] + v * lanes[2],
            acc[3] + v * lanes[3], acc[4] + v * lanes[4], acc[5] + v * lanes[5],
            acc[6] + v * lanes[6], acc[7] + v * lanes[7])  # fmt: skip


@inline_kernel
def _add(a: Lanes, b: Lanes) -> Lanes:
    """``a + b``."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3],
            a[4] + b[4], a[5] + b[5], a[6] + b[6], a[7] + b[7])  # fmt: skip


@inline_kernel
def _store(rows: np.ndarray, r: int, at: int, lanes: Lanes) -> None:
    """``rows[r, at:at + 8] = lanes``."""
    rows[r, at], rows[r, at + 1], rows[r, at + 2], rows[r, at + 3] = lanes[:4]
    rows[r, at + 4], rows[r, at + 5], rows[r, at + 6], rows[r, at + 7] = lanes[4:]


@inline_kernel
def _zeros(rows: np.ndarray) -> Lanes:
    """8 zeros of ``rows``' type."""
    zero = rows.dtype.type(0)
    return (zero, zero, zero, zero, zero, zero, zero, zero)


@inline_kernel
def halves(width: int) -> int:
    """How many halves of :data:`HALF` lanes hold ``width`` units (1 or 2)."""
    return 1 if width <= HALF else 2


@parallel_kernel
def pad(w: np.ndarray, padded: np.ndarray) -> None:
    """``padded (F, 16) = w (F, H)`` followed by zeros; H <= 16."""
    width = w.shape[1]
    for j in prange(w.shape[0]):
        row = padded[j]
        row[:] = 0
        row[:width] = w[j]


@lanes_kernel
def matmul(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    padded: np.ndarray,
    out: np.ndarray,
    rows_out: np.ndarray,
    parts: int,
) -> None:
    """``out (B, H) = X @ w``; X the CSR rows (B, F), ``padded`` (F, 16) w's rows and
    zeros (:func:`pad`); ``rows_out`` (parts, 16) scratch; rows split into ``parts``."""
    rows, width = out.shape
    for part in prange(parts):
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            start = indptr[r]
            count = indptr[r + 1] - start
            picks, scales = indices[start : start + count], values[start : start + count]
            for at in range(0, HALF * halves(width), HALF):
                a0 = _zeros(padded)
                a1, a2, a3 = a0, a0, a0
                k = 0
                while k + 4 <= count:
                    a0 = _fma(a0, scales[k], _load(padded, picks[k], at))
                    a1 = _fma(a1, scales[k + 1], _load(padded, picks[k + 1], at))
                    a2 = _fma(a2, scales[k + 2], _load(padded, picks[k + 2], at))
                    a3 = _fma(a3, scales[k + 3], _load(padded, picks[k + 3], at))
                    k += 4
                while k < count:
                    a0 = _fma(a0, scales[k], _load(padded, picks[k], at))
                    k += 1
                _store(rows_out, part, at, _add(_add(a0, a2), _add(a1, a3)))
            row, last = out[r], rows_out[part]
            for c in range(width):  # lane by lane: a slice copy costs a view a row
                row[c] = last[c]


@lanes_kernel
def _scatter(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    dz: np.ndarray,
    partial: np.ndarray,
    rows_in: np.ndarray,
) -> None:
    """``partial[p] (F, 16) = X[rows of part p]^T @ dz[those rows]`` (lanes past dz's
    width stay zero); ``rows_in`` (parts, 16) scratch; parts = ``len(partial)``."""
    rows, width = dz.shape
    parts = partial.shape[0]
    for part in prange(parts):
        acc = partial[part]
        acc[:] = 0
        row = rows_in[part]
        row[:] = 0
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            source = dz[r]
            for c in range(width):
                row[c] = source[c]
            start = indptr[r]
            count = indptr[r + 1] - start
            picks, scales = indices[start : start + count], values[start : start + count]
            d0, d1 = _load(rows_in, part, 0), _load(rows_in, part, HALF)
            if width <= HALF:
                for k in range(count):
                    j = picks[k]
                    _store(acc, j, 0, _fma(_load(acc, j, 0), scales[k], d0))
            else:
                for k in range(count):
                    j, v = picks[k], scales[k]
                    _store(acc, j, 0, _fma(_load(acc, j, 0), v, d0))
                    _store(acc, j, HALF, _fma(_load(acc, j, HALF), v, d1))


def weight_gradient(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    dz: np.ndarray,
    out: np.ndarray,
    partial: np.ndarray,
    rows_in: np.ndarray,
) -> None:
    """``out (F, H) = X^T @ dz``; X the CSR rows (B, F), dz (B, H), H <= 16; ``partial``
    (parts, F, 16) and ``rows_in`` (parts, 16) scratch, one of each a thread."""
    _scatter(indptr, indices, values, dz, partial, rows_in)
    sum_parts(partial, out)
