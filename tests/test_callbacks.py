"""Keras's training callbacks: ReduceLROnPlateau, EarlyStopping, ModelCheckpoint,
LearningRateScheduler.

Most tests drive a callback with scripted monitored values, either by calling
its hooks directly or by a ``Script`` callback that overwrites the figure in
the logs of a real ``fit`` before the callback under test reads them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)

X = np.random.default_rng(0).normal(size=(48, 4)).astype("float32")
Y = np.random.default_rng(1).integers(0, 3, size=48)
X_VAL, Y_VAL = X[:16] + 0.1, Y[:16]


@pytest.fixture(autouse=True)
def _numpy_backend() -> Iterator[None]:
    with fastnn.use_backend("numpy"):
        yield


def make_model(learning_rate: float = 0.1) -> fastnn.Sequential:
    model = fastnn.Sequential(
        [fastnn.layers.Dense(8, "relu", input_dim=4), fastnn.layers.Dense(3, "softmax")], seed=0
    )
    model.compile(
        optimizer=fastnn.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(model: fastnn.Sequential, callbacks: list[Callback], epochs: int) -> list[int]:
    """Train on the random data; returns the epochs that ran."""
    history = model.fit(
        X,
        Y,
        epochs=epochs,
        batch_size=16,
        validation_data=(X_VAL, Y_VAL),
        verbose=0,
        seed=0,
        callbacks=callbacks,
    )
    return history.epoch


class Script(Callback):
    """Puts ``values[epoch]`` into the logs as ``key``, and snapshots the weights."""

    def __init__(self, values: Sequence[float], key: str = "val_loss") -> None:
        super().__init__()
        self.values, self.key = values, key
        self.weights: list[list[np.ndarray]] = []
        self.rates: list[float] = []  # the learning rate each epoch trained with

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        assert self.model is not None and self.model.optimizer is not None
        self.rates.append(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        assert self.model is not None and logs is not None
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def drive(
    callback: Callback, values: Sequence[float], key: str = "val_loss", lr: float = 1.0
) -> tuple[fastnn.Sequential, list[float]]:
    """Call the hooks by hand with ``{key: value}`` logs, as fit would.

    Returns the model and the learning rate after each epoch.
    """
    model = make_model(lr)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {key: value})
        assert model.optimizer is not None
        rates.append(model.optimizer.learning_rate)
        if model.stop_training:
            break
    callback.on_train_end()
    return model, rates


def stopped_at(callback: EarlyStopping, values: Sequence[float], key: str = "val_loss") -> int:
    """How many epochs ran before the callback stopped training (all of them if it did not)."""
    _, rates = drive(callback, values, key)
    return len(rates)


def assert_weights_equal(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def weights_differ(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------- ReduceLROnPlateau
def test_reduce_lr_after_patience_flat_epochs() -> None:
    rates = drive(ReduceLROnPlateau(factor=0.5, patience=2), [1.0] * 7)[1]
    # epoch 0 sets the best; epochs 1-2 wait, 2 reduces; 3-4 wait, 4 reduces; ...
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_reduce_lr_improvements_reset_the_wait() -> None:
    values = [1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.7]
    rates = drive(ReduceLROnPlateau(factor=0.5, patience=2), values)[1]
    assert rates == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_reduce_lr_cooldown_follows_keras() -> None:
    # The epoch that ends the cooldown already counts towards patience, so
    # cooldown=2 delays the next reduction by one epoch and cooldown=1 by none.
    def reductions(cooldown: int) -> list[int]:
        rates = drive(ReduceLROnPlateau(factor=0.5, patience=2, cooldown=cooldown), [1.0] * 10)[1]
        return [epoch for epoch in range(1, 10) if rates[epoch] < rates[epoch - 1]]

    assert reductions(0) == [2, 4, 6, 8]
    assert reductions(1) == [2, 4, 6, 8]
    assert reductions(2) == [2, 5, 8]
    assert reductions(3) == [2, 6]


def test_reduce_lr_never_goes_below_min_lr(capsys: pytest.CaptureFixture) -> None:
    callback = ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05, verbose=1)
    assert drive(callback, [1.0] * 5)[1] == [1.0, 0.1, 0.05, 0.05, 0.05]
    # At the floor nothing more happens: no message, no cooldown, the wait goes on.
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.1.",
        "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.05.",
    ]
    assert callback.wait == 2  # epochs 4 and 5, after the last reduction


def test_reduce_lr_min_delta() -> None:
    values = [1.0 - 1e-5 * i for i in range(4)]  # improves, but by less than 1e-4
    assert drive(ReduceLROnPlateau(factor=0.5, patience=1), values)[1] == [1.0, 0.5, 0.25, 0.125]
    assert drive(ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0), values)[1] == [1.0] * 4


def test_reduce_lr_resets_between_fits() -> None:
    callback = ReduceLROnPlateau(factor=0.5, patience=2)
    drive(callback, [0.1, 1.0])  # best 0.1, one epoch waited
    # A fresh fit starts from scratch: 1.0 is a new best, not a second bad epoch.
    assert drive(callback, [1.0, 1.0])[1] == [1.0, 1.0]


def test_reduce_lr_in_fit_changes_the_rate_training_uses(capsys: pytest.CaptureFixture) -> None:
    # min_delta=10 makes every epoch after the first a non-improvement.
    script = Script([1.0] * 4)
    reduce = ReduceLROnPlateau(factor=0.5, patience=1, min_delta=10.0, verbose=1)
    model = make_model(0.1)
    fit(model, [script, reduce], epochs=4)
    assert script.rates == [0.1, 0.1, 0.05, 0.025]
    assert model.optimizer is not None and model.optimizer.learning_rate == 0.0125
    out = capsys.readouterr().out
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n" in out
    assert out.count("ReduceLROnPlateau reducing") == 3


def test_reduce_lr_missing_monitor_warns_and_does_nothing() -> None:
    callback = ReduceLROnPlateau(monitor="val_loss", patience=0)
    callback.set_model(make_model(1.0))
    callback.on_train_begin()
    for epoch in range(3):
        with pytest.warns(UserWarning, match=rf"'val_loss'.*epoch {epoch + 1}; available: loss"):
            callback.on_epoch_end(epoch, {"loss": 1.0})
    assert callback.model is not None and callback.model.optimizer is not None
    assert callback.model.optimizer.learning_rate == 1.0


# -------------------------------------------------------------- EarlyStopping
def test_early_stopping_stops_after_patience() -> None:
    callback = EarlyStopping(patience=2)
    assert stopped_at(callback, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]) == 4
    assert (callback.stopped_epoch, callback.best_epoch, callback.best) == (3, 1, 0.8)


def test_early_stopping_patience_zero_stops_at_first_worse_epoch() -> None:
    assert stopped_at(EarlyStopping(), [1.0, 0.9, 0.95, 0.5]) == 3


def test_early_stopping_min_delta() -> None:
    values = [1.0, 0.99, 0.98, 0.97]
    assert stopped_at(EarlyStopping(patience=1, min_delta=0.05), values) == 2
    assert stopped_at(EarlyStopping(patience=1), values) == 4


def test_early_stopping_min_delta_in_max_mode() -> None:
    values = [0.5, 0.52, 0.54]
    assert (
        stopped_at(
            EarlyStopping("val_accuracy", min_delta=0.05, patience=1), values, "val_accuracy"
        )
        == 2
    )
    assert stopped_at(EarlyStopping("val_accuracy", patience=1), values, "val_accuracy") == 3


def test_early_stopping_baseline() -> None:
    values = [0.9, 0.8, 0.85, 0.84, 0.83]
    assert stopped_at(EarlyStopping(patience=2), values) == 4
    # Not beating the baseline 0.5 never resets the wait, so it stops sooner.
    assert stopped_at(EarlyStopping(patience=2, baseline=0.5), values) == 3
    # Beating it resets the wait as usual.
    assert stopped_at(EarlyStopping(patience=2, baseline=0.95), values) == 4
    # Keras 3: an epoch that improves the best (not the baseline) does not stop training.
    assert stopped_at(EarlyStopping(patience=1, baseline=0.5), [0.9, 0.8, 0.7, 0.6]) == 4


def test_early_stopping_start_from_epoch() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 3.5, 3.6]
    assert stopped_at(EarlyStopping(), values) == 2
    callback = EarlyStopping(start_from_epoch=3)
    assert stopped_at(callback, values) == 6
    assert (callback.stopped_epoch, callback.best_epoch) == (5, 4)


def test_early_stopping_resets_between_fits() -> None:
    callback = EarlyStopping(patience=2)
    assert stopped_at(callback, [0.1, 1.0, 1.0]) == 3
    # With the first fit's best (0.1) and wait kept, this would stop at once.
    assert stopped_at(callback, [1.0, 0.9, 0.8]) == 3
    assert (callback.stopped_epoch, callback.best_epoch, callback.best) == (0, 2, 0.8)


def test_early_stopping_in_fit_restores_best_weights(capsys: pytest.CaptureFixture) -> None:
    script = Script([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    stop = EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    model = make_model()
    assert fit(model, [script, stop], epochs=6) == [0, 1, 2, 3]
    assert (stop.stopped_epoch, stop.best_epoch) == (3, 1)
    assert weights_differ(script.weights[1], script.weights[3])
    assert_weights_equal(model.get_weights(), script.weights[1])
    assert capsys.readouterr().out == (
        "Epoch 4: early stopping\nRestoring model weights from the end of the best epoch: 2.\n"
    )


def test_early_stopping_restores_best_weights_when_it_never_stopped() -> None:
    script = Script([1.0, 0.5, 0.7, 0.8])
    stop = EarlyStopping(patience=10, restore_best_weights=True)
    model = make_model()
    assert fit(model, [script, stop], epochs=4) == [0, 1, 2, 3]
    assert stop.stopped_epoch == 0
    assert_weights_equal(model.get_weights(), script.weights[1])


def test_early_stopping_keeps_last_weights_when_they_are_best_or_not_asked(
    capsys: pytest.CaptureFixture,
) -> None:
    script = Script([1.0, 0.9, 0.8])
    model = make_model()
    fit(model, [script, EarlyStopping(restore_best_weights=True, verbose=1)], epochs=3)
    assert_weights_equal(model.get_weights(), script.weights[2])
    assert "Restoring" not in capsys.readouterr().out

    script = Script([1.0, 0.5, 0.7])
    model = make_model()
    fit(model, [script, EarlyStopping(patience=5)], epochs=3)
    assert_weights_equal(model.get_weights(), script.weights[2])


def test_early_stopping_restores_when_fit_fails_mid_epoch() -> None:
    class Fail(Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 1 and len(script.weights) == 2:
                raise KeyboardInterrupt

    script = Script([1.0, 0.5, 0.7])
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, [script, stop, Fail()], epochs=3)
    # The best epoch was the last to finish, but the third had already moved the weights.
    assert_weights_equal(model.get_weights(), script.weights[1])


def test_early_stopping_missing_monitor_warns_every_epoch() -> None:
    with pytest.warns(UserWarning) as caught:
        ran = make_model().fit(X, Y, epochs=3, verbose=0, callbacks=[EarlyStopping()])
    messages = [str(w.message) for w in caught if "EarlyStopping" in str(w.message)]
    assert ran.epoch == [0, 1, 2]
    assert len(messages) == 3
    assert re.search(r"'val_loss'.*epoch 1; available: loss, accuracy", messages[0])


# ---------------------------------------------------------------- mode="auto"
@pytest.mark.parametrize(
    ("monitor", "higher_is_better"),
    [
        ("val_loss", False),
        ("loss", False),
        ("val_mae", False),
        ("accuracy", True),
        ("val_acc", True),
        ("val_Accuracy", True),
        ("val_precision", True),
        ("recall", True),
        ("val_f1_score", True),
    ],
)
def test_auto_mode_direction(monitor: str, higher_is_better: bool) -> None:
    # patience=0: a rise stops training at once when lower is better, and a fall when higher is.
    rising = stopped_at(EarlyStopping(monitor), [0.5, 0.6, 0.7], key=monitor)
    falling = stopped_at(EarlyStopping(monitor), [0.5, 0.4, 0.3], key=monitor)
    assert (rising, falling) == ((3, 2) if higher_is_better else (2, 3))


@pytest.mark.parametrize(("mode", "expected"), [("min", (2, 3)), ("max", (3, 2))])
def test_explicit_mode_overrides_the_name(mode: str, expected: tuple[int, int]) -> None:
    monitor = "val_accuracy" if mode == "min" else "val_loss"
    rising = stopped_at(EarlyStopping(monitor, mode=mode), [0.5, 0.6, 0.7], key=monitor)
    falling = stopped_at(EarlyStopping(monitor, mode=mode), [0.5, 0.4, 0.3], key=monitor)
    assert (rising, falling) == expected


def test_reduce_lr_max_mode_on_accuracy() -> None:
    rising = drive(ReduceLROnPlateau("val_accuracy", 0.5, 1), [0.5, 0.6, 0.7], "val_accuracy")
    falling = drive(ReduceLROnPlateau("val_accuracy", 0.5, 1), [0.5, 0.4, 0.3], "val_accuracy")
    assert (rising[1], falling[1]) == ([1.0, 1.0, 1.0], [1.0, 0.5, 0.25])


# ------------------------------------------------------------ ModelCheckpoint
def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_checkpoint_formats_names_from_epoch_and_logs(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.4f}.npz"))
    model = make_model()
    fit(model, [checkpoint], epochs=3)
    assert model.history is not None
    val_losses = model.history.history["val_loss"]
    assert files_in(tmp_path) == [f"m-{i + 1:02d}-{val_losses[i]:.4f}.npz" for i in range(3)]


def test_checkpoint_loads_with_the_same_predictions(tmp_path: Path) -> None:
    model = make_model()
    fit(model, [ModelCheckpoint(tmp_path / "sub" / "model.npz")], epochs=2)
    loaded = fastnn.load_model(tmp_path / "sub" / "model.npz")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_checkpoint_save_best_only_writes_only_on_improvement(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    script = Script([1.0, 0.8, 0.9, 0.7, 0.75])
    checkpoint = ModelCheckpoint(tmp_path / "best-{epoch}.npz", save_best_only=True, verbose=1)
    fit(make_model(), [script, checkpoint], epochs=5)
    assert files_in(tmp_path) == ["best-1.npz", "best-2.npz", "best-4.npz"]
    assert checkpoint.best == 0.7
    out = capsys.readouterr().out.splitlines()
    saving = f"saving model to {tmp_path / 'best-1.npz'}"
    assert out[0] == f"Epoch 1: val_loss improved from inf to 1.00000, {saving}"
    assert out[2] == "Epoch 3: val_loss did not improve from 0.80000"
    assert len(out) == 5


def test_checkpoint_save_best_only_keeps_the_best_epoch_in_one_file(tmp_path: Path) -> None:
    script = Script([1.0, 0.5, 0.9, 0.8])
    fit(make_model(), [script, ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)], 4)
    saved = fastnn.load_model(tmp_path / "best.npz").get_weights()
    assert weights_differ(script.weights[1], script.weights[3])
    assert_weights_equal(saved, script.weights[1])


def test_checkpoint_max_mode_and_initial_value_threshold(tmp_path: Path) -> None:
    script = Script([0.5, 0.7, 0.65, 0.8], key="val_accuracy")
    checkpoint = ModelCheckpoint(
        tmp_path / "{epoch}.npz",
        monitor="val_accuracy",
        save_best_only=True,
        initial_value_threshold=0.6,
    )
    fit(make_model(), [script, checkpoint], epochs=4)
    assert files_in(tmp_path) == ["2.npz", "4.npz"]


def test_checkpoint_best_carries_over_between_fits(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(tmp_path / "{epoch}.npz", save_best_only=True)
    drive(checkpoint, [0.5])
    drive(checkpoint, [0.6, 0.4])  # like Keras, 0.6 is not better than the first fit's 0.5
    assert files_in(tmp_path) == ["1.npz", "2.npz"]


def test_checkpoint_weights_only(tmp_path: Path) -> None:
    model = make_model()
    fit(model, [ModelCheckpoint(tmp_path / "w-{epoch}.weights.npz", save_weights_only=True)], 2)
    assert files_in(tmp_path) == ["w-1.weights.npz", "w-2.weights.npz"]
    with np.load(tmp_path / "w-2.weights.npz") as archive:
        assert archive.files == ["weight_000", "weight_001", "weight_002", "weight_003"]
        weights = [archive[key] for key in sorted(archive.files)]
    assert_weights_equal(weights, model.get_weights())
    fresh = make_model()
    fresh.set_weights(weights)
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_interrupted_weights_only_checkpoint_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model()
    checkpoint = ModelCheckpoint(tmp_path / "w.weights.npz", save_weights_only=True)
    fit(model, [checkpoint], 1)
    original = (tmp_path / "w.weights.npz").read_bytes()

    def broken_savez(file: Any, *args: object, **kwargs: object) -> None:
        # half a file, then Ctrl-C: into whatever np.savez was handed, path or stream
        if hasattr(file, "write"):
            file.write(b"PK\x03\x04 half")
        else:
            Path(file).write_bytes(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        fit(model, [checkpoint], 1)
    assert (tmp_path / "w.weights.npz").read_bytes() == original
    assert files_in(tmp_path) == ["w.weights.npz"]  # no temp file left


def test_checkpoint_missing_monitor(tmp_path: Path) -> None:
    best_only = ModelCheckpoint(tmp_path / "a-{epoch}.npz", save_best_only=True)
    with pytest.warns(UserWarning, match=r"ModelCheckpoint is conditioned on 'val_loss'"):
        drive(best_only, [0.5], key="loss")
    assert files_in(tmp_path) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every epoch saves: the monitor is not needed
        drive(ModelCheckpoint(tmp_path / "b-{epoch}.npz"), [0.5], key="loss")
    assert files_in(tmp_path) == ["b-1.npz"]


def test_checkpoint_field_missing_from_logs(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(tmp_path / "{val_accuracy:.2f}.npz")
    message = r"names 'val_accuracy'.*epoch 1; available: val_loss, epoch"
    with pytest.raises(KeyError, match=message):
        drive(checkpoint, [0.5])


def test_checkpoint_format_spec_that_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot format ModelCheckpoint filepath .* epoch 1"):
        drive(ModelCheckpoint(tmp_path / "{val_loss:03d}.npz"), [0.5])


# ------------------------------------------------------ LearningRateScheduler
def test_scheduler_sets_the_rate_of_each_epoch(capsys: pytest.CaptureFixture) -> None:
    script = Script([0.0] * 3)
    model = make_model(0.1)
    fit(model, [LearningRateScheduler(lambda epoch, lr: 0.2 / (epoch + 1), verbose=1), script], 3)
    assert script.rates == [0.2, 0.1, 0.2 / 3]
    assert capsys.readouterr().out.splitlines()[1] == (
        "Epoch 2: LearningRateScheduler setting learning rate to 0.1."
    )


def test_scheduler_receives_the_current_rate() -> None:
    seen: list[tuple[int, float]] = []

    def halve(epoch: int, lr: float) -> float:
        seen.append((epoch, lr))
        return lr / 2

    script = Script([0.0] * 3)
    fit(make_model(0.4), [LearningRateScheduler(halve), script], 3)
    assert seen == [(0, 0.4), (1, 0.2), (2, 0.1)]
    assert script.rates == [0.2, 0.1, 0.05]


def test_scheduled_rate_is_the_one_training_uses() -> None:
    scheduled = make_model(0.5)
    fit(scheduled, [LearningRateScheduler(lambda epoch, lr: 0.03)], 2)
    constant = make_model(0.03)
    fit(constant, [], 2)
    assert_weights_equal(scheduled.get_weights(), constant.get_weights())


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), "0.1", None, True])
def test_scheduler_refuses_bad_rates(bad: object) -> None:
    scheduler = LearningRateScheduler(lambda epoch, lr: bad)
    scheduler.set_model(make_model())
    message = rf"must return a finite number > 0; for epoch 4 it returned {re.escape(repr(bad))}$"
    with pytest.raises(ValueError, match=message):
        scheduler.on_epoch_begin(4)


def test_callbacks_need_a_compiled_model() -> None:
    with pytest.raises(RuntimeError, match="LearningRateScheduler has no model"):
        LearningRateScheduler(lambda epoch, lr: lr).on_epoch_begin(0)
    callback = ReduceLROnPlateau(patience=0)
    callback.set_model(
        fastnn.Sequential([fastnn.layers.Dense(2, input_dim=2)])  # never compiled
    )
    callback.on_epoch_end(0, {"val_loss": 1.0})
    with pytest.raises(RuntimeError, match=r"ReduceLROnPlateau needs a compiled model"):
        callback.on_epoch_end(1, {"val_loss": 1.0})


# ------------------------------------------------------------- bad arguments
R, E, M, L = ReduceLROnPlateau, EarlyStopping, ModelCheckpoint, LearningRateScheduler
MODE = "mode must be one of 'auto', 'min', 'max'; received"
NUMBER = "must be a finite number; received"


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (R, {"factor": 1.5}, "factor must be < 1.0; received factor=1.5"),
        (R, {"factor": 1}, "factor must be < 1.0; received factor=1"),
        (R, {"factor": 0}, "factor must be > 0; received factor=0"),
        (R, {"patience": -1}, "patience must be an int >= 0; received patience=-1"),
        (R, {"cooldown": 1.5}, "cooldown must be an int >= 0; received cooldown=1.5"),
        (R, {"min_lr": -1e-3}, "min_lr must be >= 0; received min_lr=-0.001"),
        (R, {"min_delta": "1"}, f"min_delta {NUMBER} min_delta='1'"),
        (R, {"verbose": -1}, "verbose must be an int >= 0; received verbose=-1"),
        (R, {"mode": "best"}, f"{MODE} mode='best'"),
        (R, {"monitor": ""}, "monitor must be a log key string; received monitor=''"),
        (E, {"monitor": None}, "monitor must be a log key string; received monitor=None"),
        (E, {"mode": "Max"}, f"{MODE} mode='Max'"),
        (E, {"patience": -2}, "patience must be an int >= 0; received patience=-2"),
        (E, {"baseline": "low"}, f"baseline {NUMBER} baseline='low'"),
        (E, {"min_delta": float("inf")}, f"min_delta {NUMBER} min_delta=inf"),
        (E, {"start_from_epoch": -1}, "start_from_epoch must be an int >= 0; received"),
        (M, {"filepath": "model.h5"}, "must end in .npz or .keras; received filepath='model.h5'"),
        (
            M,
            {"filepath": "model"},
            "filepath must end in .npz or .keras; received filepath='model'",
        ),
        (M, {"filepath": 42}, "filepath must end in .npz or .keras; received filepath=42"),
        (
            M,
            {"filepath": "w.npz", "save_weights_only": True},
            "filepath must end in .weights.npz; received filepath='w.npz'",
        ),
        (M, {"filepath": "m-{epoch.npz"}, "filepath is not a valid template"),
        (M, {"filepath": "m-{}.npz"}, "filepath fields must be named, like {epoch:02d}"),
        (M, {"filepath": "m-{0}.npz"}, "filepath fields must be named"),
        (
            M,
            {"filepath": "m.npz", "save_freq": 100},
            "save_freq=100 (saving every N batches) is not supported; use save_freq='epoch'",
        ),
        (
            M,
            {"filepath": "m.npz", "save_freq": "batch"},
            "save_freq must be 'epoch'; received save_freq='batch'",
        ),
        (M, {"filepath": "m.npz", "mode": "minimum"}, f"{MODE} mode='minimum'"),
        (
            M,
            {"filepath": "m.npz", "initial_value_threshold": "x"},
            f"initial_value_threshold {NUMBER} initial_value_threshold='x'",
        ),
        (L, {"schedule": 0.1}, "schedule must be a function (epoch, lr) -> lr; received"),
        (
            L,
            {"schedule": lambda e, lr: lr, "verbose": "yes"},
            "verbose must be an int >= 0; received verbose='yes'",
        ),
    ],
)
def test_bad_arguments(cls: type, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        cls(**kwargs)
    assert "\n" not in str(caught.value)
