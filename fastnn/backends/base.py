"""The backend interface: every array operation the network needs, in one class.

Layers, losses and optimizers call only the methods of :class:`Backend`; a new
backend is one new file with a subclass. Methods are of two kinds:

* primitives (abstract here): what every backend must implement itself;
* compositions (concrete here): written once in terms of the primitives, so a
  backend gets them for free and overrides one only where it can fuse the work
  into fewer passes over memory (``bias_activation``, the fused losses, the
  optimizer updates).

Conventions for every method:

* Arrays are the backend's own type (``numpy.ndarray`` for the CPU backends,
  ``cupy.ndarray`` for the GPU one). Shapes are written ``(B, N)``: B rows
  (samples of a mini-batch), N columns (features or units).
* ``out=None`` allocates the result; passing ``out`` writes into it and returns
  it. ``out`` may be the same array as an input ("in place") wherever the
  docstring says so.
* A returned ``Scalar`` is a Python number on CPU backends and a 0-d device
  array on GPU backends, so a training loop never waits on the GPU unless it
  asks (``float(scalar)`` synchronises).
* Empty arrays (0 rows, 0 columns) give empty results, and sums, counts and
  penalties over nothing are 0. Where the result would be undefined rather than
  empty, every backend raises ValueError: the losses (means) of no entries, the
  batch statistics of no samples (:meth:`batch_norm_forward`), and, for rows of
  zero columns, the ops over each row's entries (softmax, the softmax losses,
  ``argmax_rows`` and the argmax count and confusion matrix).
* NaN and infinities propagate as in the NumPy reference: NaN wherever it
  gives NaN, the same infinities. Two deviations are allowed: a result (or an
  optimizer state) below the dtype's smallest normal number may be 0 where
  NumPy keeps a subnormal, and a sum whose finite terms overflow the dtype may
  come out inf or finite depending on the order of summation.
* Integer labels must lie in ``[0, K)``: fit and evaluate check them, the
  backends need not (the Numba kernels that index by label raise IndexError
  rather than read out of bounds).
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fastnn.sparse import SparseRows, compress

Array = Any  # numpy.ndarray or cupy.ndarray: the backend's own array type.
Scalar = Any  # Python number (CPU backends) or 0-d device array (GPU backends).
DTypeLike = Any

#: Activation names every backend understands.
ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "sigmoid", "tanh", "softmax")
#: The fused losses, by the name of their backend method.
LOSSES: tuple[str, ...] = (
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "mean_squared_error",
)
#: The optimizer updates :meth:`Backend.apply_updates` runs, with the state arrays each
#: can take (the first ones always, the others by option: RMSprop's momentum and
#: centered forms, Adam's amsgrad), in the order the CUDA kernels read them.
UPDATE_RULES: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("velocity",),
    "rmsprop": ("velocity", "momentum_buffer", "average_gradient"),
    "adam": ("m", "v", "v_hat"),
}


class Adjustment(NamedTuple):
    """What Keras does to a step before its update, given to :meth:`Backend.apply_updates`:
    ``clipping`` ("clipnorm", "clipvalue", "global_clipnorm" or None) of the gradients to
    ``limit``, and decoupled weight decay, ``w -= w * weight_decay * learning_rate``
    (0: none)."""

    clipping: str | None
    limit: float
    weight_decay: float


# Fields of a pass's totals: a float64 array the losses add to step by step, read once at
# the end of the pass (the same numbers as kernels/cuda/losses.cu). LAST_LOSS holds the
# latest step's mean loss: the scalar a fused loss returns is a view of it.
LOSS_SUM, CORRECT, STEPS, FIRST_BAD_STEP, FIRST_BAD_LOSS, LAST_LOSS = range(6)
#: totals before the first step: no bad step seen (-1)
TOTALS_START = np.array([0.0, 0.0, 0.0, -1.0, 0.0, 0.0])


class Count(NamedTuple):
    """What a fused loss counts for the accuracy metric, besides its loss.

    ``kind="argmax"``: rows whose first largest output is at their label, ``targets`` the
    integer labels (B,). ``kind="threshold"``: outputs on the side of ``threshold`` that
    their 0/1 target (``targets``, (B, K)) names.
    """

    kind: str
    targets: Array
    threshold: float = 0.0


def check_activation_name(activation: object) -> str:
    """``activation`` if it is one of :data:`ACTIVATIONS`, else a ValueError naming them."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; valid: " + ", ".join(map(repr, ACTIVATIONS))
        )
    return str(activation)


