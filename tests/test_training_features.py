"""Regularizers, Dropout and BatchNormalization: gradients against finite differences,
training and inference behaviour, and the figures ``fit`` logs for them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import layers, regularizers

from .test_layers import _built, _numeric_gradient, assert_layer_gradients


def _blobs(rows: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable clusters in 5 features, float64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)
    x = rng.standard_normal((rows, 5)) + 2.0 * np.eye(3, 5)[y]
    return x, y


def _check_model_gradients(model: fastnn.Sequential, x: np.ndarray, y: np.ndarray) -> None:
    """compute_gradients of every trainable weight against central differences of its loss."""
    _, analytic = model.compute_gradients(x, y)
    weights = model.get_weights()
    trainable = [(layer, key) for layer in model.layers for key in layer.weights]
    trainable_indices = [i for i, (layer, key) in enumerate(trainable) if key in layer.params]
    assert len(trainable_indices) == len(analytic)
    for slot, grad in zip(trainable_indices, analytic, strict=True):

        def loss(slot: int = slot) -> float:
            model.set_weights(weights)
            return model.compute_gradients(x, y)[0]

        numeric = _numeric_gradient(loss, weights[slot])
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7, err_msg=str(slot))
    model.set_weights(weights)


# ------------------------------------------------------------- regularizers
@pytest.mark.parametrize(
    "regularizer", [regularizers.L2(0.01), regularizers.L1(0.02), regularizers.L1L2(0.01, 0.03)]
)
def test_regularized_loss_gradient(backend_name: str, regularizer: regularizers.L1L2) -> None:
    x, y = _blobs(12)
    model = fastnn.Sequential(
        [
            layers.Dense(4, "tanh", kernel_regularizer=regularizer, bias_regularizer="l2"),
            layers.Dense(3, "softmax", kernel_regularizer=regularizer),
        ],
        dtype="float64",
        seed=0,
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    _check_model_gradients(model, x, y)


def test_penalty_is_added_to_the_loss_once(backend_name: str) -> None:
    x, y = _blobs(30)

    def model(factor: float) -> fastnn.Sequential:
        m = fastnn.Sequential(
            [layers.Dense(4, "relu", input_dim=5, kernel_regularizer=regularizers.L2(factor)),
             layers.Dense(3, "softmax")],
            dtype="float64",
            seed=3,
        )  # fmt: skip
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    plain, penalized = model(0.0), model(0.25)
    kernel = penalized.get_weights()[0]
    penalty = 0.25 * float((kernel**2).sum())
    loss_plain = plain.evaluate(x, y, batch_size=7)
    loss_penalized = penalized.evaluate(x, y, batch_size=7)
    assert loss_penalized == pytest.approx(loss_plain + penalty, rel=1e-10)
    # the training loss of a single full batch step is taken before the update
    history = penalized.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss_plain + penalty, rel=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: regularizers.L2(-1), "l2 must be >= 0; received l2=-1"),
        (lambda: regularizers.L1("big"), "l1 must be a finite number >= 0; received l1='big'"),
        (lambda: regularizers.L1L2(l2=float("nan")), "received l2=nan"),
        (lambda: layers.Dense(3, kernel_regularizer="l3"), "unknown regularizer 'l3'"),
    ],
)
def test_bad_regularizers(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ dropout
def test_dropout_training_and_inference(backend_name: str) -> None:
    backend = fastnn.get_backend()
    layer = _built(layers.Dropout(0.25, seed=4), (400,))
    x = np.random.default_rng(0).uniform(1.0, 2.0, (50, 400))
    assert backend.to_numpy(layer.forward(backend.asarray(x))) is not None
    np.testing.assert_array_equal(backend.to_numpy(layer.forward(backend.asarray(x))), x)
    y = backend.to_numpy(layer.forward(backend.asarray(x), training=True))
    dropped = y == 0
    assert 0.22 < dropped.mean() < 0.28  # 20,000 draws of p = 0.25
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.75, rtol=1e-12)
    # backward routes the gradient through the same mask
    dy = np.ones_like(x)
    dx = backend.to_numpy(layer.backward(backend.asarray(dy)))
    np.testing.assert_array_equal(dx == 0, dropped)
    np.testing.assert_allclose(dx[~dropped], 1 / 0.75)
    # a new mask every step
    again = backend.to_numpy(layer.forward(backend.asarray(x), training=True))
    assert ((again == 0) != dropped).any()


def test_dropout_masks_are_seeded_and_equal_across_backends() -> None:
    x = np.ones((20, 30))
    masks = []
    for name in [info.name for info in fastnn.available_backends() if info.available]:
        with fastnn.use_backend(name):
            backend = fastnn.get_backend()
            layer = _built(layers.Dropout(0.5, seed=11), (30,))
            masks.append(backend.to_numpy(layer.forward(backend.asarray(x), training=True)))
    for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])


def test_dropout_leaves_other_layers_initial_weights_alone() -> None:
    def weights(with_dropout: bool) -> list[np.ndarray]:
        middle = [layers.Dropout(0.3)] if with_dropout else []
        model = fastnn.Sequential([layers.Dense(5, input_dim=4), *middle, layers.Dense(2)], seed=9)
        return model.get_weights()

    for got, want in zip(weights(True), weights(False), strict=True):
        np.testing.assert_array_equal(got, want)


def test_dropout_model_gradient_with_a_fixed_mask(backend_name: str) -> None:
    x, y = _blobs(10)
    dropout = layers.Dropout(0.4, seed=1)
    model = fastnn.Sequential(
        [layers.Dense(6, "relu"), dropout, layers.Dense(3, "softmax")], dtype="float64", seed=0
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.build((None, 5))
    # every loss evaluation must see the same mask: reseed the layer's generator each time
    compute = model.compute_gradients

    def same_mask(*args: np.ndarray) -> tuple[float, list[np.ndarray]]:
        dropout._rng = np.random.default_rng(1)
        return compute(*args)

    model.compute_gradients = same_mask  # type: ignore[method-assign]
    _check_model_gradients(model, x, y)


@pytest.mark.parametrize("rate", [-0.1, 1.0, "half", True])
def test_bad_dropout_rate(rate: object) -> None:
    with pytest.raises(
        ValueError, match=f"rate must be a number in \\[0, 1\\); received rate={rate!r}"
    ):
        layers.Dropout(rate)  # type: ignore[arg-type]


# ------------------------------------------------------ batch normalization
def test_batch_norm_backward(backend_name: str) -> None:
    backend = fastnn.get_backend()
    rng = np.random.default_rng(2)
    layer = _built(layers.BatchNormalization(), (4,))
    layer.params = {
        "gamma": backend.asarray(rng.uniform(0.5, 2.0, 4)),
        "beta": backend.asarray(rng.standard_normal(4)),
    }
    x = rng.standard_normal((6, 4)) * 3 + 1
    assert_layer_gradients(layer, x, rng.standard_normal((6, 4)), training=True)


def test_batch_norm_model_gradient(backend_name: str) -> None:
    x, y = _blobs(16)
    model = fastnn.Sequential(
        [layers.Dense(6), layers.BatchNormalization(), layers.Activation("tanh"),
         layers.Dense(3, "softmax")],
        dtype="float64",
        seed=0,
    )  # fmt: skip
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    _check_model_gradients(model, x, y)


def test_batch_norm_training_and_inference(backend_name: str) -> None:
    backend = fastnn.get_backend()
    rng = np.random.default_rng(8)
    layer = _built(layers.BatchNormalization(momentum=0.9, epsilon=1e-3), (3,))
    x = rng.standard_normal((200, 3)) * [1.0, 5.0, 0.1] + [10.0, -3.0, 0.0]
    y = backend.to_numpy(layer.forward(backend.asarray(x), training=True))
    # training normalizes with the batch's own statistics (gamma 1, beta 0)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + 1e-3), rtol=1e-10)
    # moving statistics move 10% of the way from (0, 1) towards the batch's
    moving_mean = backend.to_numpy(layer.state["moving_mean"])
    moving_variance = backend.to_numpy(layer.state["moving_variance"])
    np.testing.assert_allclose(moving_mean, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moving_variance, 0.9 + 0.1 * x.var(axis=0), rtol=1e-12)
    # inference uses the moving statistics, not the batch's
    z = backend.to_numpy(layer.forward(backend.asarray(x[:5])))
    want = (x[:5] - moving_mean) / np.sqrt(moving_variance + 1e-3)
    np.testing.assert_allclose(z, want, rtol=1e-10)


def test_batch_norm_weights_summary_and_saving(tmp_path: Path) -> None:
    x, y = _blobs(64)
    model = fastnn.Sequential(
        [layers.Dense(8, input_dim=5), layers.BatchNormalization(), layers.Activation("relu"),
         layers.Dropout(0.1), layers.Dense(3, "softmax", kernel_regularizer="l2")],
        seed=0,
    )  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 8), (8,), (8,), (8,), (8,), (8,), (8, 3), (3,)]
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert "Total params: 107\nTrainable params: 91\nNon-trainable params: 16" in lines[0]
    path = tmp_path / "bn.npz"
    model.save(str(path))
    loaded = fastnn.load_model(str(path))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for got, want in zip(loaded.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: layers.BatchNormalization(momentum=1.5),
            "momentum must be a number in \\[0, 1\\]",
        ),
        (
            lambda: layers.BatchNormalization(epsilon=0),
            "epsilon must be a number > 0; received epsilon=0",
        ),
    ],
)
def test_bad_batch_norm_arguments(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------- tasks beyond MNIST digits
def _two_moons(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles in 2 features, the binary tutorial's kind of data."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    angle = rng.uniform(0, np.pi, rows)
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x[y == 1] = 1 - x[y == 1] - [0.0, 0.5]
    return x + rng.normal(0, 0.1, x.shape), y


@pytest.mark.parametrize("label_shape", ["(n,)", "(n, 1)"])
def test_binary_classification_tutorial(backend_name: str, label_shape: str) -> None:
    x, y = _two_moons(400, 0)
    labels = y if label_shape == "(n,)" else y.reshape(-1, 1)
    model = fastnn.Sequential(
        [layers.Dense(4, "relu", input_dim=2), layers.Dense(1, "sigmoid")], seed=1
    )
    model.compile(
        optimizer=fastnn.optimizers.Adam(0.05),
        loss="binary_crossentropy",
        metrics=["accuracy", "precision", "recall", "f1"],
    )
    history = model.fit(x, labels, epochs=60, batch_size=32, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.25 * history.history["loss"][0]
    _, accuracy, precision, recall, f1 = model.evaluate(*_two_moons(200, 1))  # type: ignore[misc]
    assert accuracy > 0.95, accuracy
    predicted = (model.predict(x) > 0.5).astype(int).ravel()
    assert model.predict(x).shape == (400, 1)
    tp = int(((predicted == 1) & (y == 1)).sum())
    _, _, train_precision, train_recall, _ = model.evaluate(x, labels)  # type: ignore[misc]
    assert train_precision == pytest.approx(tp / predicted.sum())
    assert train_recall == pytest.approx(tp / y.sum())
    assert 0 < f1 <= 1 and 0 < precision <= 1 and 0 < recall <= 1


def test_regression_with_mse(backend_name: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3
    model = fastnn.Sequential([layers.Dense(16, "tanh", input_dim=3), layers.Dense(1)], seed=0)
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, epochs=100, batch_size=32, verbose=0, seed=0)
    assert history.history["loss"][-1] < 5e-3 < history.history["loss"][0]
    np.testing.assert_allclose(model.predict(x[:5]), y[:5], atol=0.1)


# ----------------------------------------------------------- logged figures
def test_fit_logs_the_learning_rate_and_every_metric(backend_name: str) -> None:
    x, y = _blobs(90)
    model = fastnn.Sequential([layers.Dense(8, "relu"), layers.Dense(3, "softmax")], seed=0)
    model.compile(
        optimizer=fastnn.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["f1", "accuracy", "precision", "recall"],
    )
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0, seed=0)
    assert list(history.history) == [
        "loss", "f1", "accuracy", "precision", "recall",
        "val_loss", "val_f1", "val_accuracy", "val_precision", "val_recall", "learning_rate",
    ]  # fmt: skip
    assert history.history["learning_rate"] == [pytest.approx(0.1)] * 2
    # evaluate's figures are those of fastnn.metrics on the model's predictions
    results = model.evaluate(x, y, batch_size=7)
    predicted = model.predict(x).argmax(axis=1)
    assert isinstance(results, list)
    assert results[1:] == pytest.approx(
        [
            fastnn.metrics.f1(y, predicted, average="macro"),
            fastnn.metrics.accuracy(y, predicted),
            fastnn.metrics.precision(y, predicted, average="macro"),
            fastnn.metrics.recall(y, predicted, average="macro"),
        ]
    )


def test_unknown_metric() -> None:
    model = fastnn.Sequential([layers.Dense(3, "softmax")])
    with pytest.raises(ValueError, match="unknown metric 'auc'; valid: accuracy, acc, precision"):
        model.compile(loss="sparse_categorical_crossentropy", metrics=["auc"])
    with pytest.raises(TypeError, match=r"metrics must be a list of names.*received metrics='f1'"):
        model.compile(loss="sparse_categorical_crossentropy", metrics="f1")  # type: ignore[arg-type]
