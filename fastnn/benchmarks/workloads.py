"""The workloads the benchmarks time: single ops, a `keras` epoch, the GEMM floor, one step.

Every workload is built the same way on every backend (same seed, same shapes),
so the first result of each can be checked against the NumPy backend before it
is timed: a fast wrong kernel is not a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn.backends import get_backend, use_backend
from fastnn.callbacks import EpochTimer
from fastnn.models import Sequential

#: the `keras` recipe's layer sizes
KERAS_SIZES = (784, 512, 10)
#: equivalence with the NumPy backend, as in the tests: a difference is allowed
#: this much relative to the largest reference value (or 1, if that is smaller)
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}

# ------------------------------------------------------------------- single ops
#: every op, with its sizes: the network's real size first, then a sweep around it.
#: matmul sizes are rows x depth x cols; the others rows x cols.
OP_SIZES: dict[str, tuple[tuple[int, ...], ...]] = {
    "matmul": ((128, 784, 512), (1024, 784, 512), (8192, 784, 10), (59_000, 784, 10)),
    "relu": ((128, 512), (1024, 512), (8192, 512)),
    "bias_relu": ((128, 512), (1024, 512), (8192, 512)),
    "softmax": ((128, 10), (1024, 10), (8192, 10)),
    "softmax_cross_entropy": ((128, 10), (1024, 10), (8192, 10)),
    "sgd_update": ((784, 512), (784, 128), (784, 2048)),
    "rmsprop_update": ((784, 512), (784, 128), (784, 2048)),
    "adam_update": ((784, 512), (784, 128), (784, 2048)),
    # the `deep-regularized` and `deep-bn` recipes' first hidden layer (batch 32, 256 units)
    "dropout": ((32, 256), (128, 512), (1024, 512)),
    "weight_penalty": ((784, 256), (784, 512), (784, 2048)),
    "batch_norm": ((32, 256), (128, 512), (1024, 512)),
}


def size_label(size: tuple[int, ...]) -> str:
    """``(128, 512)`` -> ``"128x512"``."""
    return "x".join(str(n) for n in size)


def op_flops(op: str, size: tuple[int, ...]) -> float:
    """Floating-point operations of one call (matmul only; 0 for memory-bound ops)."""
    if op == "matmul":
        rows, depth, cols = size
        return 2.0 * rows * depth * cols
    return 0.0


def op_workload(
    backend_name: str, op: str, size: tuple[int, ...], dtype: Any = "float32"
) -> Callable[[], Any]:
    """One call of ``op`` at ``size`` on ``backend_name``, as a callable.

    Inputs are made once, from the same seed on every backend, and live on the
    backend. Each call returns what the op produced (the updated weights for the
    optimizer updates, which are applied in place), so the first call can be
    compared with the NumPy backend's.
    """
    backend = get_backend(backend_name)
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)

    def array(*shape: int, scale: float = 1.0) -> Any:
        return backend.asarray((rng.standard_normal(shape) * scale).astype(dt))

    if op == "matmul":
        rows, depth, cols = size
        a, b, out = array(rows, depth), array(depth, cols), array(rows, cols)
        return lambda: backend.matmul(a, b, out=out)
    if op in ("relu", "bias_relu"):
        x, bias, out = array(*size), array(size[1]), array(*size)
        if op == "relu":
            return lambda: backend.relu(x, out=out)
        return lambda: backend.bias_activation(x, bias, "relu", out=out)
    if op in ("softmax", "softmax_cross_entropy"):
        logits, out = array(*size), array(*size)
        labels = backend.asarray(rng.integers(0, size[1], size[0]))
        if op == "softmax":
            return lambda: backend.softmax(logits, out=out)
        return lambda: backend.sparse_softmax_cross_entropy(logits, labels, out)
    if op == "dropout":  # a fresh mask per call, as in training; the same masks on every backend
        x, out, masks = array(*size), array(*size), np.random.default_rng(1)
        return lambda: backend.multiply(x, backend.dropout_mask(masks, size, 0.2, dt), out=out)
    if op == "batch_norm":  # one training step's forward and backward
        return _batch_norm_step(backend, array, size)
    w, g = array(*size), array(*size, scale=1e-3)
    if op == "weight_penalty":  # L2, with its gradient added to g
        return lambda: (backend.weight_penalty(w, 0.0, 1e-3, g), g)
    v, m = array(*size) ** 2, array(*size)
    updates: dict[str, Callable[[], None]] = {
        "sgd_update": lambda: backend.sgd_update(w, g, 1e-2),
        "rmsprop_update": lambda: backend.rmsprop_update(w, g, v, 1e-3, 0.9, 1e-7),
        "adam_update": lambda: backend.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 10),
    }
    if op not in updates:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(OP_SIZES)}")
    update = updates[op]

    def updated() -> Any:
        update()
        return w

    return updated


def _batch_norm_step(
    backend: Any, array: Callable[..., Any], size: tuple[int, ...]
) -> Callable[[], Any]:
    """BatchNormalization's forward and backward over x (B, N), as one callable."""
    x, dy, y, dx = (array(*size) for _ in range(4))
    gamma, beta, mean, variance, dgamma, dbeta = (array(size[1]) for _ in range(6))

    def step() -> Any:
        backend.batch_norm_forward(x, gamma, beta, 1e-3, mean, variance, out=y)
        backend.batch_norm_backward(dy, x, mean, variance, gamma, 1e-3, dgamma, dbeta, out=dx)
        return y, dx, dgamma, dbeta

    return step


def on_host(backend_name: str, produced: Any) -> list[np.ndarray]:
    """What an op returned (an array, or a tuple of arrays and scalars), as NumPy arrays."""
    backend = get_backend(backend_name)
    items = produced if isinstance(produced, tuple) else (produced,)
    return [np.asarray(backend.to_numpy(i) if hasattr(i, "shape") else i) for i in items]


