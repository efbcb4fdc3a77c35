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


def test_stream_and_threads_measure_the_update_kernels() -> None:
    from bench import overhead

    streamed = overhead.stream()
    assert streamed["rmsprop GB/s"] > 0 and streamed["sgd us"] > 0
    split = overhead.threads(repeats=3)
    assert split["threads"] >= 1
    assert split["product + serial us"] > 0 and split["product + parallel us"] > 0


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
