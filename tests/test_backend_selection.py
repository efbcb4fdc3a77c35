"""Backend selection: precedence, the environment variable, errors, thread safety."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.backends import BACKEND_NAMES, BackendUnavailableError, available_backends
from fastnn.callbacks import Callback

RUNNABLE = [info.name for info in available_backends() if info.available]
UNAVAILABLE = [info for info in available_backends() if not info.available]


def _auto_choice() -> str:
    """What `auto` must pick: the first of cupy, numba, numpy that can run."""
    return next(name for name in ("cupy", "numba", "numpy") if name in RUNNABLE)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env`` added to a clean environment."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )


def test_available_backends_lists_every_backend_with_reasons() -> None:
    infos = available_backends()
    assert [info.name for info in infos] == list(BACKEND_NAMES)
    numpy_info = infos[0]
    assert numpy_info.available and numpy_info.reason == ""
    for info in infos:
        assert info.available == (info.reason == ""), info


def test_default_is_auto() -> None:
    assert fastnn.backend_name() == _auto_choice()


def test_precedence_context_over_set_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTNN_BACKEND", "nonsense-but-unused")
    fastnn.set_backend("numpy")
    assert fastnn.backend_name() == "numpy"  # set_backend beats the variable
    with fastnn.use_backend("NumPy") as backend:
        assert backend.name == "numpy"
        assert fastnn.backend_name() == "numpy"
    fastnn.set_backend(None)
    with pytest.raises(ValueError, match="FASTNN_BACKEND='nonsense-but-unused'"):
        fastnn.backend_name()  # now the variable is in force, and it is wrong


def test_env_var_is_read_at_first_use_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTNN_BACKEND", "  NUMPY ")
    assert fastnn.backend_name() == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "")
    assert fastnn.backend_name() == _auto_choice()  # empty means unset


def test_env_var_in_a_fresh_process() -> None:
    code = "import fastnn; print(fastnn.backend_name())"
    assert _run(code, FASTNN_BACKEND="numpy").stdout.strip() == "numpy"
    assert _run(code, FASTNN_BACKEND="auto").stdout.strip() == _auto_choice()
    assert _run(code, FASTNN_BACKEND="").stdout.strip() == _auto_choice()
    bad = _run(code, FASTNN_BACKEND="tensorflow")
    assert bad.returncode != 0
    assert "unknown backend FASTNN_BACKEND='tensorflow'" in bad.stderr
    assert "numpy, numba, cupy, auto" in bad.stderr


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid names: numpy, numba, cupy, auto"):
        fastnn.set_backend("torch")
    with pytest.raises(ValueError, match="unknown backend"), fastnn.use_backend("jax"):
        pass
    with pytest.raises(TypeError, match="backend name"):
        fastnn.set_backend(3)  # type: ignore[arg-type]


@pytest.mark.skipif(not UNAVAILABLE, reason="every backend can run here")
def test_unavailable_backend_names_reason_and_alternatives() -> None:
    info = UNAVAILABLE[0]
    with pytest.raises(BackendUnavailableError) as caught:
        fastnn.set_backend(info.name)
    message = str(caught.value)
    assert repr(info.name) in message
    assert info.reason in message
    assert "numpy" in message.split("can run:")[1]
    assert fastnn.backend_name() == _auto_choice()  # nothing changed, no silent fallback
    env = _run("import fastnn; fastnn.backend_name()", FASTNN_BACKEND=info.name)
    assert env.returncode != 0 and info.reason in env.stderr


def test_use_backend_restores_on_exit_and_on_error() -> None:
    fastnn.set_backend("numpy")
    with pytest.raises(RuntimeError), fastnn.use_backend("auto"):
        assert fastnn.backend_name() == _auto_choice()
        raise RuntimeError("boom")
    assert fastnn.backend_name() == "numpy"


def test_use_backend_is_local_to_its_thread() -> None:
    """A thread's `use_backend` is invisible to another thread running at the same time."""
    other = "numpy" if _auto_choice() != "numpy" else "auto"
    inside = threading.Event()
    release = threading.Event()
    seen: dict[str, str] = {}

    def switcher() -> None:
        with fastnn.use_backend(other):
            seen["switcher"] = fastnn.get_backend().name
            inside.set()
            release.wait(5)

    def observer() -> None:
        inside.wait(5)
        seen["observer"] = fastnn.backend_name()
        release.set()

    threads = [threading.Thread(target=switcher), threading.Thread(target=observer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen["observer"] == _auto_choice()
    assert seen["switcher"] == fastnn.get_backend(other).name


def _train_in(backend: str, seen: list[str], barrier: threading.Barrier | None) -> list[Any]:
    """Train a small model under ``use_backend(backend)``; record the active backend at
    every step (after meeting ``barrier`` so that the threads really overlap)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(int)

    class Probe(Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 0 and barrier is not None:
                barrier.wait(30)
            seen.append(fastnn.backend_name())

    with fastnn.use_backend(backend):
        model = fastnn.Sequential(
            [layers.Dense(16, activation="relu"), layers.Dense(2, activation="softmax")], seed=3
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=4, callbacks=[Probe()])
    return model.get_weights()


@pytest.mark.parametrize("threads", [2, 4])
def test_training_in_threads_on_different_backends(threads: int) -> None:
    """Threads training at once, each on its own backend, each see only their own and get
    exactly the weights of the same training run alone."""
    backends = [RUNNABLE[i % len(RUNNABLE)] for i in range(threads)]
    alone = {name: _train_in(name, [], None) for name in set(backends)}
    barrier = threading.Barrier(threads)
    seen: list[list[str]] = [[] for _ in backends]
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        try:
            results[i] = _train_in(backends[i], seen[i], barrier)
        except BaseException as error:  # reported to the main thread below
            results[i] = error

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    for i, name in enumerate(backends):
        assert not isinstance(results[i], BaseException), results[i]
        assert seen[i] == [name] * 36  # 3 epochs x 12 steps, all on this thread's backend
        for got, want in zip(results[i], alone[name], strict=True):
            np.testing.assert_array_equal(got, want)
    assert fastnn.backend_name() == _auto_choice()  # the main thread never switched


def test_backends_are_singletons() -> None:
    assert fastnn.get_backend("numpy") is fastnn.get_backend("NUMPY")


def test_dtype_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTNN_DTYPE", "float64")
    model = fastnn.Sequential([fastnn.layers.Dense(2, input_dim=3)])
    model.build((None, 3))
    assert model.get_weights()[0].dtype.name == "float64"
    monkeypatch.setenv("FASTNN_DTYPE", "float16")
    with pytest.raises(ValueError, match="FASTNN_DTYPE='float16'"):
        fastnn.Sequential([fastnn.layers.Dense(2, input_dim=3)]).build((None, 3))
