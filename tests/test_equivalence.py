"""Whole training steps on every other backend give the NumPy backend's parameters."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers, recipes

from .conftest import OTHER_BACKENDS, backend_params

TOL = {"float32": 1e-5, "float64": 1e-12}


def _one_step(
    backend_name: str, recipe_name: str, x: np.ndarray, y: np.ndarray, dtype: str
) -> list[np.ndarray]:
    """The recipe's model after one optimizer step on (x, y) as a single batch."""
    recipe = recipes.get(recipe_name)
    with fastnn.use_backend(backend_name):
        model = recipe.build(0, np.dtype(dtype))
        model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
        return model.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("recipe_name", "rows"),
    [("keras", 128), ("scratch", 59_000), ("deep", 32), ("deep-regularized", 32), ("deep-bn", 32)],
)
@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_one_recipe_step_matches_numpy(
    name: str, recipe_name: str, rows: int, dtype: str, mnist: recipes.Data
) -> None:
    """One step with each recipe's real batch (the scratch recipe's is the whole set)."""
    (x_train, y_train), _ = mnist
    x = x_train[:rows].astype(dtype)
    y = y_train[:rows]
    reference = _one_step("numpy", recipe_name, x, y, dtype)
    result = _one_step(name, recipe_name, x, y, dtype)
    for got, want in zip(result, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_batches_of_one_and_a_partial_last_batch(name: str) -> None:
    """Batch size 1 for a few steps, then 7 rows with a last batch of 1, shuffled."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    weights = {}
    for backend_name in ("numpy", name):
        with fastnn.use_backend(backend_name):
            model = fastnn.Sequential([layers.Dense(8, "relu"), layers.Dense(4, "softmax")], seed=1)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(x[:5], y[:5], epochs=1, batch_size=1, verbose=0, seed=2)
            model.fit(x, y, epochs=2, batch_size=7, verbose=0, seed=2)
            weights[backend_name] = model.get_weights()
    for got, want in zip(weights[name], weights["numpy"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_a_model_moves_between_backends(name: str) -> None:
    """Trained on one backend, the same model object keeps training on another."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = fastnn.Sequential([layers.Dense(6, "tanh"), layers.Dense(3, "softmax")], seed=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    twin = fastnn.Sequential([layers.Dense(6, "tanh"), layers.Dense(3, "softmax")], seed=0)
    twin.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    with fastnn.use_backend("numpy"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
        for _ in range(2):
            twin.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    with fastnn.use_backend(name):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
        assert model.backend is not None and model.backend.name == name
        moved = model.predict(x)
    with fastnn.use_backend("numpy"):
        np.testing.assert_allclose(moved, twin.predict(x), rtol=1e-5, atol=1e-6)
