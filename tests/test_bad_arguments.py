"""Every public entry point, fed a wrong argument, says so in one line.

One table of wrong calls. Each row names the exception the call must raise and the
pieces its message must hold: the argument, the value received and what is allowed
(for a mistake of state, such as fitting before compiling, what to do instead). The
docs/troubleshooting.md quotes some of these messages; a test keeps it in step.

Exception types: ValueError for a value the argument does not allow, whatever its type
(``batch_size=2.5``, an unknown name, a wrong shape or length); TypeError for an object
of the wrong kind altogether (an array of strings, one string where a list is needed,
something that is not a layer or a callback); RuntimeError for a call in the wrong
state. The command exits with status 2 and a one-line ``error:`` after its usage.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

import fastnn
from fastnn import (
    callbacks,
    cli,
    initializers,
    layers,
    metrics,
    ops,
    optimizers,
    plots,
    recipes,
    regularizers,
    sparse,
    threads,
)
from fastnn.backends import replay
from fastnn.datasets import mnist

TROUBLESHOOTING = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
KERAS_FIXTURES = Path(__file__).resolve().parent / "golden" / "keras_files"
MAX_MESSAGE = 300  # characters: a message to read at a glance, not a dump of the data

X = np.ones((10, 4))  # what the helpers' model takes: 4 features ...
Y = np.zeros(10, dtype=np.int64)  # ... and 3 classes


@dataclass(frozen=True)
class Case:
    """One wrong call and what it must say."""

    id: str
    call: Callable[[], object]
    error: type[BaseException]
    fragments: tuple[str, ...]


def _model(
    last: str = "softmax", units: int = 3, loss: str = "sparse_categorical_crossentropy"
) -> fastnn.Sequential:
    """A compiled 4-8-``units`` network, not yet built (its first layer declares 4 inputs)."""
    model = fastnn.Sequential(
        [layers.Dense(8, "relu", input_dim=4), layers.Dense(units, last)], seed=0
    )
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return model


def _fit(model: fastnn.Sequential | None = None, **override: Any) -> object:
    """``fit`` of the helpers' model (or ``model``) on 10 good samples, with ``override``."""
    arguments: dict[str, Any] = {"x": X, "y": Y, "epochs": 1, "verbose": 0, **override}
    return (model or _model()).fit(**arguments)


def _binary() -> fastnn.Sequential:
    return _model("sigmoid", 1, "binary_crossentropy")


def _regression() -> fastnn.Sequential:
    return _model("linear", 3, "mse")


def _built() -> fastnn.Sequential:
    model = _model()
    model.build((None, 4))
    return model


def _set_weights(change: Callable[[list[np.ndarray]], Any]) -> None:
    model = _built()
    model.set_weights(change(model.get_weights()))


