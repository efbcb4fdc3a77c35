"""Matrix products: NumPy's BLAS against our Numba kernels, shape by shape.

The shapes are those the recipes run (the `keras` network at batch 128, the
`scratch` network on 59,000 rows) and a sweep of thin products around them.
Each path is checked against a float64 product before it is timed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.conftest import RUNNABLE

pytestmark = pytest.mark.skipif("numba" not in RUNNABLE, reason="the numba backend cannot run")

# (label, rows, depth, cols, transpose_a, transpose_b)
SHAPES = [
    ("keras x@W1", 128, 784, 512, False, False),
    ("keras h@W2", 128, 512, 10, False, False),
    ("keras h.T@dz", 512, 128, 10, True, False),
    ("keras dz@W2.T", 128, 10, 512, False, True),
    ("keras x.T@dh", 784, 128, 512, True, False),
    ("scratch X@W1", 59_000, 784, 10, False, False),
    ("scratch X.T@dZ", 784, 59_000, 10, True, False),
    ("thin 8192x512x10", 8_192, 512, 10, False, False),
    ("thin 4096x784x16", 4_096, 784, 16, False, False),
]


@pytest.mark.parametrize("path", ["blas", "own"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_matmul(benchmark: Any, quick: bool, shape: tuple[Any, ...], path: str) -> None:
    from fastnn.kernels import matmul

    _, rows, depth, cols, ta, tb = shape
    if quick:  # same loop orders, a fraction of the rows
        rows, depth = (min(rows, 512), min(depth, 512))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((depth, rows) if ta else (rows, depth)).astype(np.float32)
    b = rng.standard_normal((cols, depth) if tb else (depth, cols)).astype(np.float32)
    out = np.empty((rows, cols), np.float32)
    left = (a.T if ta else a).astype(np.float64)
    right = (b.T if tb else b).astype(np.float64)
    matmul.matmul(a, b, ta, tb, out, path=path)
    bound = 2 * depth * np.finfo(np.float32).eps * (np.abs(left) @ np.abs(right))
    assert np.all(np.abs(out - left @ right) <= bound)
    benchmark.group = f"matmul {shape[0]} ({rows}x{depth}x{cols})"
    benchmark.extra_info["gflop"] = 2 * rows * depth * cols / 1e9
    benchmark.extra_info["chosen"] = matmul.choose(rows, depth, cols, ta, tb)
    benchmark(matmul.matmul, a, b, ta, tb, out, path=path)
