"""Data sets and the small array helpers that prepare them for training."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from fastnn.config import make_rng, resolve_dtype
from fastnn.datasets import mnist
from fastnn.datasets.csv import load_csv
from fastnn.datasets.idx import read_idx
from fastnn.datasets.mnist import DatasetUnavailableError

__all__ = [
    "DatasetUnavailableError",
    "flatten",
    "load_csv",
    "mnist",
    "read_idx",
    "scale_pixels",
    "shuffle",
    "train_validation_split",
]

Split = tuple[np.ndarray, np.ndarray]


def flatten(x: npt.ArrayLike) -> np.ndarray:
    """Reshape ``(n, a, b, ...)`` to ``(n, a * b * ...)``, a view when the layout allows."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"x must have at least 2 dimensions (n, ...); received x with shape {x.shape}"
        )
    # Spelled out rather than -1, which cannot be inferred when n is 0.
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def scale_pixels(x: npt.ArrayLike, dtype: str | np.dtype | None = "float32") -> np.ndarray:
    """Map 8-bit pixel values to floats in [0, 1] (``x / 255``) as a new array of ``dtype``.

    ``dtype`` is float32 or float64; None means ``$FASTNN_DTYPE`` (float32 when unset).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise TypeError(f"x must hold numbers (pixel values); received x with dtype {x.dtype}")
    out = x.astype(resolve_dtype(dtype), copy=True)
    out /= 255  # in place on the copy, so no float64 temporary for float32 output
    return out


def shuffle(x: npt.ArrayLike, y: npt.ArrayLike, seed: int | None = None) -> Split:
    """Shuffle the rows of ``x`` and ``y`` with one shared permutation.

    Without ``seed`` the global seed of ``fastnn.config.set_random_seed`` applies, if set.
    """
    x, y = _pair(x, y)
    order = make_rng(seed).permutation(len(x))
    return x[order], y[order]


def train_validation_split(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    validation: float | np.integer[Any] | np.floating[Any],
    *,
    shuffle: bool = False,
    seed: int | None = None,
) -> tuple[Split, Split]:
    """Split off validation rows: ``(x_train, y_train), (x_val, y_val)``.

    ``validation`` is a fraction in (0, 1) or a row count in [1, n). Without ``shuffle`` the
    validation rows are the last ones, as with Keras's ``validation_split``.
    """
    x, y = _pair(x, y)
    n = len(x)
    count = _validation_rows(validation, n)
    if shuffle:
        order = make_rng(seed).permutation(n)
        x, y = x[order], y[order]
    split = n - count
    return (x[:split], y[:split]), (x[split:], y[split:])


def _validation_rows(validation: object, n: int) -> int:
    """The number of validation rows ``validation`` asks for out of ``n``."""
    expected = (
        f"validation must be a fraction in (0, 1) or a row count in [1, n) with n={n}; "
        f"received validation={validation!r}"
    )
    if isinstance(validation, bool | np.bool_):
        raise ValueError(expected)
    if isinstance(validation, numbers.Integral):
        if not 1 <= int(validation) < n:
            raise ValueError(expected)
        return int(validation)
    if isinstance(validation, numbers.Real) and 0 < float(validation) < 1:
        # Same rounding as Keras: the training part is int(n * (1 - fraction)).
        count = n - int(n * (1 - float(validation)))
        if not 1 <= count < n:
            raise ValueError(
                f"validation as a fraction of n={n} rows must give at least one validation row "
                f"and leave at least one training row; received validation={validation!r}"
            )
        return count
    raise ValueError(expected)


def _pair(x: npt.ArrayLike, y: npt.ArrayLike) -> Split:
    """``x`` and ``y`` as arrays of at least one dimension and equal length."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"x and y must be arrays of rows; received x with shape {x.shape}, "
            f"y with shape {y.shape}"
        )
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same number of rows; received len(x)={len(x)}, len(y)={len(y)}"
        )
    return x, y
