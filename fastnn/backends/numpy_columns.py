"""The NumPy backend's compressed-row products: BLAS over only the columns a batch uses.

A batch of compressed rows X (B, F) touches the input columns that hold a nonzero in
any of its rows: on MNIST about 528 of the 784 pixels for 128 images. Written out
dense over just those k columns, X is a block (B, k) over a quarter of whose entries
are nonzero, and BLAS multiplies it with the k rows of W faster than scipy's products,
which take one nonzero at a time (see BLOCK_DENSITY). The other F - k rows of the
weight gradient are exactly 0, so an update that leaves a zero gradient row alone
(SGD, and RMSprop but for its velocity's decay) touches only k rows.

Where the block would be sparser than that threshold (random sparse data, bag-of-words,
one-hot), scipy's products do less work, and the backend uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastnn.sparse import SparseRows

#: the share of a block's entries that must be nonzero for BLAS on it to beat scipy's
#: products on the compressed rows. Measured in whole `keras` epochs on compressed random
#: rows (2-core EPYC), blocks against scipy: 1.41x at 5% nonzeros, 0.99x at 10%, 0.89x
#: at 15%, 0.71x at 20%; on MNIST (19%, a block of about 528 columns) 0.65x.
BLOCK_DENSITY = 0.1


@dataclass(frozen=True)
class ColumnBlock:
    """X's rows over the columns they use: ``columns`` (k,) ascending, and ``block``
    (B, k) dense with ``block[:, i] == X[:, columns[i]]``."""

    columns: np.ndarray
    block: np.ndarray


def used_columns(x: SparseRows) -> tuple[np.ndarray, np.ndarray]:
    """The columns (k,) with a nonzero in ``x``, ascending, and each entry's place
    among them (nnz,), counted in one pass over the entries (no sort)."""
    first, last = int(x.indptr[0]), int(x.indptr[-1])
    indices = x.indices[first:last]  # (nnz,)
    used = np.zeros(x.width, np.bool_)
    used[indices] = True
    place = np.cumsum(used, dtype=np.int64) - 1  # (F,) a used column's place
    return np.flatnonzero(used), place[indices]


def column_block(x: SparseRows, dtype: np.dtype) -> ColumnBlock | None:
    """``x`` written out dense over its used columns, or None where fewer than
    BLOCK_DENSITY of that block's entries would be nonzero."""
    columns, places = used_columns(x)
    rows, width = len(x), len(columns)
    if len(places) < BLOCK_DENSITY * rows * width:
        return None
    block = np.zeros((rows, width), dtype)  # (B, k)
    row_starts = np.repeat(np.arange(rows) * width, np.diff(x.indptr))  # (nnz,)
    first = int(x.indptr[0])
    # one flat scatter: NumPy's two-index assignment is several times slower
    block.ravel()[row_starts + places] = x.values[first : first + len(places)]
    return ColumnBlock(columns, block)


def lazy_rmsprop_rows(
    param: np.ndarray,
    velocity: np.ndarray,
    stamps: np.ndarray,
    rows: np.ndarray,
    grad: np.ndarray,
    step: int,
    learning_rate: float,
    rho: float,
    epsilon: float,
) -> None:
    """RMSprop's step ``step`` on rows ``rows`` (k,) of ``param`` and ``velocity``
    (F, H) from their gradient ``grad`` (k, H); every other row has a zero gradient.

    ``stamps`` (F,) int64: the step each velocity row is current at. A row missed the
    steps since, each of which was ``v = rho * v``: they are applied first, as one
    ``rho ** missed`` (exact up to rounding), then the step itself, as the dense update
    (:meth:`NumpyBackend.rmsprop_update`) writes it.
    """
    missed = step - stamps[rows]  # (k,) the steps since each row was current, this one too
    v = velocity[rows]  # (k, H), a copy
    v *= (rho ** missed.astype(np.float64)).astype(v.dtype)[:, None]
    term = np.multiply(grad, grad)  # (k, H), reused below: each pass over it is one
    term *= 1.0 - rho
    v += term
    velocity[rows] = v
    stamps[rows] = step
    np.add(v, epsilon, out=term)
    np.sqrt(term, out=term)
    np.divide(grad, term, out=term)
    term *= learning_rate
    param[rows] -= term


def settle(velocity: np.ndarray, stamps: np.ndarray, step: int, rho: float) -> None:
    """Every row of ``velocity`` (F, H) brought to step ``step``: row j times
    ``rho ** (step - stamps[j])``."""
    missed = step - stamps  # (F,)
    velocity *= (rho ** missed.astype(np.float64)).astype(velocity.dtype)[:, None]
    stamps[...] = step
