"""Fixtures of the benchmark suite.

``pytest bench/`` measures; ``pytest bench/ --benchmark-disable`` (what CI runs)
runs every workload once on small inputs, so the equivalence checks and the
code paths are exercised without the cost of timing them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastnn.backends import BACKEND_NAMES, available_backends
from fastnn.datasets import mnist
from fastnn.recipes import Data, prepare_mnist
from tests import conftest

__all__ = ["RUNNABLE", "backend_params"]

RUNNABLE = [info.name for info in available_backends() if info.available]


def backend_params(names: tuple[str, ...] = BACKEND_NAMES) -> list[Any]:
    """The tests' backend parameters, the real backends only: the emulated GPU checks
    logic, and its timings would mean nothing."""
    return conftest.backend_params(names)


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    """True in short mode (--benchmark-disable): shrink every workload."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def mnist_data() -> Data:
    """The real MNIST, flattened and scaled to float32 (from $FASTNN_DATA_DIR)."""
    return prepare_mnist(mnist.load_data(), np.dtype("float32"))
