"""Checks of user input at the API boundary: one clear ValueError per mistake.

Every message names the argument, what was received and what is allowed, so a
user never has to read a traceback into the backend to learn what went wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools refused)."""
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if integer and value >= minimum:  # type: ignore[operator]
        return int(value)  # type: ignore[call-overload]
    raise ValueError(f"{name} must be an int >= {minimum}; received {name}={value!r}")


def check_fraction(name: str, value: object) -> float:
    """``value`` as a float in [0, 1)."""
    number = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if number and 0.0 <= float(value) < 1.0:  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    raise ValueError(f"{name} must be a number in [0, 1); received {name}={value!r}")


def _as_numeric(name: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists, ...
        raise ValueError(
            f"{name} must be an array of numbers; could not convert it: {error}"
        ) from error
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold numbers; received an array of dtype {array.dtype} "
            f"(shape {array.shape})"
        )
    return array


def _first_bad(mask: np.ndarray) -> str:
    """Where the first True of ``mask`` is, as a readable position."""
    position = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"row {position[0]}" if len(position) == 1 else f"index {position}"


def as_features(
    name: str, value: Any, sample_shape: tuple[int, ...] | None, dtype: np.dtype
) -> np.ndarray:
    """Inputs as a float array (n, *sample_shape) of ``dtype``, finite, non-empty."""
    array = _as_numeric(name, value)
    if array.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis first, shape (n_samples, n_features); "
            f"received shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one sample")
    if sample_shape is not None and tuple(array.shape[1:]) != sample_shape:
        raise ValueError(
            f"{name} has samples of shape {array.shape[1:]}; the model expects {sample_shape} "
            f"(x of shape (n, {', '.join(map(str, sample_shape))}))"
        )
    array = np.ascontiguousarray(array, dtype=dtype)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s) (first at {_first_bad(~finite)}); "
            f"clean or impute them before training"
        )
    return array


def as_labels(name: str, value: Any, n_samples: int, n_classes: int) -> np.ndarray:
    """Integer class labels (n,) in [0, n_classes), from (n,) or (n, 1)."""
    array = _as_numeric(name, value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        hint = ""
        if array.ndim == 2 and array.shape[1] == n_classes:
            hint = "; for one-hot targets use loss='categorical_crossentropy'"
        raise ValueError(
            f"{name} must be integer class labels of shape (n,); received shape {array.shape}{hint}"
        )
    _check_length(name, array, n_samples)
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (array != np.round(array))
        if fractional.any():
            raise ValueError(
                f"{name} must hold whole-number class labels; found non-integer values "
                f"(first at {_first_bad(fractional)})"
            )
    outside = (array < 0) | (array >= n_classes)
    if outside.any():
        example = array[outside][0].item()
        raise ValueError(
            f"{name} must be class labels in [0, {n_classes}) for a model with {n_classes} "
            f"outputs; {int(outside.sum())} label(s) are outside, e.g. {example!r} at "
            f"{_first_bad(outside)}"
        )
    return array.astype(np.int64)


def as_targets(
    name: str,
    value: Any,
    n_samples: int,
    n_outputs: int,
    dtype: np.dtype,
    unit_interval: bool,
) -> np.ndarray:
    """Target rows (n, n_outputs) as floats; (n,) is accepted when n_outputs is 1."""
    array = _as_numeric(name, value)
    if array.ndim == 1 and n_outputs == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != n_outputs:
        hint = ""
        if array.ndim == 1 and n_outputs > 1:
            hint = "; for integer labels use loss='sparse_categorical_crossentropy'"
        raise ValueError(
            f"{name} must have shape (n, {n_outputs}) to match the model's {n_outputs} "
            f"output(s); received shape {array.shape}{hint}"
        )
    _check_length(name, array, n_samples)
    array = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if unit_interval and ((array < 0) | (array > 1)).any():
        raise ValueError(f"{name} must be in [0, 1] for binary cross-entropy")
    return array


def _check_length(name: str, array: np.ndarray, n_samples: int) -> None:
    if array.shape[0] != n_samples:
        raise ValueError(
            f"x and {name} must have the same number of samples; x has {n_samples}, "
            f"{name} has {array.shape[0]}"
        )
