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
    with pytest.raises(ValueError, match=r"end in \.npz or \.keras; received path='.*model\.h5'"):
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


# ------------------------------------------------------------ damaged and crafted files
def _parts(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """A saved model's arrays and its decoded metadata."""
    with np.load(path) as archive:
        files = {key: archive[key] for key in archive.files}
    return files, json.loads(str(files[METADATA_KEY]))


def _write(path: Path, files: dict[str, np.ndarray], metadata: object) -> Path:
    np.savez(path, **{**files, METADATA_KEY: np.array(json.dumps(metadata))})
    return path


def test_every_truncation_is_refused(tmp_path: Path) -> None:
    model, _, _ = _trained()
    whole = tmp_path / "m.npz"
    model.save(str(whole))
    data = whole.read_bytes()
    cuts = sorted({*range(0, len(data), 97), *range(len(data) - 200, len(data))})
    cut_file = tmp_path / "cut.npz"
    for cut in cuts:  # ~250 prefixes: every header, entry and the central directory
        cut_file.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cut\.npz is not a readable fastnn model file"):
            fastnn.load_model(cut_file)


def test_flipped_bytes_are_refused_or_harmless(tmp_path: Path) -> None:
    """The zip's CRC guards the arrays: a flipped byte either fails to load or sits in a
    field nobody reads (a timestamp), in which case the weights are unchanged."""
    model, _, _ = _trained()
    whole = tmp_path / "m.npz"
    model.save(str(whole))
    data = whole.read_bytes()
    expected = model.get_weights()
    damaged = tmp_path / "damaged.npz"
    rng = np.random.default_rng(0)
    for position in rng.choice(len(data), size=150, replace=False):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        try:
            loaded = fastnn.load_model(damaged)
        except ValueError as error:
            assert "damaged.npz" in str(error)
            continue
        for got, want in zip(loaded.get_weights(), expected, strict=True):
            np.testing.assert_array_equal(got, want)


CRAFTED_METADATA = [
    ("not an object", [1, 2, 3], "no valid format_version"),
    ("version as text", {"format_version": "1"}, "no valid format_version"),
    ("version zero", {"format_version": 0}, "no valid format_version"),
    ("no model", {"format_version": 1}, "cannot rebuild: KeyError('model')"),
    ("layers not a list", {"model": {"layers": 5}}, "cannot rebuild"),
    ("unknown layer", {"model": {"layers": [{"class_name": "Lambda", "config": {}}]}},
     "unknown layer class in saved model: 'Lambda'"),
    ("bad layer argument",
     {"model": {"layers": [{"class_name": "Dense", "config": {"units": -3}}]}}, "units"),
    ("unexpected argument", {"model": {"layers": [{"class_name": "Dense", "config": {"f": 1}}]}},
     "cannot rebuild: TypeError"),
    ("bad input shape", {"model": {"input_shape": [-5]}}, "cannot rebuild"),
    ("unknown optimizer", {"compile": {"optimizer": {"class_name": "os.system"}}},
     "unknown optimizer class in saved model: 'os.system'"),
    ("bad iterations", {"compile": {"iterations": "many"}},
     "iterations must be an int >= 0; received iterations='many'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "phrase"),
    [case[1:] for case in CRAFTED_METADATA],
    ids=[case[0] for case in CRAFTED_METADATA],
)
def test_crafted_metadata_is_refused(tmp_path: Path, change: object, phrase: str) -> None:
    model, _, _ = _trained()
    model.save(str(tmp_path / "m.npz"))
    files, metadata = _parts(tmp_path / "m.npz")
    if isinstance(change, dict) and "format_version" not in change:
        for key, value in change.items():  # merge one level deep into the real description
            base = metadata.get(key)
            metadata[key] = {**base, **value} if isinstance(base, dict) else value
        crafted = metadata
    else:
        crafted = change
    path = _write(tmp_path / "crafted.npz", files, crafted)
    with pytest.raises(ValueError, match=r"crafted\.npz") as caught:
        fastnn.load_model(path)
    assert phrase in str(caught.value)


def test_damaged_weight_arrays_are_refused(tmp_path: Path) -> None:
    model, _, _ = _trained()
    model.save(str(tmp_path / "m.npz"))
    files, metadata = _parts(tmp_path / "m.npz")
    cases = {
        "nan": {**files, "weight_001": np.full_like(files["weight_001"], np.nan)},
        "text": {**files, "weight_001": np.array(["a"] * len(files["weight_001"]))},
        "shape": {**files, "weight_000": files["weight_000"][:-1]},
        "missing": {k: v for k, v in files.items() if k != "weight_002"},
        "slot shape": {**files, "optimizer_000": files["optimizer_000"][:, :1]},
    }
    phrases = {
        "nan": "weight_001 holds NaN or infinite values",
        "text": "weight_001 holds <U1 values; weights are floats",
        "shape": "weight dense/kernel has shape (5, 8); received shape (4, 8)",
        "missing": "gap in its numbered weight_NNN arrays",
        "slot shape": "optimizer state for parameter 0 does not match its shape",
    }
    for name, arrays in cases.items():
        path = _write(tmp_path / f"{name.replace(' ', '_')}.npz", arrays, metadata)
        with pytest.raises(ValueError) as caught:
            fastnn.load_model(path)
        assert phrases[name] in str(caught.value), name


def test_pickled_payload_is_never_executed(tmp_path: Path) -> None:
    """An entry whose unpickling would create a file: loading must refuse without running it."""
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[()]]:
            return (marker.touch, ())

    model, _, _ = _trained()
    model.save(str(tmp_path / "m.npz"))
    files, metadata = _parts(tmp_path / "m.npz")
    for entry in ("weight_000", "evil"):  # in place of a weight, and as an extra entry
        path = tmp_path / f"{entry}.npz"
        _write(path, {k: v for k, v in files.items() if k != entry}, metadata)
        with zipfile.ZipFile(path, "a") as archive, archive.open(f"{entry}.npy", "w") as out:
            np.save(out, np.array([Payload()], dtype=object), allow_pickle=True)
        with pytest.raises(ValueError, match=r"not a (readable )?fastnn model file"):
            fastnn.load_model(path)
        assert not marker.exists()
    # the payload is live: a careless reader would have run it
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as archive:
        archive["evil"]
    assert marker.exists()


def test_big_endian_file_from_another_machine_loads(tmp_path: Path) -> None:
    model, x, _ = _trained()
    model.save(str(tmp_path / "m.npz"))
    files, metadata = _parts(tmp_path / "m.npz")
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) if k != METADATA_KEY else v
               for k, v in files.items()}  # fmt: skip
    loaded = fastnn.load_model(_write(tmp_path / "big.npz", swapped, metadata))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ------------------------------------------------------------ weights files
