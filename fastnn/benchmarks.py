"""Timing helpers and the workloads the benchmarks measure.

Every figure is a median of several timed repetitions taken after warm-up runs;
the first call of each workload (which includes JIT compilation on the numba
backend) is timed separately and never mixed into the median. GPU work is
synchronised before each clock read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fastnn.backends import Backend, get_backend
from fastnn.models import Sequential

Data = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Timing:
    """Seconds: the first call (warm-up, JIT included) and the timed repetitions."""

    first: float
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median}


def measure(
    work: Callable[[], object],
    repeat: int = 5,
    warmup: int = 1,
    backend: Backend | None = None,
) -> Timing:
    """Time ``work()``: one first call, ``warmup`` untimed calls, then ``repeat`` timed ones.

    A ``work`` that returns a float has timed itself (to leave set-up out of the
    figure); that float is used instead of the wall time of the call.
    """

    def timed() -> float:
        start = time.perf_counter()
        result = work()
        if backend is not None:
            backend.synchronize()
        elapsed = time.perf_counter() - start
        return result if isinstance(result, float) else elapsed

    timing = Timing(first=timed())
    for _ in range(warmup):
        timed()
    timing.runs = [timed() for _ in range(repeat)]
    return timing


# ------------------------------------------------------------ the keras epoch
KERAS_SIZES = (784, 512, 10)


def keras_model(seed: int = 0, dtype: Any = "float32") -> Sequential:
    """The `keras` recipe's network, compiled (784-512-10, RMSprop)."""
    from fastnn.recipes import RECIPES

    return RECIPES["keras"].build(seed, np.dtype(dtype))


def keras_epoch(backend_name: str, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """One epoch of the `keras` recipe (batch 128) on ``backend_name``, as a callable.

    Each call trains the same model one more epoch and returns the epoch's own
    time (fit's one-off input checks and data transfer are left out).
    """
    from fastnn.backends import use_backend
    from fastnn.callbacks import EpochTimer

    model = keras_model()
    timer = EpochTimer()

    def epoch() -> float:
        with use_backend(backend_name):
            model.fit(x, y, epochs=1, batch_size=128, verbose=0, seed=0, callbacks=[timer])
        return timer.seconds[-1]

    return epoch


def gemm_floor(x: np.ndarray, preallocated: bool) -> Callable[[], None]:
    """Only the five matrix products of a `keras` epoch, with NumPy's BLAS.

    Per batch of 128: x @ W1, h @ W2 (forward), h.T @ dz2, dz2 @ W2.T, x.T @ dh
    (backward; the input gradient of the first layer is never needed).
    ``preallocated=False`` writes them as plain ``@`` expressions, as NumPy code
    does; ``True`` reuses output buffers, the stricter floor.
    """
    n_in, n_hidden, n_out = KERAS_SIZES
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((n_in, n_hidden), dtype=np.float32)
    w2 = rng.standard_normal((n_hidden, n_out), dtype=np.float32)
    batch = 128
    h = np.empty((batch, n_hidden), np.float32)
    z = np.empty((batch, n_out), np.float32)
    dw2 = np.empty_like(w2)
    dh = np.empty_like(h)
    dw1 = np.empty_like(w1)

    def plain() -> None:
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            hb = xb @ w1
            zb = hb @ w2
            _ = hb.T @ zb
            dhb = zb @ w2.T
            _ = xb.T @ dhb

    def reusing() -> None:
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            rows = len(xb)
            hb, zb, dhb = h[:rows], z[:rows], dh[:rows]
            np.matmul(xb, w1, out=hb)
            np.matmul(hb, w2, out=zb)
            np.matmul(hb.T, zb, out=dw2)
            np.matmul(zb, w2.T, out=dhb)
            np.matmul(xb.T, dhb, out=dw1)

    return reusing if preallocated else plain


# ----------------------------------------------------------- single ops
def op_workloads(backend_name: str, dtype: Any = "float32") -> dict[str, Callable[[], object]]:
    """The hot ops at the `keras` network's sizes (batch 128, 784x512 weights), per backend.

    Arrays are made once, on the backend, from the same seed on every backend;
    each callable runs one op and returns what it produced (the updated weights,
    for the optimizer updates), so a first call can be checked against NumPy.
    """
    backend = get_backend(backend_name)
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)

    def array(*shape: int, scale: float = 1.0) -> Any:
        return backend.asarray((rng.standard_normal(shape) * scale).astype(dt))

    z = array(128, 512)
    bias = array(512)
    out = array(128, 512)
    logits = array(128, 10)
    labels = backend.asarray(rng.integers(0, 10, 128))
    grad_out = array(128, 10)
    w, g, v, m = array(784, 512), array(784, 512, scale=1e-3), array(784, 512) ** 2, array(784, 512)

    def rmsprop() -> Any:
        backend.rmsprop_update(w, g, v, 1e-3, 0.9, 1e-7)
        return w

    def adam() -> Any:
        backend.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 10)
        return w

    return {
        "bias_relu (128x512)": lambda: backend.bias_activation(z, bias, "relu", out=out),
        "softmax_cross_entropy (128x10)": lambda: backend.sparse_softmax_cross_entropy(
            logits, labels, grad_out
        ),
        "rmsprop_update (784x512)": rmsprop,
        "adam_update (784x512)": adam,
    }
