"""Fuzzing the file readers: whatever the bytes, a reader returns a valid result or raises
ValueError naming the file, never another exception, a hang or a huge allocation.

Each target starts from a valid file and mutates it (flips, cuts, insertions,
overwrites), besides wholly random input. CI runs a brief pass; for a long one:

    FASTNN_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_loaders.py
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import layers
from fastnn.datasets import load_csv, read_idx
from fastnn.datasets.idx import parse_idx
from fastnn.saving import METADATA_KEY

EXAMPLES = int(os.environ.get("FASTNN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few random edits: the inputs most likely to get past the first checks."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, ord(","), ord("\n")]))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


VALID_IDX = _idx(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
VALID_LABELS = _idx(np.array([7, 2, 1, 0, 4], dtype=np.uint8))


def _check_idx_result(array: np.ndarray) -> None:
    assert array.dtype == np.uint8
    assert array.ndim >= 1


@FUZZ
@given(data=st.one_of(mutated(VALID_IDX), mutated(VALID_LABELS), st.binary(max_size=64)))
def test_parse_idx(data: bytes) -> None:
    try:
        _check_idx_result(parse_idx(data, name="fuzz.idx"))
    except ValueError as error:
        assert "fuzz.idx" in str(error)


@FUZZ
@given(
    data=st.one_of(
        mutated(gzip.compress(VALID_IDX)),  # damage to the compressed stream
        mutated(VALID_IDX).map(gzip.compress),  # a sound stream of a damaged IDX
        st.binary(max_size=64).map(lambda raw: b"\x1f\x8b" + raw),
    )
)
def test_read_gzipped_idx(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.idx.gz"
    path.write_bytes(data)
    try:
        _check_idx_result(read_idx(path))
    except ValueError as error:
        assert str(path) in str(error)


def _csv_row(label: int, value: int) -> str:
    return ",".join([str(label), *[str(value)] * 784])


VALID_CSV = ("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n").encode() + "\n".join(
    _csv_row(label, value) for label, value in [(3, 0), (9, 255), (0, 17)]
).encode()


@FUZZ
@given(
    data=st.one_of(
        mutated(VALID_CSV),
        st.text(alphabet="0123456789,-+. \r\nx\ufeff", max_size=80).map(str.encode),
    )
)
def test_load_csv(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        x, y = load_csv(path)
    except ValueError as error:
        assert str(path) in str(error)
        return
    assert x.dtype == np.uint8 and x.shape == (len(y), 784)
    assert y.dtype == np.int64 and (y >= 0).all()


def _model_file() -> bytes:
    """The bytes of a small trained model with optimizer state: every kind of entry."""
    model = fastnn.Sequential(
        [layers.Dense(4, activation="relu", input_dim=3), layers.Dense(2, activation="softmax")],
        seed=0,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    model.fit(x, np.arange(8) % 2, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        model.save(str(path))
        return path.read_bytes()


VALID_MODEL = _model_file()


@FUZZ
@given(data=mutated(VALID_MODEL))
def test_load_model_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    try:
        model = fastnn.load_model(path)
    except ValueError as error:
        assert str(path) in str(error)
        return
    assert all(np.isfinite(w).all() for w in model.get_weights())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@st.composite
def crafted_metadata(draw: st.DrawFn) -> object:
    """The real description with one value (at any depth) replaced, or a random document."""
    with np.load(io.BytesIO(VALID_MODEL)) as archive:
        metadata = json.loads(str(archive[METADATA_KEY]))
    if draw(st.booleans()):
        return draw(JSON)
    node = metadata
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, (dict, list)) or not child or draw(st.booleans()):
            node[key] = draw(JSON)
            return metadata
        node = child


@pytest.mark.filterwarnings("ignore::UserWarning")  # e.g. a crafted from_logits on a softmax
@FUZZ
@given(metadata=crafted_metadata())
def test_load_model_metadata(tmp_path: Path, metadata: object) -> None:
    with np.load(io.BytesIO(VALID_MODEL)) as archive:
        files = {key: archive[key] for key in archive.files}
    files[METADATA_KEY] = np.array(json.dumps(metadata))
    path = tmp_path / "fuzz.npz"
    np.savez(path, **files)
    try:
        model = fastnn.load_model(path)
    except ValueError as error:
        assert str(path) in str(error)
        return
    x = np.ones((2, *model.layers[0].sample_in), dtype=np.float32)  # type: ignore[misc]
    assert model.predict(x).shape[0] == 2
