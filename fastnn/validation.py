"""Checks of user input at the API boundary: one clear, one-line error per mistake.

Every message names the argument, what was received and what is allowed, so a
user never has to read a traceback into the backend to learn what went wrong.

ValueError is for a value the argument does not allow, whatever its type
(``batch_size=2.5``, an unknown name, a wrong shape or length); TypeError for an
object of the wrong kind altogether (an array that holds no numbers, one string
where a list is needed, something that is not a layer where one is required).
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import numpy as np

# Long enough for any name a user types, short enough to keep a message on one screen line.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def shown(value: object) -> str:
    """``repr(value)`` for a message: one line, cut short (an array, a whole data set)."""
    return " ".join(_REPR.repr(value).split())


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools refused)."""
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if integer and value >= minimum:  # type: ignore[operator]
        return int(value)  # type: ignore[call-overload]
    raise ValueError(f"{name} must be an int >= {minimum}; received {name}={shown(value)}")


def check_flag(name: str, value: object) -> bool:
    """``value`` as a bool, refusing anything but True and False (and NumPy's bools)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; received {name}={shown(value)}")
    return bool(value)


def check_finite(name: str, value: object) -> float:
    """``value`` as a float, refusing bools, NaN, infinities and non-numbers."""
    number = isinstance(value, (int, float, np.integer, np.floating))
    if number and not isinstance(value, (bool, np.bool_)) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    raise ValueError(f"{name} must be a finite number; received {name}={shown(value)}")


def check_fraction(name: str, value: object, include_one: bool = False) -> float:
    """``value`` as a float in [0, 1), or in [0, 1] with ``include_one``."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if number and (0.0 <= value < 1.0 or (include_one and value == 1.0)):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bracket = "]" if include_one else ")"
    raise ValueError(f"{name} must be a number in [0, 1{bracket}; received {name}={shown(value)}")


