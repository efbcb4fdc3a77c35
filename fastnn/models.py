"""The Sequential model: Keras's compile / fit / evaluate / predict over fastnn layers.

The training step is the whole algorithm, in plain sight:

    forward through every layer          h = layer.forward(h)
    loss and its gradient, fused          loss, g = loss(logits, y)
    backward through every layer         g = layer.backward(g)
    one optimizer update per parameter    optimizer.apply(params, grads)

Arrays live on the active backend for the whole of ``fit``: the data are moved
once, mini-batches are gathered there, and only scalars come back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastnn import keras_files, onnx_export, saving
from fastnn import losses as losses_module
from fastnn import optimizers as optimizers_module
from fastnn.backends import Array, Backend, Scalar, get_backend
from fastnn.callbacks import Callback, History
from fastnn.compiled import Compiled
from fastnn.config import check_seed, make_rng, resolve_dtype
from fastnn.layers import (
    Dense,
    InputLayer,
    Layer,
    Workspace,
    _ActivatedLayer,
    from_config,
    snake_case,
)
from fastnn.progress import pass_bar, verbosity
from fastnn.sparse import (
    SparseRows,
    check_sparse_inputs,
    density,
    from_scipy,
    is_scipy_sparse,
    resolve_sparse,
)
from fastnn.threads import resolve_threads
from fastnn.trainer import Data, FitPlan, MetricTally, Trainer, pass_threads_for
from fastnn.training import (
    DeviceData,
    PassState,
    correct_count,
    finish_pass,
)
from fastnn.validation import (
    as_features,
    as_labels,
    as_sample_weights,
    as_targets,
    check_flag,
    check_fraction,
    check_int,
    shown,
)

DEFAULT_BATCH_SIZE = 32  # Keras's default for fit, evaluate and predict


#: predict's rows per batch when not given: the outputs do not depend on it
PREDICT_BATCH_SIZE = 1024


def _batch_size(value: int | None) -> int:
    return check_int("batch_size", DEFAULT_BATCH_SIZE if value is None else value, 1)


def _callbacks(value: object) -> list[Callback]:
    """``fit``'s ``callbacks`` argument as a list, each a :class:`Callback`."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            "callbacks must be a list of fastnn.callbacks.Callback objects; "
            f"received an object of type {type(value).__name__}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, Callback):
            raise TypeError(
                "callbacks must hold fastnn.callbacks.Callback objects; "
                f"received callbacks[{i}]={shown(item)}"
            )
    return list(value)


