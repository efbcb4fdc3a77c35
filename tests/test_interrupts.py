"""Ctrl-C during fit: the current step finishes, the model stays consistent, the history is kept."""

from __future__ import annotations

import signal
import threading
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers, optimizers
from fastnn.callbacks import Callback

BATCH = 8


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


def _model() -> fastnn.Sequential:
    model = fastnn.Sequential(
        [layers.Dense(7, activation="relu", input_dim=5), layers.Dense(3, activation="softmax")],
        seed=1,
    )
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


@pytest.fixture(autouse=True)
def _sigint_as_in_a_terminal() -> Any:
    """Python's own SIGINT handler, as in a terminal. A job started in the background
    inherits SIGINT ignored, and fit rightly leaves an ignored Ctrl-C alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    """What the terminal does on Ctrl-C: SIGINT to this process (delivered to the main thread)."""
    signal.raise_signal(signal.SIGINT)


class _CtrlCAt(Callback):
    """Presses Ctrl-C as step ``step`` of epoch ``epoch`` (0-based) begins."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__()
        self.at = (epoch, step)
        self.epoch = -1
        self.steps_begun = 0
        self.train_end_calls = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.steps_begun += 1
        if (self.epoch, batch) == self.at:
            _ctrl_c()

    def on_train_end(self, logs: Any = None) -> None:
        self.train_end_calls += 1


def _weights_after_steps(steps: int, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The weights of a fresh model after exactly ``steps`` in-order steps (the reference)."""
    model = _model()
    per_epoch = len(x) // BATCH
    full, rest = divmod(steps, per_epoch)
    if full:
        model.fit(x, y, epochs=full, batch_size=BATCH, shuffle=False, verbose=0)
    if rest:
        model.fit(x[: rest * BATCH], y[: rest * BATCH], batch_size=BATCH, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize(("epoch", "step"), [(0, 0), (0, 5), (2, 7)])
def test_ctrl_c_finishes_the_step_then_stops(backend_name: str, epoch: int, step: int) -> None:
    x, y = _data()
    model = _model()
    ctrl_c = _CtrlCAt(epoch, step)
    with pytest.raises(fastnn.TrainingInterrupted) as caught:
        model.fit(x, y, epochs=5, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[ctrl_c])
    steps_per_epoch = len(x) // BATCH
    message = str(caught.value)
    assert f"at epoch {epoch + 1}, after step {step + 1} of {steps_per_epoch}" in message
    assert f"model.history the {epoch} completed epoch(s)" in message
    done = epoch * steps_per_epoch + step + 1
    assert ctrl_c.steps_begun == done  # no step began after the Ctrl-C's own step
    assert ctrl_c.train_end_calls == 1  # callbacks still see the end of training
    for got, want in zip(model.get_weights(), _weights_after_steps(done, x, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert model.history is caught.value.history
    assert model.history.epoch == list(range(epoch))
    # Python's own handler is back: the next Ctrl-C raises plain KeyboardInterrupt at once.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # the interrupted model trains on from where it stopped
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_ctrl_c_inside_an_update_waits_for_every_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C arriving between two parameters' updates must not leave the others behind."""
    x, y = _data()
    model = _model()
    backend = fastnn.get_backend("numpy")
    adam_update = backend.adam_update
    calls = {"n": 0}

    def adam_update_then_ctrl_c(*args: Any, **kwargs: Any) -> None:
        adam_update(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 1:  # the first of the 4 parameters in the third step
            _ctrl_c()

    monkeypatch.setattr(backend, "adam_update", adam_update_then_ctrl_c)
    with (
        fastnn.use_backend("numpy"),
        pytest.raises(fastnn.TrainingInterrupted, match="after step 3 of 8"),
    ):
        model.fit(x, y, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    assert calls["n"] == 3 * 4  # the other three parameters got their third update
    monkeypatch.undo()
    for got, want in zip(model.get_weights(), _weights_after_steps(3, x, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_second_ctrl_c_raises_at_once() -> None:
    x, y = _data()
    model = _model()

    class TwoPresses(Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 2:
                _ctrl_c()
                _ctrl_c()  # impatient: this one raises inside the step

    with pytest.raises(KeyboardInterrupt) as caught:
        model.fit(x, y, batch_size=BATCH, verbose=0, callbacks=[TwoPresses()])
    assert not isinstance(caught.value, fastnn.TrainingInterrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_validation_stops_before_the_next_epoch() -> None:
    x, y = _data()
    model = _model()

    class PressAtEpochEnd(Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                _ctrl_c()

    with pytest.raises(fastnn.TrainingInterrupted, match="after epoch 2 of 4") as caught:
        model.fit(
            x, y, epochs=4, batch_size=BATCH, validation_split=0.25, verbose=0,
            callbacks=[PressAtEpochEnd()],
        )  # fmt: skip
    assert caught.value.history.epoch == [0, 1]
    assert len(caught.value.history.history["val_loss"]) == 2


def test_a_users_own_sigint_handler_is_left_alone() -> None:
    x, y = _data()
    model = _model()
    pressed: list[int] = []

    def handler(signum: int, frame: object) -> None:
        pressed.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        model.fit(x, y, batch_size=BATCH, verbose=0, callbacks=[_CtrlCAt(0, 1)])
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert pressed == [signal.SIGINT]  # their handler ran; training went on to the end
    assert len(model.history.history["loss"]) == 1  # type: ignore[union-attr]


def test_fit_in_a_worker_thread_does_not_touch_signal_handlers() -> None:
    """signal.signal is main-thread only: fit elsewhere must neither fail nor install one."""
    x, y = _data()
    model = _model()
    seen: dict[str, Any] = {}

    class Probe(Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            seen["handler"] = signal.getsignal(signal.SIGINT)

    def train() -> None:
        try:
            model.fit(x, y, batch_size=BATCH, verbose=0, callbacks=[Probe()])
        except BaseException as error:  # reported to the main thread below
            seen["error"] = error

    worker = threading.Thread(target=train)
    worker.start()
    worker.join(60)
    assert "error" not in seen
    assert seen["handler"] is signal.default_int_handler
