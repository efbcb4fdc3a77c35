"""What a Keras user writes, run on fastnn: each test reads like a piece of a Keras script
(TensorFlow's quickstart, the Keras guides), with its results checked."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.progress import ProgressBar

from .conftest import backend_params

rng = np.random.default_rng(0)
x_train = rng.standard_normal((200, 6)).astype(np.float32)
y_train = (x_train[:, 0] > 0).astype(np.int64) + (x_train[:, 1] > 0)  # 3 classes
x_test, y_test = x_train[:50], y_train[:50]


def make_model(seed: int = 0) -> fastnn.Sequential:
    model = fastnn.Sequential(
        [layers.Dense(16, activation="relu", input_dim=6), layers.Dense(3, activation="softmax")],
        seed=seed,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ------------------------------------------------------------------ verbose
def test_quickstart_evaluate_verbose_2_prints_one_line(capsys: pytest.CaptureFixture) -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    loss, accuracy = model.evaluate(x_test, y_test, verbose=2)  # type: ignore[misc]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("2/2 - ")
    assert f"loss: {loss:.4f}" in lines[0] and f"accuracy: {accuracy:.4f}" in lines[0]


@pytest.mark.parametrize("verbose", [0, False])
def test_verbose_0_prints_nothing(verbose: object, capsys: pytest.CaptureFixture) -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=2, verbose=verbose)  # type: ignore[arg-type]
    model.evaluate(x_test, y_test, verbose=verbose)  # type: ignore[arg-type]
    model.predict(x_test, verbose=verbose)  # type: ignore[arg-type]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [1, "auto", 2, True])
def test_fit_prints_a_line_per_epoch_in_a_log(
    verbose: object, capsys: pytest.CaptureFixture
) -> None:
    """Output that is not a terminal (pytest's capture, a log file) gets the epoch lines,
    never a line per step."""
    make_model().fit(x_train, y_train, epochs=3, batch_size=10, verbose=verbose)  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all("loss: " in line and "accuracy: " in line for line in lines)


def test_fit_defaults_to_auto_like_keras(capsys: pytest.CaptureFixture) -> None:
    make_model().fit(x_train, y_train, epochs=1)
    assert capsys.readouterr().out.startswith("Epoch 1/1 - ")


def test_predict_and_evaluate_default_to_a_closing_line(capsys: pytest.CaptureFixture) -> None:
    model = make_model()
    model.fit(x_train, y_train, verbose=0)
    model.evaluate(x_test, y_test)
    model.predict(x_test, batch_size=20)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2/2 - ") and "loss: " in lines[0]
    assert lines[1].startswith("3/3 - ") and "loss" not in lines[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_redraws_in_place_a_few_times_a_second() -> None:
    clock, out = Clock(), Terminal()
    bar = ProgressBar(steps=100, stream=out, clock=clock)
    bar.print_fn = lambda line: out.write(line + "\n")
    bar.set_params({"epochs": 2, "samples": 1000})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for step in range(1, 101):
        clock.now += 0.01  # 10 ms steps: 1 s in all
        bar.advance(step, lambda done: {"loss": 1.0 / done})
    bar.on_epoch_end(0, {"loss": 0.25, "accuracy": 0.5})
    text = out.getvalue()
    draws = text.split("\r")[1:-1]  # the last \r clears the bar for the epoch's line
    assert 3 <= len(draws) <= 5  # every 0.25 s, not every step
    first = draws[0]
    assert first.startswith("Epoch 1/2 25/100 [") or first.startswith("Epoch 1/2 26/100 [")
    assert "ETA 0.7s" in first or "ETA 0.8s" in first
    assert "loss: 0.04" in first and first.endswith("\x1b[K")
    assert "\n" not in "".join(draws)
    assert text.endswith("\r\x1b[KEpoch 1/2 - " + text.rsplit("Epoch 1/2 - ", 1)[1])
    assert text.rstrip("\n").endswith("loss: 0.2500 - accuracy: 0.5000")


def test_a_gpu_pass_draws_no_figures_so_it_never_waits() -> None:
    clock, out = Clock(), Terminal()
    bar = ProgressBar(steps=10, stream=out, clock=clock)
    bar.begin()
    clock.now += 1.0
    bar.advance(5, None)
    assert out.getvalue() == "\r5/10 [============>...........] ETA 1.0s\x1b[K"


def test_a_log_gets_a_plain_line_only_every_fifteen_seconds() -> None:
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(steps=1000, stream=out, clock=clock)
    bar.begin("Epoch 1/1")
    for step in range(1, 1001):
        clock.now += 1 / 16  # a 62.5 s epoch, in steps a float holds exactly
        bar.advance(step, None)
    lines = out.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == [
        "Epoch 1/1 240/1000", "Epoch 1/1 480/1000", "Epoch 1/1 720/1000", "Epoch 1/1 960/1000"
    ]  # fmt: skip


# ------------------------------------------------------- evaluate's results
def test_evaluate_return_dict_and_metrics_names() -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=2, verbose=0)
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert isinstance(results, dict) and list(results) == model.metrics_names
    assert model.metrics_names == ["loss", "accuracy"]
    assert [results["loss"], results["accuracy"]] == model.evaluate(x_test, y_test, verbose=0)


# ----------------------------------------------------------- batch methods
@pytest.mark.parametrize("name", backend_params())
def test_train_on_batch_is_fits_step(name: str) -> None:
    """A loop of train_on_batch over the batches gives fit's weights (no shuffle)."""
    with fastnn.use_backend(name):
        by_fit, by_batch = make_model(), make_model()
        by_fit.fit(x_train, y_train, epochs=1, batch_size=50, shuffle=False, verbose=0)
        losses = []
        for start in range(0, 200, 50):
            stop = start + 50
            loss = by_batch.train_on_batch(x_train[start:stop], y_train[start:stop])
            losses.append(loss)
    for got, want in zip(by_batch.get_weights(), by_fit.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert all(isinstance(loss, list) and len(loss) == 2 for loss in losses)


def test_train_on_batch_reports_the_batch_before_its_update() -> None:
    model = make_model()
    before = model.test_on_batch(x_test, y_test, return_dict=True)
    during = model.train_on_batch(x_test, y_test, return_dict=True)
    after = model.test_on_batch(x_test, y_test, return_dict=True)
    assert isinstance(before, dict) and isinstance(during, dict) and isinstance(after, dict)
    assert during["loss"] == pytest.approx(before["loss"], rel=1e-5)
    assert during["accuracy"] == before["accuracy"]
    assert after["loss"] < before["loss"]


def test_predict_on_batch_and_calling_the_model() -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=1, verbose=0)
    want = model.predict(x_test, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x_test), want)
    np.testing.assert_allclose(model(x_test), want, rtol=1e-6)
    np.testing.assert_allclose(model(x_test, training=True), want, rtol=1e-6)  # no Dropout


def test_calling_a_model_in_training_mode_drops_units() -> None:
    model = fastnn.Sequential(
        [layers.Dense(32, "relu", input_dim=6), layers.Dropout(0.5), layers.Dense(3, "softmax")],
        seed=0,
    )
    model.compile(loss="sparse_categorical_crossentropy")
    assert not np.allclose(model(x_test, training=True), model(x_test))


# ------------------------------------------------------------------- epochs
def test_initial_epoch_resumes_the_count() -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=2, verbose=0)
    history = model.fit(x_train, y_train, epochs=5, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3, 4]
    assert model.fit(x_train, y_train, epochs=2, initial_epoch=2, verbose=0).epoch == []


def test_validation_freq_validates_every_nth_epoch() -> None:
    model = make_model()
    history = model.fit(
        x_train, y_train, epochs=4, validation_data=(x_test, y_test), validation_freq=2,
        verbose=0,
    )  # fmt: skip
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2
