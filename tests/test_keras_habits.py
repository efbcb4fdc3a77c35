"""What a Keras user writes, run on fastnn: each test reads like a piece of a Keras script
(TensorFlow's quickstart, the Keras guides), with its results checked."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.backends.base import LOSSES, TOTALS_START
from fastnn.progress import ProgressBar

from .conftest import OTHER_BACKENDS, backend_params
from .reference import same_as_numpy

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


# ---------------------------------------------------------- building models
def test_input_first_gives_the_shape() -> None:
    model = fastnn.Sequential(
        [fastnn.Input(shape=(6,)), layers.Dense(16, "relu"), layers.Dense(3, "softmax")]
    )
    assert len(model.layers) == 2  # as in Keras, the Input is not a layer of the model
    assert model.input_shape == (None, 6) and model.output_shape == (None, 3)
    assert model.layers[0].input_shape == (None, 6)
    assert model.layers[0].output_shape == (None, 16)
    assert model.count_params() == 6 * 16 + 16 + 16 * 3 + 3
    same = fastnn.Sequential([layers.InputLayer(shape=(6,)), layers.Dense(3)])
    assert same.input_shape == (None, 6)


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: fastnn.Sequential([layers.Dense(3), fastnn.Input(shape=(6,))]), "first entry"),
        (
            lambda: fastnn.Sequential([fastnn.Input(shape=(6,)), layers.Dense(3, input_dim=5)]),
            "input_shape=(5,)",
        ),
        (lambda: fastnn.Input(shape=(0,)), "shape must be positive integers"),
        (lambda: layers.InputLayer(), "InputLayer takes shape="),
    ],
)
def test_a_misplaced_or_conflicting_input_is_refused(build: object, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build()  # type: ignore[operator]


def test_get_layer_by_name_and_index() -> None:
    model = make_model()
    assert model.get_layer("dense_1") is model.layers[1]
    assert model.get_layer(index=-1) is model.layers[1]
    with pytest.raises(ValueError, match="no layer named 'output'; the model's layers: 'dense'"):
        model.get_layer("output")
    with pytest.raises(ValueError, match="name= or index="):
        model.get_layer()


def test_a_layers_weights_round_trip_and_refuse_a_wrong_shape() -> None:
    model = make_model()
    dense = model.get_layer("dense")
    assert dense.get_weights() == []  # like Keras's layers, none until the model is built
    model.build((None, 6))
    kernel, bias = dense.get_weights()
    assert kernel.shape == (6, 16) and bias.shape == (16,)
    dense.set_weights([kernel * 2, bias + 1])
    np.testing.assert_allclose(dense.get_weights()[0], kernel * 2)
    np.testing.assert_allclose(model.get_weights()[1], bias + 1)
    with pytest.raises(ValueError, match=r"weight dense/bias has shape \(16,\)"):
        dense.set_weights([kernel, bias[:3]])
    np.testing.assert_allclose(dense.get_weights()[0], kernel * 2)  # nothing changed


def test_weights_lists_split_trainable_from_moving_statistics() -> None:
    model = fastnn.Sequential(
        [layers.Dense(4, input_dim=3), layers.BatchNormalization(), layers.Dense(2, "softmax")]
    )
    assert [w.shape for w in model.trainable_weights] == [(3, 4), (4,), (4,), (4,), (4, 2), (2,)]
    assert [w.shape for w in model.non_trainable_weights] == [(4,), (4,)]
    assert len(model.weights) == len(model.get_weights()) == 8


# ---------------------------------------------------------------- utilities
def test_to_categorical_and_normalize_as_keras() -> None:
    np.testing.assert_array_equal(
        fastnn.utils.to_categorical([[2], [0]], num_classes=3), [[0, 0, 1], [1, 0, 0]]
    )
    assert fastnn.utils.to_categorical(np.array([1.0, 3.0])).shape == (2, 4)
    assert fastnn.utils.to_categorical([1]).dtype == np.float32
    np.testing.assert_allclose(
        fastnn.utils.normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]]
    )
    np.testing.assert_allclose(fastnn.utils.normalize([[1, 1]], order=1), [[0.5, 0.5]])


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: fastnn.utils.to_categorical([0, 3], num_classes=3), "x holds class 3"),
        (lambda: fastnn.utils.to_categorical([-1]), "class numbers >= 0"),
        (lambda: fastnn.utils.to_categorical([0.5]), "whole class numbers"),
        (lambda: fastnn.utils.to_categorical([np.inf]), "whole class numbers"),
        (lambda: fastnn.utils.normalize([[1.0]], axis=2), r"axis must be an int in \[-2, 2\)"),
    ],
)
def test_utilities_refuse_bad_input_in_one_line(call: object, words: str) -> None:
    with pytest.raises(ValueError, match=words) as error:
        call()  # type: ignore[operator]
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ metrics
@pytest.mark.parametrize(
    "given, logged",
    [
        ("sparse_categorical_accuracy", "sparse_categorical_accuracy"),
        (fastnn.metrics.accuracy, "accuracy"),
        ("acc", "accuracy"),
    ],
)
def test_metrics_by_keras_name_or_function(given: object, logged: str) -> None:
    model = fastnn.Sequential([layers.Dense(3, "softmax", input_dim=6)], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", metrics=[given])  # type: ignore[list-item]
    history = model.fit(x_train, y_train, epochs=1, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", logged, "val_loss", f"val_{logged}", "learning_rate"}
    assert model.metrics_names == ["loss", logged]


def test_a_keras_metric_function_is_known_by_its_name() -> None:
    def categorical_accuracy(y_true: object, y_pred: object) -> None:  # keras.metrics' kind
        raise AssertionError("never called: fastnn counts it on the backend")

    model = fastnn.Sequential([layers.Dense(3, "softmax", input_dim=6)], seed=0)
    model.compile(loss="categorical_crossentropy", metrics=[categorical_accuracy])
    onehot = fastnn.utils.to_categorical(y_train, 3)
    results = model.evaluate(x_train, onehot, verbose=0, return_dict=True)
    assert isinstance(results, dict)
    assert results["categorical_accuracy"] == pytest.approx(
        float((model.predict(x_train, verbose=0).argmax(1) == y_train).mean())
    )


def test_an_accuracy_for_other_outputs_is_refused() -> None:
    model = fastnn.Sequential([layers.Dense(3, "softmax", input_dim=6)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["binary_accuracy"])
    with pytest.raises(ValueError, match="metric 'binary_accuracy' does not fit this model"):
        model.build((None, 6))
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        model.compile(loss="mse", metrics=["auc"])


def test_metric_names_survive_saving(tmp_path: object) -> None:
    model = fastnn.Sequential([layers.Dense(3, "softmax", input_dim=6)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    path = f"{tmp_path}/model.npz"
    model.save(path)
    assert fastnn.load_model(path).metrics_names == ["loss", "sparse_categorical_accuracy"]


# ------------------------------------------------------------------- losses
def test_a_loss_called_keras_style_matches_evaluate() -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=2, verbose=0)
    probabilities = model.predict(x_test, verbose=0)
    loss = fastnn.losses.SparseCategoricalCrossentropy()
    evaluated = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert isinstance(evaluated, dict)
    assert loss(y_test, probabilities) == pytest.approx(evaluated["loss"], rel=1e-5)
    onehot = fastnn.utils.to_categorical(y_test, 3)
    assert fastnn.losses.CategoricalCrossentropy()(onehot, probabilities) == pytest.approx(
        loss(y_test, probabilities)
    )
    logits = np.log(probabilities)
    assert fastnn.losses.CategoricalCrossentropy(from_logits=True)(onehot, logits) == pytest.approx(
        loss(y_test, probabilities), rel=1e-5
    )


def test_a_losss_sample_weight_sums_over_the_batch_as_keras() -> None:
    loss = fastnn.losses.MeanSquaredError()
    y_true, y_pred = np.array([[0.0], [0.0]]), np.array([[1.0], [3.0]])
    assert loss(y_true, y_pred) == 5.0
    assert loss(y_true, y_pred, sample_weight=[1.0, 0.0]) == 0.5  # (1*1 + 0*9) / 2
    binary = fastnn.losses.BinaryCrossentropy(from_logits=True)
    assert binary([[1.0]], [[0.0]]) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2,\)"):
        loss(y_true, y_pred, sample_weight=[1.0])


def test_losses_match_keras_on_the_same_numbers() -> None:
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((8, 4))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 8)
    onehot = np.eye(4)[labels]
    sig = 1 / (1 + np.exp(-logits))
    targets = rng.random((8, 4))
    pairs = [
        (fastnn.losses.SparseCategoricalCrossentropy(),
         keras.losses.SparseCategoricalCrossentropy(), labels, p),
        (fastnn.losses.CategoricalCrossentropy(),
         keras.losses.CategoricalCrossentropy(), onehot, p),
        (fastnn.losses.CategoricalCrossentropy(from_logits=True),
         keras.losses.CategoricalCrossentropy(from_logits=True), onehot, logits),
        (fastnn.losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), targets, sig),
        (fastnn.losses.BinaryCrossentropy(from_logits=True),
         keras.losses.BinaryCrossentropy(from_logits=True), targets, logits),
        (fastnn.losses.MeanSquaredError(), keras.losses.MeanSquaredError(), targets, sig),
    ]  # fmt: skip
    weights = rng.random(8)
    for ours, theirs, y_true, y_pred in pairs:
        want = float(theirs(y_true, y_pred))
        assert ours(y_true, y_pred) == pytest.approx(want, rel=1e-5), type(ours).__name__
        weighted = float(theirs(y_true, y_pred, sample_weight=weights))
        assert ours(y_true, y_pred, weights) == pytest.approx(weighted, rel=1e-5)


# ---------------------------------------------------------------- callbacks
def test_csv_logger_writes_keras_columns(tmp_path: object) -> None:
    path = f"{tmp_path}/log.csv"
    model = make_model()
    model.fit(
        x_train, y_train, epochs=3, validation_data=(x_test, y_test), validation_freq=2,
        verbose=0, callbacks=[fastnn.callbacks.CSVLogger(path)],
    )  # fmt: skip
    rows = [line.split(",") for line in Path(path).read_text().splitlines()]
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss"]  # epoch 1 has no val_
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    model.fit(x_train, y_train, epochs=1, verbose=0,
              callbacks=[fastnn.callbacks.CSVLogger(path, append=True)])  # fmt: skip
    assert len(Path(path).read_text().splitlines()) == 5  # one more row, no second header


def test_lambda_callback_calls_its_functions() -> None:
    seen: list[tuple] = []
    hook = fastnn.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch, round(logs["loss"], 3))),
        on_train_end=lambda logs: seen.append(("end",)),
    )
    assert not hook.reads_batch_losses()
    history = make_model().fit(x_train, y_train, epochs=2, verbose=0, callbacks=[hook])
    losses = [round(value, 3) for value in history.history["loss"]]
    assert seen == [("epoch", 0, losses[0]), ("epoch", 1, losses[1]), ("end",)]
    batches: list[float] = []
    hook = fastnn.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    assert hook.reads_batch_losses()
    make_model().fit(x_train, y_train, epochs=1, batch_size=50, verbose=0, callbacks=[hook])
    assert batches == [0, 1, 2, 3]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow it is made of
@pytest.mark.parametrize("name", backend_params())
def test_terminate_on_nan_stops_quietly(name: str, capsys: pytest.CaptureFixture) -> None:
    with fastnn.use_backend(name):
        model = fastnn.Sequential([layers.Dense(3, "softmax", input_dim=6)], seed=0)
        model.compile(optimizer=fastnn.optimizers.SGD(1e30), loss="sparse_categorical_crossentropy")
        history = model.fit(x_train * 1e10, y_train, epochs=5, verbose=0,
                            callbacks=[fastnn.callbacks.TerminateOnNaN()])  # fmt: skip
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])
    assert "Invalid loss, terminating training" in capsys.readouterr().out


class StopAt(fastnn.callbacks.Callback):
    """Fails at the start of an epoch, as a crash would."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_backup_and_restore_resumes_where_training_stopped(tmp_path: object) -> None:
    folder = f"{tmp_path}/backup"
    whole = make_model()
    whole.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    whole.fit(x_train, y_train, epochs=4, verbose=0, seed=1, shuffle=False)
    resumed = make_model()
    resumed.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    backup = fastnn.callbacks.BackupAndRestore(folder)
    with pytest.raises(KeyboardInterrupt):
        resumed.fit(x_train, y_train, epochs=4, verbose=0, shuffle=False,
                    callbacks=[backup, StopAt(2)])  # fmt: skip
    fresh = make_model(seed=5)  # another process: other weights until the backup restores
    fresh.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    history = fresh.fit(x_train, y_train, epochs=4, verbose=0, shuffle=False, callbacks=[backup])
    assert history.epoch == [2, 3]
    for got, want in zip(fresh.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not any(Path(folder).iterdir())  # deleted once training finished


# ---------------------------------------------------------------- freezing
def frozen_first() -> fastnn.Sequential:
    model = fastnn.Sequential(
        [layers.Dense(8, "relu", input_dim=6), layers.BatchNormalization(),
         layers.Dense(3, "softmax")], seed=0, dtype="float64",
    )  # fmt: skip
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("name", backend_params())
def test_a_frozen_layer_keeps_its_weights_and_the_rest_train(name: str) -> None:
    with fastnn.use_backend(name):
        model = frozen_first()
        model.build((None, 6))
        before = model.get_weights()
        model.fit(x_train, y_train, epochs=2, batch_size=50, verbose=0)
        after = model.get_weights()
    for i in range(6):  # the Dense's kernel and bias, BN's gamma, beta and moving statistics
        np.testing.assert_array_equal(after[i], before[i])
    assert not np.allclose(after[6], before[6])  # the last Dense trained
    assert model.optimizer is not None and len(model.optimizer.get_state(model.backend)) == 4  # type: ignore[arg-type]


def test_summary_and_weight_lists_count_frozen_weights_as_non_trainable() -> None:
    model = frozen_first()
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Trainable params: 27" in text  # 8 * 3 + 3
    assert "Non-trainable params: 88" in text  # 6 * 8 + 8 + 4 * 8
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 6
    model.trainable = False
    assert model.trainable_weights == [] and not model.trainable


def test_the_gradient_through_a_frozen_batch_norm_is_its_inference_pass() -> None:
    """Finite differences of evaluate's loss (inference mode, as a frozen BatchNormalization
    runs in training) against compute_gradients, for the first Dense's kernel."""
    model = fastnn.Sequential(
        [layers.Dense(4, "tanh", input_dim=6), layers.BatchNormalization(),
         layers.Dense(3, "softmax")], seed=1, dtype="float64",
    )  # fmt: skip
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=1, verbose=0)  # moving statistics away from 0 and 1
    model.layers[1].trainable = False
    _, grads = model.compute_gradients(x_test, y_test)
    weights = model.get_weights()
    step = 1e-6
    for index in [(0, 0), (3, 2), (5, 3)]:
        shifted = [w.copy() for w in weights]
        shifted[0][index] += step
        model.set_weights(shifted)
        up = model.evaluate(x_test, y_test, batch_size=50, verbose=0)
        shifted[0][index] -= 2 * step
        model.set_weights(shifted)
        down = model.evaluate(x_test, y_test, batch_size=50, verbose=0)
        model.set_weights(weights)
        assert grads[0][index] == pytest.approx((up - down) / (2 * step), rel=1e-5)  # type: ignore[operator]


