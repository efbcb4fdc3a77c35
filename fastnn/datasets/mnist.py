"""MNIST digits: read the four IDX files from a folder, downloading missing ones once."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastnn.datasets.idx import read_idx
from fastnn.files import mode_for

DATA_DIR_ENV_VAR = "FASTNN_DATA_DIR"

# Public copies of the original files, tried in order; each serves NAME.gz.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Digests of the uncompressed files: the gzip wrappers differ between mirrors, the content does not.
SHA256: dict[str, str] = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Uncompressed sizes, used to stop reading a runaway response or decompression early.
SIZES: dict[str, int] = {
    TRAIN_IMAGES: 16 + 60000 * 28 * 28,
    TRAIN_LABELS: 8 + 60000,
    TEST_IMAGES: 16 + 10000 * 28 * 28,
    TEST_LABELS: 8 + 10000,
}

_CHUNK = 1 << 20
_log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]


class DatasetUnavailableError(OSError):
    """A data set is neither on disk nor downloadable from any mirror.

    ``folder`` is where it was looked for, ``source`` which rule chose that folder
    ("argument", "env" or "cache"), ``missing`` the files it lacks, ``reason`` why the
    download failed. Its message tells a Python caller what to do; :meth:`explain` words
    it for another way of giving the folder (the command's ``--data DIR``).
    """

    def __init__(self, folder: Path, source: str, missing: list[str], reason: str) -> None:
        self.folder, self.source, self.missing, self.reason = folder, source, missing, reason
        super().__init__(self.explain())

    def explain(self, argument: str = "path=") -> str:
        """Where we looked, what lacked and how to fix it, naming ``argument`` as the way
        to give a folder."""
        chosen = {"argument": f"given as {argument}", "env": f"from ${DATA_DIR_ENV_VAR}",
                  "cache": "the default cache folder"}[self.source]  # fmt: skip
        give = "pass path= to load_data()" if argument == "path=" else f"give {argument}"
        return (
            f"MNIST is not available. Searched {self.folder} ({chosen}); missing: "
            f"{', '.join(self.missing)}. Downloading failed: {self.reason}\n"
            f"To use files you already have, {give} or set {DATA_DIR_ENV_VAR} to a folder "
            "holding the four MNIST IDX files, each gzip-compressed (NAME.gz) or plain "
            f"(NAME): {', '.join(FILES)}."
        )


class _BadDownload(Exception):
    """A mirror answered, but with something that is not the expected file."""


class _LocalWriteError(Exception):
    """The download folder cannot be written; trying other mirrors would not help."""


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder MNIST is read from: ``path``, else ``$FASTNN_DATA_DIR``, else the user cache."""
    return _resolve(path)[0]


def load_data(
    path: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> tuple[Split, Split]:
    """Return ``((x_train, y_train), (x_test, y_test))`` as uint8 arrays, like Keras.

    Each file is read from the folder as ``NAME.gz`` or plain ``NAME``. Missing files are fetched
    once from ``mirrors`` (default ``MIRRORS``), checked against their SHA-256 and stored as
    ``NAME.gz``; local files are trusted but checked for structure and matching counts.
    """
    if isinstance(mirrors, str | bytes):
        raise TypeError(
            f"mirrors must be a sequence of URLs, not one string; received mirrors={mirrors!r}"
        )
    mirror_list = list(MIRRORS if mirrors is None else mirrors)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(
            f"timeout must be a positive number of seconds; received timeout={timeout!r}"
        )
    folder, source = _resolve(path)
    missing = [name for name in FILES if _find(folder, name) is None]
    if missing:
        _fetch(folder, source, missing, mirror_list, float(timeout))
    found = {name: _find(folder, name) for name in FILES}
    files = {name: file for name, file in found.items() if file is not None}
    if len(files) != len(FILES):  # another process removed a file between download and read
        raise DatasetUnavailableError(
            folder,
            source,
            [n for n in FILES if n not in files],
            "a file disappeared from the folder while loading",
        )
    train = _read_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS])
    test = _read_pair(files[TEST_IMAGES], files[TEST_LABELS])
    return train, test


