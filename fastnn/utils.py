"""Keras's array utilities: ``to_categorical`` and ``normalize``, on NumPy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.validation import as_numbers, check_int, shown


def to_categorical(x: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """Class numbers as one-hot rows: labels (n,) -> (n, num_classes), as Keras does
    (a trailing axis of length 1 is dropped first: (n, 1) -> (n, num_classes)).

    ``num_classes`` defaults to the largest label + 1; labels must be whole numbers in
    [0, num_classes).
    """
    labels = as_numbers("x", x)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    whole = labels.dtype.kind != "f" or bool(
        np.isfinite(labels).all() and (labels == np.round(labels)).all()
    )
    if not whole:
        raise ValueError("x must hold whole class numbers; received fractional, NaN or inf values")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"x must hold class numbers >= 0; received {int(labels.min())}")
    highest = int(labels.max()) if labels.size else -1
    classes = highest + 1 if num_classes is None else check_int("num_classes", num_classes, 1)
    if highest >= classes:
        raise ValueError(
            f"x holds class {highest}, which num_classes={classes} cannot encode "
            f"(classes are 0..{classes - 1})"
        )
    out = np.zeros((*labels.shape, classes), dtype=np.dtype(dtype))
    np.put_along_axis(out, labels[..., np.newaxis], 1, axis=-1)
    return out


def normalize(x: Any, axis: int = -1, order: int = 2) -> np.ndarray:
    """``x`` scaled so each slice along ``axis`` has unit ``order``-norm (a zero slice
    stays zero), as Keras's ``normalize``: float arrays keep their dtype."""
    array = as_numbers("x", x)
    if not isinstance(axis, int) or isinstance(axis, bool) or not -array.ndim <= axis < array.ndim:
        raise ValueError(
            f"axis must be an int in [-{array.ndim}, {array.ndim}); received axis={shown(axis)}"
        )
    order = check_int("order", order, 1)
    values = array if array.dtype.kind == "f" else array.astype(np.float32)
    norms = np.linalg.norm(values, ord=order, axis=axis, keepdims=True)
    return values / np.where(norms == 0, 1, norms).astype(values.dtype)
