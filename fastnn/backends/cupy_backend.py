"""The CuPy backend: the network on an NVIDIA GPU, with CUDA kernels of our own.

Arrays are CuPy arrays on the current device. Matrix products go to cuBLAS through
``cupy.matmul``; the gather, column sums and argmax use CuPy's own kernels; the
elementwise, softmax, loss, accuracy and optimizer work runs in the kernels of
``kernels/cuda/*.cu`` (shipped as package data), fused as in the Numba backend.
Each ``.cu`` file is compiled once per process by ``cupy.RawModule`` for float and
double, on first use.

Scalars (losses, accuracy counts) stay on the device as 0-d arrays, so a training
loop never waits on the GPU until it asks for a number: ``synchronous = False``
tells the model to read them back once per epoch.

This module imports without CuPy (so ``fastnn backends`` can say why it cannot
run); CuPy is imported when the backend is created.
"""

from __future__ import annotations

import importlib.util
import math
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from fastnn.backends.base import Array, DTypeLike, Scalar
from fastnn.backends.numpy_backend import (
    NumpyBackend,
    adam_step_size,
    require_columns,
    require_entries,
)

#: the kernels of each source file; templates over the float type (and, for those
#: taking class labels, the label type)
KERNELS: dict[str, tuple[str, ...]] = {
    "elementwise.cu": ("bias_activation", "activation", "activation_backward"),
    "softmax.cu": (
        "softmax",
        "softmax_backward",
        "sparse_softmax_cross_entropy",
        "softmax_cross_entropy",
        "sigmoid_binary_cross_entropy",
        "mean_squared_error",
    ),
    "optimizers.cu": ("sgd", "momentum", "rmsprop", "adam"),
    "rows.cu": ("count_argmax_matches", "count_threshold_matches"),
}
LABELLED = ("sparse_softmax_cross_entropy", "count_argmax_matches")
LABEL_CTYPE, LABEL_DTYPE = "long long", np.int64
CTYPES = {"float32": "float", "float64": "double"}
#: activation codes of kernels/cuda/common.cuh
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

THREADS = 256  # per block: a whole number of warps
MAX_BLOCKS = 65_535  # grid-stride loops cover the rest


def name_expression(kernel: str, ctype: str) -> str:
    """The C++ name of one instantiation, e.g. ``count_argmax_matches<double, long long>``."""
    arguments = [ctype, LABEL_CTYPE] if kernel in LABELLED else [ctype]
    return f"{kernel}<{', '.join(arguments)}>"


def cuda_source_dir() -> Any:
    """The folder of the ``.cu`` sources, inside the installed package."""
    return resources.files("fastnn.kernels") / "cuda"


def probe() -> str | None:
    """Why the cupy backend cannot run here, or None when it can.

    CuPy imports on machines without a GPU and only fails when it first talks to
    the driver, so the probe asks the driver for a device and makes a tiny array.
    """
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install 'fastnn[cuda12]' or 'fastnn[cuda13]')"
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
    try:
        cupy.zeros(1).sum().item()
    except Exception as error:
        return f"the CUDA device cannot run kernels: {type(error).__name__}: {error}"
    return None


