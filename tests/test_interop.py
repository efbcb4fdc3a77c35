"""Models move between fastnn and Keras (``.keras`` archives, both ways) and out to ONNX
(onnxruntime runs the export): the same predictions, and the same training after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import layers

from .conftest import backend_params

pytest.importorskip("h5py")
FIXTURES = Path(__file__).parent / "golden" / "keras_files"
rng = np.random.default_rng(7)
X = rng.standard_normal((40, 6)).astype(np.float32)
Y = rng.integers(0, 3, 40)


def every_layer_model(
    optimizer: object = "rmsprop", dtype: str = "float32", dropout: bool = True
) -> fastnn.Sequential:
    """Every kind of layer fastnn has. ``dropout=False`` for runs that must train alike
    after a move: Dropout's masks come from a random stream the files do not carry."""
    model = fastnn.Sequential(
        [
            fastnn.Input(shape=(6,)),
            layers.Dense(8, "relu", kernel_regularizer=fastnn.regularizers.L2(0.01)),
            layers.BatchNormalization(),
            *([layers.Dropout(0.25)] if dropout else []),
            layers.Dense(5, use_bias=False),
            layers.Activation("tanh"),
            layers.Dense(3, "softmax"),
        ],
        seed=0,
        dtype=dtype,
    )
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",  # type: ignore[arg-type]
                  metrics=["accuracy"])  # fmt: skip
    return model


# ------------------------------------------------------- Keras's own files
@pytest.mark.parametrize("name", backend_params())
def test_a_file_keras_wrote_predicts_as_keras_did(name: str) -> None:
    want = np.load(FIXTURES / "trained.npz")
    with fastnn.use_backend(name):
        model = fastnn.load_model(FIXTURES / "trained.keras")
        got = model.predict(want["x"], verbose=0)
    np.testing.assert_allclose(got, want["predictions"], atol=1e-6)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense", "BatchNormalization", "Dropout", "Dense"
    ]  # fmt: skip
    assert model.metrics_names == ["loss", "sparse_categorical_accuracy"]
    assert isinstance(model.optimizer, fastnn.optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert model.optimizer.iterations == 8  # 2 epochs of 4 batches: its state came along
    assert model.layers[0].regularizers["kernel"].l2 == pytest.approx(0.01)  # type: ignore[attr-defined,union-attr]


@pytest.mark.parametrize(
    "fixture, named",
    [("lambda", "the layer 'Lambda'"), ("gelu", "the activation 'gelu'"),
     ("conv", "the layer 'Conv1D'")],
)  # fmt: skip
def test_what_fastnn_lacks_is_refused_by_name(fixture: str, named: str) -> None:
    path = FIXTURES / f"{fixture}.keras"
    with pytest.raises(ValueError, match=f"holds {named}") as error:
        fastnn.load_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_damaged_archive_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes((FIXTURES / "trained.keras").read_bytes()[:500])
    with pytest.raises(ValueError, match=r"broken\.keras is not a readable \.keras file"):
        fastnn.load_model(path)


# ------------------------------------------------------- fastnn's own files
#: optimizers whose state a .keras file carries, in Keras's layout of its variables
OPTIMIZERS: dict[str, Callable[[], object]] = {
    "rmsprop": lambda: "rmsprop",
    "adam": lambda: "adam",
    "sgd": lambda: "sgd",
    "rmsprop-momentum-centered": lambda: fastnn.optimizers.RMSprop(
        0.01, momentum=0.5, centered=True
    ),
    "rmsprop-momentum": lambda: fastnn.optimizers.RMSprop(0.01, momentum=0.5),
    "adam-amsgrad": lambda: fastnn.optimizers.Adam(0.01, amsgrad=True),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_keras_archive_round_trips_weights_and_training_state(
    optimizer: str, tmp_path: Path
) -> None:
    model = every_layer_model(OPTIMIZERS[optimizer](), dropout=False)
    model.fit(X, Y, epochs=2, batch_size=10, verbose=0, shuffle=False)
    model.save(tmp_path / "model.keras")
    loaded = fastnn.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert loaded.optimizer is not None and model.optimizer is not None
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    for trained in (model, loaded):  # one more epoch each: the optimizer state came along
        trained.fit(X, Y, epochs=1, batch_size=10, verbose=0, shuffle=False)
    for got, want in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_model_never_compiled_or_stepped_saves_too(tmp_path: Path) -> None:
    plain = fastnn.Sequential([layers.Dense(3, input_dim=4)])
    plain.save(tmp_path / "plain.keras")
    assert fastnn.load_model(tmp_path / "plain.keras").optimizer is None
    fresh = every_layer_model()
    fresh.save(tmp_path / "fresh.keras")
    assert fastnn.load_model(tmp_path / "fresh.keras").optimizer.iterations == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("optimizer", ["adam", "adam-amsgrad", "rmsprop-momentum-centered"])
def test_keras_reads_what_fastnn_wrote_and_trains_on(optimizer: str, tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    model = every_layer_model(OPTIMIZERS[optimizer](), dropout=False)
    model.fit(X, Y, epochs=2, batch_size=10, verbose=0, shuffle=False)
    model.save(tmp_path / "model.keras")
    theirs = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(theirs.predict(X, verbose=0), model.predict(X, verbose=0),
                               atol=1e-6)  # fmt: skip
    theirs.fit(X, Y, epochs=1, batch_size=10, verbose=0, shuffle=False)
    model.fit(X, Y, epochs=1, batch_size=10, verbose=0, shuffle=False)
    for got, want in zip(model.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


# --------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnxruntime_runs_the_export_with_the_same_predictions(dtype: str, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = every_layer_model(dtype=dtype)
    model.fit(X, Y, epochs=2, verbose=0)
    model.export(tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(tmp_path / "model.onnx")
    x = X.astype(dtype)
    (got,) = session.run(None, {"input": x})
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


def test_onnx_export_of_images_flattened_and_a_refused_format(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = fastnn.Sequential([layers.Flatten(input_shape=(2, 3)), layers.Dense(2, "sigmoid")])
    model.export(tmp_path / "flat.onnx", format="onnx")
    images = rng.standard_normal((4, 2, 3)).astype(np.float32)
    (got,) = onnxruntime.InferenceSession(tmp_path / "flat.onnx").run(None, {"input": images})
    np.testing.assert_allclose(got, model.predict(images, verbose=0), atol=1e-6)
    with pytest.raises(
        ValueError, match="format must be \"onnx\"; received format='tf_saved_model'"
    ):
        model.export(tmp_path / "m", format="tf_saved_model")