def test_changing_what_trains_needs_a_new_compile_as_in_keras() -> None:
    model = make_model()
    model.fit(x_train, y_train, epochs=1, verbose=0)
    model.layers[0].trainable = False
    with pytest.raises(ValueError, match=r"call model\.compile"):
        model.fit(x_train, y_train, epochs=1, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=1, verbose=0)


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_the_frozen_flag_and_its_optimizer_state_are_saved(suffix: str, tmp_path: Path) -> None:
    if suffix == ".keras":
        pytest.importorskip("h5py")
    model = frozen_first()
    model.fit(x_train, y_train, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / f"m{suffix}")
    loaded = fastnn.load_model(tmp_path / f"m{suffix}")
    assert [layer.trainable for layer in loaded.layers] == [False, False, True]
    for trained in (model, loaded):
        trained.fit(x_train, y_train, epochs=1, verbose=0, shuffle=False)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# ---------------------------------------------------------- sample weights
def sgd_model(rate: float, loss: str = "sparse_categorical_crossentropy") -> fastnn.Sequential:
    last = "sigmoid" if loss == "binary_crossentropy" else "linear" if loss == "mse" else "softmax"
    model = fastnn.Sequential(
        [layers.Dense(8, "tanh", input_dim=6), layers.Dense(3, last)], seed=0, dtype="float64"
    )
    model.compile(optimizer=fastnn.optimizers.SGD(rate), loss=loss, metrics=["accuracy"])
    return model


