"""The Keras-style API: compile / fit / evaluate / predict / summary / weights, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, optimizers
from fastnn.callbacks import Callback


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in 4-D: any working classifier fits them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=float)
    x = centers[y] + rng.standard_normal((n, 4)) * 0.5
    return x.astype(np.float32), y


def _classifier(seed: int = 0, **compile_args: object) -> fastnn.Sequential:
    model = fastnn.Sequential(
        [layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")], seed=seed
    )
    args = {
        "optimizer": optimizers.Adam(learning_rate=0.05),
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
        **compile_args,
    }
    model.compile(**args)  # type: ignore[arg-type]
    return model


def test_fit_evaluate_predict(backend_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _blobs()
    model = _classifier()
    history = model.fit(x, y, epochs=8, batch_size=32, validation_split=0.2, verbose=1, seed=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert all(len(values) == 8 for values in history.history.values())
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.95
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8
    assert re.match(
        r"Epoch 8/8 - \d+\.\d\ds - [\d,]+ samples/s - loss: \d\.\d{4} - accuracy: \d\.\d{4} - "
        r"val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - learning_rate: 0\.05$",
        lines[-1],
    ), lines[-1]

    loss, accuracy = model.evaluate(x, y)  # type: ignore[misc]
    assert accuracy > 0.95 and 0 < loss < history.history["loss"][0]
    probabilities = model.predict(x[:10])
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (10, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # evaluate's accuracy agrees with the argmax of predict
    predicted = model.predict(x, batch_size=7).argmax(axis=1)
    assert (predicted == y).mean() == pytest.approx(accuracy)


def test_validation_data_and_no_metrics(backend_name: str) -> None:
    x, y = _blobs()
    model = _classifier(metrics=None)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x[:50], y[:50]))
    assert set(history.history) == {"loss", "val_loss", "learning_rate"}
    assert isinstance(model.evaluate(x, y), float)


def test_same_seed_same_training(backend_name: str) -> None:
    x, y = _blobs()
    runs = []
    for _ in range(2):
        model = _classifier(seed=3)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=4)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _classifier(seed=3)
    other.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=5)  # another shuffle order
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


def test_global_seed_makes_runs_repeatable(backend_name: str) -> None:
    x, y = _blobs()
    results = []
    for _ in range(2):
        fastnn.set_random_seed(11)
        model = _classifier(seed=None)  # type: ignore[arg-type]
        model.fit(x, y, epochs=1, verbose=0)
        results.append(model.get_weights()[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_one_hot_binary_and_regression_targets(backend_name: str) -> None:
    x, y = _blobs()
    onehot = np.eye(3)[y]
    model = _classifier(loss="categorical_crossentropy")
    model.fit(x, onehot, epochs=6, verbose=0, seed=0)
    assert model.evaluate(x, onehot)[1] > 0.95  # type: ignore[index]

    binary = (y == 0).astype(float)  # (n,) labels for one sigmoid unit
    model = fastnn.Sequential(
        [layers.Dense(4, activation="relu", input_dim=4), layers.Dense(1, activation="sigmoid")],
        seed=0,
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, binary, epochs=15, batch_size=16, verbose=0, seed=0)
    assert model.evaluate(x, binary)[1] > 0.95  # type: ignore[index]
    assert model.predict(x).shape == (len(x), 1)

    target = x @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32) + 0.3  # linear regression
    model = fastnn.Sequential([layers.Dense(1, input_dim=4)], seed=0)
    model.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    model.fit(x, target, epochs=30, batch_size=16, verbose=0, seed=0)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], [1.0, -2.0, 0.5, 0.0], atol=0.02)
    assert bias[0] == pytest.approx(0.3, abs=0.02)


def test_summary_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    model = fastnn.Sequential(
        [layers.Flatten(input_shape=(28, 28)), layers.Dense(512, "relu"), layers.Dense(10)]
    )
    model.summary()
    text = capsys.readouterr().out
    assert 'Model: "sequential"' in text
    assert re.search(r"flatten \(Flatten\)\s+\(None, 784\)\s+0", text)
    assert re.search(r"dense \(Dense\)\s+\(None, 512\)\s+401,920", text)
    assert re.search(r"dense_1 \(Dense\)\s+\(None, 10\)\s+5,130", text)
    assert "Total params: 407,050" in text
    assert model.count_params() == 407_050
    assert [w.shape for w in model.get_weights()] == [(784, 512), (512,), (512, 10), (10,)]


def test_images_train_through_flatten(backend_name: str) -> None:
    x, y = _blobs()
    images = np.repeat(x[:, :, None], 2, axis=2)  # (n, 4, 2)
    model = fastnn.Sequential(
        [layers.Flatten(), layers.Dense(8, "relu"), layers.Dense(3, "softmax")], seed=0
    )
    model.compile(
        optimizer=optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["acc"]
    )
    model.fit(images, y, epochs=5, verbose=0, seed=0)
    assert model.evaluate(images, y)[1] > 0.9  # type: ignore[index]


def test_set_weights_round_trip_and_errors() -> None:
    model = _classifier()
    model.build((None, 4))
    weights = model.get_weights()
    weights[0][0, 0] = 42.0
    assert model.get_weights()[0][0, 0] != 42.0  # get_weights returns copies
    model.set_weights(weights)
    assert model.get_weights()[0][0, 0] == 42.0
    with pytest.raises(ValueError, match=r"expected 4 arrays, .* received 3"):
        model.set_weights(weights[:3])
    with pytest.raises(
        ValueError, match=r"dense/kernel has shape \(4, 16\); received shape \(16, 4\)"
    ):
        model.set_weights([weights[0].T, *weights[1:]])


def test_callbacks_fire_and_can_stop_training() -> None:
    events: list[str] = []

    class Recorder(Callback):
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            events.append("train_begin")

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            events.append(f"epoch_end {epoch} {sorted(logs or {})}")
            if epoch == 1:
                assert self.model is not None
                self.model.stop_training = True

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            events.append("batch")

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            events.append("train_end")

    x, y = _blobs(n=64)
    history = _classifier().fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[Recorder()])
    assert events == [
        "train_begin",
        "batch",
        "batch",
        "epoch_end 0 ['accuracy', 'learning_rate', 'loss']",
        "batch",
        "batch",
        "epoch_end 1 ['accuracy', 'learning_rate', 'loss']",
        "train_end",
    ]
    assert len(history.history["loss"]) == 2


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_divergence_stops_with_epoch_and_step() -> None:
    x, y = _blobs(n=64)
    model = _classifier(optimizer=optimizers.SGD(learning_rate=1e30))
    model.build((None, 4))
    with pytest.raises(fastnn.TrainingDivergedError, match=r"epoch 1, step \d+") as caught:
        model.fit(x * 1e3, y, epochs=3, batch_size=8, verbose=0, seed=0)
    step = int(re.search(r"step (\d+)", str(caught.value)).group(1))  # type: ignore[union-attr]
    assert step > 1
    # the failing step was not applied: the weights are finite
    assert all(np.isfinite(w).all() for w in model.get_weights())


BAD_FIT_INPUTS = [
    ({"x": np.ones((10, 5))}, "x has samples of shape (5,); the model expects (4,)"),
    ({"y": np.zeros(9, int)}, "x and y must have the same number of samples; x has 10, y has 9"),
    ({"y": np.full(10, 3)}, "labels in [0, 3) for a model with 3 outputs; 10 label(s) are outside"),
    ({"y": np.full(10, -1)}, "10 label(s) are outside, e.g. -1 at row 0"),
    ({"y": np.full(10, 0.5)}, "whole-number class labels"),
    ({"x": np.full((10, 4), np.nan)},
     "x contains 40 NaN or infinite value(s) (first at index (0, 0))"),
    ({"x": np.zeros((0, 4)), "y": np.zeros(0, int)}, "x is empty"),
    ({"x": np.ones(4)}, "x must have a batch axis first"),
    ({"batch_size": 0}, "batch_size must be an int >= 1; received batch_size=0"),
    ({"epochs": -1}, "epochs must be an int >= 0; received epochs=-1"),
    ({"validation_split": 1.5},
     "validation_split must be a number in [0, 1); received validation_split=1.5"),
    ({"validation_data": (np.ones((2, 4)),)}, "validation_data must be a tuple (x_val, y_val)"),
    ({"y": np.eye(3)[np.zeros(10, int)]},
     "for one-hot targets use loss='categorical_crossentropy'"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), BAD_FIT_INPUTS)
def test_bad_fit_input_is_refused_clearly(override: dict[str, object], message: str) -> None:
    model = _classifier()
    model.build((None, 4))
    before = model.get_weights()
    args: dict[str, object] = {"x": np.ones((10, 4)), "y": np.zeros(10, int), "verbose": 0}
    args.update(override)
    with pytest.raises(ValueError) as caught:
        model.fit(**args)  # type: ignore[arg-type]
    assert message in str(caught.value)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # nothing was trained


def test_compile_errors() -> None:
    model = fastnn.Sequential([layers.Dense(3, activation="relu")])
    with pytest.raises(ValueError, match="expects probabilities from a final 'softmax'"):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"unknown optimizer 'nadam'.*sgd, rmsprop, adam, adamw"):
        model.compile(optimizer="nadam", loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        model.compile(loss="hinge")
    with pytest.raises(ValueError, match="compile needs a loss"):
        model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        model.compile(loss="mse", metrics=["auc"])
    with pytest.raises(RuntimeError, match=r"call model.compile\(...\) before model.fit"):
        fastnn.Sequential([layers.Dense(3)]).fit(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.warns(UserWarning, match="from_logits=True but the model ends in 'softmax'"):
        fastnn.Sequential([layers.Dense(3, activation="softmax")]).compile(
            loss=losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    with pytest.raises(ValueError, match="not built yet"):
        fastnn.Sequential([layers.Dense(3)]).summary()


def test_optimizer_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="learning_rate must be > 0; received learning_rate=0"):
        optimizers.SGD(learning_rate=0)
    with pytest.raises(ValueError, match="momentum must be in"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"rho=-0\.1"):
        optimizers.RMSprop(rho=-0.1)
    with pytest.raises(ValueError, match=r"beta_2=1\.0"):
        optimizers.Adam(beta_2=1.0)
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        optimizers.Adam(learning_rate=float("nan"))


def test_keras_defaults() -> None:
    rms, adam, sgd = optimizers.get("rmsprop"), optimizers.get("adam"), optimizers.get("SGD")
    assert rms.get_config() == {"learning_rate": 1e-3, "rho": 0.9, "momentum": 0.0,
                                "epsilon": 1e-7, "centered": False}  # fmt: skip
    assert adam.get_config() == {
        "learning_rate": 1e-3,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    }
    assert sgd.get_config() == {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}


def test_optimizer_step_through_the_model_matches_the_formula(backend_name: str) -> None:
    """One fit step with RMSprop moves each weight exactly as the rule says."""
    x, y = _blobs(n=8)
    model = _classifier(optimizer=optimizers.RMSprop(learning_rate=0.01))
    model.build((None, 4))
    before = model.get_weights()
    _, grads = model.compute_gradients(x, y)
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for w0, g, w1 in zip(before, grads, model.get_weights(), strict=True):
        velocity = 0.1 * g * g
        expected = w0 - 0.01 * g / np.sqrt(velocity + 1e-7)
        np.testing.assert_allclose(w1, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ what help() shows
@pytest.mark.parametrize("method", ["__init__", "compile", "fit", "evaluate", "predict"])
def test_the_main_calls_document_every_parameter(method: str) -> None:
    """NumPy-style: each parameter named in a Parameters section (a new one left out
    fails here), and an example."""
    import inspect

    function = getattr(fastnn.Sequential, method)
    doc = inspect.getdoc(fastnn.Sequential if method == "__init__" else function) or ""
    assert "Parameters\n----------" in doc and "Examples\n--------" in doc
    documented = doc.split("Parameters\n----------")[1].split("\n\n")[0]
    for name in list(inspect.signature(function).parameters)[1:]:
        assert re.search(rf"^{name}\b|, {name}\b", documented, re.M), f"{method}: {name}"


def test_help_leads_with_what_a_user_needs() -> None:
    import pydoc

    text = pydoc.render_doc(fastnn, renderer=pydoc.plaintext)
    head = "\n".join(text.splitlines()[:40])
    assert "Quick start" in head and "model.fit(" in head
    assert "Methods inherited from builtins" not in text  # no exception or tuple noise
    assert len(text.splitlines()) < 600
