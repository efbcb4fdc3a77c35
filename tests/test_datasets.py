"""Tests of fastnn.datasets: IDX and CSV reading, the MNIST loader and its downloads, helpers."""

from __future__ import annotations

import gzip
import http.server
import os
import re
import shutil
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn.datasets import (
    DatasetUnavailableError,
    flatten,
    load_csv,
    mnist,
    read_idx,
    scale_pixels,
    shuffle,
    train_validation_split,
)

# Captured at import, before any test's monkeypatch changes the environment.
REAL_DIR = os.environ.get("FASTNN_DATA_DIR", "")
SKIP_REASON = "FASTNN_DATA_DIR is unset: point it at a folder holding the four MNIST .gz files"

Serve = Callable[[Path], tuple[str, list[str]]]


# ----------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding of a uint8 array."""
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``gz``."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


def write_fake_mnist(folder: Path, n_train: int, n_test: int = 2, *, gz: bool = True) -> Path:
    """Four tiny valid MNIST files; pixel values encode the split so tests can tell them apart."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.full((n, 28, 28), n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz=gz)
    return folder


def free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recompress_with_change(data: bytes, offset: int) -> bytes:
    """Decompress, change one payload byte, compress again: a valid gzip of the wrong content."""
    payload = bytearray(gzip.decompress(data))
    payload[offset] ^= 0xFF
    return gzip.compress(bytes(payload), compresslevel=1)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test away from the user's real cache and data folder."""
    monkeypatch.delenv("FASTNN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def real_dir() -> Path:
    """The folder of the real MNIST files, or skip."""
    if not REAL_DIR:
        pytest.skip(SKIP_REASON)
    return Path(REAL_DIR)


@pytest.fixture(scope="module")
def real_mnist(
    real_dir: Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The real MNIST, loaded once through $FASTNN_DATA_DIR with downloads ruled out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTNN_DATA_DIR", str(real_dir))
        return mnist.load_data(mirrors=[])


@pytest.fixture(scope="module")
def mirror_root(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Served folders: good/ (real files), bad/ (corrupted train images, the rest missing)."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "good").mkdir()
    for name in mnist.FILES:
        shutil.copyfile(real_dir / f"{name}.gz", root / "good" / f"{name}.gz")
    (root / "bad").mkdir()
    images = (real_dir / f"{mnist.TRAIN_IMAGES}.gz").read_bytes()
    (root / "bad" / f"{mnist.TRAIN_IMAGES}.gz").write_bytes(recompress_with_change(images, 5000))
    # For the cheap failure cases: variants of the small train-labels file.
    labels = (real_dir / f"{mnist.TRAIN_LABELS}.gz").read_bytes()
    for case, content in {
        "corrupt": recompress_with_change(labels, 100),
        "html": b"<html><body>Not here</body></html>",
        "short": labels,
        "stall": labels,
    }.items():
        (root / case).mkdir()
        (root / case / f"{mnist.TRAIN_LABELS}.gz").write_bytes(content)
    (root / "missing").mkdir()
    return root


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start local HTTP servers of a folder; each returns its URL and the paths it was asked for.

    Paths under /short/ are answered with a Content-Length of the whole file but only half of it;
    under /stall/, half of it and then nothing for 3 seconds.
    """
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(root: Path) -> tuple[str, list[str]]:
        requests: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                requests.append(self.path)
                if self.path.startswith(("/short/", "/stall/")):
                    data = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    if self.path.startswith("/stall/"):
                        time.sleep(3)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def prepopulate(target: Path, real_dir: Path, skip: str) -> list[str]:
    """Copy every real file but ``skip`` into ``target``; return the names now there."""
    target.mkdir(parents=True, exist_ok=True)
    for name in mnist.FILES:
        if name != skip:
            shutil.copyfile(real_dir / f"{name}.gz", target / f"{name}.gz")
    return sorted(os.listdir(target))


# ----------------------------------------------------------------------------- real MNIST


def test_real_mnist_shapes_and_dtypes(real_mnist: tuple[tuple[np.ndarray, ...], ...]) -> None:
    (x_train, y_train), (x_test, y_test) = real_mnist
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}


def test_real_mnist_values(real_mnist: tuple[tuple[np.ndarray, ...], ...]) -> None:
    (x_train, y_train), (x_test, y_test) = real_mnist
    assert y_train.min() == 0 and y_train.max() == 9 and y_test.max() == 9
    counts = np.bincount(y_train, minlength=10)
    assert counts.shape == (10,) and counts.sum() == 60000 and counts.min() > 5000
    assert np.bincount(y_test, minlength=10).sum() == 10000
    assert x_train.max() == 255 and x_test.max() == 255 and x_train.min() == 0
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels


# ----------------------------------------------------------------------------- IDX


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_idx_round_trip(
    tmp_path_factory: pytest.TempPathFactory, shape: list[int], gz: bool, seed: int
) -> None:
    array = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    loaded = read_idx(write_idx(path, array, gz=gz))
    assert loaded.dtype == np.uint8 and loaded.shape == tuple(shape)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable


def test_idx_gzip_detected_by_magic_bytes(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def _gzip_flipped(data: bytes) -> bytes:
    raw = bytearray(gzip.compress(data))
    raw[len(raw) // 2] ^= 0xFF
    return bytes(raw)


_SMALL = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
IDX_CORRUPTIONS = {
    "empty": ("x.idx", b"", "empty"),
    "short magic": ("x.idx", b"\x00\x00", "truncated IDX header"),
    "bad magic": ("x.idx", b"\x12\x34" + idx_bytes(_SMALL)[2:], "two zero bytes"),
    "float type": ("x.idx", idx_bytes(_SMALL, type_code=0x0D), "unsupported IDX data type 0x0d"),
    "zero dims": ("x.idx", b"\x00\x00\x08\x00", "0 dimensions"),
    "short dims": ("x.idx", idx_bytes(_SMALL)[:9], "truncated IDX header"),
    "truncated data": ("x.idx", idx_bytes(_SMALL)[:-1], "truncated IDX data"),
    "trailing bytes": ("x.idx", idx_bytes(_SMALL) + b"\x00\x00", "2 unexpected trailing bytes"),
    "bad gzip stream": ("x.gz", _gzip_flipped(idx_bytes(_SMALL) * 50), "corrupted or truncated"),
    "cut gzip": ("x.gz", gzip.compress(idx_bytes(_SMALL))[:-12], "corrupted or truncated"),
    "gz suffix, not gzip": ("x.gz", idx_bytes(_SMALL), "corrupted or truncated gzip"),
    "gzip of truncated idx": ("x.gz", gzip.compress(idx_bytes(_SMALL)[:-3]), "truncated IDX"),
    "empty gzip file": ("x.gz", b"", "empty"),
}


@pytest.mark.parametrize("case", list(IDX_CORRUPTIONS))
def test_idx_refuses_corruption(tmp_path: Path, case: str) -> None:
    name, content, phrase = IDX_CORRUPTIONS[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(phrase)) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_bomb_is_not_decompressed_past_the_declared_size(tmp_path: Path) -> None:
    """A ~64 KB gzip that would expand to 64 MiB, and a header that declares ~2^64 bytes:
    both refused while holding only a few MiB."""
    labels = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10)
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(labels + bytes(64 << 20)))
    huge = tmp_path / "huge.gz"
    huge.write_bytes(gzip.compress(bytes([0, 0, 8, 2]) + b"\xff" * 8 + bytes(1000)))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="goes on past the 10 bytes its IDX header declares"):
            read_idx(bomb)
        with pytest.raises(ValueError, match="truncated IDX data"):
            read_idx(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert bomb.stat().st_size < 1 << 17
    assert peak < 8 << 20


def test_idx_wrong_kind_names_expected_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.arange(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected magic number 2051") as info:
        read_idx(path, ndim=3)
    assert "found 2049" in str(info.value) and str(path) in str(info.value)


# ----------------------------------------------------------------------------- local MNIST


def test_folder_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given_dir = write_fake_mnist(tmp_path / "given", 3)
    env_dir = write_fake_mnist(tmp_path / "env", 4)
    write_fake_mnist(tmp_path / "xdg-cache" / "fastnn" / "mnist", 5)
    write_fake_mnist(tmp_path / "home" / ".cache" / "fastnn" / "mnist", 6)
    monkeypatch.setenv("FASTNN_DATA_DIR", str(env_dir))

    def train_count(**kwargs: object) -> int:
        return len(mnist.load_data(mirrors=[], **kwargs)[0][0])  # type: ignore[arg-type]

    assert train_count(path=given_dir) == 3
    assert train_count() == 4
    monkeypatch.setenv("FASTNN_DATA_DIR", "")  # empty counts as unset
    assert train_count() == 5
    assert mnist.data_dir() == tmp_path / "xdg-cache" / "fastnn" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert train_count() == 6
    assert mnist.data_dir(given_dir) == given_dir


def test_local_files_plain_gzip_mixed(tmp_path: Path) -> None:
    folder = write_fake_mnist(tmp_path / "plain", 7, 3, gz=False)
    gz_labels = folder / f"{mnist.TEST_LABELS}.gz"
    write_idx(gz_labels, np.array([9, 8, 7], dtype=np.uint8), gz=True)
    (folder / mnist.TEST_LABELS).unlink()
    (x_train, y_train), (x_test, y_test) = mnist.load_data(folder, mirrors=[])
    assert x_train.shape == (7, 28, 28) and x_train.max() == 7
    assert y_train.tolist() == [0, 1, 2, 3, 4, 5, 6] and y_test.tolist() == [9, 8, 7]
    assert x_test.dtype == np.uint8 and x_test.shape == (3, 28, 28)


def test_local_count_mismatch_names_both_files(tmp_path: Path) -> None:
    folder = write_fake_mnist(tmp_path / "d", 4)
    labels = write_idx(folder / f"{mnist.TRAIN_LABELS}.gz", np.zeros(3, np.uint8), gz=True)
    with pytest.raises(ValueError, match="4 images") as info:
        mnist.load_data(folder, mirrors=[])
    assert str(labels) in str(info.value) and mnist.TRAIN_IMAGES in str(info.value)


def test_labels_file_in_place_of_images_is_refused(tmp_path: Path) -> None:
    folder = write_fake_mnist(tmp_path / "d", 4)
    images = write_idx(folder / f"{mnist.TRAIN_IMAGES}.gz", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(ValueError, match="expected magic number 2051") as info:
        mnist.load_data(folder, mirrors=[])
    assert str(images) in str(info.value)


def test_load_data_argument_errors(tmp_path: Path) -> None:
    folder = write_fake_mnist(tmp_path / "d", 2)
    with pytest.raises(TypeError, match="received mirrors='http://x/'"):
        mnist.load_data(folder, mirrors="http://x/")
    with pytest.raises(ValueError, match="received timeout=0"):
        mnist.load_data(folder, timeout=0)
    with pytest.raises(ValueError, match=r"path must be a folder.*mnist\.npz"):
        mnist.load_data("mnist.npz")


def test_missing_files_without_mirrors(tmp_path: Path) -> None:
    folder = write_fake_mnist(tmp_path / "d", 2)
    (folder / f"{mnist.TEST_LABELS}.gz").unlink()
    with pytest.raises(DatasetUnavailableError, match="no download mirrors") as info:
        mnist.load_data(folder, mirrors=[])
    assert f"missing: {mnist.TEST_LABELS}." in str(info.value)


# ----------------------------------------------------------------------------- downloads


def test_download_once_from_mirror(
    tmp_path: Path,
    serve: Serve,
    mirror_root: Path,
    real_mnist: tuple[tuple[np.ndarray, ...], ...],
) -> None:
    url, requests = serve(mirror_root)
    target = tmp_path / "new" / "mnist"
    (x_train, y_train), (x_test, y_test) = mnist.load_data(target, mirrors=[url + "good"])
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    np.testing.assert_array_equal(y_train, real_mnist[0][1])
    assert sorted(os.listdir(target)) == sorted(f"{name}.gz" for name in mnist.FILES)
    assert len(requests) == 4
    again = mnist.load_data(target, mirrors=[url + "good/"])
    assert len(requests) == 4  # everything came from the folder
    np.testing.assert_array_equal(again[1][0], x_test)


def test_corrupted_download_is_refused_and_leaves_nothing(
    tmp_path: Path, serve: Serve, mirror_root: Path
) -> None:
    url, _ = serve(mirror_root)
    target = tmp_path / "target"
    with pytest.raises(DatasetUnavailableError, match="checksum mismatch") as info:
        mnist.load_data(target, mirrors=[url + "bad/"])
    assert os.listdir(target) == []
    assert f"{url}bad/{mnist.TRAIN_IMAGES}.gz" in str(info.value)


def test_bad_first_mirror_falls_back_to_second(
    tmp_path: Path, serve: Serve, mirror_root: Path
) -> None:
    url, requests = serve(mirror_root)
    target = tmp_path / "target"
    (x_train, _), (x_test, _) = mnist.load_data(target, mirrors=[url + "bad/", url + "good/"])
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert sorted(os.listdir(target)) == sorted(f"{name}.gz" for name in mnist.FILES)
    # The corrupted file and the three missing ones were each asked of the bad mirror first.
    assert sum(path.startswith("/bad/") for path in requests) == 4
    assert sum(path.startswith("/good/") for path in requests) == 4


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("missing", "HTTP 404"),
        ("corrupt", "checksum mismatch"),
        ("html", "not a valid gzip file"),
        ("short", "cut short"),
    ],
)
def test_failed_mirror_reasons_and_no_partial_file(
    tmp_path: Path, serve: Serve, mirror_root: Path, real_dir: Path, case: str, phrase: str
) -> None:
    url, requests = serve(mirror_root)
    target = tmp_path / "target"
    before = prepopulate(target, real_dir, skip=mnist.TRAIN_LABELS)
    with pytest.raises(DatasetUnavailableError, match=re.escape(phrase)) as info:
        mnist.load_data(target, mirrors=[url + case])
    assert sorted(os.listdir(target)) == before  # no temporary or unverified file left
    assert requests == [f"/{case}/{mnist.TRAIN_LABELS}.gz"]
    assert f"missing: {mnist.TRAIN_LABELS}." in str(info.value)


def test_interrupted_download_leaves_no_file(
    tmp_path: Path,
    serve: Serve,
    mirror_root: Path,
    real_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = serve(mirror_root)
    target = tmp_path / "target"
    before = prepopulate(target, real_dir, skip=mnist.TEST_LABELS)

    def interrupt(file: Path, name: str) -> None:
        assert file.exists()  # the temporary file is there while verifying ...
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist, "_verify", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnist.load_data(target, mirrors=[url + "good/"])
    assert sorted(os.listdir(target)) == before  # ... and gone afterwards


def test_stalled_download_times_out_and_leaves_no_file(
    tmp_path: Path, serve: Serve, mirror_root: Path, real_dir: Path
) -> None:
    url, _ = serve(mirror_root)
    target = tmp_path / "target"
    before = prepopulate(target, real_dir, skip=mnist.TRAIN_LABELS)
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="timed out") as info:
        mnist.load_data(target, mirrors=[url + "stall/"], timeout=0.5)
    assert time.perf_counter() - started < 2.5  # the timeout, not the server, ended it
    assert f"missing: {mnist.TRAIN_LABELS}." in str(info.value)
    assert sorted(os.listdir(target)) == before


def test_unreachable_mirror_explains_how_to_supply_files(tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{free_port()}/mnist/"
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data(mirrors=[mirror], timeout=5)
    message = str(info.value)
    cache = tmp_path / "xdg-cache" / "fastnn" / "mnist"
    assert isinstance(info.value, OSError)
    assert str(cache) in message and "default cache folder" in message
    assert "FASTNN_DATA_DIR" in message and "path=" in message
    assert f"{mirror}{mnist.TRAIN_IMAGES}.gz" in message
    assert all(name in message for name in mnist.FILES)
    assert os.listdir(cache) == []


# ----------------------------------------------------------------------------- CSV


KAGGLE_HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def csv_rows(x: np.ndarray, y: np.ndarray) -> list[str]:
    """One CSV line per row: the label, then the pixels."""
    return [",".join(map(str, [label, *pixels])) for label, pixels in zip(y, x, strict=True)]


def sample(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("header", [False, True])
def test_csv_round_trip(tmp_path: Path, header: bool) -> None:
    x, y = sample()
    lines = ([KAGGLE_HEADER] if header else []) + csv_rows(x, y)
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    got_x, got_y = load_csv(path)
    assert got_x.dtype == np.uint8 and got_x.shape == (5, 784)
    assert got_y.dtype == np.int64 and got_y.shape == (5,)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_csv_crlf_bom_and_single_row(tmp_path: Path) -> None:
    x, y = sample(1)
    path = tmp_path / "one.csv"
    path.write_bytes(("\r\n".join(csv_rows(x, y)) + "\r\n").encode("utf-8-sig"))
    got_x, got_y = load_csv(path)
    assert got_x.shape == (1, 784) and got_y.tolist() == y.tolist()


def _with(row: str, column: int, value: str) -> str:
    fields = row.split(",")
    fields[column] = value
    return ",".join(fields)


@pytest.mark.parametrize(
    ("header", "bad_index", "change", "phrase"),
    [
        (True, 1, lambda r: r + ",0", "expected 785 columns"),
        (False, 2, lambda r: r.rsplit(",", 1)[0], "found 784"),
        (True, 0, lambda r: _with(r, 3, "1.5"), "column 4: '1.5' is not an integer"),
        (False, 0, lambda r: _with(r, 2, "x"), "column 3: 'x' is not an integer"),
        (False, 3, lambda r: _with(r, 5, ""), "'' is not an integer"),
        (True, 2, lambda r: _with(r, 10, "256"), "pixel value 256 is outside 0..255"),
        (False, 4, lambda r: _with(r, 1, "-1"), "pixel value -1 is outside 0..255"),
        (True, 4, lambda r: _with(r, 0, "-3"), "label must be a non-negative integer"),
    ],
)
def test_csv_errors_name_file_and_line(
    tmp_path: Path,
    header: bool,
    bad_index: int,
    change: Callable[[str], str],
    phrase: str,
) -> None:
    rows = csv_rows(*sample())
    rows[bad_index] = change(rows[bad_index])
    lines = ([KAGGLE_HEADER, ""] if header else []) + rows  # a blank line still counts
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    line = bad_index + 1 + (2 if header else 0)
    with pytest.raises(ValueError, match=re.escape(phrase)) as info:
        load_csv(path)
    assert f"{path}, line {line}:" in str(info.value)


@pytest.mark.parametrize(
    ("content", "phrase"), [("", "empty"), ("\n\n", "empty"), (KAGGLE_HEADER + "\n", "no data")]
)
def test_csv_without_data_rows(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=phrase) as info:
        load_csv(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- helpers


def test_flatten() -> None:
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    flat = flatten(x)
    assert flat.shape == (2, 12) and np.shares_memory(flat, x)
    assert flatten(np.zeros((0, 28, 28))).shape == (0, 784)
    for bad in (np.float64(1.0), np.arange(5)):
        with pytest.raises(ValueError, match=re.escape(f"received x with shape {bad.shape}")):
            flatten(bad)


def test_scale_pixels() -> None:
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    scaled = scale_pixels(x)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[0.0, 0.2, 1.0]], rtol=1e-6)
    assert scale_pixels(x, dtype="float64").dtype == np.float64
    assert x.tolist() == [[0, 51, 255]]  # input untouched
    with pytest.raises(TypeError, match="received x with dtype <U1"):
        scale_pixels(np.array(["a"]))
    with pytest.raises(ValueError, match="received dtype='int8'"):
        scale_pixels(x, dtype="int8")


def test_shuffle_keeps_pairs_and_is_seeded() -> None:
    y = np.arange(50)
    x = np.stack([y * 10, y * 10 + 1], axis=1)
    sx, sy = shuffle(x, y, seed=3)
    np.testing.assert_array_equal(sx[:, 0], sy * 10)
    assert sorted(sy.tolist()) == y.tolist() and sy.tolist() != y.tolist()
    np.testing.assert_array_equal(shuffle(x, y, seed=3)[1], sy)
    with pytest.raises(ValueError, match=re.escape("received len(x)=50, len(y)=49")):
        shuffle(x, y[:-1])


def test_split_takes_last_rows_like_keras() -> None:
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    (xt, yt), (xv, yv) = train_validation_split(x, y, 0.2)
    assert yt.tolist() == list(range(8)) and yv.tolist() == [8, 9]
    np.testing.assert_array_equal(xt, x[:8])
    np.testing.assert_array_equal(xv, x[8:])
    (_, yt), (_, yv) = train_validation_split(x, y, np.int64(3))
    assert yv.tolist() == [7, 8, 9] and len(yt) == 7


def test_split_with_shuffle() -> None:
    y = np.arange(30)
    x = y * 2
    (xt, yt), (xv, yv) = train_validation_split(x, y, 10, shuffle=True, seed=1)
    assert len(yv) == 10 and sorted([*yt, *yv]) == y.tolist()
    np.testing.assert_array_equal(np.concatenate([xt, xv]), np.concatenate([yt, yv]) * 2)
    assert yv.tolist() != list(range(20, 30))
    again = train_validation_split(x, y, 10, shuffle=True, seed=1)
    np.testing.assert_array_equal(again[1][1], yv)


@given(n=st.integers(2, 60), data=st.data())
def test_split_sizes_add_up(n: int, data: st.DataObject) -> None:
    count = data.draw(st.integers(1, n - 1))
    x, y = np.arange(n), np.arange(n)
    (xt, _), (xv, yv) = train_validation_split(x, y, count)
    assert len(xt) + len(xv) == n and len(xv) == count
    assert yv.tolist() == list(range(n - count, n))


@pytest.mark.parametrize("value", [1.5, 0, 0.0, 1.0, 10, -1, True, "0.2", None])
def test_split_refuses_bad_validation(value: object) -> None:
    x = y = np.arange(10)
    with pytest.raises(ValueError, match=re.escape(f"received validation={value!r}")) as info:
        train_validation_split(x, y, value)  # type: ignore[arg-type]
    assert "fraction in (0, 1) or a row count in [1, n) with n=10" in str(info.value)


def test_split_refuses_fraction_leaving_no_training_rows() -> None:
    x = y = np.arange(10)
    with pytest.raises(ValueError, match=re.escape("received validation=0.95")):
        train_validation_split(x, y, 0.95)
