"""The epoch breakdown's clocks: they count each op's time and leave the backend as it was."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from bench.conftest import RUNNABLE

pytestmark = pytest.mark.skipif("numba" not in RUNNABLE, reason="the numba backend cannot run")


def test_clocks_count_each_op_and_come_off() -> None:
    import fastnn
    from bench import overhead

    backend = fastnn.get_backend("numba")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = backend.matmul(a, a.T)
    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    undo = overhead._clocked(backend, totals)
    try:
        np.testing.assert_array_equal(backend.matmul(a, a.T), expected)
        backend.sum_rows(a)
    finally:
        undo()
    assert totals["matmul"] > 0 and totals["sum_rows"] > 0
    assert set(totals) == {"matmul", "sum_rows"}
    assert not set(overhead.STEP_OPS) & set(vars(backend))  # the class's methods again


def test_stream_reports_the_bytes_each_update_moves() -> None:
    from bench import overhead

    streamed = overhead.stream()
    nbytes = 784 * 512 * 4  # one float32 784x512 array
    # SGD reads param and grad and writes param; RMSprop also reads and writes velocity
    assert streamed["sgd GB/s"] == pytest.approx(3 * nbytes / streamed["sgd us"] / 1e3)
    assert streamed["rmsprop GB/s"] == pytest.approx(5 * nbytes / streamed["rmsprop us"] / 1e3)


def test_the_split_update_is_the_serial_update() -> None:
    """What `threads` times split over the pool computes what the serial kernel does."""
    import numba

    from bench import overhead
    from fastnn.kernels import optimizers

    arrays = overhead._arrays()
    scalars = overhead._scalars()
    serial = [a.copy() for a in arrays]
    split = [a.copy() for a in arrays]
    optimizers.rmsprop(*serial, *scalars)
    param, grad, velocity = split
    overhead._parallel_rmsprop(param, grad, velocity, scalars, numba.get_num_threads())
    for a, b in zip(split, serial, strict=True):
        np.testing.assert_array_equal(a, b)
    timed = overhead.threads(repeats=3)
    assert timed["threads"] == numba.get_num_threads()
    assert timed["threading layer"] == numba.threading_layer()


def test_threads_waiting_runs_in_a_child_with_that_policy() -> None:
    from bench import overhead

    spinning = overhead.threads_waiting("ACTIVE", repeats=3)
    assert spinning["wait policy"] == "ACTIVE"
    assert set(spinning) >= {"serial us", "parallel us", "product + parallel us"}


def test_markdown_bounds_the_rest_with_every_op_twice_as_fast() -> None:
    from bench import overhead

    run = dict.fromkeys(overhead.STEP_OPS, 10.0)  # 7 ops but matmul: 70 ms
    run.update({"matmul": 400.0, "python (the rest)": 30.0, "gemm floor": 380.0})
    run["epoch"] = 500.0  # 400 + 70 + 30
    threads = {
        "threads": 2,
        "threading layer": "omp",
        "wait policy": "PASSIVE",
        **dict.fromkeys(
            [
                "serial us",
                "parallel us",
                "product us",
                "product + serial us",
                "product + parallel us",
            ],
            1.0,
        ),
    }
    result = {
        "when": "now",
        "command": "cmd",
        "epoch": run,
        "stream": dict.fromkeys(["sgd us", "sgd GB/s", "rmsprop us", "rmsprop GB/s"], 1.0),
        "scratch read": {"MB": 1.0, "ms": 1.0, "GB/s": 1.0},
        "scratch products": {
            **dict.fromkeys(
                ["x @ W1 ms", "x.T @ dz ms", "whole batch ms", "one read ms", "one read GMAC/s"],
                1.0,
            ),
            "one read chunk": 8,
        },
        "threads": threads,
        "threads, active waiting": {**threads, "wait policy": "ACTIVE"},
    }
    text = overhead.markdown(result)
    assert "Everything but the products: 100.0 ms" in text
    assert "1.25x the floor would leave 95.0 ms" in text
    assert "it would still take 65.0 ms" in text  # 100 - 70 / 2
    assert "OMP_WAIT_POLICY=ACTIVE" in text
    assert "| | one thread (us) | split, sleeping (us) | split, spinning (us) |" in text


def test_scratch_read_reports_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import overhead

    monkeypatch.setattr(overhead, "SCRATCH_INPUT", (100, 784))  # small in CI
    read = overhead.scratch_input_read()
    assert read["MB"] == pytest.approx(100 * 784 * 4 / 1e6)
    assert read["GB/s"] == pytest.approx(read["MB"] / read["ms"])


@pytest.mark.parametrize(("rows", "chunk"), [(1, 4), (37, 8), (300, 1000)])
def test_one_read_products_match_numpy(rows: int, chunk: int) -> None:
    import numba

    from bench import overhead

    rng = np.random.default_rng(rows)
    x = rng.random((rows, 784), np.float32)
    w1 = rng.uniform(-0.5, 0.5, (784, 10)).astype(np.float32)
    dz = rng.standard_normal((rows, 10), dtype=np.float32)
    z = np.full((rows, 10), np.nan, np.float32)
    parts = numba.get_num_threads()
    partials = np.full((parts, 10, 784), np.nan, np.float32)
    scratch = np.empty_like(partials)
    overhead._one_read_products(x, np.ascontiguousarray(w1.T), z, dz, partials, scratch, chunk)
    np.testing.assert_allclose(z, x @ w1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(partials.sum(axis=0).T, x.T @ dz, rtol=1e-4, atol=1e-4)


def test_scratch_products_report_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import overhead

    monkeypatch.setattr(overhead, "SCRATCH_INPUT", (200, 784))  # small in CI
    products = overhead.scratch_products(repeats=2, chunks=(16, 64))
    assert products["one read chunk"] in (16, 64)
    assert products["whole batch ms"] == pytest.approx(
        products["x @ W1 ms"] + products["x.T @ dz ms"]
    )
    assert products["one read GMAC/s"] == pytest.approx(
        2 * 200 * 784 * 10 / products["one read ms"] / 1e6
    )
