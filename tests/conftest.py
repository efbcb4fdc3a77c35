"""Shared fixtures: the backends that can run here, MNIST, clean backend state."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.backends import BACKEND_NAMES, EMULATED_BACKENDS, available_backends

_STATUS = {info.name: info for info in available_backends(emulated=True)}
#: every backend the tests run on: the real ones, and the emulated GPU backend, which runs
#: the cupy backend's code and CUDA kernels on the CPU wherever a C++ compiler is
TESTED_BACKENDS = (*BACKEND_NAMES, *EMULATED_BACKENDS)


def _load_hypothesis_profile() -> None:
    """CI decides on one run, so there hypothesis draws the same examples every time;
    anywhere else each run draws new ones and keeps exploring. Loaded here, before the
    test modules build their settings, which inherit from the profile."""
    try:
        import hypothesis
    except ImportError:  # the property tests skip themselves without it
        return
    hypothesis.settings.register_profile("ci", derandomize=True)
    hypothesis.settings.load_profile(os.environ.get("FASTNN_HYPOTHESIS_PROFILE", "default"))


_load_hypothesis_profile()


#: set (to 1) where tests needing MNIST must run, not skip: CI sets it in .ci/run
REQUIRE_DATA = "FASTNN_REQUIRE_DATA"


def _without_data(error: BaseException) -> None:
    """Turn MNIST missing into a skip that says how to supply it, unless it is required."""
    from fastnn.datasets.mnist import DatasetUnavailableError

    if isinstance(error, DatasetUnavailableError) and os.environ.get(REQUIRE_DATA) != "1":
        pytest.skip(
            "MNIST is not available here: set FASTNN_DATA_DIR to a folder with its four "
            f"files, or allow the download ({REQUIRE_DATA}=1 makes this a failure)"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as error:  # the mnist fixture's load
        _without_data(error)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except Exception as error:  # a test that loads MNIST itself
        _without_data(error)
        raise


def backend_params(names: tuple[str, ...] = TESTED_BACKENDS) -> list[Any]:
    """pytest params over ``names``; those that cannot run here skip with the reason."""
    params = []
    for name in names:
        info = _STATUS[name]
        marks = [] if info.available else [pytest.mark.skip(reason=f"{name}: {info.reason}")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


#: every backend except the reference, for equivalence tests against it
OTHER_BACKENDS = tuple(name for name in TESTED_BACKENDS if name != "numpy")


@pytest.fixture(params=backend_params())
def backend_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each backend that can run here, active for the test."""
    with fastnn.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    """``FASTNN_TEST_TIMEOUT=S`` fails a test that runs longer than S seconds (bench/
    gpu_check.sh sets it: a kernel that hangs on a GPU must not take the check with it).
    A signal interrupts Python code only, so a wait inside a driver call outlasts it; the
    check's outer time limits cover that."""
    seconds = int(os.environ.get("FASTNN_TEST_TIMEOUT", "0") or 0)
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the test ran past FASTNN_TEST_TIMEOUT={seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _clean_backend_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test leaks a process-wide backend, seed or dtype into another."""
    monkeypatch.delenv("FASTNN_BACKEND", raising=False)
    monkeypatch.delenv("FASTNN_DTYPE", raising=False)
    yield
    fastnn.set_backend(None)
    fastnn.set_random_seed(None)


@pytest.fixture(scope="session")
def mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The real MNIST, flattened and scaled to float32 in [0, 1].

    Read from $FASTNN_DATA_DIR (CI points it at the shared copy); without it the
    loader uses, or downloads into, its cache folder.
    """
    from fastnn.datasets import mnist as mnist_module
    from fastnn.recipes import prepare_mnist

    return prepare_mnist(mnist_module.load_data(), np.dtype("float32"))
