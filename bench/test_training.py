"""Whole training: a `keras` epoch and `scratch` iterations per backend, beside the peers
(plain NumPy, PyTorch, JAX, Keras 3: each when it imports) and the GEMM floor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.conftest import backend_params
from fastnn import recipes, use_backend
from fastnn.benchmarks import peers, scratch_tutorial, workloads
from fastnn.recipes import Data

KERAS_GROUP = "keras epoch (784-512-10, RMSprop, batch 128)"
SCRATCH_GROUP = "scratch: full-batch iterations (784-10-10)"


def _subset(data: Data, rows: int) -> tuple[np.ndarray, np.ndarray]:
    (x, y), _ = data
    return x[:rows], y[:rows]


@pytest.fixture(scope="module")
def keras_data(quick: bool, mnist_data: Data) -> tuple[np.ndarray, np.ndarray]:
    return _subset(mnist_data, 1280 if quick else 60_000)


@pytest.fixture(scope="module")
def numpy_first_loss(keras_data: tuple[np.ndarray, np.ndarray]) -> float:
    """The numpy backend's first-epoch loss: what every backend and peer is checked against."""
    epochs = workloads.KerasEpochs("numpy", *keras_data)
    epochs()
    return epochs.losses[0]


@pytest.mark.parametrize("name", backend_params())
def test_keras_epoch(
    benchmark: Any,
    quick: bool,
    keras_data: tuple[np.ndarray, np.ndarray],
    numpy_first_loss: float,
    name: str,
) -> None:
    epochs = workloads.KerasEpochs(name, *keras_data)
    epochs()  # warm-up: JIT compilation and first-touch allocation stay out of the timing
    assert epochs.losses[0] == pytest.approx(numpy_first_loss, rel=1e-3)
    benchmark.group = KERAS_GROUP
    benchmark.extra_info["samples"] = len(keras_data[0])
    benchmark.pedantic(epochs, rounds=1 if quick else 5, iterations=1)
    benchmark.extra_info["final_loss"] = epochs.losses[-1]


@pytest.mark.parametrize("peer", peers.PEERS, ids=[p.name for p in peers.PEERS])
def test_keras_epoch_peer(
    benchmark: Any,
    quick: bool,
    keras_data: tuple[np.ndarray, np.ndarray],
    numpy_first_loss: float,
    peer: peers.Peer,
) -> None:
    reason = peer.probe()
    if reason:
        pytest.skip(reason)
    start = tuple(workloads.keras_model(0).get_weights())
    epochs = peer.build(*keras_data, seed=0, weights=start)
    epochs()  # warm-up: tracing / compilation stays out of the timing
    # Same weights and batch order as fastnn, so the same first-epoch loss up to their own
    # rules: PyTorch's RMSprop puts epsilon outside the square root (+2-3% here), Keras
    # shuffles itself. Timed in this process, beside numpy's and numba's thread pools, which
    # slows PyTorch; `fastnn bench` times each such peer in a process of its own.
    # scikit-learn has no RMSprop: its Adam's first epoch lands elsewhere, but it learns.
    if peer.name == "scikit-learn mlp":
        assert epochs.losses[0] < 0.9 * np.log(10)  # below chance's loss
    else:
        assert epochs.losses[0] == pytest.approx(numpy_first_loss, rel=5e-2)
    benchmark.group = KERAS_GROUP
    benchmark.pedantic(epochs, rounds=1 if quick else 5, iterations=1)


@pytest.mark.parametrize("preallocated", [False, True], ids=["plain", "preallocated"])
def test_gemm_floor(
    benchmark: Any, quick: bool, keras_data: tuple[np.ndarray, np.ndarray], preallocated: bool
) -> None:
    floor = workloads.gemm_floor(keras_data[0], preallocated)
    floor()
    benchmark.group = KERAS_GROUP
    benchmark.pedantic(floor, rounds=1 if quick else 5, iterations=1)


@pytest.mark.parametrize("name", backend_params())
def test_scratch_iterations(benchmark: Any, quick: bool, mnist_data: Data, name: str) -> None:
    """20 full-batch iterations of the scratch recipe (the recipe runs 500)."""
    x, y = _subset(mnist_data, 2000 if quick else 59_000)
    with use_backend(name):
        model = recipes.get("scratch").build(1, np.dtype("float32"))
        model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)

    def iterations() -> object:
        with use_backend(name):
            return model.fit(
                x, y, epochs=2 if quick else 20, batch_size=len(x), shuffle=False, verbose=0
            )

    benchmark.group = SCRATCH_GROUP
    benchmark.pedantic(iterations, rounds=1 if quick else 3, iterations=1)


def test_scratch_tutorial_code(benchmark: Any, quick: bool, mnist_data: Data) -> None:
    """The tutorial's own code (float64, samples as columns), same 20 iterations."""
    x, y = _subset(mnist_data, 2000 if quick else 59_000)
    x_columns = np.ascontiguousarray(x.astype(np.float64).T)
    rng = np.random.default_rng(1)

    def iterations() -> object:
        return scratch_tutorial.gradient_descent(x_columns, y, 0.1, 2 if quick else 20, rng)

    benchmark.group = SCRATCH_GROUP
    benchmark.pedantic(iterations, rounds=1 if quick else 3, iterations=1)
