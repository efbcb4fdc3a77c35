"""Fixtures of the benchmark suite.

``pytest bench/`` measures; ``pytest bench/ --benchmark-disable`` (what CI runs)
runs every workload once on small inputs, so the equivalence checks and the
code paths are exercised without the cost of timing them.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.backends import available_backends
from fastnn.datasets import mnist
from fastnn.recipes import Data, prepare_mnist
from tests.conftest import backend_params

__all__ = ["RUNNABLE", "backend_params"]

RUNNABLE = [info.name for info in available_backends() if info.available]


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    """True in short mode (--benchmark-disable): shrink every workload."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def mnist_data() -> Data:
    """The real MNIST, flattened and scaled to float32 (from $FASTNN_DATA_DIR)."""
    return prepare_mnist(mnist.load_data(), np.dtype("float32"))
