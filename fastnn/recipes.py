"""The tutorials' networks, reproducible by name: ``fastnn train --recipe NAME``.

* ``keras``: the Keras MNIST tutorial: 784-512-10, ReLU, softmax, RMSprop,
  sparse categorical cross-entropy, 5 epochs of batch 128.
* ``scratch``: the "neural network from scratch in NumPy" tutorial: 784-10-10,
  ReLU then softmax, weights and biases uniform in [-0.5, 0.5], plain gradient
  descent (learning rate 0.1) on the full training set, 500 iterations, the
  first 1000 shuffled rows held out as the dev set.
* ``deep``: 256-128-10 ReLU, Adam, batch 32, 10 epochs, 10% validation split.
* ``deep-regularized``: ``deep`` with L2(0.001) on every kernel, Dropout(0.2) after
  each hidden layer, and ReduceLROnPlateau on val_loss (factor 0.5, patience 3).
* ``deep-bn``: ``deep`` with BatchNormalization between each hidden Dense and its ReLU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastnn import datasets, initializers, layers, optimizers, regularizers
from fastnn.backends import get_backend, use_backend
from fastnn.callbacks import Callback, EpochTimer, ProgressLogger, ReduceLROnPlateau
from fastnn.config import check_seed, resolve_dtype
from fastnn.datasets import mnist
from fastnn.models import Sequential
from fastnn.validation import check_int

Data = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Recipe:
    """A network, its data preparation and its training settings."""

    name: str
    description: str
    build: Callable[[int | None, np.dtype], Sequential]  # (seed, dtype) -> compiled model
    epochs: int
    batch_size: int | None  # None: the whole training set per step
    fit_options: dict[str, Any] = field(default_factory=dict)
    #: rows of the (seeded-)shuffled training set held out as validation_data
    dev_rows: int = 0
    #: print every N epochs instead of every epoch
    log_every: int = 1
    #: callbacks of the recipe itself (built fresh for every run)
    callbacks: Callable[[], list[Callback]] = list
    #: what its progress lines count: epochs, or (one full-batch step each) iterations
    unit: str = "Epoch"


def _keras(seed: int | None, dtype: np.dtype) -> Sequential:
    model = Sequential(
        [
            layers.Dense(512, activation="relu", input_dim=784),
            layers.Dense(10, activation="softmax"),
        ],
        name="keras_mnist",
        seed=seed,
        dtype=dtype,
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _scratch(seed: int | None, dtype: np.dtype) -> Sequential:
    half = initializers.RandomUniform(-0.5, 0.5)
    model = Sequential(
        [
            layers.Dense(10, "relu", input_dim=784, kernel_initializer=half, bias_initializer=half),
            layers.Dense(10, "softmax", kernel_initializer=half, bias_initializer=half),
        ],
        name="scratch_mnist",
        seed=seed,
        dtype=dtype,
    )
    model.compile(
        optimizer=optimizers.SGD(learning_rate=0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _deep_model(
    name: str, hidden: Sequence[layers.Layer], seed: int | None, dtype: np.dtype
) -> Sequential:
    """784 inputs, the ``hidden`` layers, a 10-way softmax; Adam. The ``deep`` family."""
    model = Sequential(
        [*hidden, layers.Dense(10, activation="softmax")], name=name, seed=seed, dtype=dtype
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _deep(seed: int | None, dtype: np.dtype) -> Sequential:
    hidden = [layers.Dense(256, "relu", input_dim=784), layers.Dense(128, "relu")]
    return _deep_model("deep_mnist", hidden, seed, dtype)


def _deep_regularized(seed: int | None, dtype: np.dtype) -> Sequential:
    def dense(units: int, **kwargs: Any) -> layers.Dense:
        return layers.Dense(units, "relu", kernel_regularizer=regularizers.L2(0.001), **kwargs)

    hidden = [dense(256, input_dim=784), layers.Dropout(0.2), dense(128), layers.Dropout(0.2)]
    return _deep_model("deep_regularized_mnist", hidden, seed, dtype)


def _deep_bn(seed: int | None, dtype: np.dtype) -> Sequential:
    hidden: list[layers.Layer] = []
    for units in (256, 128):
        dense = layers.Dense(units, input_dim=784) if not hidden else layers.Dense(units)
        hidden += [dense, layers.BatchNormalization(), layers.Activation("relu")]
    return _deep_model("deep_bn_mnist", hidden, seed, dtype)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("keras", "784-512-10 ReLU/softmax, RMSprop, batch 128", _keras, 5, 128),
        Recipe(
            "scratch",
            "784-10-10 ReLU/softmax, full-batch gradient descent, lr 0.1",
            _scratch,
            500,
            None,
            fit_options={"shuffle": False},
            dev_rows=1000,
            log_every=10,
            unit="Iteration",
        ),
        Recipe(
            "deep",
            "784-256-128-10 ReLU/softmax, Adam, batch 32, 10% validation",
            _deep,
            10,
            32,
            fit_options={"validation_split": 0.1},
        ),
        Recipe(
            "deep-regularized",
            "deep + L2(0.001) kernels, Dropout(0.2), ReduceLROnPlateau(val_loss, 0.5, 3)",
            _deep_regularized,
            10,
            32,
            fit_options={"validation_split": 0.1},
            callbacks=lambda: [
                ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-7)
            ],
        ),
        Recipe(
            "deep-bn",
            "deep with BatchNormalization between each hidden Dense and its ReLU",
            _deep_bn,
            10,
            32,
            fit_options={"validation_split": 0.1},
        ),
    )
}


@dataclass
class RecipeResult:
    """What one run of a recipe measured."""

    recipe: str
    backend: str
    dtype: str
    epochs: int
    test_loss: float
    test_accuracy: float
    epoch_seconds: list[float]
    train_seconds: float
    history: dict[str, list[float]]
    #: the test images as the model saw them (n, 784), their labels (n,) and the
    #: predicted labels (n,): what the plots of ``fastnn train --plot`` draw
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)


def get(name: str) -> Recipe:
    """The recipe called ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]


