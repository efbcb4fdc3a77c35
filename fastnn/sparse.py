"""Inputs that are mostly zeros, kept and trained on as compressed rows.

MNIST is 81% zeros; bag-of-words, one-hot and binned features are sparser still. The
first Dense layer's two products (the forward one and its weight gradient) are most of
a small network's work, and with a compressed batch they multiply only the nonzeros.

``fit`` / ``evaluate`` / ``predict`` take ``sparse_inputs`` (or ``$FASTNN_SPARSE``):

* ``"auto"`` (default): compress when the backend has sparse kernels, the first layer is
  Dense and of a width they serve well (``Backend.sparse_min_units`` or more, or
  ``sparse_narrow_units`` or fewer), and the data's share of nonzeros (measured on a
  sample of rows) is below the backend's crossover (``Backend.sparse_crossover``,
  measured by ``python -m bench.sparse``);
* ``True`` / ``"on"``: compress whenever the first layer is Dense and the backend can;
* ``False`` / ``"off"``: never (a ``scipy.sparse`` input is then expanded to dense).

A ``scipy.sparse`` matrix is always accepted as ``x``; it is converted once to compressed
rows (on backends without sparse kernels, to a dense array).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.validation import check_sample_shape, shown

ENV_VAR = "FASTNN_SPARSE"
#: the settings, as the environment spells them; the argument also takes True / False
SETTINGS = ("auto", "on", "off")
#: rows sampled to measure a data set's density: blocks of SAMPLE_BLOCK rows, evenly
#: spaced over it (contiguous blocks count 4x faster than a strided view of the rows)
SAMPLE_ROWS = 2048
SAMPLE_BLOCK = 64
#: rows compressed at a time: bounds the temporary masks to a few MB
CHUNK_ROWS = 4096


@dataclass(frozen=True)
class SparseRows:
    """Rows (n, width) in compressed-row form, on a backend.

    ``indptr`` (n + 1,) int64 are positions in ``indices`` (column numbers, uint16 when
    the width allows, else int32) and ``values``: row r holds
    ``indptr[r]:indptr[r + 1]``. Positions are absolute, so ``rows[a:b]`` is a view
    sharing ``indices`` and ``values`` (``indptr[0]`` need not be 0).
    """

    indptr: Any
    indices: Any
    values: Any
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.indptr) - 1, self.width)

    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.values.dtype)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, rows: slice) -> SparseRows:
        """Rows ``start:stop`` (step 1) as a view."""
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise IndexError(f"compressed rows take slices of step 1; received step {step}")
        stop = max(start, stop)
        return SparseRows(self.indptr[start : stop + 1], self.indices, self.values, self.width)

    def most_per_row(self) -> int:
        """The most nonzeros any row has (host arrays only)."""
        return int(np.diff(self.indptr).max()) if len(self) else 0

    def to_dense(self) -> np.ndarray:
        """The rows written out as a dense (n, width) array (host arrays only)."""
        dense = np.zeros(self.shape, dtype=self.dtype)
        first = int(self.indptr[0])
        counts = np.diff(self.indptr)
        rows = np.repeat(np.arange(len(self)), counts)
        stop = first + len(rows)
        dense[rows, self.indices[first:stop]] = self.values[first:stop]
        return dense


def index_dtype(width: int) -> np.dtype:
    """The narrowest index type for column numbers below ``width``."""
    return np.dtype(np.uint16 if width <= 1 << 16 else np.int32)


def check_sparse_inputs(value: object, name: str = "sparse_inputs") -> str:
    """``value`` as "auto", "on" or "off" (True, False and those strings)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and value.strip().lower() in SETTINGS:
        return value.strip().lower()
    allowed = "'auto', 'on' or 'off'" if name == ENV_VAR else "'auto', True or False ('on' / 'off')"
    raise ValueError(f"{name} must be {allowed}; received {name}={shown(value)}")


def resolve_sparse(value: object = None) -> str:
    """The setting in force: ``value`` unless None, else ``$FASTNN_SPARSE``, else auto."""
    if value is not None:
        return check_sparse_inputs(value)
    text = os.environ.get(ENV_VAR, "").strip()
    return check_sparse_inputs(text, ENV_VAR) if text else "auto"


def is_scipy_sparse(value: object) -> bool:
    """Whether ``value`` is a scipy.sparse matrix or array (without importing scipy)."""
    return type(value).__module__.startswith("scipy.sparse") and hasattr(value, "tocsr")


def density(x: np.ndarray) -> float:
    """The share of nonzero entries, from up to :data:`SAMPLE_ROWS` rows: all of them for
    a small ``x``, else evenly spaced blocks of :data:`SAMPLE_BLOCK` rows."""
    if len(x) <= SAMPLE_ROWS:
        return float(np.count_nonzero(x)) / max(x.size, 1)
    starts = np.linspace(0, len(x) - SAMPLE_BLOCK, SAMPLE_ROWS // SAMPLE_BLOCK).astype(np.int64)
    nonzeros = sum(np.count_nonzero(x[start : start + SAMPLE_BLOCK]) for start in starts)
    return float(nonzeros) / max(len(starts) * SAMPLE_BLOCK * (x.size // len(x)), 1)


def compress(x: np.ndarray) -> SparseRows:
    """Dense rows (n, width) as compressed rows on the host; NaN and inf are kept (they
    are nonzero). Works through :data:`CHUNK_ROWS` rows at a time."""
    rows = x.reshape(len(x), math.prod(x.shape[1:]))  # -1 cannot say it for 0 rows
    counts = np.empty(len(rows), np.int64)
    for start in range(0, len(rows), CHUNK_ROWS):
        counts[start : start + CHUNK_ROWS] = np.count_nonzero(
            rows[start : start + CHUNK_ROWS], axis=1
        )
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), index_dtype(rows.shape[1]))
    values = np.empty(int(indptr[-1]), rows.dtype)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        _, columns = np.nonzero(chunk)  # row-major: row after row, columns ascending
        first, last = indptr[start], indptr[start + len(chunk)]
        indices[first:last] = columns
        values[first:last] = chunk[chunk != 0]
    return SparseRows(indptr, indices, values, rows.shape[1])


def from_scipy(name: str, value: Any, width: int | None, dtype: np.dtype) -> SparseRows:
    """A scipy.sparse matrix as compressed rows of ``dtype``: duplicates summed, columns
    sorted, explicit zeros dropped; refused (one line) when empty, of the wrong width or
    not finite, as a dense ``x`` would be."""
    matrix = value.tocsr(copy=True)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty sparse matrix of shape (n_samples, n_features); "
            f"received shape {matrix.shape}"
        )
    check_sample_shape(name, (matrix.shape[1],), None if width is None else (width,))
    if matrix.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); received a sparse matrix "
            f"of dtype {matrix.dtype}"
        )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    values = np.asarray(matrix.data, dtype=dtype)
    if not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); clean or impute them before training"
        )
    return SparseRows(
        np.asarray(matrix.indptr, np.int64),
        np.asarray(matrix.indices, index_dtype(matrix.shape[1])),
        values,
        int(matrix.shape[1]),
    )
