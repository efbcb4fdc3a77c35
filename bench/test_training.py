"""Whole training: a `keras` epoch and `scratch` iterations per backend, the GEMM floor,
and the scratch tutorial's own NumPy code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.conftest import backend_params
from bench.peers import scratch_tutorial
from fastnn import benchmarks, recipes, use_backend
from fastnn.recipes import Data


def _subset(data: Data, rows: int) -> tuple[np.ndarray, np.ndarray]:
    (x, y), _ = data
    return x[:rows], y[:rows]


@pytest.mark.parametrize("name", backend_params())
def test_keras_epoch(benchmark: Any, quick: bool, mnist_data: Data, name: str) -> None:
    x, y = _subset(mnist_data, 1280 if quick else 60_000)
    epoch = benchmarks.keras_epoch(name, x, y)
    epoch()  # warm-up: JIT compilation and first-touch allocation stay out of the timing
    benchmark.group = "keras epoch (784-512-10, RMSprop, batch 128)"
    benchmark.extra_info["samples"] = len(x)
    benchmark.pedantic(epoch, rounds=1 if quick else 5, iterations=1)


@pytest.mark.parametrize("preallocated", [False, True], ids=["plain", "preallocated"])
def test_gemm_floor(benchmark: Any, quick: bool, mnist_data: Data, preallocated: bool) -> None:
    x, _ = _subset(mnist_data, 1280 if quick else 60_000)
    floor = benchmarks.gemm_floor(x, preallocated)
    floor()
    benchmark.group = "keras epoch (784-512-10, RMSprop, batch 128)"
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
            return model.fit(x, y, epochs=2 if quick else 20, batch_size=len(x), shuffle=False,
                             verbose=0)  # fmt: skip

    benchmark.group = "scratch: 20 full-batch iterations (784-10-10)"
    benchmark.pedantic(iterations, rounds=1 if quick else 3, iterations=1)


def test_scratch_tutorial_code(benchmark: Any, quick: bool, mnist_data: Data) -> None:
    """The tutorial's own code (float64, samples as columns), same 20 iterations."""
    x, y = _subset(mnist_data, 2000 if quick else 59_000)
    x_columns = np.ascontiguousarray(x.astype(np.float64).T)
    rng = np.random.default_rng(1)

    def iterations() -> object:
        return scratch_tutorial.gradient_descent(x_columns, y, 0.1, 2 if quick else 20, rng)

    benchmark.group = "scratch: 20 full-batch iterations (784-10-10)"
    benchmark.pedantic(iterations, rounds=1 if quick else 3, iterations=1)
