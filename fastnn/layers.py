"""Layers: each a forward and a backward pass written over the backend interface.

A layer works on mini-batches whose first axis is the batch (B). In training
mode it remembers what its backward pass needs and writes into workspace
buffers it keeps per batch shape, so the training loop allocates nothing after
its first steps. ``backward`` consumes its ``dy`` argument (it may overwrite it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn import initializers
from fastnn.backends import ACTIVATIONS, Array, Backend


def check_activation(activation: str | None) -> str:
    """Normalise an activation name (None means "linear") or raise naming the valid ones."""
    if activation is None:
        return "linear"
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return activation.lower()
    raise ValueError(
        f"unknown activation {activation!r}; valid: None, {', '.join(repr(a) for a in ACTIVATIONS)}"
    )


def _check_sample_shape(shape: Any, argument: str) -> tuple[int, ...]:
    """A per-sample shape (no batch axis) of positive ints."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"{argument} must be positive integers; received {argument}={shape!r}")
    return dims


class Workspace:
    """Arrays kept for reuse across training steps, one per (name, shape, dtype).

    A training loop asks for the same few shapes every step (the full batch and
    the last, partial one), so after the first epoch nothing is allocated.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._arrays: dict[tuple[str, tuple[int, ...], str], Array] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> Array:
        key = (name, tuple(shape), np.dtype(dtype).str)
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = self.backend.empty(tuple(shape), dtype)
        return array


class Layer:
    """Base class of every layer."""

    def __init__(self, name: str | None = None, input_shape: Any = None) -> None:
        self.name = name
        self.input_shape: tuple[int, ...] | None = (
            None if input_shape is None else _check_sample_shape(input_shape, "input_shape")
        )
        self.output_shape: tuple[int, ...] | None = None
        self.backend: Backend | None = None
        self.dtype: np.dtype | None = None
        #: trainable parameters and their gradients, same keys, Keras order
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self._workspace: Workspace | None = None

    @property
    def built(self) -> bool:
        return self.backend is not None

    @property
    def ops(self) -> Backend:
        """The backend the layer's arrays live on (only once built)."""
        if self.backend is None:
            raise RuntimeError(f"layer {self.name!r} is not built yet")
        return self.backend

    def build(
        self,
        input_shape: tuple[int, ...],
        backend: Backend,
        dtype: np.dtype,
        rng: np.random.Generator,
    ) -> None:
        """Create the parameters for samples of ``input_shape`` (no batch axis)."""
        self.input_shape = input_shape
        self.output_shape = self.compute_output_shape(input_shape)
        self.backend = backend
        self.dtype = dtype
        self._workspace = Workspace(backend)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def forward(self, x: Array, training: bool = False) -> Array:
        """(B, *input_shape) -> (B, *output_shape)."""
        raise NotImplementedError

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        """Gradient w.r.t. the input of the last training forward; fills ``self.grads``."""
        raise NotImplementedError

    def count_params(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.params.values())

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving and ``summary``."""
        config: dict[str, Any] = {"name": self.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    def move_to(self, backend: Backend) -> None:
        """Move the parameters to another backend (through the host)."""
        for key, value in self.params.items():
            self.params[key] = backend.asarray(self.ops.to_numpy(value))
            self.grads[key] = backend.zeros(value.shape, value.dtype)
        self._workspace = Workspace(backend)
        self.backend = backend

    def _buffer(self, name: str, shape: tuple[int, ...]) -> Array:
        """A workspace array of the layer's dtype, reused by every step of this batch shape."""
        assert self._workspace is not None, "layer used before build"
        return self._workspace.get(name, shape, self.dtype)


