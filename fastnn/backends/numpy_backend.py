"""The NumPy backend: the reference every other backend is tested against.

Written for clarity first: each op is the textbook formula in array
operations, with ``out=`` used where it spares a copy without obscuring the
math. Array calls go through ``self.xp`` so a backend whose array module
mirrors NumPy's API can inherit the ops it does not override.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fastnn.backends.base import Array, Backend, DTypeLike, Scalar


def probe() -> str | None:
    """Why this backend cannot run here, or None when it can (NumPy always can)."""
    return None


def adam_step_size(learning_rate: float, beta_1: float, beta_2: float, step: int) -> float:
    """Adam's bias-corrected step size for the 1-based ``step``."""
    return learning_rate * (1.0 - beta_2**step) ** 0.5 / (1.0 - beta_1**step)


class NumpyBackend(Backend):
    """Reference implementation of every op with NumPy."""

    name: ClassVar[str] = "numpy"

    def __init__(self) -> None:
        #: the array module every op calls: NumPy here, CuPy in the GPU backend
        self.xp: Any = np

    # ------------------------------------------------------------------ arrays
    def asarray(self, x: Any, dtype: DTypeLike | None = None) -> Array:
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    def empty(self, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        return self.xp.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        return None

    # ------------------------------------------------------------ mini-batches
    def take_rows(self, x: Array, indices: Array, out: Array | None = None) -> Array:
        return self.xp.take(x, indices, axis=0, out=out)

    # ---------------------------------------------------------- linear algebra
    def matmul(
        self,
        a: Array,
        b: Array,
        transpose_a: bool = False,
        transpose_b: bool = False,
        out: Array | None = None,
    ) -> Array:
        # .T is a view: BLAS receives the transpose flag, nothing is copied.
        return self.xp.matmul(a.T if transpose_a else a, b.T if transpose_b else b, out=out)

    def bias_add(self, x: Array, bias: Array, out: Array | None = None) -> Array:
        return self.xp.add(x, bias, out=out)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        return self.xp.sum(x, axis=0, out=out)

    # ------------------------------------------------------------- activations
    def relu(self, x: Array, out: Array | None = None) -> Array:
        return self.xp.maximum(x, 0, out=out)

    def relu_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self.xp.multiply(dy, y > 0, out=out)

    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        xp = self.xp
        # exp(-|x|) never overflows; pick the form whose denominator stays >= 1.
        e = xp.exp(-xp.abs(x))
        positive = x >= 0
        out = xp.divide(1.0, 1.0 + e, out=out)
        xp.multiply(out, e, out=out, where=~positive)
        return out

    def sigmoid_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self.xp.multiply(dy, y * (1.0 - y), out=out)

    def tanh(self, x: Array, out: Array | None = None) -> Array:
        return self.xp.tanh(x, out=out)

    def tanh_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self.xp.multiply(dy, 1.0 - y * y, out=out)

    def softmax(self, x: Array, out: Array | None = None) -> Array:
        xp = self.xp
        # Subtracting the row maximum keeps exp() <= 1: no overflow for 1e4.
        out = xp.subtract(x, x.max(axis=1, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def softmax_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        xp = self.xp
        dot = (dy * y).sum(axis=1, keepdims=True)  # (B, 1)
        return xp.multiply(y, dy - dot, out=out)

    # ------------------------------------------------------------------ losses
    def _log_softmax_parts(self, logits: Array) -> tuple[Array, Array, Array]:
        """Return ``shifted = logits - rowmax``, ``exp(shifted)`` and ``log(sum(exp))``."""
        xp = self.xp
        shifted = logits - logits.max(axis=1, keepdims=True)  # (B, K)
        exps = xp.exp(shifted)  # (B, K)
        log_sums = xp.log(exps.sum(axis=1, keepdims=True))  # (B, 1)
        return shifted, exps, log_sums

    def sparse_softmax_cross_entropy(
        self, logits: Array, labels: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        xp = self.xp
        batch = logits.shape[0]
        rows = xp.arange(batch)
        shifted, exps, log_sums = self._log_softmax_parts(logits)
        # -log p[label] = log(sum(exp(shifted))) - shifted[label]
        loss = (log_sums[:, 0] - shifted[rows, labels]).mean()
        grad = xp.divide(exps, xp.exp(log_sums), out=grad_out)  # softmax
        grad[rows, labels] -= 1.0
        grad /= batch
        return float(loss), grad

    def softmax_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        xp = self.xp
        batch = logits.shape[0]
        shifted, exps, log_sums = self._log_softmax_parts(logits)
        loss = (targets * (log_sums - shifted)).sum(axis=1).mean()
        # d/dz of sum_k t_k (logsumexp(z) - z_k) = p * sum_k t_k - t
        mass = targets.sum(axis=1, keepdims=True)  # (B, 1)
        grad = xp.divide(exps, xp.exp(log_sums), out=grad_out)
        grad *= mass
        grad -= targets
        grad /= batch
        return float(loss), grad

    def sigmoid_binary_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        xp = self.xp
        # -t log s(z) - (1-t) log(1-s(z)) = max(z, 0) - z t + log(1 + exp(-|z|))
        losses = xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-xp.abs(logits)))
        grad = self.sigmoid(logits, out=grad_out)
        grad -= targets
        grad /= logits.size
        return float(losses.mean()), grad

    def mean_squared_error(
        self, predictions: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        xp = self.xp
        grad = xp.subtract(predictions, targets, out=grad_out)
        loss = float((grad * grad).mean())
        grad *= 2.0 / grad.size
        return loss, grad

    # ----------------------------------------------------------------- metrics
    def argmax_rows(self, x: Array) -> Array:
        return self.xp.argmax(x, axis=1)

    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        return int((self.argmax_rows(scores) == labels).sum())

    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        return int(((scores > threshold) == targets).sum())

    # -------------------------------------------------------------- optimizers
    def sgd_update(self, param: Array, grad: Array, learning_rate: float) -> None:
        param -= learning_rate * grad

    def momentum_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
    ) -> None:
        velocity *= momentum
        velocity -= learning_rate * grad
        if nesterov:
            param += momentum * velocity - learning_rate * grad
        else:
            param += velocity

    def rmsprop_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        rho: float,
        epsilon: float,
    ) -> None:
        velocity *= rho
        velocity += (1.0 - rho) * grad * grad
        param -= learning_rate * grad / self.xp.sqrt(velocity + epsilon)

    def adam_update(
        self,
        param: Array,
        grad: Array,
        m: Array,
        v: Array,
        learning_rate: float,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        step: int,
    ) -> None:
        alpha = adam_step_size(learning_rate, beta_1, beta_2, step)
        m += (1.0 - beta_1) * (grad - m)
        v += (1.0 - beta_2) * (grad * grad - v)
        param -= alpha * m / (self.xp.sqrt(v) + epsilon)