def test_save_and_load_weights(tmp_path: Path, backend_name: str) -> None:
    model, x, _ = _trained()
    model.save_weights(str(tmp_path / "w.weights.npz"))
    model.save(str(tmp_path / "m.npz"))
    for source in ("w.weights.npz", "m.npz"):  # a whole-model file serves too, as in Keras
        other, _, _ = _trained(seed=5)
        other.load_weights(str(tmp_path / source))
        np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match=r"end in \.weights\.npz; received path='.*w\.npz'"):
        model.save_weights(str(tmp_path / "w.npz"))


def test_load_weights_from_another_architecture_changes_nothing(tmp_path: Path) -> None:
    model, _, _ = _trained()
    model.save_weights(str(tmp_path / "small.weights.npz"))
    wider = fastnn.Sequential(
        [layers.Dense(16, activation="tanh", input_dim=5), layers.Dense(3, activation="softmax")]
    )
    before = wider.get_weights()
    with pytest.raises(ValueError) as caught:
        wider.load_weights(str(tmp_path / "small.weights.npz"))
    assert str(caught.value).endswith(
        "small.weights.npz holds weights for another architecture: 4 array(s) of shapes "
        "(5, 8), (8,), (8, 3), (3,); this model has 4: (5, 16), (16,), (16, 3), (3,)"
    )
    for got, want in zip(wider.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
    unbuilt = fastnn.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="load_weights needs a built model"):
        unbuilt.load_weights(str(tmp_path / "small.weights.npz"))


def _every_kind_of_saved_file(model: fastnn.Sequential, x: np.ndarray, y: np.ndarray,
                              folder: Path) -> list[Path]:  # fmt: skip
    """Each file a user can save: a model, its weights, a .keras archive (with h5py), an
    ONNX graph (with onnx), and ModelCheckpoint's."""
    import importlib.util

    model.save(str(folder / "m.npz"))
    model.save_weights(str(folder / "w.weights.npz"))
    files = [folder / "m.npz", folder / "w.weights.npz"]
    if importlib.util.find_spec("h5py") is not None:
        model.save(str(folder / "m.keras"))
        files.append(folder / "m.keras")
    if importlib.util.find_spec("onnx") is not None:
        model.export(str(folder / "m.onnx"))
        files.append(folder / "m.onnx")
    checkpoint = fastnn.callbacks.ModelCheckpoint(str(folder / "best.npz"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[checkpoint])
    return [*files, folder / "best.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_any_new_file_gets(tmp_path: Path, umask: int) -> None:
    """A saved file is written under a private temporary name and renamed: it must still
    come out as a file the user's umask makes (0644 under 022), not 0600."""
    import os
    import stat

    model, x, y = _trained()
    previous = os.umask(umask)
    try:
        files = _every_kind_of_saved_file(model, x, y, tmp_path)
        (tmp_path / "plain.txt").write_text("a file made the ordinary way")
    finally:
        os.umask(previous)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~umask
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {
        f.name: oct(want) for f in files
    }


def test_an_overwrite_keeps_the_files_mode(tmp_path: Path) -> None:
    import stat

    model, x, y = _trained()
    files = _every_kind_of_saved_file(model, x, y, tmp_path)
    for f in files:
        f.chmod(0o640)
    _every_kind_of_saved_file(model, x, y, tmp_path)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o640}