def _resolve(path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The folder and which rule chose it: "argument", "env" or "cache"."""
    if path is not None:
        folder = Path(path).expanduser()
        # Keras's `path` names an .npz file; say so rather than making a folder called mnist.npz.
        if folder.is_file() or folder.suffix == ".npz":
            raise ValueError(
                "path must be a folder holding the MNIST IDX files, not a file; "
                f"received path={os.fspath(path)!r}"
            )
        return folder, "argument"
    env = os.environ.get(DATA_DIR_ENV_VAR, "")
    if env:
        return Path(env).expanduser(), "env"
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "fastnn" / "mnist", "cache"


def _find(folder: Path, name: str) -> Path | None:
    """The file holding ``name`` in ``folder``, compressed or not, or None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(images_file: Path, labels_file: Path) -> Split:
    """Read an images file and its labels file, checking their kinds and that the counts agree."""
    images = read_idx(images_file, ndim=3)
    labels = read_idx(labels_file, ndim=1)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
            "labels; the two counts must agree"
        )
    return images, labels


def _fetch(
    folder: Path, source: str, missing: list[str], mirrors: list[str], timeout: float
) -> None:
    """Download each missing file into ``folder``; stop at the first one no mirror can supply."""
    if not mirrors:
        raise DatasetUnavailableError(
            folder, source, missing, "no download mirrors were given (mirrors=[])"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetUnavailableError(
            folder, source, missing, f"the folder could not be created: {exc}"
        ) from exc
    remaining = list(missing)
    for name in missing:
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            url = f"{url}{name}.gz"
            try:
                _download(url, folder, name, timeout)
            except _LocalWriteError as exc:
                raise DatasetUnavailableError(
                    folder, source, remaining, str(exc)
                ) from exc.__cause__
            except (_BadDownload, OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"  {url}: {_describe(exc)}")
                _log.info("MNIST mirror failed: %s: %s", url, _describe(exc))
                continue
            remaining.remove(name)
            break
        else:
            reason = f"no mirror could supply {name}.gz:\n" + "\n".join(failures)
            raise DatasetUnavailableError(folder, source, remaining, reason)


def _download(url: str, folder: Path, name: str, timeout: float) -> None:
    """Fetch one file to a temporary name, verify it, then move it to ``NAME.gz`` atomically."""
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as exc:  # a local problem: every mirror would fail the same way
        raise _LocalWriteError(f"cannot write into the folder: {exc}") from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _log.info("downloading %s", url)
            request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                received = 0
                # A gzip file is at most slightly larger than its content; more means a wrong file.
                limit = SIZES[name] + _CHUNK
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise _BadDownload(f"the response is larger than {limit} bytes")
                    out.write(chunk)
        if declared is not None and declared.isdigit() and received != int(declared):
            raise _BadDownload(f"the response was cut short: {received} of {declared} bytes")
        _verify(temp, name)
        os.chmod(temp, mode_for(folder / f"{name}.gz"))  # not mkstemp's private 0600
        os.replace(temp, folder / f"{name}.gz")
    finally:
        # Whatever happened (even Ctrl-C), never leave a partial or unverified file behind.
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _verify(file: Path, name: str) -> None:
    """Check that ``file`` is gzip whose content has the expected size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    try:
        with gzip.open(file, "rb") as unzipped:
            while chunk := unzipped.read(_CHUNK):
                size += len(chunk)
                if size > SIZES[name]:
                    raise _BadDownload(
                        f"checksum mismatch: the content is larger than the {SIZES[name]} bytes "
                        "expected"
                    )
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _BadDownload(f"not a valid gzip file ({type(exc).__name__}: {exc})") from exc
    if digest.hexdigest() != SHA256[name]:
        raise _BadDownload(
            f"checksum mismatch: the uncompressed content has SHA-256 {digest.hexdigest()}, "
            f"expected {SHA256[name]}"
        )


def _describe(exc: BaseException) -> str:
    """A one-line account of what a mirror answered."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, _BadDownload):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