def differences(
    got: list[np.ndarray], want: list[np.ndarray], dtype: Any = "float32"
) -> tuple[float, float, bool]:
    """(max absolute difference, that over the largest |reference|, within tolerance)."""
    max_abs = 0.0
    largest = 0.0
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape:
            return float("inf"), float("inf"), False
        reference, result = np.asarray(w, np.float64), np.asarray(g, np.float64)
        if reference.size:
            # NaN or inf where the reference has the same is agreement; anywhere else, not
            same_special = (result == reference) | (np.isnan(result) & np.isnan(reference))
            gap = np.where(same_special, 0.0, np.abs(result - reference))
            max_abs = max(max_abs, float(np.max(np.nan_to_num(gap, nan=np.inf))))
            largest = max(
                largest, float(np.max(np.abs(reference[np.isfinite(reference)]), initial=0.0))
            )
    relative = max_abs / largest if largest > 0 else max_abs
    allowed = TOLERANCE[np.dtype(dtype).name] * max(1.0, largest)
    return max_abs, relative, bool(max_abs <= allowed)  # NaN compares False: not equivalent


# ------------------------------------------------------------ the keras epoch
def keras_model(seed: int = 0, dtype: Any = "float32") -> Sequential:
    """The `keras` recipe's network, compiled (784-512-10, RMSprop)."""
    from fastnn.recipes import RECIPES

    return RECIPES["keras"].build(seed, np.dtype(dtype))


class _TimedEpochs:
    """A compiled model on one backend: each call trains one more epoch over (x, y).

    Returns the epoch's own seconds (fit's one-off input checks and the data's
    move to the backend are left out) and records the epoch's mean loss.
    """

    def __init__(
        self, backend_name: str, model: Sequential, x: np.ndarray, y: np.ndarray, **fit: Any
    ) -> None:
        self.backend_name, self.model = backend_name, model
        self.x, self.y, self.fit_options = x, y, fit
        self.losses: list[float] = []
        self._timer = EpochTimer()

    def __call__(self) -> float:
        with use_backend(self.backend_name):
            options = {"verbose": 0, **self.fit_options}
            history = self.model.fit(self.x, self.y, epochs=1, callbacks=[self._timer], **options)
        self.losses.append(float(history.history["loss"][-1]))
        return self._timer.seconds[-1]


class ScratchIterations:
    """The scratch recipe's training on one backend: each call runs ``iterations``
    full-batch steps on (x, y), and nothing else (no validation, no test pass): the same
    work as the tutorial's own gradient descent (:mod:`scratch_tutorial`)."""

    def __init__(self, backend_name: str, x: np.ndarray, y: np.ndarray, iterations: int) -> None:
        from fastnn import recipes

        self.backend_name, self.x, self.y, self.iterations = backend_name, x, y, iterations
        with use_backend(backend_name):
            self.model = recipes.get("scratch").build(1, np.dtype("float32"))
        self.losses: list[float] = []

    def __call__(self) -> None:
        with use_backend(self.backend_name):
            history = self.model.fit(
                self.x,
                self.y,
                epochs=self.iterations,
                batch_size=len(self.x),
                shuffle=False,
                verbose=0,
            )
        self.losses.append(float(history.history["loss"][-1]))


class KerasEpochs(_TimedEpochs):
    """The `keras` recipe (batch 128, shuffled from ``seed``) on one backend."""

    def __init__(
        self,
        backend_name: str,
        x: np.ndarray,
        y: np.ndarray,
        seed: int = 0,
        sparse_inputs: bool | str | None = None,
    ) -> None:
        super().__init__(
            backend_name, keras_model(seed), x, y, batch_size=128, seed=seed,
            sparse_inputs=sparse_inputs,
        )  # fmt: skip

    def weights(self) -> tuple[np.ndarray, ...]:
        return tuple(self.model.get_weights())


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


# ------------------------------------------------------------------ scaling
#: batch sizes (at hidden 512) and hidden widths (at batch 128) of the scaling sweep
SCALING_BATCHES = (32, 128, 512, 2048, 8192)
SCALING_HIDDEN = (64, 256, 1024, 4096)


def step_flops(batch: int, hidden: int, n_in: int = 784, n_out: int = 10) -> float:
    """Matrix-product flops of one training step of an n_in-hidden-n_out network.

    Forward x@W1 and h@W2; backward h.T@dz, dz@W2.T and x.T@dh.
    """
    return 2.0 * batch * (2 * n_in * hidden + 3 * hidden * n_out)


class TrainingSteps(_TimedEpochs):
    """A 784-hidden-10 ReLU/softmax network (RMSprop) on random data, on one backend.

    Each call trains ``steps`` steps of ``batch`` rows as one epoch, records the
    epoch's mean loss and returns its seconds; divide by ``steps`` for one step.
    """

    def __init__(self, backend_name: str, batch: int, hidden: int, seed: int = 0) -> None:
        from fastnn import layers

        self.steps = max(2, min(32, 16_384 // batch))  # enough steps to time, bounded memory
        rng = np.random.default_rng(seed)
        x = rng.random((batch * self.steps, 784), dtype=np.float32)  # (steps * B, 784)
        y = rng.integers(0, 10, batch * self.steps)
        with use_backend(backend_name):
            model = Sequential(
                [
                    layers.Dense(hidden, activation="relu", input_dim=784),
                    layers.Dense(10, activation="softmax"),
                ],
                seed=seed,  # the same weights on every backend
            )
            model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        super().__init__(backend_name, model, x, y, batch_size=batch, shuffle=False)