def _with_env(name: str, value: str, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run with the environment variable ``name`` set to ``value``."""

    def run() -> object:
        with mock.patch.dict(os.environ, {name: value}):
            return call()

    return run


def _freeze_after_training() -> object:
    """fit, freeze the first layer, fit again without compiling."""
    model = _model()
    _fit(model)
    model.layers[0].trainable = False
    return _fit(model)


def _load_fixture(name: str) -> object:
    """``fastnn.load_model(name)`` run in the Keras fixtures' folder, so that the message
    names the file as a user who typed its name would see it."""
    here = os.getcwd()
    os.chdir(KERAS_FIXTURES)
    try:
        return fastnn.load_model(name)
    finally:
        os.chdir(here)


def _cli(*argv: str) -> int:
    return cli.main(list(argv))


def _message(case: Case) -> str:
    """The message ``case``'s call fails with; for the command, its ``error:`` line."""
    stderr = io.StringIO()
    with pytest.raises(case.error) as caught, contextlib.redirect_stderr(stderr):
        case.call()
    if not isinstance(caught.value, SystemExit):
        return str(caught.value)
    assert caught.value.code == 2
    lines = stderr.getvalue().rstrip("\n").splitlines()
    assert "Traceback" not in stderr.getvalue()
    assert [line for line in lines if "error:" in line] == lines[-1:]  # after the usage
    return lines[-1]


RAGGED = [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]
E, T, R, S = ValueError, TypeError, RuntimeError, SystemExit

# fmt: off
CASES: list[Case] = [
    # ---- x: types, dtypes, shapes
    Case("x-strings", lambda: _fit(x=np.full((10, 4), "a")), T, ("x", "dtype <U1", "numbers")),
    Case("x-objects", lambda: _fit(x=np.full((10, 4), None)), T, ("x", "dtype object", "numbers")),
    Case("x-complex", lambda: _fit(x=np.ones((10, 4), complex)), T,
         ("x", "dtype complex128", "numbers")),
    Case("x-none", lambda: _model().predict(None), T, ("x", "x=None", "numbers")),
    Case("x-ragged", lambda: _model().predict(RAGGED), E,
         ("x", "rectangular array of numbers", "received a list")),
    Case("x-1d", lambda: _fit(x=np.ones(4)), E, ("x", "shape (4,)", "(n_samples, n_features)")),
    Case("x-empty", lambda: _fit(x=np.ones((0, 4)), y=Y[:0]), E,
         ("x", "shape (0, 4)", "at least one sample")),
    Case("x-nan", lambda: _fit(x=np.full((10, 4), np.nan)), E, ("x", "NaN", "index (0, 0)")),
    Case("x-input-dim-mismatch", lambda: _fit(x=np.ones((10, 5))), E, ("x", "(5,)", "(4,)")),
    Case("predict-input-dim-mismatch", lambda: _model().predict(np.ones((2, 5))), E,
         ("x", "(5,)", "(4,)")),
    Case("x-images-without-flatten",
         lambda: fastnn.Sequential([layers.Dense(3)]).predict(np.ones((2, 4, 4))), E,
         ("Dense", "(4, 4)", "(batch, features)", "Flatten()")),
    # ---- y: label ranges, shapes, targets
    Case("y-negative-label", lambda: _fit(y=np.full(10, -1)), E, ("y", "-1", "[0, 3)")),
    Case("y-label-too-large", lambda: _fit(y=np.full(10, 3)), E, ("y", "3", "[0, 3)")),
    Case("y-fractional-label", lambda: _fit(y=np.full(10, 0.5)), E,
         ("y", "0.5", "whole-number", "[0, 3)")),
    Case("y-nan-label", lambda: _fit(y=np.full(10, np.nan)), E, ("y", "nan", "whole-number")),
    Case("y-strings", lambda: _fit(y=np.full(10, "cat")), T, ("y", "dtype <U3", "numbers")),
    Case("y-one-hot-for-sparse-loss", lambda: _fit(y=np.eye(3)[Y]), E,
         ("y", "shape (10, 3)", "(n,)", "categorical_crossentropy")),
    Case("x-y-lengths-differ", lambda: _fit(y=Y[:9]), E, ("x and y", "10", "9")),
    Case("y-targets-shape", lambda: _fit(_regression(), y=np.zeros(10)), E,
         ("y", "shape (10,)", "(n, 3)")),
    Case("y-targets-nan", lambda: _fit(_regression(), y=np.full((10, 3), np.inf)), E,
         ("y", "NaN or infinite", "index (0, 0)")),
    Case("y-binary-outside-0-1", lambda: _fit(_binary(), y=np.full(10, 2.0)), E,
         ("y", "2.0", "[0, 1]", "binary_crossentropy")),
    Case("evaluate-label-too-large", lambda: _model().evaluate(X, np.full(10, 7)), E,
         ("y", "7", "[0, 3)")),
    # ---- fit / evaluate / predict settings
    Case("batch-size-zero", lambda: _fit(batch_size=0), E, ("batch_size=0", "int >= 1")),
    Case("batch-size-negative", lambda: _fit(batch_size=-3), E, ("batch_size=-3", "int >= 1")),
    Case("batch-size-float", lambda: _fit(batch_size=2.5), E, ("batch_size=2.5", "int >= 1")),
    Case("batch-size-bool", lambda: _fit(batch_size=True), E, ("batch_size=True", "int >= 1")),
    Case("batch-size-array", lambda: _fit(batch_size=np.ones((40, 40))), E,
         ("batch_size=array(", "int >= 1")),
    Case("predict-batch-size-zero", lambda: _model().predict(X, batch_size=0), E,
         ("batch_size=0", "int >= 1")),
    Case("epochs-negative", lambda: _fit(epochs=-1), E, ("epochs=-1", "int >= 0")),
    Case("distributed-word", lambda: _fit(distributed="yes"), T,
         ("distributed='yes'", "True or False")),
    Case("epochs-string", lambda: _fit(epochs="5"), E, ("epochs='5'", "int >= 0")),
    Case("verbose-negative", lambda: _fit(verbose=-1), E, ("verbose=-1", '0, 1, 2 or "auto"')),
    Case("verbose-three", lambda: _model().evaluate(X, Y, verbose=3), E,
         ("verbose=3", '0, 1, 2 or "auto"')),
    Case("predict-verbose-word", lambda: _built().predict(X, verbose="quiet"), E,
         ("verbose='quiet'", '0, 1, 2 or "auto"')),
    Case("initial-epoch-negative", lambda: _fit(initial_epoch=-1), E,
         ("initial_epoch=-1", "int >= 0")),
    Case("validation-freq-zero", lambda: _fit(validation_freq=0), E,
         ("validation_freq=0", "int >= 1")),
    Case("train-on-batch-uncompiled", lambda: fastnn.Sequential([layers.Dense(2)])
         .train_on_batch(X, Y), RuntimeError, ("compile", "train_on_batch")),
    Case("fit-seed-negative", lambda: _fit(seed=-1), E, ("seed=-1", "non-negative int or None")),
    Case("validation-split-above-1", lambda: _fit(validation_split=1.5), E,
         ("validation_split=1.5", "[0, 1)")),
    Case("validation-split-negative", lambda: _fit(validation_split=-0.1), E,
         ("validation_split=-0.1", "[0, 1)")),
    Case("validation-split-leaves-nothing", lambda: _fit(validation_split=0.95), E,
         ("validation_split=0.95", "10 samples", "at least 1")),
    Case("validation-data-one-item", lambda: _fit(validation_data=(X,)), E,
         ("validation_data", "1 item", "(x_val, y_val)")),
    Case("validation-data-four-items", lambda: _fit(validation_data=(X, Y, Y, Y)), E,
         ("validation_data", "4 items", "(x_val, y_val, sample_weight)")),
    Case("sample-and-class-weight", lambda: _fit(sample_weight=np.ones(len(X)),
                                                 class_weight={0: 2.0}), E,
         ("sample_weight or class_weight, not both",)),
    Case("sample-weight-length", lambda: _fit(sample_weight=np.ones(3)), E,
         ("sample_weight must have shape (10,)", "received shape (3,)")),
    Case("sample-weight-nan", lambda: _fit(sample_weight=np.full(len(X), np.nan)), E,
         ("sample_weight contains", "NaN")),
    Case("class-weight-not-dict", lambda: _fit(class_weight=[1.0, 2.0]), T,
         ("class_weight must be a dict", "class_weight=[1.0, 2.0]")),
    Case("validation-data-array", lambda: _fit(validation_data=X), T,
         ("validation_data", "type ndarray", "(x_val, y_val)")),
    Case("validation-data-features", lambda: _fit(validation_data=(np.ones((2, 5)), Y[:2])), E,
         ("validation_data x", "(5,)", "(4,)")),
    Case("callbacks-not-a-list", lambda: _fit(callbacks=callbacks.EarlyStopping()), T,
         ("callbacks", "type EarlyStopping", "list")),
    Case("callbacks-not-callbacks", lambda: _fit(callbacks=[print]), T,
         ("callbacks[0]", "print", "fastnn.callbacks.Callback")),
    # ---- order of calls
    Case("fit-before-compile", lambda: fastnn.Sequential([layers.Dense(3)]).fit(X, Y), R,
         ("model.compile(", "model.fit(")),
    Case("evaluate-before-compile",
         lambda: fastnn.Sequential([layers.Dense(3)]).evaluate(X, Y), R,
         ("model.compile(", "model.evaluate(")),
    Case("weights-before-build", lambda: fastnn.Sequential([layers.Dense(3)]).get_weights(), E,
         ("not built yet", "input_dim=", "model.build((None, n_features))")),
    Case("predict-without-layers", lambda: fastnn.Sequential().predict(X), E, ("no layers",)),
    Case("build-without-batch-axis", lambda: _model().build((784,)), E,
         ("input_shape", "(784,)", "(None, 784)")),
    Case("build-input-dim-mismatch", lambda: _model().build((None, 5)), E,
         ("'dense'", "(4,)", "(5,)")),
    Case("add-a-non-layer", lambda: fastnn.Sequential(["dense"]), T, ("layers", "'dense'")),
    Case("duplicate-layer-names",
         lambda: fastnn.Sequential([layers.Dense(3, name="a"), layers.Dense(3, name="a")]), E,
         ("unique", "'a'")),
    # ---- compile: unknown names, inconsistent choices
    Case("loss-unknown", lambda: _model().compile(loss="hinge"), E,
         ("loss", "'hinge'", "sparse_categorical_crossentropy", "mse")),
    Case("loss-missing", lambda: _model().compile(optimizer="sgd"), E,
         ("loss=None", "sparse_categorical_crossentropy")),
    Case("optimizer-unknown", lambda: _model().compile(optimizer="nadam", loss="mse"), E,
         ("optimizer", "'nadam'", "sgd, rmsprop, adam, adamw")),
    Case("metric-unknown", lambda: _model().compile(loss="mse", metrics=["auc"]), E,
         ("metric", "'auc'", "accuracy", "f1")),
    Case("metrics-a-string", lambda: _model().compile(loss="mse", metrics="accuracy"), T,
         ("metrics='accuracy'", "list", "['accuracy']")),
    Case("metrics-not-a-list", lambda: _model().compile(loss="mse", metrics=5), T,
         ("metrics=5", "list")),
    Case("loss-needs-softmax", lambda: _model(last="relu"), E,
         ("sparse_categorical_crossentropy", "'softmax'", "'relu'", "from_logits=True")),
    # ---- model settings
    Case("dtype-unsupported", lambda: fastnn.Sequential(dtype="float16"), E,
         ("dtype='float16'", "float32, float64")),
    Case("dtype-unknown", lambda: fastnn.Sequential(dtype="floaty"), E,
         ("dtype='floaty'", "float32, float64")),
    Case("dtype-env-unsupported", _with_env("FASTNN_DTYPE", "int8", lambda: _model().predict(X)),
         E, ("FASTNN_DTYPE='int8'", "float32, float64")),
    Case("model-seed-negative", lambda: fastnn.Sequential(seed=-1), E,
         ("seed=-1", "non-negative int or None")),
    Case("global-seed-float", lambda: fastnn.set_random_seed(2.5), E,
         ("seed=2.5", "non-negative int or None")),
    # ---- layers
    Case("dense-units-zero", lambda: layers.Dense(units=0), E, ("units=0", "int >= 1")),
    Case("dense-units-float", lambda: layers.Dense(2.5), E, ("units=2.5", "int >= 1")),
    Case("dense-units-string", lambda: layers.Dense("10"), E, ("units='10'", "int >= 1")),
    Case("activation-unknown", lambda: layers.Dense(3, activation="relu6"), E,
         ("activation", "'relu6'", "'relu'", "'softmax'")),
    Case("activation-layer-unknown", lambda: layers.Activation("gelu"), E,
         ("activation", "'gelu'", "'tanh'")),
    Case("initializer-unknown", lambda: layers.Dense(3, kernel_initializer="glorot"), E,
         ("initializer", "'glorot'", "glorot_uniform", "he_normal")),
    Case("regularizer-unknown", lambda: layers.Dense(3, kernel_regularizer="l3"), E,
         ("regularizer", "'l3'", "'l1'", "'l2'", "'l1_l2'")),
    Case("input-dim-zero", lambda: layers.Dense(3, input_dim=0), E,
         ("input_dim=0", "positive integers")),
    Case("input-dim-and-shape", lambda: layers.Dense(3, input_dim=4, input_shape=(4,)), E,
         ("input_dim=4", "input_shape=(4,)", "not both")),
    Case("dropout-rate-above-1", lambda: layers.Dropout(rate=1.5), E, ("rate=1.5", "[0, 1)")),
    Case("dropout-rate-one", lambda: layers.Dropout(1), E, ("rate=1", "[0, 1)")),
    Case("dropout-seed-negative", lambda: layers.Dropout(0.5, seed=-1), E,
         ("seed=-1", "non-negative int or None")),
    Case("batchnorm-momentum-2", lambda: layers.BatchNormalization(momentum=2), E,
         ("momentum=2", "[0, 1]")),
    Case("batchnorm-epsilon-zero", lambda: layers.BatchNormalization(epsilon=0), E,
         ("epsilon=0", "> 0")),
    # ---- optimizers, regularizers, initializers
    Case("learning-rate-negative", lambda: optimizers.SGD(learning_rate=-0.1), E,
         ("learning_rate=-0.1", "> 0")),
    Case("learning-rate-nan", lambda: optimizers.Adam(learning_rate=float("nan")), E,
         ("learning_rate=nan", "finite number")),
    Case("learning-rate-zero", lambda: optimizers.RMSprop(learning_rate=0), E,
         ("learning_rate=0", "> 0")),
    Case("learning-rate-string", lambda: optimizers.SGD(learning_rate="0.1"), E,
         ("learning_rate='0.1'", "finite number")),
    Case("sgd-momentum-above-1", lambda: optimizers.SGD(momentum=1.5), E,
         ("momentum=1.5", "[0.0, 1.0]")),
    Case("adam-beta-1-one", lambda: optimizers.Adam(beta_1=1.0), E, ("beta_1=1.0", "[0.0, 1.0)")),
    Case("rmsprop-rho-negative", lambda: optimizers.RMSprop(rho=-0.1), E,
         ("rho=-0.1", "[0.0, 1.0)")),
    Case("rmsprop-momentum-above-1", lambda: optimizers.RMSprop(momentum=1.5), E,
         ("momentum=1.5", "[0.0, 1.0]")),
    Case("rmsprop-centered-string", lambda: optimizers.RMSprop(centered="yes"), T,
         ("centered='yes'", "True or False")),
    Case("adam-amsgrad-string", lambda: optimizers.AdamW(amsgrad="true"), T,
         ("amsgrad='true'", "True or False")),
    Case("regularizer-negative", lambda: regularizers.L2(-0.01), E, ("l2=-0.01", ">= 0")),
    Case("regularizer-string", lambda: regularizers.L1L2(l1="a"), E,
         ("l1='a'", "finite number >= 0")),
    Case("uniform-bounds-reversed", lambda: initializers.RandomUniform(1.0, -1.0), E,
         ("minval=1.0", "maxval=-1.0", "minval < maxval")),
    Case("uniform-bound-string", lambda: initializers.RandomUniform(minval="a"), E,
         ("minval='a'", "finite number")),
    Case("normal-stddev-zero", lambda: initializers.RandomNormal(stddev=0), E,
         ("stddev=0", "> 0")),
    Case("variance-scaling-negative", lambda: initializers.VarianceScaling(-1, "fan_in", "uniform"),
         E, ("scale=-1", "> 0")),
    Case("variance-scaling-mode", lambda: initializers.VarianceScaling(1, "fan", "uniform"), E,
         ("mode='fan'", "fan_in, fan_out or fan_avg")),
    # ---- weights
    Case("set-weights-count", lambda: _set_weights(lambda w: w[:3]), E,
         ("set_weights", "4 arrays", "received 3")),
    Case("set-weights-shape", lambda: _set_weights(lambda w: [w[0].T, *w[1:]]), E,
         ("dense/kernel", "(4, 8)", "(8, 4)")),
    Case("set-weights-strings", lambda: _set_weights(lambda w: [np.full((4, 8), "a"), *w[1:]]), T,
         ("dense/kernel", "dtype <U1", "numbers")),
    Case("set-weights-not-a-list", lambda: _set_weights(lambda w: 3), T,
         ("set_weights", "3", "list of arrays")),
    # ---- callbacks
    Case("early-stopping-patience-negative", lambda: callbacks.EarlyStopping(patience=-1), E,
         ("patience=-1", "int >= 0")),
    Case("early-stopping-monitor-empty", lambda: callbacks.EarlyStopping(monitor=""), E,
         ("monitor=''", "log key")),
    Case("early-stopping-monitor-none", lambda: callbacks.EarlyStopping(monitor=None), E,
         ("monitor=None", "log key")),
    Case("early-stopping-mode", lambda: callbacks.EarlyStopping(mode="up"), E,
         ("mode='up'", "'auto', 'min', 'max'")),
    Case("reduce-lr-factor-above-1", lambda: callbacks.ReduceLROnPlateau(factor=1.5), E,
         ("factor=1.5", "< 1.0")),
    Case("checkpoint-not-npz", lambda: callbacks.ModelCheckpoint("model.h5"), E,
         ("filepath='model.h5'", ".npz")),
    Case("scheduler-not-callable", lambda: callbacks.LearningRateScheduler(0.1), E,
         ("schedule=0.1", "a function (epoch, lr) -> lr")),
    # ---- backends
    Case("backend-unknown", lambda: fastnn.set_backend("tensorflow"), E,
         ("backend", "'tensorflow'", "numpy, numba, cupy, auto")),
    Case("backend-not-a-string", lambda: fastnn.use_backend(3).__enter__(), T,
         ("backend", "3", "numpy, numba, cupy, auto")),
    Case("backend-env-unknown", _with_env("FASTNN_BACKEND", "jax", fastnn.get_backend), E,
         ("FASTNN_BACKEND='jax'", "numpy, numba, cupy, auto")),
    Case("threads-zero", lambda: fastnn.set_threads(0), E,
         ("threads=0", "'auto', 'system' or a positive integer")),
    Case("threads-env-unknown", _with_env("FASTNN_THREADS", "max", threads.resolve_threads), E,
         ("FASTNN_THREADS='max'", "'auto', 'system' or a positive integer")),
    Case("sparse-inputs-bad", lambda: _built().predict(np.ones((2, 4)), sparse_inputs="yes"), E,
         ("sparse_inputs='yes'", "'auto', True or False")),
    Case("sparse-env-unknown", _with_env("FASTNN_SPARSE", "1", sparse.resolve_sparse), E,
         ("FASTNN_SPARSE='1'", "'auto', 'on' or 'off'")),
    Case("replay-env-unknown", _with_env("FASTNN_STEP_REPLAY", "maybe", replay.replay_wanted),
         E, ("FASTNN_STEP_REPLAY='maybe'", "1 (on) or 0 (off)")),
    # ---- files, data, recipes
    Case("trainable-changed", _freeze_after_training, E,
         ("trains 2 weights but this optimizer has state for 4", "compile")),
    Case("two-clipping-options", lambda: fastnn.optimizers.Adam(clipnorm=1.0, clipvalue=0.5),
         E, ("only one of clipnorm, clipvalue and global_clipnorm", "clipvalue=0.5")),
    Case("keras-file-lambda", lambda: _load_fixture("lambda.keras"), E,
         ("holds the layer 'Lambda'", "fastnn cannot read it")),
    Case("export-format", lambda: _built().export("m.savedmodel", format="tf_saved_model"), E,
         ('format must be "onnx"', "format='tf_saved_model'")),
    Case("save-not-npz", lambda: _built().save("model.h5"), E, ("path='model.h5'", ".npz")),
    Case("save-weights-not-weights-npz", lambda: _built().save_weights("w.npz"), E,
         ("path='w.npz'", ".weights.npz")),
    Case("load-model-missing", lambda: fastnn.load_model("model.h5"), FileNotFoundError,
         ("'model.h5'", "No such file")),
    Case("load-data-timeout-zero", lambda: mnist.load_data(timeout=0), E,
         ("timeout=0", "positive number")),
    Case("load-data-path-is-npz", lambda: mnist.load_data("mnist.npz"), E,
         ("path='mnist.npz'", "folder")),
    Case("load-data-mirrors-string", lambda: mnist.load_data(mirrors="http://x/"), T,
         ("mirrors='http://x/'", "sequence of URLs")),
    Case("recipe-unknown", lambda: recipes.get("resnet"), E,
         ("recipe", "'resnet'", "keras, scratch, deep")),
    Case("recipe-epochs-negative", lambda: recipes.run("keras", epochs=-1), E,
         ("epochs=-1", "int >= 0")),
    Case("recipe-batch-size-zero", lambda: recipes.run("keras", batch_size=0), E,
         ("batch_size=0", "int >= 1")),
    # ---- metrics, ops, plots
    Case("metrics-lengths-differ", lambda: metrics.accuracy([0, 1], [0]), E,
         ("y_true and y_pred", "2 and 1")),
    Case("metrics-average-unknown", lambda: metrics.f1([0, 1], [0, 1], average="avg"), E,
         ("average='avg'", "'macro'", "'weighted'")),
    Case("metrics-fractional-label", lambda: metrics.precision([0.5, 1], [0, 1]), E,
         ("y_true[0]=0.5", "whole numbers")),
    Case("metrics-num-classes-zero", lambda: metrics.confusion_matrix([0], [0], num_classes=0), E,
         ("num_classes=0", "int >= 1")),
    Case("ops-matmul-shapes", lambda: ops.matmul(np.ones((2, 3)), np.ones((4, 5))), E,
         ("(2, 3)", "(4, 5)", "(M, K) and (K, N)")),
    Case("ops-relu-strings", lambda: ops.relu(["a"]), T, ("x", "dtype <U1", "numbers")),
    Case("plot-digits-count-zero",
         lambda: plots.plot_digits(np.ones((2, 4)), [0, 1], [0, 1], "d.png", count=0), E,
         ("count=0", "int >= 1")),
    Case("plot-digits-strings",
         lambda: plots.plot_digits(np.full((2, 4), "a"), [0, 1], [0, 1], "d.png"), T,
         ("images", "dtype <U1", "numbers")),
    # ---- the command
    Case("cli-epochs-zero", lambda: _cli("train", "--epochs", "0"), S,
         ("--epochs", "'0'", "int >= 1")),
    Case("cli-epochs-not-a-number", lambda: _cli("train", "--epochs", "five"), S,
         ("--epochs", "'five'", "int >= 1")),
    Case("cli-data-missing", lambda: _cli("train", "--data", "/no/such/dir"), S,
         ("--data", "'/no/such/dir'", "existing folder")),
    Case("cli-batch-size-zero", lambda: _cli("train", "--batch-size", "0"), S,
         ("--batch-size", "'0'", "int >= 1")),
    Case("cli-seed-negative", lambda: _cli("train", "--seed", "-1"), S,
         ("--seed", "'-1'", "int >= 0")),
    Case("cli-recipe-unknown", lambda: _cli("train", "--recipe", "nope"), S,
         ("--recipe", "'nope'", "keras", "scratch")),
    Case("cli-backend-unknown", lambda: _cli("train", "--backend", "nope"), S,
         ("--backend", "'nope'", "numpy", "numba", "cupy", "auto")),
    Case("cli-dtype-unknown", lambda: _cli("train", "--dtype", "float16"), S,
         ("--dtype", "'float16'", "float32", "float64")),
    Case("cli-bench-rounds-zero", lambda: _cli("bench", "--rounds", "0"), S,
         ("--rounds", "'0'", "int >= 1")),
    Case("cli-bench-ops-unknown", lambda: _cli("bench", "--ops", "conv"), S,
         ("--ops", "'conv'", "relu")),
]
# fmt: on


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_wrong_argument_is_named_in_one_line(case: Case) -> None:
    message = _message(case)
    assert "\n" not in message
    assert len(message) < MAX_MESSAGE, message
    missing = [fragment for fragment in case.fragments if fragment not in message]
    assert not missing, f"{message!r} does not mention {missing}"


def _troubleshooting_rows() -> list[tuple[str, str]]:
    """(case id, row) of each row of the Troubleshooting page's tables marked with an id."""
    rows = []
    for line in TROUBLESHOOTING.read_text(encoding="utf-8").splitlines():
        marked = re.match(r"\|\s*<!--\s*([\w-]+)\s*-->", line)
        if marked:
            rows.append((marked.group(1), line.replace("\\|", "|")))
    return rows


def test_the_troubleshooting_page_quotes_the_real_messages() -> None:
    by_id = {case.id: case for case in CASES}
    rows = _troubleshooting_rows()
    assert len(rows) >= 20, "the Troubleshooting tables lost their case markers"
    unknown = [case_id for case_id, _ in rows if case_id not in by_id]
    assert not unknown, f"Troubleshooting rows name cases the table lacks: {unknown}"
    stale = [
        (case_id, message)
        for case_id, row in rows
        if (message := _message(by_id[case_id])) not in row
    ]
    assert not stale, f"Troubleshooting rows that no longer quote the real message: {stale}"