def _validation_data(value: object) -> tuple[Any, Any, Any]:
    """``fit``'s ``validation_data`` as (x_val, y_val, sample weights or None)."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(
            "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight); "
            f"received an object of type {type(value).__name__}"
        )
    if len(value) not in (2, 3):
        items = "1 item" if len(value) == 1 else f"{len(value)} items"
        raise ValueError(
            "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight); "
            f"received {items}"
        )
    return value[0], value[1], value[2] if len(value) == 3 else None


class Sequential:
    """A linear stack of layers, trained with hand-written backpropagation.

    Parameters
    ----------
    layers : list of layers, optional
        The stack, first layer first (``fastnn.layers.Dense``, ``Activation``,
        ``Dropout``, ``BatchNormalization``, ``Flatten``); a ``fastnn.Input(shape=...)``
        may come first to give one sample's shape. More can be added with :meth:`add`.
    name : str, optional
        Shown by :meth:`summary` and kept in saved files (default ``"sequential"``).
    dtype : {"float32", "float64"}, optional
        The float type of weights and computation (default ``$FASTNN_DTYPE``, else
        float32). Inputs are converted to it.
    seed : int, optional
        Seeds the weights' initial values (and dropout), so that two models built with
        the same seed start alike. None: a fresh random start each time.
    sparse_inputs : {"auto", True, False}, optional
        Whether the first layer computes on compressed rows of mostly-zero inputs
        (default ``$FASTNN_SPARSE``, else "auto": when the data is sparse enough).

    The model is built (weights made) when it first sees data, or by :meth:`build`.

    Examples
    --------
    >>> model = fastnn.Sequential([
    ...     fastnn.Input(shape=(784,)),
    ...     fastnn.layers.Dense(512, activation="relu"),
    ...     fastnn.layers.Dense(10, activation="softmax"),
    ... ], seed=0)
    >>> model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> history = model.fit(x_train, y_train, epochs=5, batch_size=128)
    >>> loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    """

    def __init__(
        self,
        layers: Sequence[Layer | InputLayer] | None = None,
        name: str | None = None,
        dtype: Any = None,
        seed: int | None = None,
        sparse_inputs: bool | str | None = None,
    ) -> None:
        self.name = name or "sequential"
        #: the model's sparse-input setting (fastnn/sparse.py); None: $FASTNN_SPARSE or auto
        self.sparse_inputs = None if sparse_inputs is None else check_sparse_inputs(sparse_inputs)
        self.layers: list[Layer] = []
        self._dtype_arg = None if dtype is None else resolve_dtype(dtype)
        self.seed = check_seed(seed)
        self.backend: Backend | None = None  # set when built
        self.dtype: np.dtype | None = None  # set when built
        self.compiled: Compiled | None = None  # what compile chose (fastnn/compiled.py)
        self.history: History | None = None
        self.stop_training = False
        self._workspace: Workspace | None = None
        self._input_shape: tuple[int, ...] | None = None  # from a first Input, if any
        self._epoch = self._step = 0  # where fit is, for its error messages
        self._resume_epoch = 0  # set by BackupAndRestore when it restored a backup
        for layer in layers or []:
            self.add(layer)

    # ---------------------------------------------------------------- building
    def add(self, layer: Layer | InputLayer) -> None:
        """Append a layer (before the model is built); an :func:`~fastnn.layers.Input`
        may come first, to give the shape of one sample."""
        if isinstance(layer, InputLayer):
            if self.layers or self._input_shape is not None:
                raise ValueError(
                    f"an Input must be the model's first entry; received {layer!r} after "
                    f"{len(self.layers) or 1} other(s)"
                )
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential takes fastnn layers (or a first fastnn.Input); received {layer!r}"
            )
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        if not self.layers and self._input_shape is not None:
            if layer.sample_in is not None and layer.sample_in != self._input_shape:
                raise ValueError(
                    f"layer {layer.name or type(layer).__name__!r} declares input_shape="
                    f"{layer.sample_in} but the model's Input has shape={self._input_shape}"
                )
            layer.sample_in = self._input_shape
        taken = {existing.name for existing in self.layers}
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            layer.name = base
            suffix = 0
            while layer.name in taken:
                suffix += 1
                layer.name = f"{base}_{suffix}"
        elif layer.name in taken:
            raise ValueError(f"layer names must be unique; {layer.name!r} is already used")
        self.layers.append(layer)

    @property
    def built(self) -> bool:
        return self.backend is not None

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create the weights for inputs of ``input_shape``, batch axis first: ``(None, 784)``."""
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(
                f"input_shape must include the batch axis, e.g. (None, 784); received {shape}"
            )
        self._build(tuple(int(d) for d in shape[1:] if d is not None))

    def _build(self, sample_shape: tuple[int, ...]) -> None:
        if not self.layers:
            raise ValueError("the model has no layers; add some before using it")
        backend = get_backend()
        dtype = self._dtype_arg if self._dtype_arg is not None else resolve_dtype()
        rng = make_rng(self.seed)
        shape = sample_shape
        for layer in self.layers:
            if layer.sample_in is not None and layer.sample_in != shape:
                raise ValueError(
                    f"layer {layer.name!r} was declared for inputs of shape {layer.sample_in} "
                    f"but receives {shape}"
                )
            layer.build(shape, backend, dtype, rng)
            assert layer.sample_out is not None
            shape = layer.sample_out
        self.backend, self.dtype = backend, dtype
        self._workspace = Workspace(backend)
        if self.compiled is not None:
            self.compiled.check_head(self.layers[-1], self.output_units)

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        return self.layers[0].sample_in if self.layers else self._input_shape

    def _ensure_built(self) -> None:
        if self.built:
            return
        shape = self._declared_input_shape()
        if shape is None:
            raise ValueError(
                "the model is not built yet: call fit/predict on data first, give the first "
                "layer input_dim=..., or call model.build((None, n_features))"
            )
        self._build(shape)

    def _on_active_backend(self) -> Backend:
        """The active backend, moving weights and optimizer state onto it if needed."""
        backend = get_backend()
        if self.backend is not None and backend is not self.backend:
            for layer in self.layers:
                layer.move_to(backend)
            if self.optimizer is not None:
                self.optimizer.move_to(self.backend, backend)
            self.backend = backend
            self._workspace = Workspace(backend)
        return backend

    @property
    def output_units(self) -> int:
        shape = self.layers[-1].sample_out
        assert shape is not None
        return shape[-1]

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The inputs' shape, batch axis first: ``(None, 784)`` (builds the model)."""
        self._ensure_built()
        return (None, *(self._declared_input_shape() or ()))

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        """The outputs' shape, batch axis first: ``(None, 10)`` (builds the model)."""
        self._ensure_built()
        return (None, *(self.layers[-1].sample_out or ()))

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        if (name is None) == (index is None):
            raise ValueError(
                f"get_layer takes name= or index=, one of them; received name={name!r}, "
                f"index={index!r}"
            )
        if index is not None:
            if not isinstance(index, int) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(
                    f"index must be an int in [-{len(self.layers)}, {len(self.layers)}); "
                    f"received index={index!r}"
                )
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(repr(layer.name) for layer in self.layers) or "none"
        raise ValueError(f"no layer named {name!r}; the model's layers: {names}")

    @property
    def weights(self) -> list[Array]:
        """Every weight array itself, on the backend (:meth:`get_weights` for host copies):
        layer by layer, the trainable ones then the others (moving statistics)."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.weights.values()]

    @property
    def trainable_weights(self) -> list[Array]:
        """The weights ``fit`` trains, layer by layer (kernel, bias, gamma, beta), those of
        frozen layers (``layer.trainable = False``) left out."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Array]:
        """The weights ``fit`` does not train: moving statistics, and frozen layers'."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def _trained(self) -> tuple[list[Array], list[Array]]:
        """(the weights fit updates, their gradient arrays), in the same order."""
        layers = [layer for layer in self.layers if layer.trainable]
        return (
            [w for layer in layers for w in layer.params.values()],
            [g for layer in layers for g in layer.grads.values()],
        )

    @property
    def trainable(self) -> bool:
        """Keras's ``model.trainable``: False while every layer is frozen."""
        return any(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            layer.trainable = bool(value)

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        optimizer: str | optimizers_module.Optimizer = "rmsprop",
        loss: str | losses_module.Loss | None = None,
        metrics: Sequence[Any] | None = None,
    ) -> None:
        """Choose how the model trains: the optimizer, the loss and the metrics reported.

        Parameters
        ----------
        optimizer : str or fastnn.optimizers.Optimizer
            ``"sgd"``, ``"rmsprop"`` (the default), ``"adam"``, ``"adamw"`` with Keras's
            defaults, or an object such as ``fastnn.optimizers.Adam(1e-4, amsgrad=True)``.
        loss : str or fastnn.losses.Loss
            ``"sparse_categorical_crossentropy"`` (integer labels),
            ``"categorical_crossentropy"`` (one-hot rows), ``"binary_crossentropy"``,
            ``"mse"``, or a ``fastnn.losses`` object (``from_logits=True`` for a linear
            last layer). Required.
        metrics : list, optional
            Names (``"accuracy"``, ``"precision"``, ``"recall"``, ``"f1"``, Keras's
            ``"sparse_categorical_accuracy"`` ...) or ``fastnn.metrics`` functions.

        Examples
        --------
        >>> model.compile(optimizer=fastnn.optimizers.Adam(1e-3, clipnorm=1.0),
        ...               loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        """
        self.compiled = Compiled(optimizer, loss, metrics)
        if self.layers:
            self.compiled.check_head(self.layers[-1], self.output_units if self.built else None)

    @property
    def optimizer(self) -> optimizers_module.Optimizer | None:
        return None if self.compiled is None else self.compiled.optimizer

    @property
    def loss(self) -> losses_module.Loss | None:
        return None if self.compiled is None else self.compiled.loss

    @property
    def metrics(self) -> list[str]:
        """fastnn's names of the compiled metrics (:attr:`metrics_names` as logged)."""
        return [] if self.compiled is None else self.compiled.metrics

    def _compiled(self) -> Compiled:
        assert self.compiled is not None, "compiled before training"
        return self.compiled

    def _require_compiled(self, method: str) -> Compiled:
        if self.compiled is None:
            raise RuntimeError(f"call model.compile(...) before model.{method}(...)")
        return self.compiled

    # -------------------------------------------------------------------- data
    def _features(self, name: str, x: Any) -> np.ndarray:
        """Inputs checked against the model, building it from their shape if needed."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before using it")
        dtype = self.dtype or self._dtype_arg or resolve_dtype()
        array = as_features(name, x, self._declared_input_shape(), dtype)
        if not self.built:
            self._build(tuple(array.shape[1:]))
        return array

    def _inputs(self, name: str, x: Any, sparse_inputs: object) -> np.ndarray | SparseRows:
        """``x`` checked as :meth:`_features` does, as compressed rows where the sparse
        setting (the argument, else the model's, else ``$FASTNN_SPARSE``) says so."""
        setting = resolve_sparse(self.sparse_inputs if sparse_inputs is None else sparse_inputs)
        if not is_scipy_sparse(x):
            array = self._features(name, x)
            compress_it = array.ndim == 2 and self._compresses(setting, lambda: density(array))
            return get_backend().compress_rows(array) if compress_it else array
        if not self.layers:
            raise ValueError("the model has no layers; add some before using it")
        declared = self._declared_input_shape()
        width = declared[0] if declared is not None and len(declared) == 1 else None
        dtype = self.dtype or self._dtype_arg or resolve_dtype()
        rows = from_scipy(name, x, width, dtype)
        if declared is not None and width is None:  # a model for samples of another shape
            return self._features(name, rows.to_dense())
        if not self.built:
            self._build((rows.width,))
        share = len(rows.values) / max(len(rows) * rows.width, 1)
        return rows if self._compresses(setting, lambda: share) else rows.to_dense()

    def _compresses(self, setting: str, share: Callable[[], float]) -> bool:
        """Whether inputs go to the first layer as compressed rows: a Dense first layer, a
        backend with sparse kernels, and the setting "on", or "auto" with a first layer
        wide enough or narrow enough for the backend's kernels and a share of nonzeros
        (``share()``, measured only if needed) below the backend's crossover."""
        backend, first = get_backend(), self.layers[0]
        if setting == "off" or not backend.sparse_kernels or not isinstance(first, Dense):
            return False
        if setting == "on":
            return True
        wide, narrow = backend.sparse_min_units, backend.sparse_narrow_units
        units_fit = first.units >= wide or first.units <= narrow
        return units_fit and share() < backend.sparse_crossover

    def _targets(self, name: str, y: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(targets for the loss, targets for the accuracy metric or None)."""
        assert self.loss is not None and self.dtype is not None
        units = self.output_units
        if self.loss.target_kind == "sparse":
            targets = as_labels(name, y, n_samples, units)
        else:
            binary = isinstance(self.loss, losses_module.BinaryCrossentropy)
            targets = as_targets(name, y, n_samples, units, self.dtype, unit_interval=binary)
        if not self.metrics:
            return targets, None
        kind = self._compiled().accuracy_kind(units)
        if self.loss.target_kind == "sparse" or kind == "threshold":
            return targets, targets
        return targets, targets.argmax(axis=1)

    # --------------------------------------------------------------------- fit
    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int | None = None,
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        verbose: int | str = "auto",
        seed: int | None = None,
        callbacks: Sequence[Callback] | None = None,
        sparse_inputs: bool | str | None = None,
        initial_epoch: int = 0,
        validation_freq: int = 1,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        distributed: bool = False,
    ) -> History:
        """Train the model on (x, y); return the :class:`~fastnn.callbacks.History`.

        Parameters
        ----------
        x : array (n, features...) or scipy.sparse matrix
            The inputs, one row per sample; images are flattened by a ``Flatten`` layer
            or by the first ``Dense``. Integers (pixels) are converted to the model's dtype.
        y : array (n,) or (n, classes)
            Integer labels for ``sparse_categorical_crossentropy``, one-hot rows for
            ``categorical_crossentropy``, 0/1 targets for ``binary_crossentropy``, values
            for ``mse``.
        epochs : int
            Passes over the data (training runs epochs ``initial_epoch`` to ``epochs - 1``).
        batch_size : int, optional
            Samples per gradient step; None means 32, as in Keras.
        validation_split : float
            The fraction in [0, 1) of the samples, taken from the end, held out to
            validate on after each epoch (``val_loss`` ... in the History).
        validation_data : tuple, optional
            ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight)``, used instead.
        shuffle : bool
            Shuffle the samples before each epoch (in the order ``seed`` gives).
        verbose : {"auto", 0, 1, 2}
            0 silent, 1 or "auto" a progress bar within each epoch, 2 a line per epoch.
        seed : int, optional
            Seeds the shuffling and dropout of this call (None: the model's seed, else
            fresh randomness).
        callbacks : list of fastnn.callbacks.Callback, optional
            E.g. ``EarlyStopping``, ``ModelCheckpoint``, ``ReduceLROnPlateau``,
            ``CSVLogger``.
        sparse_inputs : {"auto", True, False}, optional
            Overrides the model's setting for this call.
        initial_epoch : int
            The epoch to resume at (0-based), as in Keras.
        validation_freq : int
            Validate after every ``validation_freq``-th epoch only.
        sample_weight : array (n,), optional
            Each sample's weight in the loss and its gradient (Keras's semantics: the
            weighted losses summed over the batch size).
        class_weight : dict, optional
            ``{class: weight}``, each sample weighted by its class's (not with
            ``sample_weight``).
        distributed : bool
            Train data-parallel over the MPI ranks this process was started among
            (``mpiexec -n N python script.py``; ``fastnn.distributed``): each rank
            computes the gradients of its share of every batch of ``batch_size`` rows,
            and all apply their sum. Every rank passes the same data; only rank 0
            prints and writes files.

        Returns
        -------
        History
            ``history.history["loss"]``, each metric, their ``val_`` twins and
            ``"learning_rate"``, a value per epoch.

        Examples
        --------
        >>> history = model.fit(x_train, y_train, epochs=5, batch_size=128,
        ...                     validation_split=0.1, seed=0)
        >>> history.history["val_accuracy"][-1]
        """
        self._require_compiled("fit")
        plan = FitPlan(
            epochs=check_int("epochs", epochs, 0),
            initial_epoch=check_int("initial_epoch", initial_epoch, 0),
            batch_size=_batch_size(batch_size),
            shuffle=bool(shuffle),
            verbose=verbosity(verbose),
            seed=check_seed(seed),
            callbacks=_callbacks(callbacks),
            validation_freq=check_int("validation_freq", validation_freq, 1),
            distributed=check_flag("distributed", distributed),
        )
        validation_split = check_fraction("validation_split", validation_split)
        resolve_threads()  # a bad $FASTNN_THREADS is refused before any work
        x_all = self._inputs("x", x, sparse_inputs)
        y_all, acc_all = self._targets("y", y, len(x_all))
        assert self.dtype is not None
        w_all = as_sample_weights(sample_weight, class_weight, y_all, self.dtype)

        val: Data | None = None
        if validation_data is not None:
            x_given, y_given, w_given = _validation_data(validation_data)
            x_val = self._inputs("validation_data x", x_given, sparse_inputs)
            y_val, acc_val = self._targets("validation_data y", y_given, len(x_val))
            w_val = as_sample_weights(w_given, None, y_val, self.dtype, "validation_data ")
            val = (x_val, y_val, acc_val, w_val)
        elif validation_split > 0:
            # Like Keras: the last fraction of the data, taken before any shuffling.
            n_train = int(len(x_all) * (1.0 - validation_split))
            if n_train < 1 or n_train == len(x_all):
                raise ValueError(
                    f"validation_split={validation_split} of {len(x_all)} samples leaves "
                    f"{n_train} for training and {len(x_all) - n_train} for validation; "
                    "each needs at least 1"
                )
            tail = [None if a is None else a[n_train:] for a in (acc_all, w_all)]
            val = (x_all[n_train:], y_all[n_train:], tail[0], tail[1])
            x_all, y_all = x_all[:n_train], y_all[:n_train]
            acc_all = None if acc_all is None else acc_all[:n_train]
            w_all = None if w_all is None else w_all[:n_train]
        return Trainer(self).fit((x_all, y_all, acc_all, w_all), val, plan)

    def _forward_backward(
        self,
        backend: Backend,
        xb: Array,
        yb: Array,
        totals: Array | None = None,
        head: dict[str, Any] | None = None,
        defer_kernel: bool = False,
        done: Callable[[Sequence[Array]], None] | None = None,
    ) -> tuple[Scalar, Array]:
        """Forward, loss and backward for one batch; fills every layer's ``grads``.

        ``totals`` and ``head`` (:meth:`Head.arguments`) go to the fused loss;
        ``defer_kernel``: the first layer (Dense) leaves its kernel's gradient to the
        optimizer (``Dense.backward``'s ``kernel_grad``); ``done`` is given each layer's
        gradients as soon as its backward has made them. Returns (mean loss, model
        outputs as the loss saw them (B, K)).
        """
        assert self._workspace is not None and self.loss is not None
        head = head or {}
        # Backward stops at the first layer with weights to train: none before it needs one.
        first_trainable = next(
            (i for i, layer in enumerate(self.layers) if layer.trainable and layer.params),
            len(self.layers),
        )
        last, below = self.layers[-1], len(self.layers) - 2
        if "bias" in head and below >= 0 and isinstance(last, Dense) and last.trainable:
            # the last layer, its loss and its backward as one backend call (its input is
            # dense: compressed rows go only to a first Dense layer, which is not this one)
            h = self._below_last(xb, training=True)
            grad_buffer = self._workspace.get("grad", (h.shape[0], last.units), last.dtype)
            loss, outputs, grad = last.forward_backward_loss(
                h, self.loss.op, yb, grad_buffer, below >= first_trainable, totals=totals, **head
            )
            if done is not None:
                done(list(last.grads.values()))
        else:
            outputs = self._forward(xb, training=True, logits=True, skip_bias="bias" in head)
            grad_buffer = self._workspace.get("grad", outputs.shape, outputs.dtype)
            loss, grad = self.loss.fused(backend, outputs, yb, grad_buffer, totals=totals, **head)
            below += 1
        for i in range(below, first_trainable - 1, -1):
            layer = self.layers[i]
            if i == 0 and defer_kernel:
                assert isinstance(layer, Dense)
                layer.backward(grad, need_input_grad=False, kernel_grad=False)
            else:
                grad = layer.backward(grad, need_input_grad=i > first_trainable)
            if done is not None:
                done(list(layer.grads.values()))
        penalty = self._penalty(with_grad=True)
        if penalty is None:
            return loss, outputs
        if totals is not None:
            backend.add_loss_term(totals, penalty, len(outputs))
        return loss + penalty, outputs

    def _penalty(self, with_grad: bool) -> Scalar | None:
        """The layers' weight penalties (None without regularizers); ``with_grad`` adds
        their gradients to the layers' ``grads``."""
        total: Scalar | None = None
        for layer in self.layers:
            value = layer.penalty(with_grad)
            if value is not None:
                total = value if total is None else total + value
        return total

    def compute_gradients(
        self, x: Any, y: Any, sparse_inputs: bool | str | None = None
    ) -> tuple[float, list[np.ndarray]]:
        """Loss of (x, y) taken as one batch, and its gradient for every weight.

        Gradients come in the order of the trainable weights in :meth:`get_weights`
        (the non-trainable ones, such as moving statistics, have none); the trainable
        weights are not changed.
        """
        self._require_compiled("compute_gradients")
        x_all = self._inputs("x", x, sparse_inputs)
        y_all, _ = self._targets("y", y, len(x_all))
        backend = self._on_active_backend()
        loss, _ = self._forward_backward(backend, _on(backend, x_all), backend.asarray(y_all))
        _, grads = self._trained()
        return float(loss), [np.array(backend.to_numpy(g), copy=True) for g in grads]

    # ---------------------------------------------------------------- evaluate
    def _below_last(self, x: Array, training: bool) -> Array:
        """Forward through every layer but the last: the last layer's input."""
        h = x  # (B, *input_shape)
        for layer in self.layers[:-1]:
            h = layer.forward(h, training=training)
        return h

    def _forward(self, x: Array, training: bool, logits: bool, skip_bias: bool = False) -> Array:
        """Forward through every layer; ``logits`` skips the activation the loss folds in,
        ``skip_bias`` the last layer's bias, which the loss then adds."""
        h = self._below_last(x, training)
        last = self.layers[-1]
        if skip_bias:
            assert isinstance(last, Dense)
            return last.forward(h, training=training, skip_activation=True, skip_bias=True)
        if logits and self._compiled().folds_activation:
            assert isinstance(last, _ActivatedLayer)
            return last.forward(h, training=training, skip_activation=True)  # logits (B, K)
        return last.forward(h, training=training)  # (B, K)

    def evaluate(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sample_weight: Any = None,
        return_dict: bool = False,
        sparse_inputs: bool | str | None = None,
    ) -> float | list[float] | dict[str, float]:
        """The loss and metrics of the model on (x, y), without training.

        Parameters
        ----------
        x, y : arrays
            As for :meth:`fit`.
        batch_size : int, optional
            Samples per batch; None means 32. Only memory and speed depend on it.
        verbose : {"auto", 0, 1, 2}
            1 or "auto" a progress bar, 2 its closing line only, 0 nothing.
        sample_weight : array (n,), optional
            Weighs the loss as in :meth:`fit` (the metrics stay unweighted, as in Keras).
        return_dict : bool
            Return ``{"loss": ..., "accuracy": ...}`` instead of a list.
        sparse_inputs : {"auto", True, False}, optional
            As for :meth:`fit`.

        Returns
        -------
        float, list or dict
            ``[loss, *metrics]`` in compile order; the loss alone when there are no
            metrics; a dict with ``return_dict``.

        Examples
        --------
        >>> loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        """
        self._require_compiled("evaluate")
        batch_size = _batch_size(batch_size)
        verbose = verbosity(verbose)
        x_all = self._inputs("x", x, sparse_inputs)
        y_all, acc_all = self._targets("y", y, len(x_all))
        assert self.dtype is not None
        weights = as_sample_weights(sample_weight, None, y_all, self.dtype)
        data = (x_all, y_all, acc_all, weights)
        logs = self._evaluate_pass(data, batch_size, "evaluate", verbose)
        return _results(logs, return_dict)

    def _evaluate_pass(
        self, data: Data, batch_size: int, prefix: str, verbose: int
    ) -> dict[str, float]:
        """The loss and metrics of one pass over prepared ``data``."""
        backend = self._on_active_backend()
        assert self._workspace is not None
        bar = pass_bar(verbose, math.ceil(len(data[0]) / batch_size))
        if bar is not None:
            bar.begin()
        steps = math.ceil(len(data[0]) / batch_size)
        with backend.training_stream(), pass_threads_for(backend, data[0], steps) as threads:
            device = DeviceData(backend, self._workspace, prefix, *data)
            state = PassState(backend, self._workspace, prefix)
            logs = Trainer(self).evaluate(backend, device, batch_size, state, threads, bar=bar)
        if bar is not None:
            bar.finish(logs)
        return logs

    def test_on_batch(
        self, x: Any, y: Any, sample_weight: Any = None, return_dict: bool = False
    ) -> float | list[float] | dict[str, float]:
        """:meth:`evaluate` on (x, y) as a single batch, silently."""
        return self.evaluate(x, y, verbose=0, sample_weight=sample_weight,
                             return_dict=return_dict)  # fmt: skip

    def train_on_batch(
        self,
        x: Any,
        y: Any,
        sample_weight: Any = None,
        class_weight: dict[int, float] | None = None,
        return_dict: bool = False,
    ) -> float | list[float] | dict[str, float]:
        """One training step on (x, y) as a single batch, the step ``fit`` runs; returns
        that batch's loss and metrics (before the update), as :meth:`evaluate` does."""
        self._require_compiled("train_on_batch")
        resolve_threads()
        x_all = self._inputs("x", x, None)
        y_all, acc_all = self._targets("y", y, len(x_all))
        assert self.dtype is not None
        weights = as_sample_weights(sample_weight, class_weight, y_all, self.dtype)
        backend = self._on_active_backend()
        assert self._workspace is not None
        trainer = Trainer(self)
        with backend.training_stream(), pass_threads_for(backend, x_all, 1) as threads:
            data = DeviceData(backend, self._workspace, "batch", x_all, y_all, acc_all, weights)
            step = trainer.step(backend, data, None, len(x_all), "batch", threads)
            step.refresh()
            step.state.reset()
            tally = MetricTally(self, backend)
            step.run(len(x_all))
            if tally.confusion is not None:
                assert step.outputs is not None
                tally.add(*step.outputs)
            totals = step.state.read()
        logs = {"loss": finish_pass(totals, len(x_all), self._epoch, check=False)}
        logs.update(tally.results(len(x_all), correct_count(totals)))
        return _results(logs, return_dict)

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        sparse_inputs: bool | str | None = None,
    ) -> np.ndarray:
        """The model's outputs for x, as a NumPy array (n, units).

        Parameters
        ----------
        x : array (n, features...) or scipy.sparse matrix
            As for :meth:`fit`.
        batch_size : int, optional
            Rows are computed independently, so it only bounds the memory a batch
            takes; None means :data:`PREDICT_BATCH_SIZE` (1024), not fit's 32: small
            batches spend most of their time launching kernels.
        verbose : {"auto", 0, 1, 2}
            As for :meth:`evaluate`.
        sparse_inputs : {"auto", True, False}, optional
            As for :meth:`fit`.

        Returns
        -------
        numpy.ndarray (n, units)
            Class probabilities for a softmax last layer (``.argmax(axis=1)``: the
            predicted classes), the raw outputs for a linear one.

        Examples
        --------
        >>> predicted = model.predict(x_test, verbose=0).argmax(axis=1)
        """
        batch_size = check_int(
            "batch_size", PREDICT_BATCH_SIZE if batch_size is None else batch_size, 1
        )
        verbose = verbosity(verbose)
        x_all = self._inputs("x", x, sparse_inputs)
        backend = self._on_active_backend()
        x_dev = _on(backend, x_all)
        result = np.empty((len(x_all), self.output_units), dtype=self.dtype)
        bar = pass_bar(verbose, math.ceil(len(x_all) / batch_size))
        if bar is not None:
            bar.begin()
        with pass_threads_for(backend, x_all, math.ceil(len(x_all) / batch_size)) as threads:
            for i, start in enumerate(range(0, len(x_all), batch_size)):
                stop = min(start + batch_size, len(x_all))
                with threads.step(timed=stop - start == batch_size):
                    outputs = self._forward(x_dev[start:stop], training=False, logits=False)
                result[start:stop] = backend.to_numpy(outputs)
                if bar is not None:
                    bar.advance(i + 1, None)
        if bar is not None:
            bar.finish(None)
        return result

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """:meth:`predict` on x as a single batch, silently."""
        return self.predict(x, verbose=0)

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        """The model's outputs for ``x`` (n, units) as a NumPy array, Keras's ``model(x)``;
        ``training=True`` runs the layers as in training (Dropout drops, BatchNormalization
        uses the batch's statistics and updates its moving ones)."""
        if not training:
            return self.predict_on_batch(x)
        x_all = self._features("x", x)
        backend = self._on_active_backend()
        return np.array(backend.to_numpy(self._forward(backend.asarray(x_all), True, False)))

    @property
    def metrics_names(self) -> list[str]:
        """The names of what :meth:`evaluate` returns: ``["loss", *metrics]``."""
        return self.compiled.metrics_names if self.compiled is not None else ["loss"]

    # ----------------------------------------------------- weights and summary
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight on the host, Keras order: kernel then bias, layer by layer."""
        self._ensure_built()
        assert self.backend is not None
        return [
            np.array(self.backend.to_numpy(w), copy=True)
            for layer in self.layers
            for w in layer.weights.values()
        ]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace every weight, in :meth:`get_weights` order (shapes must match); nothing
        changes unless every array fits."""
        self._ensure_built()
        counts = [len(layer.weights) for layer in self.layers]
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                "set_weights takes a list of arrays, in get_weights() order; "
                f"received {shown(weights)}"
            )
        if len(weights) != sum(counts):
            raise ValueError(
                f"set_weights expected {sum(counts)} arrays, in get_weights() order; "
                f"received {len(weights)}"
            )
        starts = np.cumsum([0, *counts])
        checked = [
            layer.check_weights(list(weights[start : start + count]))
            for layer, start, count in zip(self.layers, starts, counts, strict=False)
        ]
        for layer, arrays in zip(self.layers, checked, strict=True):
            for key, array in zip(layer.weights, arrays, strict=True):
                layer.set_weight(key, layer.ops.asarray(array))

    def count_params(self) -> int:
        """How many numbers the weights hold, trainable or not (as Keras counts)."""
        self._ensure_built()
        return sum(
            layer.count_params() + layer.count_params(trainable=False) for layer in self.layers
        )

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print each layer's type, output shape and parameter count, Keras-style."""
        self._ensure_built()
        header = ("Layer (type)", "Output Shape", "Param #")
        rows = [
            (
                f"{layer.name} ({type(layer).__name__})",
                "(" + ", ".join(["None", *map(str, layer.sample_out or ())]) + ")",
                f"{layer.count_params() + layer.count_params(trainable=False):,}",
            )
            for layer in self.layers
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) + 4 for i in range(3)]

        def line(cells: tuple[str, str, str]) -> str:
            return "".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

        rule = "=" * sum(widths)
        total = self.count_params()
        trainable = sum(layer.count_params() for layer in self.layers)
        print_fn(
            "\n".join(
                [
                    f'Model: "{self.name}"',
                    rule,
                    line(header).rstrip(),
                    rule,
                    *(line(row).rstrip() for row in rows),
                    rule,
                    f"Total params: {total:,}",
                    f"Trainable params: {trainable:,}",
                    f"Non-trainable params: {total - trainable:,}",
                ]
            )
        )

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict[str, Any]:
        dtype = self.dtype or self._dtype_arg
        return {
            "name": self.name,
            "dtype": None if dtype is None else dtype.name,
            "seed": self.seed,
            "input_shape": list(self.layers[0].sample_in or ()) if self.built else None,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        layers = [from_config(item["class_name"], item["config"]) for item in config["layers"]]
        return cls(
            layers, name=config.get("name"), dtype=config.get("dtype"), seed=config.get("seed")
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the model to one file, by its suffix: ``.npz``, fastnn's (architecture,
        weights, compile settings and optimizer state), or ``.keras``, Keras 3's archive
        (:mod:`fastnn.keras_files`: ``keras.models.load_model`` reads it)."""
        if str(path).endswith(".keras"):
            keras_files.write_keras(self, path)
        elif str(path).endswith(".npz"):
            saving.save_model(self, path)
        else:
            raise ValueError(f"model files end in .npz or .keras; received path={str(path)!r}")

    def export(self, filepath: str | os.PathLike[str], format: str = "onnx") -> None:
        """Keras's ``export``: the inference pass as an ONNX graph at ``filepath``
        (:mod:`fastnn.onnx_export`), which onnxruntime runs; ONNX is the one format."""
        if format != "onnx":
            raise ValueError(f'format must be "onnx"; received format={format!r}')
        onnx_export.export_onnx(self, filepath)

    def save_weights(self, path: str) -> None:
        """Save only the weights, to a ``.weights.npz`` file (atomically)."""
        saving.save_weights(self, path)

    def load_weights(self, path: str) -> None:
        """Set the weights from a ``.weights.npz`` or model ``.npz`` of the same architecture."""
        saving.load_weights(self, path)


def _on(backend: Backend, x: np.ndarray | SparseRows) -> Array | SparseRows:
    """Inputs on the backend: compressed rows stay as they are (only backends that
    compute in host memory take them)."""
    return x if isinstance(x, SparseRows) else backend.asarray(x)


def _results(logs: dict[str, float], as_dict: bool) -> float | list[float] | dict[str, float]:
    """What evaluate returns: the logs, ``[loss, *metrics]``, or the loss alone."""
    if as_dict:
        return logs
    values = list(logs.values())
    return values if len(values) > 1 else values[0]


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """Rebuild a model saved by :meth:`Sequential.save` (or a Keras 3 ``.keras`` file of
    the layers fastnn has), on the active backend.

    Any damage to the file (truncation, flipped bytes, a crafted description) raises a
    ValueError that names the file; nothing in it is ever executed (see
    :mod:`fastnn.saving`).
    """
    if str(path).endswith(".keras"):
        return keras_files.read_keras(path, Sequential)
    return saving.load_model(path, Sequential)
