"""save / load_model: round trips, atomic writes, refusal of files that are not ours."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import layers, optimizers
from fastnn.saving import METADATA_KEY


def _trained(seed: int = 0) -> tuple[fastnn.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model = fastnn.Sequential(
        [layers.Dense(8, activation="tanh"), layers.Dense(3, activation="softmax")], seed=seed
    )
    model.compile(
        optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["acc"]
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=seed)
    return model, x, y


def test_round_trip_predictions_and_training_resume(tmp_path: Path, backend_name: str) -> None:
    model, x, y = _trained()
    path = tmp_path / "model.npz"
    model.save(str(path))
    loaded = fastnn.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [layers.Dense, layers.Dense]
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    assert isinstance(loaded.optimizer, optimizers.Adam)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8  # type: ignore[union-attr]
    # optimizer state came along: one more epoch gives identical weights in both
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=9)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_file_is_plain_arrays(tmp_path: Path) -> None:
    model, _, _ = _trained()
    path = tmp_path / "m.npz"
    model.save(str(path))
    with np.load(path, allow_pickle=False) as archive:  # readable without pickle
        metadata = json.loads(str(archive[METADATA_KEY]))
        assert sorted(k for k in archive.files if k.startswith("weight_")) == [
            "weight_000", "weight_001", "weight_002", "weight_003"
        ]  # fmt: skip
    assert metadata["format_version"] == 1
    assert metadata["compile"]["loss"]["class_name"] == "SparseCategoricalCrossentropy"


def test_unbuilt_and_uncompiled_models(tmp_path: Path) -> None:
    model = fastnn.Sequential([layers.Dense(3, activation="relu"), layers.Dense(2)])
    model.save(str(tmp_path / "empty.npz"))
    loaded = fastnn.load_model(tmp_path / "empty.npz")
    assert not loaded.built and loaded.optimizer is None
    assert [layer.name for layer in loaded.layers] == ["dense", "dense_1"]


def test_float64_model_keeps_its_dtype(tmp_path: Path) -> None:
    model = fastnn.Sequential([layers.Dense(2, input_dim=3)], dtype="float64")
    model.save(str(tmp_path / "m.npz"))
    assert fastnn.load_model(tmp_path / "m.npz").get_weights()[0].dtype == np.float64


def test_save_needs_npz_suffix(tmp_path: Path) -> None:
    model, _, _ = _trained()
    with pytest.raises(ValueError, match=r"end in \.npz; received path='.*model\.h5'"):
        model.save(str(tmp_path / "model.h5"))


def test_interrupted_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _, _ = _trained()
    path = tmp_path / "model.npz"
    model.save(str(path))
    original = path.read_bytes()

    def broken_savez(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as if the user hit Ctrl-C mid-write

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        model.save(str(path))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temp file left


def test_refuses_files_that_are_not_fastnn_models(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fastnn.load_model(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load_model(other)
    with pytest.raises(FileNotFoundError):
        fastnn.load_model(tmp_path / "missing.npz")


def test_refuses_future_format_and_pickles(tmp_path: Path) -> None:
    model, _, _ = _trained()
    path = tmp_path / "m.npz"
    model.save(str(path))
    with np.load(path) as archive:
        files = {key: archive[key] for key in archive.files}
    metadata = json.loads(str(files[METADATA_KEY]))
    metadata["format_version"] = 99
    future = tmp_path / "future.npz"
    np.savez(future, **{**files, METADATA_KEY: np.array(json.dumps(metadata))})
    with pytest.raises(ValueError, match="format version 99; this fastnn reads versions up to 1"):
        fastnn.load_model(future)

    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as archive:  # an object array needs pickle to load
        with archive.open("weight_000.npy", "w") as entry:
            np.save(entry, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        with archive.open(f"{METADATA_KEY}.npy", "w") as entry:
            np.save(entry, files[METADATA_KEY])
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fastnn.load_model(pickled)
