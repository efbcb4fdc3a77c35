"""The hot ops at the `keras` network's sizes, per backend, each checked against NumPy first."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.conftest import backend_params
from fastnn import benchmarks
from fastnn.backends import get_backend

OPS = list(benchmarks.op_workloads("numpy"))


def _result_of(backend_name: str, op: str) -> list[np.ndarray]:
    """Run ``op`` once on fresh inputs; what it returned, on the host."""
    backend = get_backend(backend_name)
    produced = benchmarks.op_workloads(backend_name)[op]()
    items = produced if isinstance(produced, tuple) else (produced,)
    return [np.asarray(backend.to_numpy(i) if hasattr(i, "shape") else i) for i in items]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", backend_params())
def test_op(benchmark: Any, name: str, op: str) -> None:
    for got, want in zip(_result_of(name, op), _result_of("numpy", op), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    benchmark.group = f"op: {op}"
    benchmark(benchmarks.op_workloads(name)[op])