def targets_for(loss: str) -> np.ndarray:
    if loss == "sparse_categorical_crossentropy":
        return y_train
    onehot = fastnn.utils.to_categorical(y_train, 3)
    return onehot if loss != "mse" else onehot * 2 - 1


@pytest.mark.parametrize(
    "loss", ["sparse_categorical_crossentropy", "categorical_crossentropy",
             "binary_crossentropy", "mse"],
)  # fmt: skip
@pytest.mark.parametrize("name", backend_params())
def test_a_uniform_weight_scales_the_gradient(name: str, loss: str) -> None:
    """Weights of 2 everywhere double every gradient: plain SGD at half the rate ends
    where unweighted SGD does, on every backend and loss."""
    y = targets_for(loss)
    with fastnn.use_backend(name):
        weighted, plain = sgd_model(0.05, loss), sgd_model(0.1, loss)
        weighted.fit(x_train, y, epochs=2, batch_size=40, shuffle=False, verbose=0,
                     sample_weight=np.full(len(y), 2.0))  # fmt: skip
        plain.fit(x_train, y, epochs=2, batch_size=40, shuffle=False, verbose=0)
    for got, want in zip(weighted.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused", ["alone", "with-bias-and-totals"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_the_loss_kernels_take_the_sample_weights(
    name: str, loss: str, dtype: type, fused: str
) -> None:
    """The fused loss of every backend against the reference's weighted loss: a weight of
    0, of 1 and large ones; alone, and with the bias, its gradient and a pass's totals
    around it as a training step has them (the GPU's one-launch form)."""
    rng = np.random.default_rng(9)
    outputs = rng.standard_normal((37, 5)).astype(dtype)
    if loss == "sparse_softmax_cross_entropy":
        targets = rng.integers(0, 5, 37)
    else:
        targets = (rng.random((37, 5)) < 0.3).astype(dtype)
    weights = rng.random(37).astype(dtype) * 3
    weights[:4] = [0.0, 1.0, 40.0, 0.0]
    bias = rng.standard_normal(5).astype(dtype)

    def run(backend: Any) -> list[Any]:
        extra: dict[str, Any] = {}
        if fused != "alone":
            extra = {"bias": backend.asarray(bias), "bias_grad": backend.zeros(5, dtype),
                     "totals": backend.asarray(TOTALS_START.copy())}  # fmt: skip
        value, grad = backend.loss_and_gradient(
            loss, backend.asarray(outputs.copy()), backend.asarray(targets),
            weights=backend.asarray(weights), **extra,
        )  # fmt: skip
        return [np.float64(value), grad, *extra.values()]

    same_as_numpy(name, run)