def prepare_mnist(data: Data, dtype: np.dtype) -> Data:
    """Flatten the images to 784 columns and scale pixels to [0, 1]."""
    (x_train, y_train), (x_test, y_test) = data
    return (
        (datasets.scale_pixels(datasets.flatten(x_train), dtype), y_train),
        (datasets.scale_pixels(datasets.flatten(x_test), dtype), y_test),
    )


def run(
    name: str,
    *,
    backend: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    data_dir: str | None = None,
    seed: int | None = None,
    dtype: str | None = None,
    verbose: int = 1,
    print_fn: Callable[[str], Any] = print,
    distributed: bool = False,
) -> RecipeResult:
    """Train recipe ``name`` on MNIST and evaluate it on the test set.

    ``epochs`` and ``batch_size`` override the recipe's own; ``distributed``: train over
    the MPI ranks this process runs among (``fit(distributed=True)``; every rank must
    pass the same ``seed``).
    """
    recipe = get(name)
    # Checked before MNIST is read, so that a wrong one fails at once.
    epochs = recipe.epochs if epochs is None else check_int("epochs", epochs, 0)
    batch_size = recipe.batch_size if batch_size is None else check_int("batch_size", batch_size, 1)
    check_seed(seed)
    context = use_backend(backend) if backend is not None else contextlib.nullcontext()
    with context:
        resolved = resolve_dtype(dtype)
        (x_train, y_train), (x_test, y_test) = prepare_mnist(mnist.load_data(data_dir), resolved)
        fit_options: dict[str, Any] = dict(recipe.fit_options)
        if recipe.dev_rows:
            x_train, y_train = datasets.shuffle(x_train, y_train, seed=seed)
            dev = recipe.dev_rows
            fit_options["validation_data"] = (x_train[:dev], y_train[:dev])
            x_train, y_train = x_train[dev:], y_train[dev:]
        model = recipe.build(seed, resolved)
        timer = EpochTimer()
        hooks: list[Callback] = [timer, *recipe.callbacks()]
        if verbose:
            hooks.append(ProgressLogger(print_fn, every=recipe.log_every, unit=recipe.unit))
            if not get_backend().kernels_cached():  # the backend this run uses
                print_fn("compiling fastnn's Numba kernels (first run only: a few seconds)")
        started = time.perf_counter()
        history = model.fit(
            x_train,
            y_train,
            epochs=epochs,
            batch_size=batch_size or len(x_train),
            verbose=0,
            seed=seed,
            callbacks=hooks,
            distributed=distributed,
            **fit_options,
        )
        train_seconds = time.perf_counter() - started
        test = model.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)
        assert isinstance(test, dict)
        predicted = model.predict(x_test, batch_size=1000, verbose=0).argmax(axis=1)
        return RecipeResult(
            recipe=name,
            backend=model.backend.name if model.backend else "?",
            dtype=resolved.name,
            epochs=len(timer.seconds),
            test_loss=test["loss"],
            test_accuracy=test["accuracy"],
            epoch_seconds=timer.seconds,
            train_seconds=train_seconds,
            history=history.history,
            x_test=x_test,
            y_test=np.asarray(y_test),
            predicted=predicted,
        )