def as_numbers(name: str, value: Any) -> np.ndarray:
    """``value`` as a NumPy array of bools, ints or floats (shape not checked)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists, ...; NumPy's words chained
        raise ValueError(
            f"{name} must be a rectangular array of numbers (every sample of one shape); "
            f"received a {type(value).__name__} that NumPy cannot convert to one array"
        ) from error
    if array.dtype.kind not in "biuf":
        received = (
            f"{name}={shown(value)}"
            if array.ndim == 0
            else f"an array of dtype {array.dtype} (shape {array.shape})"
        )
        raise TypeError(f"{name} must hold real numbers (bool, int or float); received {received}")
    return array


def _first_bad(mask: np.ndarray) -> str:
    """Where the first True of ``mask`` is, as a readable position."""
    position = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"row {position[0]}" if len(position) == 1 else f"index {position}"


def _refuse(name: str, array: np.ndarray, bad: np.ndarray, requirement: str, problem: str) -> None:
    """Raise "``name`` must ``requirement``; N ``problem``, e.g. V at P" if ``bad`` marks any."""
    if bad.any():
        example = array[bad][0].item()
        raise ValueError(
            f"{name} must {requirement}; {int(bad.sum())} {problem}, e.g. {example!r} at "
            f"{_first_bad(bad)}"
        )


_FINITE_CHECK_BLOCK = 1 << 18  # entries checked at a time


def _check_all_finite(name: str, array: np.ndarray) -> None:
    """Raise naming how many entries of ``array`` are NaN or infinite, and the first."""
    # By blocks of rows: a mask of the whole array would add a quarter of a float32
    # data set's size to fit's peak memory. The full mask is made only to report.
    rows = array.reshape(len(array), -1)
    step = max(1, _FINITE_CHECK_BLOCK // max(rows.shape[1], 1))
    if all(np.isfinite(rows[i : i + step]).all() for i in range(0, len(rows), step)):
        return
    finite = np.isfinite(array)
    bad = int(array.size - np.count_nonzero(finite))
    raise ValueError(
        f"{name} contains {bad} NaN or infinite value(s) (first at {_first_bad(~finite)}); "
        f"clean or impute them before training"
    )


def check_sample_shape(name: str, given: tuple[int, ...], expected: tuple[int, ...] | None) -> None:
    """Refuse samples of shape ``given`` for a model that expects ``expected`` (None: any)."""
    if expected is not None and given != expected:
        raise ValueError(
            f"{name} has samples of shape {given}; the model expects {expected} "
            f"(x of shape (n, {', '.join(map(str, expected))}))"
        )


def as_features(
    name: str, value: Any, sample_shape: tuple[int, ...] | None, dtype: np.dtype
) -> np.ndarray:
    """Inputs as a float array (n, *sample_shape) of ``dtype``, finite, non-empty."""
    array = as_numbers(name, value)
    if array.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis first, shape (n_samples, n_features); "
            f"received shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one sample")
    check_sample_shape(name, tuple(array.shape[1:]), sample_shape)
    array = np.ascontiguousarray(array, dtype=dtype)
    _check_all_finite(name, array)
    return array


def as_labels(name: str, value: Any, n_samples: int, n_classes: int) -> np.ndarray:
    """Integer class labels (n,) in [0, n_classes), from (n,) or (n, 1)."""
    array = as_numbers(name, value)
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
        requirement = f"hold whole-number class labels in [0, {n_classes})"
        _refuse(name, array, fractional, requirement, "label(s) are not whole numbers")
    outside = (array < 0) | (array >= n_classes)
    requirement = f"be class labels in [0, {n_classes}) for a model with {n_classes} outputs"
    _refuse(name, array, outside, requirement, "label(s) are outside")
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
    array = as_numbers(name, value)
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
    _check_all_finite(name, array)
    if unit_interval:
        outside = (array < 0) | (array > 1)
        requirement = "hold targets in [0, 1] for binary_crossentropy"
        _refuse(name, array, outside, requirement, "value(s) are outside")
    return array


def _check_length(name: str, array: np.ndarray, n_samples: int) -> None:
    if array.shape[0] != n_samples:
        raise ValueError(
            f"x and {name} must have the same number of samples; x has {n_samples}, "
            f"{name} has {array.shape[0]}"
        )


def as_sample_weights(
    sample_weight: Any, class_weight: Any, targets: np.ndarray, dtype: np.dtype, prefix: str = ""
) -> np.ndarray | None:
    """Keras's per-sample weights (n,) of ``dtype`` from ``sample_weight`` ((n,) or (n, 1)
    finite numbers) or ``class_weight`` ({class: weight}; classes not named weigh 1), with
    ``targets`` the loss's targets: labels (n,), or rows (n, K) whose class is their argmax
    (K > 1) or their rounded value (K = 1). None when neither is given."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(
            f"give {prefix}sample_weight or {prefix}class_weight, not both (as in Keras)"
        )
    n = len(targets)
    if sample_weight is not None:
        name = f"{prefix}sample_weight"
        weights = as_numbers(name, sample_weight)
        if weights.shape not in ((n,), (n, 1)):
            raise ValueError(f"{name} must have shape ({n},), one weight a sample; "
                             f"received shape {weights.shape}")  # fmt: skip
        _check_all_finite(name, weights.reshape(n, -1))
        return np.ascontiguousarray(weights.reshape(n), dtype=dtype)
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict) or not all(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in class_weight
    ):
        raise TypeError(
            "class_weight must be a dict {class number: weight}, e.g. {0: 1.0, 1: 5.0}; "
            f"received class_weight={shown(class_weight)}"
        )
    table = {int(k): check_finite(f"class_weight[{k}]", v) for k, v in class_weight.items()}
    if targets.ndim == 1:
        labels = targets
    elif targets.shape[1] == 1:
        labels = np.round(targets[:, 0])
    else:
        labels = targets.argmax(axis=1)
    return np.array([table.get(int(label), 1.0) for label in labels], dtype=dtype)
