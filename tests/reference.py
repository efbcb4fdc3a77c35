"""The NumPy backend as the oracle of a single call: what a test of fixed arguments
compares every backend with (the property tests draw theirs; see test_op_properties)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.backends.numpy_backend import NumpyBackend

REF = NumpyBackend()


def builtin_class(error: BaseException) -> type[BaseException]:
    """The built-in exception class an error is (NumPy raises subclasses of its own)."""
    return next(c for c in type(error).__mro__ if c.__module__ == "builtins")


def same_as_numpy(name: str, call: Callable[[Any], Any]) -> None:
    """``call(backend)`` on backend ``name`` raises what it raises on NumPy (the same
    built-in exception class), or returns the same values, of the same dtypes."""
    backend = fastnn.get_backend(name)
    try:
        with np.errstate(all="ignore"):
            expected = call(REF)
    except Exception as error:
        with pytest.raises(builtin_class(error)):
            call(backend)
        return
    with np.errstate(all="ignore"):
        got = call(backend)
    got_values = got if isinstance(got, (tuple, list)) else [got]
    want_values = expected if isinstance(expected, (tuple, list)) else [expected]
    for g, w in zip(got_values, want_values, strict=True):
        if w is None:
            continue
        g_host = np.asarray(backend.to_numpy(g) if hasattr(g, "shape") else g)
        assert g_host.dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g_host, np.asarray(w), rtol=1e-6, atol=1e-6)
