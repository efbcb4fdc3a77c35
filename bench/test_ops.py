"""Every op of the interface, per backend, at the network's sizes and a sweep around them.

Each benchmark first checks the op's result against the NumPy backend (the tests'
tolerances) and fails if it differs: a fast wrong kernel is not a result.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.conftest import backend_params
from fastnn.backends import get_backend
from fastnn.benchmarks import workloads

CASES = [
    pytest.param(op, size, id=f"{op}-{workloads.size_label(size)}")
    for op, sizes in workloads.OP_SIZES.items()
    for size in sizes
]


@pytest.mark.parametrize(("op", "size"), CASES)
@pytest.mark.parametrize("name", backend_params())
def test_op(benchmark: Any, quick: bool, name: str, op: str, size: tuple[int, ...]) -> None:
    if quick and size != workloads.OP_SIZES[op][0]:
        pytest.skip("short mode runs the network's own size only")
    reference = workloads.on_host("numpy", workloads.op_workload("numpy", op, size)())
    call = workloads.op_workload(name, op, size)
    max_abs, max_rel, same = workloads.differences(workloads.on_host(name, call()), reference)
    assert same, f"{op} {size} on {name} differs from numpy: max abs {max_abs}, rel {max_rel}"
    benchmark.group = f"op {op} {workloads.size_label(size)}"
    flops = workloads.op_flops(op, size)
    if flops:
        benchmark.extra_info["gflop"] = flops / 1e9
    backend = get_backend(name)

    def synchronized() -> None:  # a GPU op only queues work: time it to completion
        call()
        backend.synchronize()

    benchmark(synchronized)