class _ActivatedLayer(Layer):
    """A layer ending in an activation the model may fold into the loss during training."""

    def __init__(self, activation: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = check_activation(activation)
        self._y: Array = None  # output of the last training forward
        self._applied = "linear"  # activation applied in the last training forward

    def forward(self, x: Array, training: bool = False, skip_activation: bool = False) -> Array:
        raise NotImplementedError


class Dense(_ActivatedLayer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    x (B, in) -> (B, units); kernel (in, units), bias (units,).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        input_dim: int | None = None,
        input_shape: Any = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"units must be a positive int; received units={units!r}")
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError("give input_dim or input_shape, not both")
            input_shape = _check_sample_shape(input_dim, "input_dim")
        super().__init__(activation, name=name, input_shape=input_shape)
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._x: Array = None  # input of the last training forward

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 1:
            raise ValueError(
                f"Dense layer {self.name!r} expects inputs of shape (batch, features); "
                f"received samples of shape {input_shape}. Add a Flatten() layer first."
            )
        return (self.units,)

    def build(
        self,
        input_shape: tuple[int, ...],
        backend: Backend,
        dtype: np.dtype,
        rng: np.random.Generator,
    ) -> None:
        super().build(input_shape, backend, dtype, rng)
        shapes: dict[str, tuple[int, ...]] = {"kernel": (input_shape[0], self.units)}
        self.params["kernel"] = self.kernel_initializer(backend, shapes["kernel"], dtype, rng)
        if self.use_bias:
            shapes["bias"] = (self.units,)
            self.params["bias"] = self.bias_initializer(backend, shapes["bias"], dtype, rng)
        self.grads = {key: backend.zeros(shape, dtype) for key, shape in shapes.items()}

    def forward(self, x: Array, training: bool = False, skip_activation: bool = False) -> Array:
        ops = self.ops
        activation = "linear" if skip_activation else self.activation
        out = self._buffer("y", (x.shape[0], self.units)) if training else None
        z = ops.matmul(x, self.params["kernel"], out=out)  # (B, units)
        if self.use_bias:
            y = ops.bias_activation(z, self.params["bias"], activation, out=z)
        else:
            y = ops.activation(z, activation, out=z)
        if training:
            self._x, self._y, self._applied = x, y, activation
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        ops = self.ops
        dz = ops.activation_backward(dy, self._y, self._applied, out=dy)  # (B, units)
        ops.matmul(self._x, dz, transpose_a=True, out=self.grads["kernel"])  # (in, units)
        if self.use_bias:
            ops.sum_rows(dz, out=self.grads["bias"])  # (units,)
        if not need_input_grad:
            return None
        dx = self._buffer("dx", self._x.shape)  # (B, in)
        return ops.matmul(dz, self.params["kernel"], transpose_b=True, out=dx)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


class Activation(_ActivatedLayer):
    """An activation as a layer of its own: ``Activation("relu")``."""

    def __init__(
        self, activation: str | None, name: str | None = None, input_shape: Any = None
    ) -> None:
        super().__init__(activation, name=name, input_shape=input_shape)

    def forward(self, x: Array, training: bool = False, skip_activation: bool = False) -> Array:
        activation = "linear" if skip_activation else self.activation
        out = self._buffer("y", tuple(x.shape)) if training else None
        y = self.ops.activation(x, activation, out=out)
        if training:
            self._y, self._applied = y, activation
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        return self.ops.activation_backward(dy, self._y, self._applied, out=dy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}


class Flatten(Layer):
    """Flatten each sample: (B, d1, d2, ...) -> (B, d1 * d2 * ...)."""

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward(self, x: Array, training: bool = False) -> Array:
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        assert self.input_shape is not None
        return dy.reshape(dy.shape[0], *self.input_shape)


LAYER_CLASSES: dict[str, type[Layer]] = {
    "Dense": Dense,
    "Activation": Activation,
    "Flatten": Flatten,
}


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from :meth:`Layer.get_config` output (used by ``load_model``)."""
    cls = LAYER_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"unknown layer class in saved model: {class_name!r}")
    config = dict(config)
    for key in ("kernel_initializer", "bias_initializer"):
        if key in config:
            config[key] = initializers.deserialize(config[key])
    return cls(**config)
