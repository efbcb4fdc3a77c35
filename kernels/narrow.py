"""The first layer's two products on compressed rows when the layer is narrow: at most
:data:`LANES` units (a 10-unit layer, as the ``scratch`` recipe's 784-10).

The wide kernels (``kernels/sparse.py``) vectorize along the units, which a 10-unit row
cannot fill: their loops over 10 entries ran scalar, 2-3x slower than BLAS's dense product
for full-batch MNIST. Here each row of units is a 16-lane tuple held in registers, padded
with zeros: a nonzero of the input costs one vector load and one fused multiply-add.

* :func:`matmul`: ``out (B, H) = X @ w`` with w's rows padded to 16 (``padded``, (F, 16));
  each output row is summed in two register tuples (even and odd nonzeros, two
  dependency chains instead of one) and written once.
* :func:`weight_gradient`: ``out (F, H) = X^T @ dz``: each thread adds ``value * dz[r]``
  (dz's row in registers) into its own (F, 16) accumulator, then the copies are summed.

The tuples are written out lane by lane (:func:`_load`, :func:`_fma`, :func:`_store`);
numba leaves LLVM's straight-line (SLP) vectorizer off by default, so these kernels are
compiled with it on (:func:`fastnn.kernels.jit.lanes_kernel`), which packs the 16 lanes
into vector instructions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from fastnn.kernels.jit import inline_kernel, lanes_kernel, parallel_kernel
from fastnn.kernels.sparse import sum_parts

#: lanes of a register row: one 64-byte vector of float32 (two of float64)
LANES = 16

Lanes = tuple[Any, ...]  # a 16-tuple of one float type


@inline_kernel
def _load(row: np.ndarray) -> Lanes:
    """The first 16 entries of ``row`` as a tuple (row holds at least 16)."""
    return (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
            row[8], row[9], row[10], row[11], row[12], row[13], row[14], row[15])  # fmt: skip


@inline_kernel
def _fma(acc: Lanes, v: Any, row: Any) -> Lanes:
    """``acc + v * row[:16]``; row an array or a tuple."""
    return (acc[0] + v * row[0], acc[1] + v * row[1], acc[2] + v * row[2],
            acc[3] + v * row[3], acc[4] + v * row[4], acc[5] + v * row[5],
            acc[6] + v * row[6], acc[7] + v * row[7], acc[8] + v * row[8],
            acc[9] + v * row[9], acc[10] + v * row[10], acc[11] + v * row[11],
            acc[12] + v * row[12], acc[13] + v * row[13], acc[14] + v * row[14],
            acc[15] + v * row[15])  # fmt: skip


@inline_kernel
def _store(row: np.ndarray, lanes: Lanes) -> None:
    """``row[:16] = lanes``."""
    row[0], row[1], row[2], row[3] = lanes[0], lanes[1], lanes[2], lanes[3]
    row[4], row[5], row[6], row[7] = lanes[4], lanes[5], lanes[6], lanes[7]
    row[8], row[9], row[10], row[11] = lanes[8], lanes[9], lanes[10], lanes[11]
    row[12], row[13], row[14], row[15] = lanes[12], lanes[13], lanes[14], lanes[15]


@inline_kernel
def _zeros(row: np.ndarray) -> Lanes:
    """16 zeros of ``row``'s type."""
    zero = row.dtype.type(0)
    return (zero, zero, zero, zero, zero, zero, zero, zero,
            zero, zero, zero, zero, zero, zero, zero, zero)  # fmt: skip


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
        last = rows_out[part]
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            even = _zeros(padded)
            odd = even
            k, stop = indptr[r], indptr[r + 1]
            while k + 2 <= stop:
                even = _fma(even, values[k], padded[indices[k]])
                odd = _fma(odd, values[k + 1], padded[indices[k + 1]])
                k += 2
            if k < stop:
                even = _fma(even, values[k], padded[indices[k]])
            _store(last, _fma(even, padded.dtype.type(1), odd))
            out[r] = last[:width]


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
            row[:width] = dz[r]
            d = _load(row)
            for k in range(indptr[r], indptr[r + 1]):
                target = acc[indices[k]]
                _store(target, _fma(_load(target), values[k], d))


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