class CupyBackend(NumpyBackend):
    """CuPy arrays on the GPU; CUDA kernels of our own for the hot ops."""

    name: ClassVar[str] = "cupy"
    synchronous: ClassVar[bool] = False

    def __init__(self) -> None:
        import cupy

        super().__init__()
        self.xp = cupy
        self._modules: dict[str, Any] = {}

    # ------------------------------------------------------------ plumbing
    def _kernel(self, source: str, kernel: str, dtype: DTypeLike) -> Any:
        """The compiled instantiation of ``kernel`` for ``dtype`` (its file compiled once)."""
        module = self._modules.get(source)
        if module is None:
            folder = cuda_source_dir()
            expressions = [
                name_expression(k, ctype) for k in KERNELS[source] for ctype in CTYPES.values()
            ]
            module = self._modules[source] = self.xp.RawModule(
                code=(folder / source).read_text(),
                options=("-std=c++17", f"-I{folder}"),
                name_expressions=expressions,
            )
        ctype = CTYPES.get(np.dtype(dtype).name)
        if ctype is None:
            raise TypeError(f"the cupy backend computes in float32 or float64; received {dtype}")
        return module.get_function(name_expression(kernel, ctype))

    def _launch(self, kernel: Any, threads: int, args: tuple[Any, ...]) -> None:
        """Run ``kernel`` with at least ``threads`` threads (grid-stride kernels take fewer)."""
        blocks = max(1, min(MAX_BLOCKS, math.ceil(threads / THREADS)))
        kernel((blocks,), (THREADS,), args)

    def _per_row(self, kernel: Any, rows: int, args: tuple[Any, ...]) -> None:
        """Run a one-warp-per-row kernel over ``rows`` rows."""
        kernel((max(1, math.ceil(rows * 32 / THREADS)),), (THREADS,), args)

    def _contiguous(self, a: Array) -> Array:
        return self.xp.ascontiguousarray(a)

    def _output(self, like: Array, out: Array | None) -> tuple[Array, Array | None]:
        """A C-contiguous array to write into, and the ``out`` to copy it to afterwards."""
        if out is None:
            return self.xp.empty(like.shape, dtype=like.dtype), None
        if out.shape != like.shape:
            raise ValueError(f"out has shape {out.shape}; expected {like.shape}")
        if out.flags.c_contiguous:
            return out, None
        return self.xp.empty(like.shape, dtype=like.dtype), out

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

    # ------------------------------------------------------------- activations
    def _activation(self, x: Array, code: int, out: Array | None) -> Array:
        x = self._contiguous(x)
        result, copy_to = self._output(x, out)
        kernel = self._kernel("elementwise.cu", "activation", x.dtype)
        self._launch(kernel, x.size, (x, result, np.int64(x.size), np.int32(code)))
        return self._finish(result, copy_to)

    def _activation_backward(self, dy: Array, y: Array, code: int, out: Array | None) -> Array:
        if dy.shape != y.shape:
            raise ValueError(f"shapes differ: {dy.shape} and {y.shape}")
        dy, y = self._contiguous(dy), self._contiguous(y)
        result, copy_to = self._output(dy, out)
        kernel = self._kernel("elementwise.cu", "activation_backward", dy.dtype)
        self._launch(kernel, dy.size, (dy, y, result, np.int64(dy.size), np.int32(code)))
        return self._finish(result, copy_to)

    def relu(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, ACTIVATION_CODES["relu"], out)

    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, ACTIVATION_CODES["sigmoid"], out)

    def tanh(self, x: Array, out: Array | None = None) -> Array:
        return self._activation(x, ACTIVATION_CODES["tanh"], out)

    def relu_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, ACTIVATION_CODES["relu"], out)

    def sigmoid_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, ACTIVATION_CODES["sigmoid"], out)

    def tanh_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._activation_backward(dy, y, ACTIVATION_CODES["tanh"], out)

    def bias_add(self, x: Array, bias: Array, out: Array | None = None) -> Array:
        return self.bias_activation(x, bias, "linear", out=out)

    def bias_activation(
        self, x: Array, bias: Array, activation: str, out: Array | None = None
    ) -> Array:
        if x.ndim != 2 or bias.shape != (x.shape[1],):
            raise ValueError(f"bias of shape {bias.shape} does not fit rows of shape {x.shape}")
        x, bias = self._contiguous(x), self._contiguous(bias)
        result, copy_to = self._output(x, out)
        code = ACTIVATION_CODES.get(activation, ACTIVATION_CODES["linear"])
        kernel = self._kernel("elementwise.cu", "bias_activation", x.dtype)
        rows, cols = x.shape
        self._launch(kernel, x.size, (x, bias, result, np.int64(rows), np.int64(cols),
                                      np.int32(code)))  # fmt: skip
        if activation == "softmax":
            self.softmax(result, out=result)
        return self._finish(result, copy_to)

    def _row_kernel(self, kernel_name: str, inputs: tuple[Array, ...], out: Array | None) -> Array:
        if inputs[0].ndim != 2:
            raise ValueError(f"expected (batch, classes) arrays; received {inputs[0].shape}")
        inputs = tuple(self._contiguous(a) for a in inputs)
        result, copy_to = self._output(inputs[0], out)
        rows, cols = inputs[0].shape
        kernel = self._kernel("softmax.cu", kernel_name, inputs[0].dtype)
        self._per_row(kernel, rows, (*inputs, result, np.int64(rows), np.int32(cols)))
        return self._finish(result, copy_to)

    def softmax(self, x: Array, out: Array | None = None) -> Array:
        require_columns(x, "softmax")  # the kernel reads each row's first entry
        return self._row_kernel("softmax", (x,), out)

    def softmax_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        return self._row_kernel("softmax_backward", (dy, y), out)

    # ------------------------------------------------------------------ losses
    def _loss(
        self,
        kernel_name: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        per_row: bool,
    ) -> tuple[Scalar, Array]:
        if outputs.ndim != 2:
            raise ValueError(f"outputs must be 2-D (batch, units); received {outputs.shape}")
        require_entries(outputs, kernel_name)
        outputs, targets = self._contiguous(outputs), self._contiguous(targets)
        grad, copy_to = self._output(outputs, grad_out)
        if grad is outputs:  # the kernels read the outputs after writing grad
            grad, copy_to = self.xp.empty_like(outputs), grad
        loss = self.xp.zeros((), dtype=np.float64)
        kernel = self._kernel("softmax.cu", kernel_name, outputs.dtype)
        rows, cols = outputs.shape
        if per_row:
            self._per_row(kernel, rows, (outputs, targets, grad, loss, np.int64(rows),
                                         np.int32(cols)))  # fmt: skip
        else:
            self._launch(kernel, outputs.size, (outputs, targets, grad, loss,
                                                np.int64(outputs.size)))  # fmt: skip
        return loss, self._finish(grad, copy_to)

    def sparse_softmax_cross_entropy(
        self, logits: Array, labels: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"labels must have shape ({len(logits)},); received {labels.shape}")
        labels = self.xp.asarray(labels, dtype=LABEL_DTYPE)
        return self._loss("sparse_softmax_cross_entropy", logits, labels, grad_out, True)

    def _check_targets(self, outputs: Array, targets: Array) -> None:
        if targets.shape != outputs.shape:
            raise ValueError(f"targets have shape {targets.shape}; expected {outputs.shape}")

    def softmax_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        self._check_targets(logits, targets)
        return self._loss("softmax_cross_entropy", logits, targets, grad_out, True)

    def sigmoid_binary_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        self._check_targets(logits, targets)
        return self._loss("sigmoid_binary_cross_entropy", logits, targets, grad_out, False)

    def mean_squared_error(
        self, predictions: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        self._check_targets(predictions, targets)
        return self._loss("mean_squared_error", predictions, targets, grad_out, False)

    # ----------------------------------------------------------------- metrics
    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        if labels.shape != scores.shape[:1] or scores.ndim != 2:
            raise ValueError(f"labels must have shape ({len(scores)},); received {labels.shape}")
        require_columns(scores, "count_argmax_matches")
        scores = self._contiguous(scores)
        labels = self.xp.asarray(labels, dtype=LABEL_DTYPE)
        count = self.xp.zeros((), dtype=np.uint64)
        rows, cols = scores.shape
        kernel = self._kernel("rows.cu", "count_argmax_matches", scores.dtype)
        self._per_row(kernel, rows, (scores, labels, count, np.int64(rows), np.int32(cols)))
        return count

    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        if targets.shape != scores.shape:
            raise ValueError(f"targets have shape {targets.shape}; expected {scores.shape}")
        scores = self._contiguous(scores)
        targets = self.xp.asarray(targets, dtype=scores.dtype)
        count = self.xp.zeros((), dtype=np.uint64)
        kernel = self._kernel("rows.cu", "count_threshold_matches", scores.dtype)
        cast = scores.dtype.type
        self._launch(kernel, scores.size, (scores, targets, cast(threshold), count,
                                           np.int64(scores.size)))  # fmt: skip
        return count

    # -------------------------------------------------------------- optimizers
    def _update(
        self, kernel_name: str, arrays: tuple[Array, ...], scalars: tuple[Any, ...]
    ) -> bool:
        """Run an update kernel in place; False (nothing done) unless all arrays fit it."""
        shape = arrays[0].shape
        if any(a.shape != shape or not a.flags.c_contiguous for a in arrays):
            return False
        param = arrays[0]
        kernel = self._kernel("optimizers.cu", kernel_name, param.dtype)
        self._launch(kernel, param.size, (*arrays, np.int64(param.size), *scalars))
        return True

    def sgd_update(self, param: Array, grad: Array, learning_rate: float) -> None:
        cast = param.dtype.type
        if not self._update("sgd", (param, grad), (cast(learning_rate),)):
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
        cast = param.dtype.type
        scalars = (cast(learning_rate), cast(momentum), np.int32(nesterov),
                   cast(np.finfo(param.dtype).tiny))  # fmt: skip
        if not self._update("momentum", (param, grad, velocity), scalars):
            super().momentum_update(param, grad, velocity, learning_rate, momentum, nesterov)

    def rmsprop_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        rho: float,
        epsilon: float,
    ) -> None:
        cast = param.dtype.type
        scalars = (cast(learning_rate), cast(rho), cast(1.0 - rho), cast(epsilon),
                   cast(np.finfo(param.dtype).tiny))  # fmt: skip
        if not self._update("rmsprop", (param, grad, velocity), scalars):
            super().rmsprop_update(param, grad, velocity, learning_rate, rho, epsilon)

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
        cast = param.dtype.type
        alpha = adam_step_size(learning_rate, beta_1, beta_2, step)
        scalars = (cast(alpha), cast(1.0 - beta_1), cast(1.0 - beta_2), cast(epsilon),
                   cast(np.finfo(param.dtype).tiny))  # fmt: skip
        if not self._update("adam", (param, grad, m, v), scalars):
            super().adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step)
