"""The Numba backend's speed targets, measured in one run as ratios.

Workloads that are compared are timed in interleaved rounds (each round times
every workload once, in turn), so a slow spell of this shared machine touches
all of them alike; a ratio is the median over rounds of that round's ratio.
Every workload runs once untimed first: its first-call time (JIT compilation on
the numba backend) is reported on its own and never enters a median.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn import recipes
from fastnn.backends import get_backend
from fastnn.benchmarks import scratch_tutorial, workloads
from fastnn.benchmarks.timing import interleaved, round_ratio
from fastnn.recipes import Data

#: what each ratio must reach, from the Numba issue
TARGETS = {
    "keras epoch, numba / numpy": ("<=", 0.70),
    "keras epoch, numba / GEMM floor": ("<=", 1.25),
    "op bias_relu (128x512), numpy / numba": (">=", 3.0),
    "op softmax_cross_entropy (128x10), numpy / numba": (">=", 3.0),
    "op rmsprop_update (784x512), numpy / numba": (">=", 3.0),
    "op adam_update (784x512), numpy / numba": (">=", 3.0),
    "scratch 500 iterations, numba / tutorial NumPy": ("<=", 0.25),
    "keras test accuracy, numba minus numpy (absolute)": ("<=", 0.003),
    "keras test accuracy, numba": (">=", 0.975),
}


def keras_epochs(data: Data, rounds: int) -> dict[str, Any]:
    """Epoch times of the keras recipe on numpy and numba, and the GEMM floors."""
    (x, y), _ = data
    timed: dict[str, Callable[[], object]] = {
        "numpy": workloads.KerasEpochs("numpy", x, y),
        "numba": workloads.KerasEpochs("numba", x, y),
        "gemm floor": workloads.gemm_floor(x, preallocated=False),
        "gemm floor, preallocated": workloads.gemm_floor(x, preallocated=True),
    }
    timings = interleaved(timed, rounds)
    return {
        "timings": {name: t.to_dict() for name, t in timings.items()},
        "ratios": {
            "keras epoch, numba / numpy": round_ratio(timings, "numba", "numpy"),
            "keras epoch, numba / GEMM floor": round_ratio(timings, "numba", "gemm floor"),
            "keras epoch, numba / GEMM floor (preallocated)": round_ratio(
                timings, "numba", "gemm floor, preallocated"
            ),
        },
    }


#: the ops the Numba issue set targets for, at the `keras` network's sizes
TARGET_OPS = ("bias_relu", "softmax_cross_entropy", "rmsprop_update", "adam_update")


def ops(rounds: int, calls: int = 200) -> dict[str, Any]:
    """The hot ops at the network's sizes, numpy's way against the numba kernels."""
    timed: dict[str, Callable[[], object]] = {}
    for op in TARGET_OPS:
        size = workloads.OP_SIZES[op][0]
        for backend_name in ("numpy", "numba"):
            call = workloads.op_workload(backend_name, op, size)
            timed[f"{op} [{backend_name}]"] = _repeat(call, calls)
    timings = interleaved(timed, rounds)
    ratios = {
        f"op {op} ({workloads.size_label(workloads.OP_SIZES[op][0])}), numpy / numba": round_ratio(
            timings, f"{op} [numpy]", f"{op} [numba]"
        )
        for op in TARGET_OPS
    }
    per_call = {name: t.median / calls for name, t in timings.items()}
    return {"seconds_per_call": per_call, "ratios": ratios}


def _repeat(call: Callable[[], object], times: int) -> Callable[[], None]:
    def many() -> None:
        for _ in range(times):
            call()

    return many


def scratch(data: Data, iterations: int = 500, rounds: int = 3, seed: int = 1) -> dict[str, Any]:
    """The scratch recipe's training against the tutorial's own code, the same work on
    each side: ``iterations`` full-batch gradient-descent steps on the training set, the
    data already prepared (the tutorial's float64 features x samples copy made first),
    no validation and no test pass inside the timing. Interleaved rounds, median of each
    round's ratio. The test accuracies come from separate, untimed runs of each."""
    (x_train, y_train), (x_test, y_test) = data
    columns = np.ascontiguousarray(x_train.astype(np.float64).T)  # (784, m), made once
    rng = np.random.default_rng(seed)
    timed: dict[str, Callable[[], object]] = {
        "tutorial NumPy (float64)": lambda: scratch_tutorial.gradient_descent(
            columns, y_train, 0.1, iterations, rng
        ),
        "fastnn numba (float32)": workloads.ScratchIterations("numba", x_train, y_train,
                                                              iterations),
        "fastnn numpy (float32)": workloads.ScratchIterations("numpy", x_train, y_train,
                                                              iterations),
    }  # fmt: skip
    sync = {name: get_backend(name.split()[1]) for name in timed if name.startswith("fastnn")}
    timings = interleaved(timed, rounds, sync)
    accuracy = {
        "tutorial NumPy (float64)": scratch_tutorial.train_and_test(
            x_train, y_train, x_test, y_test, iterations=iterations, seed=seed
        )
    }
    for name in ("numba", "numpy"):
        run = recipes.run("scratch", backend=name, epochs=iterations, seed=seed, verbose=0)
        accuracy[f"fastnn {name} (float32)"] = run.test_accuracy
    return {
        "timings": {name: t.to_dict() for name, t in timings.items()},
        "accuracy": accuracy,
        "ratios": {
            f"scratch {iterations} iterations, numba / tutorial NumPy": round_ratio(
                timings, "fastnn numba (float32)", "tutorial NumPy (float64)"
            )
        },
    }


def keras_accuracy() -> dict[str, Any]:
    """Test accuracy of the keras recipe (5 epochs) on numpy and numba, same seed."""
    accuracy = {
        name: recipes.run("keras", backend=name, seed=0, verbose=0).test_accuracy
        for name in ("numpy", "numba")
    }
    return {
        "accuracy": accuracy,
        "ratios": {
            "keras test accuracy, numba": accuracy["numba"],
            "keras test accuracy, numba minus numpy (absolute)": abs(
                accuracy["numba"] - accuracy["numpy"]
            ),
        },
    }


def meets(name: str, value: float, targets: dict[str, tuple[str, float]] = TARGETS) -> bool:
    """Whether ``value`` reaches the target called ``name`` in ``targets``."""
    comparison, bound = targets[name]
    return value <= bound if comparison == "<=" else value >= bound


_FIRST_STEP = """
import time, numpy as np, fastnn
from fastnn import layers
x = np.random.default_rng(0).random((256, 784), dtype=np.float32); y = np.arange(256) % 10
with fastnn.use_backend("numba"):
    model = fastnn.Sequential([layers.Dense(512, "relu"), layers.Dense(10, "softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["acc"])
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    print(first, time.perf_counter() - start)
"""


def jit_compile_seconds() -> dict[str, float]:
    """Two fresh processes training two keras steps: one with an empty JIT cache, one after.

    Their first-epoch time minus the second is what compiling (or loading from the
    cache) costs; it is never part of any figure above.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = []
        for _ in range(2):
            output = subprocess.run(
                [sys.executable, "-c", _FIRST_STEP], env=env, check=True, capture_output=True,
                text=True,
            ).stdout.split()  # fmt: skip
            runs.append(float(output[0]) - float(output[1]))
    return {"compile, empty cache": runs[0], "load from cache": runs[1]}
