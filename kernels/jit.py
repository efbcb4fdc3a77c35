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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock

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


def inline_kernel(function: F) -> F:
    """Compile ``function`` as a helper that numba inlines into the kernels calling it
    (its tuples then become registers of the caller)."""
    compiled = numba.njit(inline="always", nogil=True, error_model="numpy", fastmath=PRECISE)
    return cast(F, compiled(function))


@inline_kernel
def unsigned(position: int) -> Any:
    """``position`` (>= 0) as an unsigned 64-bit integer, to index arrays with.

    numba checks every signed index for wrap-around (a negative one counts from the
    end), unless LLVM can prove it is not negative: true of a ``range`` from 0, not of
    one from a position read out of an array (``indptr[r]``). The check is a branch
    per access, which keeps a copy or a scatter loop scalar: the gather of a 128-row
    MNIST batch took 68 us on two threads with signed positions, 7.5 us with these.
    Arithmetic must stay unsigned too: numba types ``unsigned(k) + 1`` (a signed
    literal mixed in) as signed again.
    """
    return np.uint64(position)


@contextmanager
def _straight_line_vectorizing() -> Iterator[None]:
    """LLVM's SLP (straight-line) vectorizer on for the compiles inside; numba's default
    (``NUMBA_SLP_VECTORIZE``) is off. Under numba's compiler lock, so no other compile
    runs meanwhile with the setting changed."""
    settings: Any = config  # its settings are made at run time, from the environment
    with global_compiler_lock:
        saved = settings.SLP_VECTORIZE
        settings.SLP_VECTORIZE = 1
        try:
            yield
        finally:
            settings.SLP_VECTORIZE = saved


def lanes_kernel(function: F) -> F:
    """Like :func:`parallel_kernel`, for a kernel whose rows are tuples written lane by
    lane (``kernels/narrow.py``): compiled with the SLP vectorizer on, which packs the
    lanes into vector instructions (measured on full-batch MNIST: forward 2.6x and weight
    gradient 4x faster than with the lanes left scalar). The machine code is cached as
    any kernel's, so the setting matters at compile time only."""
    dispatcher: Any = _compile(function, parallel=True, reassociate=False)
    compile_signature = dispatcher.compile

    def compile(signature: Any) -> Any:
        with _straight_line_vectorizing():
            return compile_signature(signature)

    dispatcher.compile = compile  # the dispatcher compiles each new signature through this
    return cast(F, dispatcher)
