"""Layers: each a forward and a backward pass written over the backend interface.

A layer works on mini-batches whose first axis is the batch (B). In training
mode it remembers what its backward pass needs and writes into workspace
buffers it keeps per batch shape, so the training loop allocates nothing after
its first steps. ``backward`` consumes its ``dy`` argument (it may overwrite it).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from fastnn import initializers, regularizers
from fastnn.backends import ACTIVATIONS, Array, Backend, Scalar
from fastnn.config import check_seed
from fastnn.sparse import SparseRows
from fastnn.validation import as_numbers, check_fraction, check_int, shown


def check_activation(activation: str | None) -> str:
    """Normalise an activation name (None means "linear") or raise naming the valid ones."""
    if activation is None:
        return "linear"
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return activation.lower()
    raise ValueError(
        f"unknown activation {shown(activation)}; valid: None, "
        + ", ".join(repr(a) for a in ACTIVATIONS)
    )


def snake_case(name: str) -> str:
    """``BatchNormalization`` -> ``batch_normalization``: Keras's names for a class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _check_sample_shape(shape: Any, argument: str) -> tuple[int, ...]:
    """A per-sample shape (no batch axis) of positive ints."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(
            f"{argument} must be positive integers; received {argument}={shown(shape)}"
        )
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

    def only(self, name: str, shape: tuple[int, ...], dtype: Any) -> Array:
        """Like :meth:`get`, but keeping one array of that name: one of another shape or
        dtype is dropped (for arrays the size of a data set)."""
        key = (name, tuple(shape), np.dtype(dtype).str)
        for other in [k for k in self._arrays if k[0] == name and k != key]:
            del self._arrays[other]
        return self.get(name, shape, dtype)


class Layer:
    """Base class of every layer."""

    def __init__(self, name: str | None = None, input_shape: Any = None) -> None:
        self.name = name
        #: the shape of one sample in and out (no batch axis); known once built or declared
        self.sample_in: tuple[int, ...] | None = (
            None if input_shape is None else _check_sample_shape(input_shape, "input_shape")
        )
        self.sample_out: tuple[int, ...] | None = None
        self.backend: Backend | None = None
        self.dtype: np.dtype | None = None
        #: trainable parameters and their gradients, same keys, Keras order
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        #: non-trainable weights (BatchNormalization's moving statistics): saved, not trained
        self.state: dict[str, Array] = {}
        #: False freezes the layer, as in Keras: fit leaves its weights (and their optimizer
        #: state) alone, and a frozen BatchNormalization runs in inference mode
        self.trainable = True
        self._workspace: Workspace | None = None

    @property
    def built(self) -> bool:
        return self.backend is not None

    @property
    def input_shape(self) -> tuple[int | None, ...] | None:
        """Keras's: the input's shape with the batch axis, ``(None, 784)``; None if unknown."""
        return None if self.sample_in is None else (None, *self.sample_in)

    @property
    def output_shape(self) -> tuple[int | None, ...] | None:
        """Keras's: the output's shape with the batch axis, ``(None, 512)``; None until built."""
        return None if self.sample_out is None else (None, *self.sample_out)

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
        self.sample_in = input_shape
        self.sample_out = self.compute_output_shape(input_shape)
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

    def count_params(self, trainable: bool = True) -> int:
        """How many trainable (or, with ``trainable=False``, non-trainable) numbers it holds;
        a frozen layer's weights are all non-trainable."""
        weights = self.trainable_weights if trainable else self.non_trainable_weights
        return sum(int(np.prod(p.shape)) for p in weights)

    @property
    def trainable_weights(self) -> list[Array]:
        """The weights fit trains: its parameters, none while the layer is frozen."""
        return list(self.params.values()) if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Array]:
        """The weights fit leaves alone: moving statistics, and every weight when frozen."""
        frozen = [] if self.trainable else list(self.params.values())
        return [*frozen, *self.state.values()]

    @property
    def weights(self) -> dict[str, Array]:
        """Every weight, Keras order: the trainable ones, then the non-trainable ones."""
        return {**self.params, **self.state}

    def set_weight(self, key: str, value: Array) -> None:
        """Replace the weight ``key`` (trainable or not) with ``value``."""
        (self.params if key in self.params else self.state)[key] = value

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the layer's weights on the host, Keras order (kernel, bias, ...)."""
        return [np.array(self.ops.to_numpy(w), copy=True) for w in self.weights.values()]

    def set_weights(self, weights: Any) -> None:
        """Replace the layer's weights, in :meth:`get_weights` order; nothing changes
        unless every array fits."""
        for key, array in zip(self.weights, self.check_weights(weights), strict=True):
            self.set_weight(key, self.ops.asarray(array))

    def check_weights(self, weights: Any, what: str = "set_weights") -> list[np.ndarray]:
        """``weights`` as host arrays of the layer's dtype, checked against its weights'
        count and shapes (``what`` names the call in the errors)."""
        if not self.built:
            raise RuntimeError(
                f"layer {self.name!r} is not built yet: build or fit its model first"
            )
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"{what} takes a list of arrays, in get_weights() order; received {shown(weights)}"
            )
        if len(weights) != len(self.weights):
            raise ValueError(
                f"{what} expected {len(self.weights)} arrays for layer {self.name!r}, in "
                f"get_weights() order; received {len(weights)}"
            )
        arrays = []
        for (key, current), value in zip(self.weights.items(), weights, strict=True):
            array = as_numbers(f"weight {self.name}/{key}", value).astype(self.dtype)
            if array.shape != tuple(current.shape):
                raise ValueError(
                    f"weight {self.name}/{key} has shape {tuple(current.shape)}; "
                    f"received shape {array.shape}"
                )
            arrays.append(array)
        return arrays

    def penalty(self, with_grad: bool) -> Scalar | None:
        """The weight penalties this layer adds to the loss (None: it adds none).

        ``with_grad`` also adds their gradients to ``self.grads`` (after ``backward``).
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving and ``summary`` (and ``trainable`` when False)."""
        config: dict[str, Any] = {"name": self.name}
        if not self.trainable:
            config["trainable"] = False
        if self.sample_in is not None:
            config["input_shape"] = list(self.sample_in)
        return config

    def move_to(self, backend: Backend) -> None:
        """Move the parameters to another backend (through the host)."""
        for key, value in self.params.items():
            self.params[key] = backend.asarray(self.ops.to_numpy(value))
            self.grads[key] = backend.zeros(value.shape, value.dtype)
        for key, value in self.state.items():
            self.state[key] = backend.asarray(self.ops.to_numpy(value))
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
        kernel_regularizer: str | regularizers.L1L2 | None = None,
        bias_regularizer: str | regularizers.L1L2 | None = None,
        input_dim: int | None = None,
        input_shape: Any = None,
        name: str | None = None,
    ) -> None:
        units = check_int("units", units, 1)
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError(
                    "give input_dim or input_shape, not both; received "
                    f"input_dim={shown(input_dim)}, input_shape={shown(input_shape)}"
                )
            input_shape = _check_sample_shape(input_dim, "input_dim")
        super().__init__(activation, name=name, input_shape=input_shape)
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.regularizers = {
            "kernel": regularizers.get(kernel_regularizer),
            "bias": regularizers.get(bias_regularizer),
        }
        self._x: Array = None  # input of the last training forward
        self._bias_in_loss = False  # whether the last training forward left the bias to the loss
        #: dz (B, units) of the last backward that left the kernel's gradient to the optimizer
        self.deferred_dz: Array = None

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

    def forward(
        self,
        x: Array,
        training: bool = False,
        skip_activation: bool = False,
        skip_bias: bool = False,
    ) -> Array:
        """(B, in) -> (B, units). ``skip_bias`` (with ``skip_activation``) leaves the bias to
        a fused loss, which then adds it and writes its gradient: the model asks for that
        only of its last layer."""
        ops = self.ops
        activation = "linear" if skip_activation else self.activation
        out = self._buffer("y", (x.shape[0], self.units)) if training else None
        bias = self.params["bias"] if self.use_bias and not skip_bias else None
        if isinstance(x, SparseRows):  # compressed input rows: only their nonzeros
            y = ops.sparse_dense(x, self.params["kernel"], bias, activation, out=out)
        else:
            z = ops.matmul(x, self.params["kernel"], out=out)  # (B, units)
            if bias is not None:
                y = ops.bias_activation(z, bias, activation, out=z)
            else:
                y = ops.activation(z, activation, out=z)
        if training:
            self._x, self._y, self._applied = x, y, activation
            self._bias_in_loss = skip_bias
        return y

    def backward(
        self, dy: Array, need_input_grad: bool = True, kernel_grad: bool = True
    ) -> Array | None:
        """The gradients of the bias and kernel, and the input's (unless not needed).

        ``kernel_grad=False``: a first layer on compressed rows whose optimizer step makes
        the kernel's gradient itself (``Optimizer.fuses_sparse``): dz (B, units) is kept
        as :attr:`deferred_dz` for it instead."""
        ops = self.ops
        if self.trainable and self.use_bias and not self._bias_in_loss:  # dz, its column sums
            bias_grad = self.grads["bias"]  # (units,)
            dz = ops.bias_activation_backward(dy, self._y, self._applied, bias_grad, out=dy)
        else:
            dz = ops.activation_backward(dy, self._y, self._applied, out=dy)  # (B, units)
        if not self.trainable:  # frozen: only the input's gradient, for the layers before
            pass
        elif not kernel_grad:
            self.deferred_dz = dz
        elif isinstance(self._x, SparseRows):  # zero rows for the columns with no nonzero
            ops.sparse_weight_gradient(self._x, dz, out=self.grads["kernel"])  # (in, units)
        else:
            ops.matmul(self._x, dz, transpose_a=True, out=self.grads["kernel"])  # (in, units)
        if not need_input_grad:
            return None
        dx = self._buffer("dx", self._x.shape)  # (B, in)
        return ops.matmul(dz, self.params["kernel"], transpose_b=True, out=dx)

    def forward_backward_loss(
        self, x: Array, loss: str, targets: Array, grad_out: Array, need_input_grad: bool,
        **step: Any,
    ) -> tuple[Scalar, Array, Array | None]:  # fmt: skip
        """A model's last layer in a training step, with the fused ``loss`` (a backend op
        name) that adds its bias: :meth:`forward` (``skip_activation``, ``skip_bias``), the
        loss and :meth:`backward` in one backend call (``Backend.dense_loss_step``), into
        the buffers those use. ``step``: the loss's keyword arguments. Returns (mean loss,
        the outputs as the loss saw them (B, units), the input's gradient or None)."""
        ops = self.ops
        y = self._buffer("y", (x.shape[0], self.units))  # (B, units)
        dx = self._buffer("dx", x.shape) if need_input_grad else None  # (B, in)
        value, _, dx = ops.dense_loss_step(loss, x, self.params["kernel"], targets, y, grad_out,
                                           self.grads["kernel"], dx, **step)  # fmt: skip
        self._x, self._y, self._applied, self._bias_in_loss = x, y, "linear", True
        return value, y, dx

    def penalty(self, with_grad: bool) -> Scalar | None:
        total: Scalar | None = None
        for key, regularizer in self.regularizers.items():
            if regularizer is None or key not in self.params:
                continue
            grad = self.grads[key] if with_grad else None
            value = regularizer(self.ops, self.params[key], grad)
            total = value if total is None else total + value
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.regularizers["kernel"]),
            "bias_regularizer": regularizers.serialize(self.regularizers["bias"]),
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
        assert self.sample_in is not None
        return dy.reshape(dy.shape[0], *self.sample_in)


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)``, so inference is the identity.

    ``seed`` fixes the masks; without it they come from the model's seed (through a
    child generator, so adding a Dropout leaves the other layers' initial weights as
    they were). x (B, N) -> (B, N).
    """

    def __init__(
        self, rate: float, seed: int | None = None, name: str | None = None, input_shape: Any = None
    ) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.rate = check_fraction("rate", rate)
        self.seed = check_seed(seed)
        self._rng: np.random.Generator | None = None
        self._mask: Array = None  # mask of the last training forward

    def build(
        self,
        input_shape: tuple[int, ...],
        backend: Backend,
        dtype: np.dtype,
        rng: np.random.Generator,
    ) -> None:
        super().build(input_shape, backend, dtype, rng)
        self._rng = np.random.default_rng(self.seed) if self.seed is not None else rng.spawn(1)[0]

    def forward(self, x: Array, training: bool = False) -> Array:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        assert self._rng is not None
        self._mask = self.ops.dropout_mask(self._rng, tuple(x.shape), self.rate, x.dtype)
        return self.ops.multiply(x, self._mask, out=self._buffer("y", tuple(x.shape)))

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        if self._mask is None:
            return dy
        return self.ops.multiply(dy, self._mask, out=dy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class BatchNormalization(Layer):
    """Normalize each feature over the batch, then scale and shift: Keras's defaults.

    Training uses the batch's mean and (biased) variance and updates the moving
    statistics ``moving = momentum * moving + (1 - momentum) * batch``; inference
    uses the moving ones. Weights, Keras order: gamma, beta (trained), moving_mean,
    moving_variance (not trained). x (B, N) -> (B, N).
    """

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        name: str | None = None,
        input_shape: Any = None,
    ) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.momentum = check_fraction("momentum", momentum, include_one=True)
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not 0 < epsilon < math.inf
        ):
            raise ValueError(f"epsilon must be a number > 0; received epsilon={shown(epsilon)}")
        self.epsilon = float(epsilon)
        self._frozen = False  # whether the last training forward ran in inference mode
        self._x: Array = None  # input of the last training forward

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 1:
            raise ValueError(
                f"BatchNormalization layer {self.name!r} normalizes (batch, features) inputs; "
                f"received samples of shape {input_shape}. Add a Flatten() layer first."
            )
        return input_shape

    def build(
        self,
        input_shape: tuple[int, ...],
        backend: Backend,
        dtype: np.dtype,
        rng: np.random.Generator,
    ) -> None:
        super().build(input_shape, backend, dtype, rng)
        ones = initializers.get("ones")
        zeros = initializers.get("zeros")
        shape = self.compute_output_shape(input_shape)
        self.params = {
            "gamma": ones(backend, shape, dtype, rng),
            "beta": zeros(backend, shape, dtype, rng),
        }
        self.grads = {key: backend.zeros(shape, dtype) for key in self.params}
        self.state = {
            "moving_mean": zeros(backend, shape, dtype, rng),
            "moving_variance": ones(backend, shape, dtype, rng),
        }

    def forward(self, x: Array, training: bool = False) -> Array:
        ops, p = self.ops, self.params
        self._frozen = training and not self.trainable  # Keras: frozen means inference mode
        if not training or self._frozen:
            moving_mean, moving_variance = self.state["moving_mean"], self.state["moving_variance"]
            return ops.batch_norm_inference(
                x, moving_mean, moving_variance, p["gamma"], p["beta"], self.epsilon
            )
        features = x.shape[1:]
        mean, variance = self._buffer("mean", features), self._buffer("variance", features)
        y = ops.batch_norm_forward(
            x, p["gamma"], p["beta"], self.epsilon, mean, variance, out=self._buffer("y", x.shape)
        )  # (B, N)
        ops.moving_average_update(self.state["moving_mean"], mean, self.momentum)
        ops.moving_average_update(self.state["moving_variance"], variance, self.momentum)
        self._x = x
        return y

    def backward(self, dy: Array, need_input_grad: bool = True) -> Array | None:
        if self._frozen:  # through the inference pass: dx = dy * gamma / sqrt(var + eps)
            zeros = self.ops.zeros(self.params["gamma"].shape, self.dtype)
            variance = self.state["moving_variance"]
            return self.ops.batch_norm_inference(
                dy, zeros, variance, self.params["gamma"], zeros, self.epsilon
            )
        features = self._x.shape[1:]
        return self.ops.batch_norm_backward(
            dy,
            self._x,
            self._buffer("mean", features),
            self._buffer("variance", features),
            self.params["gamma"],
            self.epsilon,
            self.grads["gamma"],
            self.grads["beta"],
            out=dy,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


class InputLayer:
    """The shape of one sample, as a Sequential's first entry: ``Input(shape=(784,))``.

    It holds no weights and does nothing to the data; like Keras's, it is not one of the
    model's ``layers``: the model gives its shape to the first layer.
    """

    def __init__(self, shape: Any = None, name: str | None = None, input_shape: Any = None) -> None:
        if (shape is None) == (input_shape is None):
            raise ValueError(
                "InputLayer takes shape= (one sample's shape, e.g. (784,)); received "
                f"shape={shown(shape)}, input_shape={shown(input_shape)}"
            )
        given, argument = (shape, "shape") if shape is not None else (input_shape, "input_shape")
        self.shape = _check_sample_shape(given, argument)
        self.name = name

    def __repr__(self) -> str:
        return f"InputLayer(shape={self.shape})"


def Input(shape: Any, name: str | None = None) -> InputLayer:
    """Keras's ``Input``: ``Sequential([fastnn.Input(shape=(784,)), Dense(512), ...])``."""
    return InputLayer(shape=shape, name=name)


LAYER_CLASSES: dict[str, type[Layer]] = {
    "Dense": Dense,
    "Activation": Activation,
    "Flatten": Flatten,
    "Dropout": Dropout,
    "BatchNormalization": BatchNormalization,
}


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from :meth:`Layer.get_config` output (used by ``load_model``)."""
    cls = LAYER_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"unknown layer class in saved model: {class_name!r}")
    config = dict(config)
    trainable = bool(config.pop("trainable", True))
    for key in ("kernel_initializer", "bias_initializer"):
        if key in config:
            config[key] = initializers.deserialize(config[key])
    for key in ("kernel_regularizer", "bias_regularizer"):
        if key in config:
            config[key] = regularizers.deserialize(config[key])
    layer = cls(**config)
    layer.trainable = trainable
    return layer
