"""Process-wide settings: the default float dtype and the random seed."""

from __future__ import annotations

import os
import threading

import numpy as np

from fastnn.validation import shown

DTYPE_ENV_VAR = "FASTNN_DTYPE"
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64")

_seed_lock = threading.Lock()
_seed_source: np.random.Generator | None = None


def switch(variable: str) -> bool | None:
    """An on/off environment variable: True when unset, empty or on (1, on, true, yes),
    False when off (0, off, false, no), None for anything else (the caller says why)."""
    value = os.environ.get(variable, "").strip().lower()
    if value in ("", "1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return None


def resolve_dtype(dtype: object = None) -> np.dtype:
    """The float dtype to compute in: ``dtype`` if given, else ``$FASTNN_DTYPE``, else float32.

    Read at call time, so the variable can be set after ``import fastnn``.
    """
    source = "dtype"
    if dtype is None:
        dtype = os.environ.get(DTYPE_ENV_VAR, "").strip().lower() or "float32"
        source = DTYPE_ENV_VAR
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in FLOAT_DTYPES:
        raise ValueError(
            f"{source} must be one of {', '.join(FLOAT_DTYPES)}; received {source}={shown(dtype)}"
        )
    return resolved


def check_seed(seed: object) -> int | None:
    """Return ``seed`` if it is None or a non-negative int, else raise a ValueError naming it."""
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        return seed
    raise ValueError(f"seed must be a non-negative int or None; received seed={shown(seed)}")


def set_random_seed(seed: int | None) -> None:
    """Seed every random choice fastnn makes (weight init, shuffling) that has no seed of its own.

    ``None`` goes back to fresh OS entropy for each choice.
    """
    global _seed_source
    check_seed(seed)
    with _seed_lock:
        _seed_source = None if seed is None else np.random.default_rng(seed)


def make_rng(seed: int | None = None) -> np.random.Generator:
    """A generator for one random task: from ``seed``, else from the global seed, else fresh."""
    if check_seed(seed) is not None:
        return np.random.default_rng(seed)
    with _seed_lock:
        if _seed_source is None:
            return np.random.default_rng()
        return np.random.default_rng(_seed_source.integers(2**63))
