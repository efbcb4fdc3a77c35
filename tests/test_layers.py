"""Backward passes against finite differences, in float64, on every backend that can run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import fastnn
from fastnn import layers, losses

STEP = 1e-6


def _numeric_gradient(f: Callable[[], float], array: np.ndarray) -> np.ndarray:
    """Central differences of ``f()`` w.r.t. every entry of ``array`` (mutated, then restored)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + STEP
        f_plus = f()
        array[index] = saved - STEP
        f_minus = f()
        array[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * STEP)
    return grad


def _built(layer: layers.Layer, input_shape: tuple[int, ...]) -> layers.Layer:
    backend = fastnn.get_backend()
    layer.build(input_shape, backend, np.dtype("float64"), np.random.default_rng(0))
    return layer


def assert_layer_gradients(
    layer: layers.Layer, x: np.ndarray, weights: np.ndarray, training: bool = False
) -> None:
    """The layer's backward (input and parameter gradients) against central differences of
    ``L = sum(forward(x) * weights)``, so that ``dL/dy = weights``."""
    backend = fastnn.get_backend()

    def loss() -> float:
        y = layer.forward(backend.asarray(x), training=training)
        return float((backend.to_numpy(y) * weights).sum())

    # Parameters are perturbed through host copies that are pushed back each time.
    host = {key: backend.to_numpy(value).copy() for key, value in layer.params.items()}

    def loss_with(key: str) -> Callable[[], float]:
        def f() -> float:
            layer.params[key] = backend.asarray(host[key])
            return loss()

        return f

    layer.forward(backend.asarray(x), training=True)
    dx = backend.to_numpy(layer.backward(backend.asarray(weights.copy())))
    analytic = {key: backend.to_numpy(g).copy() for key, g in layer.grads.items()}
    for key in host:
        numeric = _numeric_gradient(loss_with(key), host[key])
        layer.params[key] = backend.asarray(host[key])
        np.testing.assert_allclose(analytic[key], numeric, rtol=1e-6, atol=1e-8, err_msg=key)
    np.testing.assert_allclose(dx, _numeric_gradient(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_dense_backward(backend_name: str, activation: str) -> None:
    backend = fastnn.get_backend()
    rng = np.random.default_rng(5)
    dense = _built(layers.Dense(4, activation=activation), (3,))
    dense.params["bias"] = backend.asarray(rng.standard_normal(4))
    x = rng.standard_normal((5, 3))
    assert_layer_gradients(dense, x, rng.standard_normal((5, 4)))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation_layer_backward(backend_name: str, activation: str) -> None:
    backend = fastnn.get_backend()
    rng = np.random.default_rng(6)
    layer = _built(layers.Activation(activation), (4,))
    x = rng.standard_normal((3, 4)) + 0.05
    weights = rng.standard_normal((3, 4))

    def loss() -> float:
        return float((backend.to_numpy(layer.forward(backend.asarray(x))) * weights).sum())

    layer.forward(backend.asarray(x), training=True)
    dx = backend.to_numpy(layer.backward(backend.asarray(weights.copy())))
    np.testing.assert_allclose(dx, _numeric_gradient(loss, x), rtol=1e-6, atol=1e-8)


def test_flatten_round_trip(backend_name: str) -> None:
    backend = fastnn.get_backend()
    layer = _built(layers.Flatten(), (2, 3))
    assert layer.sample_out == (6,)
    x = backend.asarray(np.arange(24.0).reshape(4, 2, 3))
    y = layer.forward(x, training=True)
    assert y.shape == (4, 6)
    dx = backend.to_numpy(layer.backward(y))
    np.testing.assert_array_equal(dx, np.arange(24.0).reshape(4, 2, 3))


MODEL_CASES = {
    "sparse_ce_softmax": ("softmax", "sparse_categorical_crossentropy", "labels"),
    "ce_softmax": ("softmax", "categorical_crossentropy", "onehot"),
    "ce_from_logits": (None, losses.CategoricalCrossentropy(from_logits=True), "onehot"),
    "sparse_from_logits": (None, losses.SparseCategoricalCrossentropy(from_logits=True), "labels"),
    "bce_sigmoid": ("sigmoid", "binary_crossentropy", "binary"),
    "mse_tanh": ("tanh", "mse", "real"),
    "mse_linear": (None, "mean_squared_error", "real"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_whole_model_gradient(backend_name: str, case: str) -> None:
    """Backprop through a 3-layer model and each loss equals finite differences of the loss."""
    final, loss, target_kind = MODEL_CASES[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3))
    targets = {
        "labels": rng.integers(0, 2, 6),
        "onehot": np.eye(2)[rng.integers(0, 2, 6)],
        "binary": rng.integers(0, 2, (6, 2)).astype(float),
        "real": rng.standard_normal((6, 2)) * 0.5,
    }[target_kind]
    model = fastnn.Sequential(
        [
            layers.Dense(4, activation="tanh", input_dim=3),
            layers.Activation("relu"),
            layers.Dense(2, activation=final),
        ],
        dtype="float64",
        seed=1,
    )
    model.compile(optimizer="sgd", loss=loss)
    model.set_weights([w + 0.1 for w in model.get_weights()])  # biases away from zero
    _, analytic = model.compute_gradients(x, targets)
    weights = model.get_weights()

    def loss_value() -> float:
        model.set_weights(weights)
        return model.compute_gradients(x, targets)[0]

    for index, weight in enumerate(weights):
        numeric = _numeric_gradient(loss_value, weight)
        np.testing.assert_allclose(analytic[index], numeric, rtol=1e-5, atol=1e-8)


def test_layer_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="units=0"):
        layers.Dense(0)
    with pytest.raises(ValueError, match=r"units=2\.5"):
        layers.Dense(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        layers.Dense(3, activation="relu6")
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        layers.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="input_dim=-3"):
        layers.Dense(3, input_dim=-3)
    with pytest.raises(ValueError, match="Flatten"):
        fastnn.Sequential([layers.Dense(3)]).build((None, 28, 28))
