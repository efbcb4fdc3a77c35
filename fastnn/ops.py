"""Public array ops, dispatched to the active backend.

``fastnn.ops.matmul(a, b)`` runs on whichever backend is active (see
``fastnn.use_backend``). Inputs may be anything ``numpy.asarray`` takes or the
backend's own arrays; results are the backend's arrays (NumPy arrays on the
CPU backends; call ``to_numpy`` for a host copy from a GPU backend).
Integer inputs are computed in the default float dtype (``FASTNN_DTYPE``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.backends import Array, Backend, get_backend
from fastnn.config import resolve_dtype


def _float_input(backend: Backend, name: str, x: Any, min_ndim: int) -> Array:
    array = x if hasattr(x, "__array_namespace__") else np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; received dtype {array.dtype}")
    if array.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s); received shape {array.shape}"
        )
    dtype = (
        array.dtype if array.dtype.kind == "f" and array.dtype.itemsize >= 4 else resolve_dtype()
    )
    return backend.asarray(array, dtype)


def matmul(a: Any, b: Any) -> Array:
    """Matrix product of 2-D arrays: (M, K) @ (K, N) -> (M, N)."""
    backend = get_backend()
    a_, b_ = _float_input(backend, "a", a, 2), _float_input(backend, "b", b, 2)
    if a_.ndim != 2 or b_.ndim != 2 or a_.shape[1] != b_.shape[0]:
        raise ValueError(
            f"matmul needs (M, K) and (K, N) matrices; received shapes {a_.shape} and {b_.shape}"
        )
    if a_.dtype != b_.dtype:
        common = np.promote_types(a_.dtype, b_.dtype)
        a_, b_ = backend.asarray(a_, common), backend.asarray(b_, common)
    return backend.matmul(a_, b_)


def relu(x: Any) -> Array:
    """``max(x, 0)`` elementwise, any shape."""
    backend = get_backend()
    return backend.relu(_float_input(backend, "x", x, 0))


def softmax(x: Any) -> Array:
    """Softmax along the last axis (rows of a 2-D array); stable for large values."""
    backend = get_backend()
    x_ = _float_input(backend, "x", x, 1)
    rows = x_.reshape(-1, x_.shape[-1])
    return backend.softmax(rows).reshape(x_.shape)


def to_numpy(x: Array) -> np.ndarray:
    """A backend array as a NumPy array on the host."""
    return get_backend().to_numpy(x)
