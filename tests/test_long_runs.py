"""Long and large runs: memory holds steady over epochs and fit never copies the data set.

Python's tracemalloc sees NumPy's allocations (and those of arrays the numba
kernels create), so these measure what fit allocates, not the noisy process
RSS; ``bench/memory.py`` measures RSS over 50 real epochs and a 1M-row set.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.callbacks import Callback

ROWS, FEATURES = 20_000, 100  # 8 MB of float32: any copy of it stands out


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


class _EpochMemory(Callback):
    """Per epoch: traced memory at its end, and its peak above its start."""

    def __init__(self) -> None:
        super().__init__()
        self.start = 0
        self.current: list[int] = []
        self.peak_above_start: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        tracemalloc.reset_peak()
        self.start = tracemalloc.get_traced_memory()[0]

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # what is still referenced, not garbage the collector has yet to reach (the
        # emulated GPU's launches leave reference cycles that it collects in due course)
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        self.current.append(current)
        self.peak_above_start.append(peak - self.start)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, FEATURES)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _model() -> fastnn.Sequential:
    model = fastnn.Sequential(
        [layers.Dense(32, activation="relu"), layers.Dense(2, activation="softmax")], seed=0
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["acc"])
    return model


@pytest.mark.usefixtures("traced")
def test_an_epoch_allocates_nothing_the_size_of_the_data(backend_name: str) -> None:
    x, y = _data()
    memory = _EpochMemory()
    _model().fit(x, y, epochs=4, batch_size=256, verbose=0, seed=0, callbacks=[memory])
    # The first epoch makes the per-shape workspaces; later ones only a shuffled order
    # (ROWS int64 = 160 kB) and scalars.
    for peak in memory.peak_above_start[1:]:
        assert peak < x.nbytes / 16, memory.peak_above_start


@pytest.mark.usefixtures("traced")
def test_memory_is_steady_over_many_epochs(backend_name: str) -> None:
    x, y = _data()
    x, y = x[:2000], y[:2000]
    memory = _EpochMemory()
    model = _model()
    model.fit(x, y, epochs=40, batch_size=64, verbose=0, seed=0, callbacks=[memory],
              validation_split=0.1)  # fmt: skip
    growth = memory.current[-1] - memory.current[1]
    # History's floats grow by a few hundred bytes an epoch; anything per step would be far more.
    assert growth < 40 * 1024, [c - memory.current[1] for c in memory.current]


@pytest.mark.usefixtures("traced")
def test_fit_does_not_copy_float32_input(backend_name: str) -> None:
    """Contiguous float32 input of the model's dtype is used in place: what fit adds on
    top of it (checks, workspaces, validation views) is a small fraction of it. A GPU
    backend copies the data to the device once, and no more: the emulated one's device
    memory is host memory, so that one copy shows here."""
    x, y = _data()
    model = _model()
    model.fit(x[:256], y[:256], verbose=0)  # build and JIT-compile outside the measurement
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    model.fit(x, y, epochs=1, batch_size=256, verbose=0, seed=0, validation_split=0.2)
    device_copy = x.nbytes if backend_name == "cupy-emulated" else 0
    assert tracemalloc.get_traced_memory()[1] - before < device_copy + x.nbytes / 8
