"""The compilation settings every CPU kernel shares.

* ``cache=True``: compiled machine code is kept beside the sources, so a second
  process loads it instead of compiling again.
* ``nogil=True``: kernels release the GIL, so user threads can train side by side.
* ``error_model="numpy"``: division by zero gives inf/NaN as in NumPy instead of
  raising; the raising check would sit inside every loop and stop vectorization.
* fast-math is limited to FMA contraction and signed-zero freedom. Kernels whose
  inner loop is a long sum add reassociation, which lets LLVM split the sum over
  vector lanes; elsewhere it is left off because, in float32, it can rewrite
  ``log(s) - (z - top)`` as ``(log(s) - z) + top`` and lose every digit
  (found by the property tests). "No NaNs / no infs" stay off everywhere so
  -inf logits and NaN inputs behave as in the NumPy reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

PRECISE = {"nsz", "contract"}
REASSOCIATING = PRECISE | {"reassoc"}

F = TypeVar("F", bound=Callable[..., Any])


def _compile(function: F, parallel: bool, reassociate: bool) -> F:
    compiled = numba.njit(
        cache=True,
        nogil=True,
        error_model="numpy",
        parallel=parallel,
        fastmath=REASSOCIATING if reassociate else PRECISE,
    )(function)
    return cast(F, compiled)


def kernel(function: F) -> F:
    """Compile ``function`` as a serial, vectorized CPU kernel."""
    return _compile(function, parallel=False, reassociate=False)


def sum_kernel(function: F) -> F:
    """Like :func:`kernel`, for a kernel whose inner loop is a long sum (reassociated)."""
    return _compile(function, parallel=False, reassociate=True)


def parallel_kernel(function: F) -> F:
    """Compile ``function`` as a kernel whose ``prange`` loops run on numba's thread pool."""
    return _compile(function, parallel=True, reassociate=False)
