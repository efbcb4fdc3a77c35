"""The NumPy backend: the reference every other backend is tested against.

Written for clarity first: each op is the textbook formula in array
operations, with ``out=`` used where it spares a copy without obscuring the
math. Array calls go through ``self.xp`` so a backend whose array module
mirrors NumPy's API can inherit the ops it does not override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fastnn.backends import numpy_columns as columns
from fastnn.backends.base import Array, Backend, DTypeLike, Scalar
from fastnn.sparse import SparseRows


def probe() -> str | None:
    """Why this backend cannot run here, or None when it can (NumPy always can)."""
    return None


def require_columns(x: Array, op: str) -> None:
    """Refuse rows of zero entries to an op over each row's entries (softmax, argmax):
    the softmax or argmax of nothing is undefined, and kernels would read past the row."""
    if x.ndim == 2 and x.shape[1] == 0:
        raise ValueError(f"{op} needs at least one column (class); received shape {x.shape}")


def require_entries(x: Array, op: str) -> None:
    """Refuse an empty array to an op that averages over its entries (the losses)."""
    if x.size == 0:
        raise ValueError(
            f"{op} is a mean over the entries and needs at least one; received shape {x.shape}"
        )


def check_confusion_matrix(matrix: Array, scores: Array, threshold: float | None) -> None:
    """Refuse a confusion matrix that does not fit the scores: (K, K) for K classes of
    argmax scores (B, K), (2, 2) for thresholded ones; integers."""
    classes = (scores.shape[1] if scores.ndim == 2 else 0) if threshold is None else 2
    if matrix.shape != (classes, classes) or matrix.dtype.kind not in "iu":
        raise ValueError(
            f"the confusion matrix must be integers of shape {(classes, classes)} for scores "
            f"of shape {scores.shape}; received {matrix.dtype} {matrix.shape}"
        )


def check_labels(labels: Array, classes: int) -> None:
    """Refuse a label outside [0, classes): it would name a row the matrix does not have."""
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise IndexError(f"label {low if low < 0 else high} is outside [0, {classes})")


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

    # ------------------------------------------------------- compressed rows
    # BLAS on each batch's rows written out dense over the columns they use
    # (fastnn/backends/numpy_columns.py); where that block would be under
    # numpy_columns.BLOCK_DENSITY nonzeros, scipy.sparse's products (or, without scipy,
    # the whole rows written out dense and BLAS's).
    sparse_kernels: ClassVar[bool] = True
    sparse_crossover: ClassVar[float] = 0.05  # bench/results/sparse.md: epochs lose at 0.1

    def take_sparse_rows(self, x: SparseRows, indices: Array, out: SparseRows) -> SparseRows:
        rows = np.asarray(indices)
        rows = np.where(rows < 0, rows + len(x), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(x)):
            raise IndexError(f"row index out of range for {len(x)} rows")
        starts = x.indptr[rows]  # (B,)
        counts = x.indptr[rows + 1] - starts
        indptr = out.indptr[: len(rows) + 1]
        indptr[0] = 0
        np.cumsum(counts, out=indptr[1:])
        total = int(indptr[-1])
        positions = np.repeat(starts - indptr[:-1], counts) + np.arange(total)
        out.indices[:total] = x.indices[positions]
        out.values[:total] = x.values[positions]
        return SparseRows(indptr, out.indices, out.values, x.width)

    def _scipy_rows(self, x: SparseRows) -> Any:
        """``x`` as a scipy CSR matrix sharing its values, or None without scipy."""
        try:
            from scipy import sparse
        except ImportError:
            return None
        first, last = int(x.indptr[0]), int(x.indptr[-1])
        parts = (x.values[first:last], x.indices[first:last], x.indptr - first)
        return sparse.csr_matrix(parts, shape=x.shape)

    def sparse_matmul(self, x: SparseRows, w: Array, out: Array | None = None) -> Array:
        used = columns.column_block(x, w.dtype)
        if used is not None:
            return np.matmul(used.block, w[used.columns], out=out)  # (B, k) @ (k, H)
        matrix = self._scipy_rows(x)
        product = x.to_dense() @ w if matrix is None else matrix @ w  # (B, H)
        if out is None:
            return np.asarray(product, dtype=w.dtype)
        out[...] = product
        return out

    def sparse_weight_gradient(self, x: SparseRows, dz: Array, out: Array | None = None) -> Array:
        used = columns.column_block(x, dz.dtype)
        if used is not None:
            if out is None:
                out = np.zeros((x.width, dz.shape[1]), dz.dtype)
            else:
                out[...] = 0
            out[used.columns] = used.block.T @ dz  # (k, H): the other rows are 0
            return out
        product = self._rows_gradient(x, dz)  # (F, H)
        if out is None:
            return np.asarray(product, dtype=dz.dtype)
        out[...] = product
        return out

    def _rows_gradient(self, x: SparseRows, dz: Array) -> Any:
        """``x.T @ dz`` (F, H) by scipy's product, or without scipy by BLAS's on the rows
        written out dense."""
        matrix = self._scipy_rows(x)
        return x.to_dense().T @ dz if matrix is None else matrix.T @ dz

    def fuses_sparse_update(self, rule: str, kernel: Array, slot_names: tuple[str, ...]) -> bool:
        # sparse_kernels: not a subclass that trains on dense rows only (CuPy's)
        plain = (rule, slot_names) in (("sgd", ()), ("rmsprop", ("velocity",)))
        return self.sparse_kernels and plain and kernel.ndim == 2

    def sparse_update(
        self,
        rule: str,
        x: SparseRows,
        dz: Array,
        param: Array,
        slots: Mapping[str, Array],
        hyper: dict[str, Any],
        stamps: Array | None,
        state: Array,
    ) -> None:
        used = columns.column_block(x, param.dtype)
        if used is None:  # too sparse for a block: scipy's gradient, its nonzero rows
            rows, _ = columns.used_columns(x)
            grad = np.asarray(self._rows_gradient(x, dz)[rows], dtype=dz.dtype)  # (k, H)
        else:
            rows, grad = used.columns, used.block.T @ dz  # (k,), (k, H)
        learning_rate = hyper["learning_rate"]
        if rule == "sgd":
            param[rows] -= learning_rate * grad
            return
        assert stamps is not None, "RMSprop's fused update keeps its velocity's stamps"
        columns.lazy_rmsprop_rows(
            param, slots["velocity"], stamps, rows, grad, int(state[0]),
            learning_rate, hyper["rho"], hyper["epsilon"],
        )  # fmt: skip

    def settle_rows(self, velocity: Array, stamps: Array, step: int, rho: float) -> None:
        columns.settle(velocity, stamps, step, rho)

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
        require_columns(x, "softmax")
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

    # ----------------------------------------------------------- regularization
    def weight_penalty(
        self, param: Array, l1: float, l2: float, grad: Array | None = None
    ) -> Scalar:
        xp = self.xp
        # The coefficients in the weight's dtype, where the arithmetic happens. A term whose
        # coefficient is 0 there is left out, not added as 0 * inf = NaN (an infinite weight,
        # or a square that overflowed the dtype).
        c1, c2 = param.dtype.type(l1), param.dtype.type(l2)
        penalty = xp.zeros((), dtype=param.dtype)
        if c1:
            penalty += c1 * xp.abs(param).sum()
        if c2:
            penalty += c2 * (param * param).sum()
        if grad is not None:
            if c1:
                grad += c1 * xp.sign(param)
            if c2:
                grad += (2 * c2) * param
        return self._scalar(penalty)

    def _scalar(self, value: Array) -> Scalar:
        """A 0-d result as the interface returns scalars: a Python number here."""
        return float(value)

    def multiply(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.xp.multiply(a, b, out=out)

    # ------------------------------------------------------------ normalization
    def batch_norm_forward(
        self,
        x: Array,
        gamma: Array,
        beta: Array,
        epsilon: float,
        mean_out: Array,
        variance_out: Array,
        out: Array | None = None,
    ) -> Array:
        if len(x) == 0:
            raise ValueError(f"batch statistics need at least one sample; received {x.shape}")
        xp = self.xp
        xp.mean(x, axis=0, out=mean_out)  # (N,)
        xp.mean(xp.square(x - mean_out), axis=0, out=variance_out)  # (N,), biased as in Keras
        return self.batch_norm_inference(x, mean_out, variance_out, gamma, beta, epsilon, out)

    def batch_norm_inference(
        self,
        x: Array,
        mean: Array,
        variance: Array,
        gamma: Array,
        beta: Array,
        epsilon: float,
        out: Array | None = None,
    ) -> Array:
        xp = self.xp
        out = xp.subtract(x, mean, out=out)
        out *= gamma / xp.sqrt(variance + epsilon)
        out += beta
        return out

    def batch_norm_backward(
        self,
        dy: Array,
        x: Array,
        mean: Array,
        variance: Array,
        gamma: Array,
        epsilon: float,
        dgamma_out: Array,
        dbeta_out: Array,
        out: Array | None = None,
    ) -> Array:
        xp = self.xp
        inv_std = 1.0 / xp.sqrt(variance + epsilon)  # (N,)
        xhat = (x - mean) * inv_std  # (B, N)
        xp.sum(dy, axis=0, out=dbeta_out)
        xp.sum(dy * xhat, axis=0, out=dgamma_out)
        batch = x.shape[0]
        correction = dbeta_out / batch + xhat * (dgamma_out / batch)  # (B, N)
        out = xp.subtract(dy, correction, out=out)
        out *= gamma * inv_std
        return out

    def moving_average_update(self, average: Array, value: Array, momentum: float) -> None:
        average *= momentum
        average += (1.0 - momentum) * value

    # ------------------------------------------------------------------ losses
    def weighted_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        weights: Array,
        grad_out: Array | None = None,
    ) -> tuple[Scalar, Array]:
        if weights.shape != outputs.shape[:1]:
            raise ValueError(f"weights must have shape ({len(outputs)},); received {weights.shape}")
        xp = self.xp
        # the row losses below read the outputs after the gradient is made: not in place
        in_place = grad_out is not None and xp.may_share_memory(grad_out, outputs)
        _, grad = getattr(self, loss)(outputs, targets, None if in_place else grad_out)
        rows = outputs.shape[0]
        if loss in ("sparse_softmax_cross_entropy", "softmax_cross_entropy"):
            shifted, _, log_sums = self._log_softmax_parts(outputs)
            if loss == "sparse_softmax_cross_entropy":
                per_row = log_sums[:, 0] - shifted[xp.arange(rows), targets]
            else:
                per_row = (targets * (log_sums - shifted)).sum(axis=1)
        elif loss == "sigmoid_binary_cross_entropy":
            entries = xp.maximum(outputs, 0) - outputs * targets
            per_row = (entries + xp.log1p(xp.exp(-xp.abs(outputs)))).mean(axis=1)
        else:  # mean_squared_error
            per_row = ((outputs - targets) ** 2).mean(axis=1)
        grad *= weights[:, None]
        if in_place:
            grad_out[...] = grad  # type: ignore[index]
            grad = grad_out
        return float((per_row * weights).sum() / rows), grad

    def clip_gradients(self, grads: Sequence[Array], option: str, limit: float) -> None:
        xp = self.xp
        if option == "clipvalue":
            for grad in grads:
                xp.clip(grad, -limit, limit, out=grad)
            return
        # norms as 0-d arrays, so that a GPU never waits for them; an infinite or NaN norm
        # makes the scale NaN, as in Keras
        if option == "clipnorm":
            for grad in grads:
                norm = xp.sqrt((grad * grad).sum())
                grad *= limit / xp.maximum(norm, limit)
            return
        norm = xp.sqrt(sum((grad * grad).sum() for grad in grads))
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero norm: a scale of 1
            scale = limit * xp.minimum(1.0 / norm, 1.0 / limit) + (norm - norm)
        for grad in grads:
            grad *= scale.astype(grad.dtype)

    def decay_weights(self, params: Sequence[Array], weight_decay: float, rate: float) -> None:
        for param in params:  # in the weight's precision, in Keras's order of operations
            dtype = param.dtype.type
            param -= param * dtype(weight_decay) * dtype(rate)

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
        require_entries(logits, "sparse_softmax_cross_entropy")
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
        require_entries(logits, "softmax_cross_entropy")
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
        require_entries(logits, "sigmoid_binary_cross_entropy")
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
        require_entries(predictions, "mean_squared_error")
        xp = self.xp
        grad = xp.subtract(predictions, targets, out=grad_out)
        loss = float((grad * grad).mean())
        grad *= 2.0 / grad.size
        return loss, grad

    # ----------------------------------------------------------------- metrics
    def argmax_rows(self, x: Array) -> Array:
        require_columns(x, "argmax_rows")
        return self.xp.argmax(x, axis=1)

    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        return int((self.argmax_rows(scores) == labels).sum())

    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        return int(((scores > threshold) == targets).sum())

    def update_confusion(
        self, matrix: Array, scores: Array, targets: Array, threshold: float | None = None
    ) -> None:
        xp = self.xp
        check_confusion_matrix(matrix, scores, threshold)
        classes = matrix.shape[0]
        if threshold is None:
            predicted = self.argmax_rows(scores)  # (B,)
            check_labels(targets, classes)
            true = targets
        else:
            predicted = (scores > threshold).ravel()  # (B * K,)
            true = targets.ravel() > 0.5  # targets are 0/1
        pairs = true.astype(xp.int64) * classes + predicted.astype(xp.int64)
        counts = xp.bincount(pairs, minlength=classes * classes)
        matrix += counts.reshape(classes, classes).astype(matrix.dtype)

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
        momentum: float = 0.0,
        momentum_buffer: Array | None = None,
        average_gradient: Array | None = None,
    ) -> None:
        velocity *= rho
        velocity += (1.0 - rho) * grad * grad
        if average_gradient is None:
            denominator = velocity + epsilon
        else:
            average_gradient *= rho
            average_gradient += (1.0 - rho) * grad
            denominator = velocity - average_gradient * average_gradient + epsilon
        step = learning_rate * grad / self.xp.sqrt(denominator)
        if momentum_buffer is not None:
            momentum_buffer *= momentum
            momentum_buffer += step
            step = momentum_buffer
        param -= step

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
        v_hat: Array | None = None,
    ) -> None:
        alpha = adam_step_size(learning_rate, beta_1, beta_2, step)
        m += (1.0 - beta_1) * (grad - m)
        v += (1.0 - beta_2) * (grad * grad - v)
        if v_hat is not None:
            self.xp.maximum(v_hat, v, out=v_hat)
        param -= alpha * m / (self.xp.sqrt(v if v_hat is None else v_hat) + epsilon)