@pytest.mark.parametrize("name", backend_params())
def test_class_weight_is_each_samples_class_weight(name: str) -> None:
    table = {0: 3.0, 2: 0.5}  # class 1 unnamed: weight 1
    by_class, by_sample = sgd_model(0.1), sgd_model(0.1)
    with fastnn.use_backend(name):
        by_class.fit(x_train, y_train, epochs=1, batch_size=50, shuffle=False, verbose=0,
                     class_weight=table)  # fmt: skip
        weights = np.array([table.get(int(label), 1.0) for label in y_train])
        by_sample.fit(x_train, y_train, epochs=1, batch_size=50, shuffle=False, verbose=0,
                      sample_weight=weights)  # fmt: skip
    for got, want in zip(by_class.get_weights(), by_sample.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", backend_params())
def test_a_weighted_evaluate_is_keras_sum_over_the_batch_size(name: str) -> None:
    weights = np.random.default_rng(4).random(len(x_test))
    with fastnn.use_backend(name):
        model = sgd_model(0.1)
        model.fit(x_train, y_train, epochs=2, verbose=0)
        got = model.evaluate(x_test, y_test, batch_size=16, verbose=0, sample_weight=weights,
                             return_dict=True)  # fmt: skip
        probabilities = model.predict(x_test, verbose=0)
        history = model.fit(x_train, y_train, epochs=1, verbose=0,
                            validation_data=(x_test, y_test, weights))  # fmt: skip
        after = model.evaluate(x_test, y_test, verbose=0, sample_weight=weights, return_dict=True)
    assert isinstance(got, dict)
    want = fastnn.losses.SparseCategoricalCrossentropy()(y_test, probabilities, weights)
    assert got["loss"] == pytest.approx(want, rel=1e-9)
    assert got["accuracy"] == pytest.approx(float((probabilities.argmax(1) == y_test).mean()))
    # ^ the metrics stay unweighted, as Keras's compiled metrics
    assert isinstance(after, dict)
    assert history.history["val_loss"][0] == pytest.approx(after["loss"], rel=1e-9)


def test_weighted_steps_match_keras(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    model = sgd_model(0.1)
    model.fit(x_train, y_train, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    weights = np.random.default_rng(5).random(len(x_test))
    ours = model.evaluate(x_test, y_test, verbose=0, sample_weight=weights, return_dict=True)
    their_loss = theirs.evaluate(x_test, y_test, verbose=0, sample_weight=weights, batch_size=50)
    assert isinstance(ours, dict) and ours["loss"] == pytest.approx(their_loss[0], rel=1e-5)
    model.train_on_batch(x_test, y_test, sample_weight=weights)
    theirs.train_on_batch(x_test, y_test, sample_weight=weights)
    for got, want in zip(model.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-6)


# ---------------------------------------------------------------- clipping
def clipped(grads: list[np.ndarray], option: str, limit: float) -> list[np.ndarray]:
    """Keras's clipping rules, written out on NumPy arrays."""
    if option == "clipvalue":
        return [np.clip(g, -limit, limit) for g in grads]
    if option == "clipnorm":
        return [g * limit / max(np.sqrt((g * g).sum()), limit) for g in grads]
    norm = np.sqrt(sum((g * g).sum() for g in grads))
    return [g * min(1.0, limit / norm) for g in grads]


@pytest.mark.parametrize(
    "option, limit", [("clipnorm", 0.05), ("clipvalue", 0.01), ("global_clipnorm", 0.1)]
)
@pytest.mark.parametrize("name", backend_params())
def test_clipping_limits_the_step_as_keras_does(name: str, option: str, limit: float) -> None:
    with fastnn.use_backend(name):
        model = fastnn.Sequential(
            [layers.Dense(8, "relu", input_dim=6), layers.Dense(3, "softmax")],
            seed=0, dtype="float64",
        )  # fmt: skip
        model.compile(optimizer=fastnn.optimizers.SGD(0.5, **{option: limit}),
                      loss="sparse_categorical_crossentropy")  # fmt: skip
        before = model.get_weights()
        _, grads = model.compute_gradients(x_test, y_test)
        model.train_on_batch(x_test, y_test)
    want = [w - 0.5 * g for w, g in zip(before, clipped(grads, option, limit), strict=True)]
    for got, expected in zip(model.get_weights(), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert not all(  # the limit bit: unclipped, the step would differ
        np.allclose(w - 0.5 * g, e) for w, g, e in zip(before, grads, want, strict=True)
    )


def test_two_clipping_options_are_refused() -> None:
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        fastnn.optimizers.Adam(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match=r"clipnorm must be > 0 \(or None\); received clipnorm=-1"):
        fastnn.optimizers.RMSprop(clipnorm=-1)


def test_clipped_optimizers_save_and_match_keras(tmp_path: Path) -> None:
    model = sgd_model(0.5)
    model.compile(optimizer=fastnn.optimizers.Adam(0.01, global_clipnorm=0.2),
                  loss="sparse_categorical_crossentropy")  # fmt: skip
    model.build((None, 6))
    model.save(tmp_path / "m.npz")
    assert fastnn.load_model(tmp_path / "m.npz").optimizer.get_config()["global_clipnorm"] == 0.2  # type: ignore[union-attr]
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert theirs.optimizer.global_clipnorm == pytest.approx(0.2)
    model.train_on_batch(x_test, y_test)
    theirs.train_on_batch(x_test, y_test)
    for got, want in zip(model.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-6)


@pytest.mark.parametrize("name", backend_params())
def test_weight_decay_shrinks_the_weights_before_the_step(name: str) -> None:
    with fastnn.use_backend(name):
        model = sgd_model(0.5)
        model.compile(optimizer=fastnn.optimizers.SGD(0.5, weight_decay=0.1),
                      loss="sparse_categorical_crossentropy")  # fmt: skip
        model.build((None, 6))
        before = model.get_weights()
        _, grads = model.compute_gradients(x_test, y_test)
        model.train_on_batch(x_test, y_test)
    for got, w, g in zip(model.get_weights(), before, grads, strict=True):
        np.testing.assert_allclose(got, (w - w * 0.1 * 0.5) - 0.5 * g, rtol=1e-12, atol=1e-14)


def test_adamw_is_adam_with_keras_decay(tmp_path: Path) -> None:
    model = sgd_model(0.5)
    model.compile(optimizer="adamw", loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, fastnn.optimizers.AdamW)
    assert model.optimizer.get_config()["weight_decay"] == 0.004
    model.fit(x_train, y_train, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    assert isinstance(fastnn.load_model(tmp_path / "m.npz").optimizer, fastnn.optimizers.AdamW)
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert type(theirs.optimizer).__name__ == "AdamW"
    for _ in range(3):
        model.train_on_batch(x_test, y_test)
        theirs.train_on_batch(x_test, y_test)
    for got, want in zip(model.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-6)
