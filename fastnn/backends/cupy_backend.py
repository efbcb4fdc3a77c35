"""The CuPy backend: the network on an NVIDIA GPU, with CUDA kernels of our own.

Arrays are CuPy arrays on the current device. Matrix products go to cuBLAS through
``cupy.matmul``; the elementwise, column-sum, loss, accuracy, gather and optimizer work
runs in the kernels of ``kernels/cuda/*.cu`` (shipped as package data), fused as a
training step needs them (see :mod:`fastnn.backends.cuda_kernels` for the sources and
their compilation). Operands a kernel does not take (another dtype, layout or rank) go
through the inherited NumPy code, which CuPy runs with NumPy's rules.

Scalars (losses, accuracy counts) stay on the device as 0-d arrays, so a training loop
never waits on the GPU until it asks for a number: ``synchronous = False`` tells the
model to read them back once per epoch.

A training step whose buffers are fixed (:meth:`CupyBackend.run_step` with a key) is
captured as a CUDA graph after one eager run and replayed from then on: one launch
instead of ten (:mod:`fastnn.backends.cuda_graphs`; ``FASTNN_CUDA_GRAPHS=0`` turns that off).

This module imports without CuPy (so ``fastnn backends`` can say why it cannot run);
CuPy is imported when the backend is created.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fastnn.backends.base import (
    LAST_LOSS,
    LOSSES,
    UPDATE_RULES,
    Adjustment,
    Array,
    Count,
    DTypeLike,
    Scalar,
    check_activation_name,
)
from fastnn.backends.cuda_graphs import StepGraphs
from fastnn.backends.cuda_kernels import (
    ACTIVATION_CODES,
    COUNT_CODES,
    LABEL_DTYPE,
    UPDATE_TABLE_ROW,
    KernelCache,
    adjust_scalars,
    kernel_probe,
    update_scalars,
)
from fastnn.backends.numpy_backend import NumpyBackend, require_columns, require_entries
from fastnn.launcher import launched_local_rank, launched_size

THREADS = 256  # per block: a whole number of warps
MAX_BLOCKS = 65_535  # grid-stride loops cover the rest
HEAD_THREADS = 256  # the one block of a fused loss: 8 warps, far below any register limit
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def probe() -> str | None:
    """Why the cupy backend cannot run here, or None when it can.

    CuPy imports on machines without a GPU and only fails when it first talks to
    the driver, so the probe asks the driver for a device, then compiles and runs one
    of our own kernels: CuPy's precompiled operations run without NVRTC, ours do not.
    """
    hint = 'pip install -e ".[cuda13]" (CUDA 13) or ".[cuda12]" (CUDA 12) in the fastnn folder'
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed ({hint})"
    try:
        import cupy
    except Exception as error:  # e.g. CuPy built for another CUDA than the one found
        return f"CuPy is installed but failed to import: {error}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        return f"no usable CUDA driver or device: {type(error).__name__}: {error}"
    if count == 0:
        return "no CUDA device found"
    return kernel_probe(cupy)


class CupyBackend(NumpyBackend):
    """CuPy arrays on the GPU; CUDA kernels of our own for the hot ops."""

    name: ClassVar[str] = "cupy"
    synchronous: ClassVar[bool] = False
    replays_steps: ClassVar[bool] = True
    # no CUDA kernels for compressed rows yet: fit expands sparse inputs to dense arrays
    sparse_kernels: ClassVar[bool] = False
    # CuPy's own operations: off the training step's hot path, or one CuPy pass already
    inherited_ops: ClassVar[frozenset[str]] = frozenset(
        {
            "multiply", "dropout_mask", "take_rows", "argmax_rows", "update_confusion",
            "weight_penalty", "batch_norm_forward", "batch_norm_inference",
            "batch_norm_backward", "moving_average_update",
        }
    )  # fmt: skip
    #: threads per block (a whole number of warps) and the cap on grid-stride launches
    threads: ClassVar[int] = THREADS
    max_blocks: ClassVar[int] = MAX_BLOCKS
    head_threads: ClassVar[int] = HEAD_THREADS

    def __init__(self) -> None:
        super().__init__()
        self.xp = self._array_module()
        if launched_size() > 1:  # one GPU a rank of a machine, in turn, as NCCL needs
            self.xp.cuda.Device(launched_local_rank() % self.xp.cuda.runtime.getDeviceCount()).use()
        self._kernels = KernelCache(self.xp)
        self._tables: dict[tuple[int, ...], tuple[Array, tuple[Array, ...]]] = {}
        #: gradient_norms buffers by number of parameters (see _norm_buffers)
        self._norms: dict[int, tuple[Array, Array, Array]] = {}
        self._orders: dict[int, Array] = {}
        self._graphs = StepGraphs(self)
        self._stream: Any = None

    def _array_module(self) -> Any:
        """CuPy, or what stands in for it."""
        import cupy

        return cupy

    # ------------------------------------------------------------ plumbing
    def _kernel(self, source: str, kernel: str, dtype: DTypeLike | None) -> Any:
        return self._kernels.get(source, kernel, dtype)

    def _launch(self, kernel: Any, threads: int, args: tuple[Any, ...]) -> None:
        """Run ``kernel`` with at least ``threads`` threads (grid-stride kernels take fewer)."""
        blocks = max(1, min(self.max_blocks, math.ceil(threads / self.threads)))
        kernel((blocks,), (self.threads,), args)

    def _per_row(self, kernel: Any, rows: int, args: tuple[Any, ...]) -> None:
        """Run a one-warp-per-row kernel over ``rows`` rows."""
        kernel((max(1, math.ceil(rows * 32 / self.threads)),), (self.threads,), args)

    def _fits(self, *arrays: Array) -> bool:
        """Whether the kernels take these operands: device arrays of one float dtype."""
        dtype = arrays[0].dtype
        return dtype in FLOATS and all(
            isinstance(a, self.xp.ndarray) and a.dtype == dtype for a in arrays
        )

    def _contiguous(self, a: Array, dtype: DTypeLike | None = None) -> Array:
        """``a`` as a C-contiguous device array (of ``dtype``): kernels index it densely."""
        return self.xp.ascontiguousarray(a, dtype=dtype)

    def _output(
        self, shape: tuple[int, ...], dtype: DTypeLike, out: Array | None
    ) -> tuple[Array, Array | None]:
        """A C-contiguous array to write a result of ``shape`` and ``dtype`` into, and the
        ``out`` to copy it to afterwards (when ``out`` is strided or of another dtype)."""
        if out is None:
            return self.xp.empty(shape, dtype=dtype), None
        if out.shape != tuple(shape):
            raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
        if not np.can_cast(dtype, out.dtype, "same_kind"):
            raise TypeError(
                f"out has dtype {out.dtype}; the result is {np.dtype(dtype)}, which NumPy's "
                "same_kind rule does not cast to it"
            )
        if out.flags.c_contiguous and out.dtype == dtype:
            return out, None
        return self.xp.empty(shape, dtype=dtype), out

    def _finish(self, result: Array, copy_to: Array | None) -> Array:
        if copy_to is None:
            return result
        copy_to[...] = result
        return copy_to

    # ------------------------------------------------------------------ arrays
    def to_numpy(self, x: Array) -> np.ndarray:
        return self.xp.asnumpy(x)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def _scalar(self, value: Array) -> Scalar:
        return value  # stays on the device: reading it would make the GPU wait

    def copy_from_host(self, dst: Array, values: np.ndarray) -> None:
        dst.set(np.ascontiguousarray(values, dtype=dst.dtype))

    # ------------------------------------------------------------ mini-batches
    def take_rows(self, x: Array, indices: Array, out: Array | None = None) -> Array:
        # CuPy's take wraps an index past the end around; NumPy refuses it, and so do we
        # (a read of the indices: this op is not on the training step's path)
        n = len(x)
        if indices.size and indices.dtype.kind in "iu":
            low, high = int(indices.min()), int(indices.max())
            if low < -n or high >= n:
                raise IndexError(
                    f"row index {low if low < -n else high} is out of range for {n} rows"
                )
        return super().take_rows(x, indices, out=out)

    # ------------------------------------------------------------- activations
    def _activation(self, x: Array, activation: str, out: Array | None) -> Array:
        if not self._fits(x):
            return getattr(super(), activation)(x, out=out)
        x = self._contiguous(x)
        result, copy_to = self._output(x.shape, x.dtype, out)
        kernel = self._kernel("elementwise.cu", "activation", x.dtype)
        code = np.int32(ACTIVATION_CODES[activation])
        self._launch(kernel, x.size, (x, result, np.int64(x.size), code))
        return self._finish(result, copy_to)

    def _activation_backward(
        self, dy: Array, y: Array, activation: str, out: Array | None
    ) -> Array:
        if dy.shape != y.shape:
            raise ValueError(f"dy and y must have one shape; received {dy.shape} and {y.shape}")
        if not self._fits(dy, y):
            return getattr(super(), f"{activation}_backward")(dy, y, out=out)
        dy, y = self._contiguous(dy), self._contiguous(y)
        result, copy_to = self._output(dy.shape, dy.dtype, out)
        kernel = self._kernel("elementwise.cu", "activation_backward", dy.dtype)
        code = np.int32(ACTIVATION_CODES[activation])
        self._launch(kernel, dy.size, (dy, y, result, np.int64(dy.size), code))
        return self._finish(result, copy_to)

    def relu(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, "relu", out)

    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, "sigmoid", out)

    def tanh(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, "tanh", out)

    def relu_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, "relu", out)

    def sigmoid_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, "sigmoid", out)

    def tanh_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, "tanh", out)

    def bias_add(self, x: Array, bias: Array, out: Array | None = None) -> Array:
        if x.ndim != 2 or bias.shape != (x.shape[1],) or not self._fits(x, bias):
            return super().bias_add(x, bias, out=out)  # NumPy broadcasts, casts or refuses
        return self.bias_activation(x, bias, "linear", out=out)

    def bias_activation(
        self, x: Array, bias: Array, activation: str, out: Array | None = None
    ) -> Array:
        check_activation_name(activation)
        if x.ndim != 2 or bias.shape != (x.shape[1],):
            raise ValueError(f"bias of shape {bias.shape} does not fit rows of shape {x.shape}")
        if not self._fits(x, bias):
            return super().bias_activation(x, bias, activation, out=out)
        x, bias = self._contiguous(x), self._contiguous(bias)
        result, copy_to = self._output(x.shape, x.dtype, out)
        kernel = self._kernel("elementwise.cu", "bias_activation", x.dtype)
        code = ACTIVATION_CODES["linear" if activation == "softmax" else activation]
        rows, cols = x.shape
        self._launch(kernel, x.size, (x, bias, result, np.int64(rows), np.int64(cols),
                                      np.int32(code)))  # fmt: skip
        if activation == "softmax":
            self.softmax(result, out=result)
        return self._finish(result, copy_to)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        if x.ndim != 2 or not self._fits(x) or (out is not None and out.dtype != x.dtype):
            return super().sum_rows(x, out=out)  # a reduction casts into any out, as NumPy
        return self._column_sums(x, None, "linear", None, out)

    def bias_activation_backward(
        self, dy: Array, y: Array, activation: str, bias_grad: Array, out: Array | None = None
    ) -> Array:
        check_activation_name(activation)
        if (
            activation == "softmax"  # its gradient mixes a row's entries: not a column kernel
            or dy.ndim != 2
            or dy.shape != y.shape
            or not self._fits(dy, y, bias_grad)
        ):
            return super().bias_activation_backward(dy, y, activation, bias_grad, out=out)
        dz, copy_to = self._output(dy.shape, dy.dtype, out)
        self._column_sums(dy, y, activation, dz, bias_grad)
        return self._finish(dz, copy_to)

    def _column_sums(
        self, dy: Array, y: Array | None, activation: str, dz: Array | None, sums: Array | None
    ) -> Array:
        """Column sums of dz = dy * act'(y) into ``sums`` (dz written when given); one launch."""
        rows, cols = dy.shape
        result, copy_to = self._output((cols,), dy.dtype, sums)
        dy = self._contiguous(dy)
        y = None if y is None else self._contiguous(y)
        kernel = self._kernel("columns.cu", "column_sums", dy.dtype)
        grid, block = (max(1, math.ceil(cols / 32)),), (32, max(1, self.threads // 32))
        kernel(grid, block, (dy, y, dz, result, np.int64(rows), np.int64(cols),
                             np.int32(ACTIVATION_CODES[activation])))  # fmt: skip
        return self._finish(result, copy_to)

    def _row_kernel(self, kernel_name: str, inputs: tuple[Array, ...], out: Array | None) -> Array:
        if inputs[0].ndim != 2:
            raise ValueError(f"expected (batch, classes) arrays; received {inputs[0].shape}")
        inputs = tuple(self._contiguous(a) for a in inputs)
        result, copy_to = self._output(inputs[0].shape, inputs[0].dtype, out)
        rows, cols = inputs[0].shape
        kernel = self._kernel("softmax.cu", kernel_name, inputs[0].dtype)
        self._per_row(kernel, rows, (*inputs, result, np.int64(rows), np.int32(cols)))
        return self._finish(result, copy_to)

    def softmax(self, x: Array, out: Array | None = None) -> Array:
        require_columns(x, "softmax")  # the kernel reads each row's first entry
        if not self._fits(x):
            return super().softmax(x, out=out)
        return self._row_kernel("softmax", (x,), out)

    def softmax_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        if dy.shape != y.shape:
            raise ValueError(f"dy and y must have one shape; received {dy.shape} and {y.shape}")
        if not self._fits(dy, y):
            return super().softmax_backward(dy, y, out=out)
        return self._row_kernel("softmax_backward", (dy, y), out)

    # ------------------------------------------------------------------ losses
    def _fused_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        bias: Array | None = None,
        bias_grad: Array | None = None,
        totals: Array | None = None,
        count: Count | None = None,
        weights: Array | None = None,
    ) -> tuple[Scalar, Array] | None:
        """The fused loss kernel (losses.cu), or None when the operands do not fit it."""
        if outputs.ndim != 2:
            raise ValueError(f"outputs must be 2-D (batch, units); received {outputs.shape}")
        require_entries(outputs, loss)
        sparse = loss == "sparse_softmax_cross_entropy"
        if sparse and targets.shape != outputs.shape[:1]:
            raise ValueError(f"labels must have shape ({len(outputs)},); received {targets.shape}")
        if not sparse and targets.shape != outputs.shape:
            raise ValueError(f"targets have shape {targets.shape}; expected {outputs.shape}")
        extras = [a for a in (bias, bias_grad, weights) if a is not None]
        if (
            not self._fits(outputs, *extras)
            or (weights is not None and weights.shape != outputs.shape[:1])
            or (sparse and targets.dtype.kind not in "iu")  # NumPy refuses other indices
            or (not sparse and targets.dtype != outputs.dtype)  # NumPy's rules decide those
            or (bias is not None and not outputs.flags.c_contiguous)  # the kernel adds it
        ):
            return None
        rows, cols = outputs.shape
        dtype = outputs.dtype
        logits = outputs if bias is not None else self._contiguous(outputs)
        targets = self._contiguous(targets, LABEL_DTYPE if sparse else dtype)
        grad, copy_to = self._output(outputs.shape, dtype, grad_out)
        if grad is outputs:  # the kernel reads the outputs after writing grad
            grad, copy_to = self.xp.empty_like(outputs), grad
        if bias is not None:
            bias = self._contiguous(bias)
        if weights is not None:
            weights = self._contiguous(weights)
        sums, sums_to = (
            (None, None) if bias_grad is None else self._output((cols,), dtype, bias_grad)
        )
        # the batch's mean loss: a new scalar, or a view of the totals (nothing allocated)
        mean = (
            self.xp.empty((), np.float64)
            if totals is None
            else totals[LAST_LOSS : LAST_LOSS + 1].reshape(())
        )
        labels, count_targets, threshold = None, None, 0.0
        if count is not None:
            threshold = count.threshold
            if count.kind == "argmax":
                labels = self._contiguous(count.targets, LABEL_DTYPE)
            else:
                count_targets = self._contiguous(count.targets, dtype)
        kernel = self._kernel("losses.cu", loss, dtype)
        threads = min(self.head_threads, 32 * rows)
        kernel((1,), (threads,), (
            logits, bias, targets, weights, grad, sums, mean, totals,
            np.int32(COUNT_CODES[None if count is None else count.kind]), labels, count_targets,
            dtype.type(threshold), np.int64(rows), np.int32(cols),
        ))  # fmt: skip
        if sums is not None:
            self._finish(sums, sums_to)
        return mean, self._finish(grad, copy_to)

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
        if loss not in LOSSES:
            return super().loss_and_gradient(loss, outputs, targets, grad_out)  # it refuses
        fits = totals is None or (totals.dtype == np.float64 and totals.flags.c_contiguous)
        result = self._fused_loss(
            loss, outputs, targets, grad_out, bias, bias_grad, totals, count, weights
        ) if fits else None  # fmt: skip
        if result is not None:
            return result
        return super().loss_and_gradient(
            loss, outputs, targets, grad_out,
            bias=bias, bias_grad=bias_grad, totals=totals, count=count, weights=weights,
        )  # fmt: skip

    def weighted_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        weights: Array,
        grad_out: Array | None = None,
    ) -> tuple[Scalar, Array]:
        result = self._fused_loss(loss, outputs, targets, grad_out, weights=weights)
        if result is not None:
            return result
        return super().weighted_loss(loss, outputs, targets, weights, grad_out)

    def _plain_loss(
        self, loss: str, outputs: Array, targets: Array, grad_out: Array | None
    ) -> tuple[Scalar, Array]:
        result = self._fused_loss(loss, outputs, targets, grad_out)
        if result is not None:
            return result
        return getattr(super(), loss)(outputs, targets, grad_out)

    def sparse_softmax_cross_entropy(
        self, logits: Array, labels: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._plain_loss("sparse_softmax_cross_entropy", logits, labels, grad_out)

    def softmax_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._plain_loss("softmax_cross_entropy", logits, targets, grad_out)

    def sigmoid_binary_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._plain_loss("sigmoid_binary_cross_entropy", logits, targets, grad_out)

    def mean_squared_error(
        self, predictions: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._plain_loss("mean_squared_error", predictions, targets, grad_out)

    # ----------------------------------------------------------------- metrics
    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        if labels.shape != scores.shape[:1] or scores.ndim != 2:
            raise ValueError(f"labels must have shape ({len(scores)},); received {labels.shape}")
        require_columns(scores, "count_argmax_matches")
        if not self._fits(scores):
            return super().count_argmax_matches(scores, labels)
        scores = self._contiguous(scores)
        labels = self._contiguous(labels, LABEL_DTYPE)  # the kernel reads labels[row] densely
        count = self.xp.zeros((), dtype=np.uint64)
        rows, cols = scores.shape
        kernel = self._kernel("rows.cu", "count_argmax_matches", scores.dtype)
        self._per_row(kernel, rows, (scores, labels, count, np.int64(rows), np.int32(cols)))
        return count

    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        if targets.shape != scores.shape:
            raise ValueError(f"targets have shape {targets.shape}; expected {scores.shape}")
        if not self._fits(scores):
            return super().count_threshold_matches(scores, targets, threshold)
        scores = self._contiguous(scores)
        targets = self._contiguous(targets, scores.dtype)
        count = self.xp.zeros((), dtype=np.uint64)
        kernel = self._kernel("rows.cu", "count_threshold_matches", scores.dtype)
        self._launch(kernel, scores.size, (scores, targets, scores.dtype.type(threshold), count,
                                           np.int64(scores.size)))  # fmt: skip
        return count

    # ------------------------------------------------- sums over distributed ranks
    def nccl(self) -> Any | None:
        nccl = getattr(self.xp.cuda, "nccl", None)
        if nccl is None:  # CuPy may load it only when asked
            with contextlib.suppress(ImportError):
                nccl = importlib.import_module("cupy.cuda.nccl")
        return nccl if getattr(nccl, "available", False) else None

    def device_id(self) -> int:
        return int(self.xp.cuda.Device().id)

    def device_address(self, a: Array) -> int:
        return self._address(a)

    def stream_handle(self) -> int:
        return int(self.xp.cuda.get_current_stream().ptr)

    def stream_done(self) -> Callable[[], bool]:
        event = self.xp.cuda.get_current_stream().record()
        return lambda: bool(event.done)

    # ------------------------------------------------------------ mini-batches
    def _address(self, a: Array) -> int:
        """The device address of ``a``'s first entry."""
        return int(a.data.ptr)

    def _table(self, rows: Sequence[Sequence[int | Array | None]]) -> Array:
        """A device array of uint64 holding ``rows`` (arrays as their addresses, None as 0),
        cached while the arrays live: a kernel reads many arrays' addresses from it."""
        arrays = tuple(v for row in rows for v in row if v is not None and not isinstance(v, int))
        key = tuple(id(v) if not isinstance(v, int) else v for row in rows for v in row)
        cached = self._tables.get(key)
        if cached is not None and all(a is b for a, b in zip(cached[1], arrays, strict=True)):
            return cached[0]
        numbers = [
            0 if v is None else v if isinstance(v, int) else self._address(v)
            for row in rows
            for v in row
        ]
        table = self.xp.asarray(np.array(numbers, dtype=np.uint64))
        if len(self._tables) >= 64:  # a few live models' worth; drop the oldest
            self._tables.pop(next(iter(self._tables)))
        self._tables[key] = (table, arrays)
        return table

    def _identity(self, n: int) -> Array:
        """0, 1, ..., n - 1 on the device (kept: the order of an unshuffled pass)."""
        order = self._orders.get(n)
        if order is None:
            order = self._orders[n] = self.xp.arange(n, dtype=np.int64)
        return order

    def gather_batch(
        self,
        sources: Sequence[Array],
        order: Array | None,
        cursor: Array,
        batch_size: int,
        outs: Sequence[Array],
    ) -> list[Array]:
        rows = len(outs[0])
        fits = (
            all(isinstance(a, self.xp.ndarray) for a in (*sources, *outs, cursor))
            and cursor.dtype == np.uint64 and cursor.shape == (2,)
            and (order is None or (order.dtype == np.int64 and order.flags.c_contiguous))
            and all(
                src.flags.c_contiguous and out.flags.c_contiguous and src.dtype == out.dtype
                and src.shape[1:] == out.shape[1:] and len(out) == rows
                and (src.itemsize * math.prod(src.shape[1:])) % 4 == 0
                for src, out in zip(sources, outs, strict=True)
            )
        )  # fmt: skip
        if not fits:
            return super().gather_batch(sources, order, cursor, batch_size, outs)
        if order is None:
            order = self._identity(len(sources[0]))
        words = [src.itemsize * math.prod(src.shape[1:]) // 4 for src in sources]
        table = self._table([[src, out, w] for src, out, w in zip(sources, outs, words,
                                                                   strict=True)])  # fmt: skip
        kernel = self._kernel("rows.cu", "gather_rows", None)
        self._launch(kernel, rows * max(words), (table, np.int32(len(sources)), order, cursor,
                                                 np.int64(batch_size), np.int64(rows)))  # fmt: skip
        return list(outs)

    # -------------------------------------------------------------- optimizers
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
        names = UPDATE_RULES[rule]
        # each parameter's row of the kernel's table: param, grad, then the rule's state
        # arrays in its order, None (address 0) for those not given
        groups = [(p, g, *(s.get(name) for name in names))
                  for p, g, s in zip(params, grads, slots, strict=True)]  # fmt: skip
        fits = (
            bool(groups)
            and isinstance(state, self.xp.ndarray)
            and state.dtype == np.uint64 and state.shape == (2,)
            and all(self._fits_update(params[0], group) for group in groups)
        )  # fmt: skip
        if not fits:
            super().apply_updates(rule, params, grads, slots, hyper, state, adjust)
            return
        dtype = params[0].dtype
        rows = [[p.size, *group, *([None] * (UPDATE_TABLE_ROW - 1 - len(group)))]
                for p, group in zip(params, groups, strict=True)]  # fmt: skip
        table = self._table(rows)
        tensors = np.int32(len(params))
        largest = max(p.size for p in params)
        partial, squares, done = self._norm_buffers(len(params))
        if adjust is not None and adjust.clipping in ("clipnorm", "global_clipnorm"):
            norms = self._kernel("optimizers.cu", "gradient_norms", dtype)
            self._launch(norms, largest, (table, tensors, partial, squares, done))
        kernel = self._kernel("optimizers.cu", rule, dtype)
        adjusting = adjust_scalars(adjust, hyper["learning_rate"], dtype)
        scalars = update_scalars(rule, hyper, dtype)
        self._launch(kernel, largest, (table, tensors, squares, *adjusting, *scalars, state))

    def _norm_buffers(self, tensors: int) -> tuple[Array, Array, Array]:
        """optimizers.cu's gradient_norms scratch (a share per block of each gradient), its
        squared norms and its count of finished blocks, kept per number of parameters: a
        step replayed as a CUDA graph reads the same ones."""
        buffers = self._norms.get(tensors)
        if buffers is None:
            xp = self.xp
            buffers = self._norms[tensors] = (
                xp.zeros(tensors * self.max_blocks, np.float64),
                xp.zeros(tensors, np.float64),
                xp.zeros(1, np.uint64),
            )
        return buffers

    def _fits_update(self, first: Array, group: Sequence[Array | None]) -> bool:
        """Whether a parameter and its gradient and state fit the update kernels: one shape,
        C-contiguous, all of ``first``'s float dtype (None: a state array not given)."""
        given = [a for a in group if a is not None]
        return self._fits(first, *given) and all(
            a.shape == given[0].shape and a.flags.c_contiguous for a in given
        )

    def _update_one(self, rule: str, group: tuple[Array, Array], slots: dict[str, Any],
                    hyper: dict[str, Any], step: int = 1) -> bool:  # fmt: skip
        """One parameter's update (param, grad; its state by name, None for those not
        given) as step ``step``, by the kernel of :meth:`apply_updates`; False, doing
        nothing, when the operands do not fit it."""
        given = {name: array for name, array in slots.items() if array is not None}
        if not self._fits_update(group[0], (*group, *given.values())):
            return False
        state = self.xp.asarray(np.array([step - 1, 0], dtype=np.uint64))
        self.apply_updates(rule, [group[0]], [group[1]], [given], hyper, state)
        return True

    def sgd_update(self, param: Array, grad: Array, learning_rate: float) -> None:
        if not self._update_one("sgd", (param, grad), {}, {"learning_rate": learning_rate}):
            super().sgd_update(param, grad, learning_rate)

    def momentum_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
    ) -> None:
        hyper = {"learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov}
        if not self._update_one("momentum", (param, grad), {"velocity": velocity}, hyper):
            super().momentum_update(param, grad, velocity, learning_rate, momentum, nesterov)

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
        hyper = {"learning_rate": learning_rate, "rho": rho, "epsilon": epsilon,
                 "momentum": momentum}  # fmt: skip
        slots = {"velocity": velocity, "momentum_buffer": momentum_buffer,
                 "average_gradient": average_gradient}  # fmt: skip
        if not self._update_one("rmsprop", (param, grad), slots, hyper):
            super().rmsprop_update(param, grad, velocity, learning_rate, rho, epsilon, momentum,
                                   momentum_buffer, average_gradient)  # fmt: skip

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
        hyper = {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2,
                 "epsilon": epsilon}  # fmt: skip
        slots = {"m": m, "v": v, "v_hat": v_hat}
        if not self._update_one("adam", (param, grad), slots, hyper, step):
            super().adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step,
                                v_hat)  # fmt: skip

    # ---------------------------------------------------------- training steps
    @contextlib.contextmanager
    def training_stream(self) -> Iterator[None]:
        cuda = self.xp.cuda
        outer = cuda.get_current_stream()
        if self._stream is None:
            self._stream = cuda.Stream(non_blocking=True)
        stream = self._stream
        if outer is stream:  # nested (validation inside fit): already there
            yield
            return
        stream.wait_event(outer.record())  # what came before (the data's upload) first
        with stream:
            yield
        outer.wait_event(stream.record())

    def run_step(
        self,
        step: Callable[[], None],
        key: Hashable | None,
        check: Callable[[], None] | None = None,
    ) -> None:
        self._graphs.run(step, key)  # asynchronous: the losses are checked once an epoch

    def graph_status(self) -> dict[str, Any]:
        """Whether training steps are replayed as CUDA graphs, how many, and why not."""
        return self._graphs.status()