class Backend(ABC):
    """Every array operation of the network, for one kind of array."""

    #: Registry name of the backend ("numpy", "numba", "cupy").
    name: ClassVar[str]
    #: False when ops only queue work (a GPU): scalars they return are read back on
    #: demand, and training reads them once per epoch rather than once per step.
    synchronous: ClassVar[bool] = True
    #: True when :meth:`run_step` may replay a step instead of running it (CUDA graphs,
    #: recorded calls): only then is a step's key worth building.
    replays_steps: ClassVar[bool] = False
    #: interface methods this backend leaves to the NumPy code it inherits (on a GPU, to
    #: CuPy's own operations) for every operand: the ones with no kernel of its own
    inherited_ops: ClassVar[frozenset[str]] = frozenset()

    # ------------------------------------------------------------------ arrays
    @abstractmethod
    def asarray(self, x: Any, dtype: DTypeLike | None = None) -> Array:
        """Return ``x`` as a backend array of ``dtype`` (no copy when it already is one)."""

    @abstractmethod
    def to_numpy(self, x: Array) -> np.ndarray:
        """Return ``x`` as a NumPy array on the host (no copy when it already is one)."""

    @abstractmethod
    def empty(self, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """Allocate an uninitialised array."""

    @abstractmethod
    def zeros(self, shape: tuple[int, ...], dtype: DTypeLike) -> Array:
        """Allocate an array of zeros."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until all queued work is finished (a no-op on CPU backends)."""

    # ---------------------------------------------------------- random init
    def random_uniform(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        low: float,
        high: float,
        dtype: DTypeLike,
    ) -> Array:
        """Uniform samples in ``[low, high)``.

        Drawn on the host from ``rng`` so that the same seed gives the same
        weights on every backend; initialisation is not on the hot path.
        """
        return self.asarray(rng.uniform(low, high, size=shape).astype(dtype), dtype)

    def random_normal(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        mean: float,
        stddev: float,
        dtype: DTypeLike,
        truncated: bool = False,
    ) -> Array:
        """Normal samples; ``truncated`` redraws any farther than two ``stddev`` from the mean."""
        values = rng.standard_normal(size=shape)
        if truncated:
            outside = np.abs(values) > 2.0
            while outside.any():
                values[outside] = rng.standard_normal(size=int(outside.sum()))
                outside = np.abs(values) > 2.0
        return self.asarray((values * stddev + mean).astype(dtype), dtype)

    # ------------------------------------------------------------ mini-batches
    @abstractmethod
    def take_rows(self, x: Array, indices: Array, out: Array | None = None) -> Array:
        """Gather rows: ``out[i] = x[indices[i]]``. x (N, ...), indices (B,) -> (B, ...)."""

    # ---------------------------------------------------------- linear algebra
    @abstractmethod
    def matmul(
        self,
        a: Array,
        b: Array,
        transpose_a: bool = False,
        transpose_b: bool = False,
        out: Array | None = None,
    ) -> Array:
        """``op(a) @ op(b)``, op transposing when asked: (M, K) @ (K, N) -> (M, N)."""

    @abstractmethod
    def bias_add(self, x: Array, bias: Array, out: Array | None = None) -> Array:
        """``x + bias`` for every row. x (B, N), bias (N,) -> (B, N); may be in place."""

    @abstractmethod
    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        """Sum over the batch axis: (B, N) -> (N,). The bias gradient."""

    # ------------------------------------------------------------- activations
    @abstractmethod
    def relu(self, x: Array, out: Array | None = None) -> Array:
        """``max(x, 0)`` elementwise; may be in place."""

    @abstractmethod
    def relu_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        """Gradient through ReLU from its output y: ``dy * (y > 0)``; may be in place on dy."""

    @abstractmethod
    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        """``1 / (1 + exp(-x))`` without overflow for large ``|x|``; may be in place."""

    @abstractmethod
    def sigmoid_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        """Gradient through sigmoid from its output y: ``dy * y * (1 - y)``."""

    @abstractmethod
    def tanh(self, x: Array, out: Array | None = None) -> Array:
        """Hyperbolic tangent elementwise; may be in place."""

    @abstractmethod
    def tanh_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        """Gradient through tanh from its output y: ``dy * (1 - y**2)``."""

    @abstractmethod
    def softmax(self, x: Array, out: Array | None = None) -> Array:
        """Row-wise softmax, stable for large values and -inf. (B, K) -> (B, K)."""

    @abstractmethod
    def softmax_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        """Gradient through row-wise softmax from its output y: ``y * (dy - sum(dy * y))``."""

    def activation(self, x: Array, activation: str, out: Array | None = None) -> Array:
        """Apply the activation named ``activation`` (one of :data:`ACTIVATIONS`)."""
        check_activation_name(activation)
        if activation == "linear":
            if out is None or out is x:
                return x
            out[...] = x
            return out
        forward = {
            "relu": self.relu,
            "sigmoid": self.sigmoid,
            "tanh": self.tanh,
            "softmax": self.softmax,
        }[activation]
        return forward(x, out=out)

    def activation_backward(
        self, dy: Array, y: Array, activation: str, out: Array | None = None
    ) -> Array:
        """Gradient through the activation named ``activation``, from its output y."""
        check_activation_name(activation)
        if activation == "linear":
            if out is None or out is dy:
                return dy
            out[...] = dy
            return out
        backward = {
            "relu": self.relu_backward,
            "sigmoid": self.sigmoid_backward,
            "tanh": self.tanh_backward,
            "softmax": self.softmax_backward,
        }[activation]
        return backward(dy, y, out=out)

    def bias_activation(
        self, x: Array, bias: Array, activation: str, out: Array | None = None
    ) -> Array:
        """Fused ``activation(x + bias)``: what a Dense layer does to its matmul output.

        x (B, N), bias (N,) -> (B, N); may be in place on x.
        """
        check_activation_name(activation)
        z = self.bias_add(x, bias, out=out)
        return self.activation(z, activation, out=z)

    def bias_activation_backward(
        self, dy: Array, y: Array, activation: str, bias_grad: Array, out: Array | None = None
    ) -> Array:
        """Backward through ``activation(x @ w + bias)`` up to the product: what a Dense
        layer does first in its backward pass.

        dy, y (B, N) -> dz = gradient through the activation (B, N), returned; its column
        sums, the bias gradient, are written into ``bias_grad`` (N,). May be in place on dy.
        """
        dz = self.activation_backward(dy, y, activation, out=out)
        self.sum_rows(dz, out=bias_grad)
        return dz

    # ----------------------------------------------------------- regularization
    @abstractmethod
    def weight_penalty(
        self, param: Array, l1: float, l2: float, grad: Array | None = None
    ) -> Scalar:
        """``l1 * sum(|w|) + l2 * sum(w**2)`` over ``param`` (any shape).

        With ``grad`` (shaped like ``param``), also adds the penalty's gradient
        ``l1 * sign(w) + 2 * l2 * w`` to it in place.
        """

    def dropout_mask(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        rate: float,
        dtype: DTypeLike,
    ) -> Array:
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``.

        Drawn on the host from ``rng`` (in float32 whatever ``dtype``), so a seed
        drops the same units on every backend and the backends stay comparable.
        """
        keep = rng.random(shape, dtype=np.float32) >= rate
        return self.asarray(keep.astype(dtype) * np.asarray(1.0 / (1.0 - rate), dtype), dtype)

    @abstractmethod
    def multiply(self, a: Array, b: Array, out: Array | None = None) -> Array:
        """Elementwise ``a * b`` of same-shape arrays; may be in place. Dropout's both passes."""

    # ------------------------------------------------------------ normalization
    @abstractmethod
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
        """Batch normalization in training: each column by its batch statistics.

        x (B, N); gamma, beta (N,). Writes the column means and (biased) variances
        into ``mean_out`` and ``variance_out`` (N,) and returns
        ``gamma * (x - mean) / sqrt(variance + epsilon) + beta`` (B, N).
        """

    @abstractmethod
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
        """``gamma * (x - mean) / sqrt(variance + epsilon) + beta`` with given statistics (N,)."""

    @abstractmethod
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
        """Gradients of :meth:`batch_norm_forward` from its input x and batch statistics.

        dy, x (B, N) -> dx (B, N); writes ``dgamma = sum(dy * xhat)`` and
        ``dbeta = sum(dy)`` (N,). With ``xhat = (x - mean) / sqrt(variance + epsilon)``:
        ``dx = gamma / sqrt(variance + epsilon) * (dy - mean(dy) - xhat * mean(dy * xhat))``.
        May be in place on dy.
        """

    @abstractmethod
    def moving_average_update(self, average: Array, value: Array, momentum: float) -> None:
        """In place: ``average = momentum * average + (1 - momentum) * value``."""

    # ------------------------------------------------------------------ losses
    @abstractmethod
    def sparse_softmax_cross_entropy(
        self, logits: Array, labels: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        """Softmax + cross-entropy against integer labels, fused.

        logits (B, K), labels (B,) in ``[0, K)`` -> (mean loss over the batch,
        gradient of that mean w.r.t. the logits (B, K)).
        """

    @abstractmethod
    def softmax_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        """Softmax + cross-entropy against target distributions (one-hot rows).

        logits (B, K), targets (B, K) -> (mean loss, gradient w.r.t. logits (B, K)).
        """

    @abstractmethod
    def sigmoid_binary_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        """Sigmoid + binary cross-entropy, fused and stable for large ``|logits|``.

        logits (B, K), targets (B, K) in [0, 1] -> (mean loss over all entries,
        gradient w.r.t. logits (B, K)).
        """

    @abstractmethod
    def mean_squared_error(
        self, predictions: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        """Mean over all entries of ``(predictions - targets)**2``, and its gradient (B, K)."""

    # ----------------------------------------------------------------- metrics
    @abstractmethod
    def argmax_rows(self, x: Array) -> Array:
        """Index of the largest entry of each row: (B, K) -> (B,) integers."""

    @abstractmethod
    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        """How many rows of scores (B, K) have their largest entry at ``labels`` (B,)."""

    @abstractmethod
    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        """How many entries satisfy ``(scores > threshold) == targets``; (B, K) each."""

    @abstractmethod
    def update_confusion(
        self, matrix: Array, scores: Array, targets: Array, threshold: float | None = None
    ) -> None:
        """Add a batch's (true, predicted) pairs to the integer ``matrix`` in place.

        ``threshold=None``: one class per row, predicted by argmax; scores (B, K),
        targets (B,) labels, matrix (K, K). Otherwise every entry is a binary
        prediction ``scores > threshold``; scores, targets (B, K), matrix (2, 2).
        Rows are true classes, columns predicted ones.
        """

    # -------------------------------------------------------------- optimizers
    @abstractmethod
    def sgd_update(self, param: Array, grad: Array, learning_rate: float) -> None:
        """In place: ``param -= learning_rate * grad``."""

    @abstractmethod
    def momentum_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
    ) -> None:
        """In place: ``velocity = momentum * velocity - learning_rate * grad``, then
        ``param += velocity`` (or, with Nesterov, ``param += momentum * velocity -
        learning_rate * grad``)."""

    @abstractmethod
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
        """In place: ``velocity = rho * velocity + (1 - rho) * grad**2``, then
        ``param -= learning_rate * grad / sqrt(velocity + epsilon)``.

        Centered (``average_gradient`` given): ``average_gradient = rho *
        average_gradient + (1 - rho) * grad`` and the root is of ``velocity -
        average_gradient**2 + epsilon``. With ``momentum_buffer`` the step goes through
        it: ``momentum_buffer = momentum * momentum_buffer + step``, ``param -=
        momentum_buffer``."""

    @abstractmethod
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
        """In place, for the 1-based ``step``:
        ``m += (1 - beta_1) * (grad - m)``, ``v += (1 - beta_2) * (grad**2 - v)``,
        ``param -= alpha * m / (sqrt(v) + epsilon)`` with
        ``alpha = learning_rate * sqrt(1 - beta_2**step) / (1 - beta_1**step)``.
        AMSGrad (``v_hat`` given): ``v_hat = maximum(v_hat, v)`` divides instead of ``v``."""

    # ------------------------------------------------------------ training steps
    # What a training step calls beyond the ops above. Each is a composition here; the GPU
    # backend fuses each into one launch and runs a step from fixed buffers only, so that
    # it can replay the step as a CUDA graph.
    def loss_and_gradient(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None = None,
        *,
        bias: Array | None = None,
        bias_grad: Array | None = None,
        totals: Array | None = None,
        count: Count | None = None,
        weights: Array | None = None,
    ) -> tuple[Scalar, Array]:
        """The fused loss ``loss`` (one of :data:`LOSSES`) with what a step needs around it.

        ``bias`` (K,), when given, is added to ``outputs`` (B, K) in place first (the last
        layer's bias); ``bias_grad`` (K,) receives the gradient's column sums (that bias's
        gradient). ``totals`` (a float64 array laid out as :data:`TOTALS_START`) gets the
        batch's loss times its rows, the ``count`` for the accuracy metric and the step
        added. ``weights`` (B,), Keras's sample weights: the loss is then the sum of each
        row's loss times its weight over B, and each row's gradient is scaled alike.
        Returns (mean loss, gradient w.r.t. the outputs (B, K)).
        """
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: " + ", ".join(LOSSES))
        if bias is not None:
            self.bias_add(outputs, bias, out=outputs)
        if weights is None:
            value, grad = getattr(self, loss)(outputs, targets, grad_out)
        else:
            value, grad = self.weighted_loss(loss, outputs, targets, weights, grad_out)
        if bias_grad is not None:
            self.sum_rows(grad, out=bias_grad)
        if totals is not None:
            correct = 0 if count is None else self._count(outputs, count)
            add_to_totals(totals, float(value), len(outputs), float(correct))
        return value, grad

    def dense_loss_step(
        self,
        loss: str,
        x: Array,
        kernel: Array,
        targets: Array,
        outputs: Array,
        grad_out: Array,
        kernel_grad: Array,
        input_grad: Array | None,
        **step: Any,
    ) -> tuple[Scalar, Array, Array | None]:
        """A model's last Dense layer in a training step with its fused loss: ``outputs
        (B, K) = x (B, H) @ kernel (H, K)``, then :meth:`loss_and_gradient` (``step``: its
        keyword arguments, the layer's bias among them) with its gradient ``dz`` in
        ``grad_out``, then ``kernel_grad = x.T @ dz`` and, unless ``input_grad`` is None,
        ``input_grad = dz @ kernel.T``. Returns (mean loss, dz, the input's gradient)."""
        z = self.matmul(x, kernel, out=outputs)
        value, dz = self.loss_and_gradient(loss, z, targets, grad_out, **step)
        self.matmul(x, dz, transpose_a=True, out=kernel_grad)
        if input_grad is None:
            return value, dz, None
        return value, dz, self.matmul(dz, kernel, transpose_b=True, out=input_grad)

    def weighted_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        weights: Array,
        grad_out: Array | None = None,
    ) -> tuple[Scalar, Array]:
        """The fused loss ``loss`` with Keras's sample weights ``weights`` (B,): the sum of
        each row's loss times its weight over B, and the gradient (B, K) of that, each
        row's scaled by its weight (into ``grad_out`` when given)."""
        raise NotImplementedError(f"the {self.name} backend has no sample weights")

    def clip_gradients(self, grads: Sequence[Array], option: str, limit: float) -> None:
        """Keras's gradient clipping, in place: ``option`` "clipnorm" scales each gradient
        whose L2 norm exceeds ``limit`` down to it, "global_clipnorm" all of them by their
        joint norm, "clipvalue" clips each entry to [-limit, limit]."""
        raise NotImplementedError(f"the {self.name} backend has no gradient clipping")

    def decay_weights(self, params: Sequence[Array], weight_decay: float, rate: float) -> None:
        """Keras's decoupled weight decay, in place: ``w -= w * weight_decay * rate``."""
        raise NotImplementedError(f"the {self.name} backend has no weight decay")

    def add_loss_term(self, totals: Array, value: Scalar, rows: int) -> None:
        """Add ``value``, a term of every sample's loss (a weight penalty), to a step's
        entry in ``totals`` (after :meth:`loss_and_gradient` made it)."""
        totals[LOSS_SUM : LOSS_SUM + 1] += value * rows
        totals[LAST_LOSS : LAST_LOSS + 1] += value

    def _count(self, outputs: Array, count: Count) -> Scalar:
        if count.kind == "argmax":
            return self.count_argmax_matches(outputs, count.targets)
        return self.count_threshold_matches(outputs, count.targets, count.threshold)

    def gather_batch(
        self,
        sources: Sequence[Array],
        order: Array | None,
        cursor: Array,
        batch_size: int,
        outs: Sequence[Array],
    ) -> list[Array]:
        """The next mini-batch of a pass, then ``cursor[0] += 1``.

        Batch ``i = cursor[0]`` is the rows ``order[i * batch_size :]`` of each source (as
        many as its ``outs`` array has), gathered into ``outs``; without an ``order``,
        the rows in order, as views where the backend can (the ``outs`` then unused).
        ``cursor`` is a backend array of two uint64 (the step, and scratch for a kernel).
        """
        step = int(cursor[0])
        cursor[0] = step + 1
        start = step * batch_size
        if order is None:
            return [
                source[start : start + len(out)] for source, out in zip(sources, outs, strict=True)
            ]
        return self.take_batch(sources, order[start : start + len(outs[0])], outs)

    def take_batch(
        self, sources: Sequence[Array], indices: Array, outs: Sequence[Array]
    ) -> list[Array]:
        """Rows ``indices`` (B,) of each source (dense or compressed rows) into ``outs``."""
        return [
            self.take_sparse_rows(source, indices, out)
            if isinstance(source, SparseRows)
            else self.take_rows(source, indices, out=out)
            for source, out in zip(sources, outs, strict=True)
        ]

    # ------------------------------------------- compressed rows (fastnn/sparse.py)
    #: whether the backend trains on compressed rows itself (else fit expands them)
    sparse_kernels: ClassVar[bool] = False
    #: ... with products of its own, not BLAS's: BLAS's calls beside them are small, and a
    #: pass over compressed rows keeps BLAS to one thread (fastnn/threads.py)
    sparse_products_own: ClassVar[bool] = False
    #: the share of nonzeros below which ``sparse_inputs="auto"`` compresses dense data
    sparse_crossover: ClassVar[float] = 0.0
    #: and only for a first layer at least this wide (its products vectorize along units)
    sparse_min_units: ClassVar[int] = 512
    #: ... or at most this wide (kernels of their own for narrow layers; 0: none)
    sparse_narrow_units: ClassVar[int] = 0

    def compress_rows(self, x: np.ndarray) -> SparseRows:
        """Host rows (n, F) as compressed rows on the host (:func:`fastnn.sparse.compress`)."""
        return compress(x)

    def take_sparse_rows(self, x: SparseRows, indices: Array, out: SparseRows) -> SparseRows:
        """Rows ``indices`` (B,) of ``x`` into ``out``'s arrays (their indptr from 0)."""
        raise NotImplementedError(f"the {self.name} backend has no compressed rows")

    def sparse_matmul(self, x: SparseRows, w: Array, out: Array | None = None) -> Array:
        """``x (B, F) @ w (F, H)`` -> (B, H), x compressed rows."""
        raise NotImplementedError(f"the {self.name} backend has no compressed rows")

    def sparse_dense(
        self,
        x: SparseRows,
        w: Array,
        bias: Array | None,
        activation: str,
        out: Array | None = None,
    ) -> Array:
        """``activation(x @ w + bias)`` (B, H): a Dense layer's forward on compressed rows
        x (B, F), with w (F, H) and bias (H,) or None. A backend may make it in one pass;
        here, the product, then the bias and activation in place on it."""
        z = self.sparse_matmul(x, w, out=out)  # (B, H)
        if bias is None:
            return self.activation(z, activation, out=z)
        return self.bias_activation(z, bias, activation, out=z)

    def sparse_weight_gradient(self, x: SparseRows, dz: Array, out: Array | None = None) -> Array:
        """``x.T (F, B) @ dz (B, H)`` -> (F, H), x compressed rows."""
        raise NotImplementedError(f"the {self.name} backend has no compressed rows")

    def fuses_sparse_update(self, rule: str, kernel: Array, slot_names: tuple[str, ...]) -> bool:
        """Whether :meth:`sparse_update` runs ``rule`` (a plain one: no clipping, no
        decay) on a first layer's ``kernel`` (F, H) with the state ``slot_names``: the weight
        gradient of compressed rows fused with the update, skipping zero gradient rows."""
        return False

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
        """One step of ``rule`` on ``param`` (F, H) with the gradient ``x.T @ dz`` (x (B, F)
        compressed rows, dz (B, H)), touching only the rows the gradient has nonzeros in.
        The step's number is ``state[0]`` (the optimizer's count, which
        :meth:`apply_updates` has advanced for this step): read here, not passed as a
        number, so a replayed step's calls are the same every step. RMSprop's velocity of
        the other rows decays lazily: ``stamps`` (F,) int64 holds the step each row is
        current at (None for SGD, which has no state); :meth:`settle_rows` catches up."""
        raise NotImplementedError(f"the {self.name} backend has no fused sparse updates")

    def settle_rows(self, velocity: Array, stamps: Array, step: int, rho: float) -> None:
        """Bring every row of ``velocity`` (F, H) left behind by :meth:`sparse_update` to
        step ``step``: row j is multiplied by ``rho ** (step - stamps[j])``."""
        raise NotImplementedError(f"the {self.name} backend has no fused sparse updates")

    def apply_updates(
        self,
        rule: str,
        params: Sequence[Array],
        grads: Sequence[Array],
        slots: Sequence[Mapping[str, Array]],
        hyper: dict[str, Any],
        state: Array,
        adjust: Adjustment | None = None,
    ) -> None:
        """One optimizer step over every parameter, then ``state[0] += 1``.

        ``rule`` names an update of :data:`UPDATE_RULES` (``"rmsprop"`` runs
        :meth:`rmsprop_update`), ``slots[i]`` holds parameter i's state arrays by name
        (some of the rule's), ``hyper`` the update's other keyword arguments. ``state``
        (two uint64 on the backend) counts the steps taken; Adam's bias correction uses it.
        ``adjust``: clipping and weight decay first (the gradients may be clipped in
        place); a backend's kernels fuse them into the update.
        """
        if adjust is not None:
            if adjust.clipping is not None:
                self.clip_gradients(grads, adjust.clipping, adjust.limit)
            if adjust.weight_decay:
                self.decay_weights(params, adjust.weight_decay, hyper["learning_rate"])
        update = getattr(self, f"{rule}_update")
        step = int(state[0]) + 1
        extra = {"step": step} if rule == "adam" else {}
        for param, grad, param_slots in zip(params, grads, slots, strict=True):
            update(param, grad, **param_slots, **hyper, **extra)
        state[0] = step

    def kernels_cached(self) -> bool:
        """Whether this backend's kernels are compiled already; False means that the first
        steps compile them, which takes seconds (the Numba backend, on a first run)."""
        return True

    def copy_from_host(self, dst: Array, values: np.ndarray) -> None:
        """Overwrite the backend array ``dst`` with host values of its shape."""
        dst[...] = self.asarray(values, dst.dtype)

    def run_step(
        self,
        step: Callable[[], None],
        key: Hashable | None,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Run a training step. ``key`` (None: not replayable) names steps that use the
        same buffers and settings; a backend may replay those (a GPU as one CUDA graph,
        the numba backend as its recorded calls: ``fastnn/backends/replay.py``), then
        calling ``check`` once the step's loss is made, before its updates."""
        step()

    @contextlib.contextmanager
    def training_stream(self) -> Iterator[None]:
        """Where a fit runs its steps (a GPU backend's own stream, needed for capture)."""
        yield

    # ------------------------------------------------- sums over distributed ranks
    def nccl(self) -> Any | None:
        """NCCL (CuPy's ``cupy.cuda.nccl``) when a distributed fit can sum this backend's
        arrays on the device itself; None: they are summed through host memory."""
        return None

    def device_id(self) -> int:
        """The number of the GPU this process computes on (0 on the CPU)."""
        return 0

    def device_address(self, a: Array) -> int:
        """The device address of the first entry of a contiguous array."""
        raise NotImplementedError(f"the {self.name} backend has no device arrays")

    def stream_handle(self) -> int:
        """The handle of the stream the current work is queued on (0: none)."""
        return 0

    def stream_done(self) -> Callable[[], bool]:
        """A check that says whether the work queued so far has finished."""
        return lambda: True


def add_to_totals(totals: Array, value: float, rows: int, correct: float) -> None:
    """Add one step to host ``totals``, as kernels/cuda/losses.cu does on the device."""
    if not math.isfinite(value) and totals[FIRST_BAD_STEP] < 0:
        totals[FIRST_BAD_STEP] = totals[STEPS]
        totals[FIRST_BAD_LOSS] = value
    totals[LOSS_SUM] += value * rows
    totals[CORRECT] += correct
    totals[STEPS] += 1
    totals[LAST_LOSS] = value
