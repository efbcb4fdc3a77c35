"""Reading MNIST from CSV: a label column then 784 pixel columns (Kaggle's ``train.csv`` layout)."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

PIXELS = 28 * 28
COLUMNS = 1 + PIXELS
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_LABEL_MAX = int(np.iinfo(np.int32).max)  # the parser reads into int32 to halve its memory


def load_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(x, y)`` from a CSV of one label and 784 pixels per row, with or without a header.

    ``x`` is uint8 of shape (n, 784) and ``y`` int64 of shape (n,). The first row is taken as a
    header when its first field, or most of its fields, are not numbers. Any bad row raises a
    ValueError naming the file and its 1-based line number.
    """
    file = Path(path)
    header_line = _header_line(file)
    try:
        # NumPy's C parser does the bulk of the work; a Python scan only runs to explain a failure.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            table = np.loadtxt(
                file,
                delimiter=",",
                dtype=np.int32,
                skiprows=header_line or 0,
                comments=None,
                ndmin=2,
                encoding="utf-8-sig",
            )
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValueError(_first_problem(file, header_line) or f"{file}: {exc}") from exc
    if table.size == 0:
        raise ValueError(
            f"{file}: no data rows; expected a label and {PIXELS} pixel columns per row"
        )
    labels, pixels = table[:, 0], table[:, 1:]
    if table.shape[1] != COLUMNS or labels.min() < 0 or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(_first_problem(file, header_line) or f"{file}: invalid values")
    return pixels.astype(np.uint8), labels.astype(np.int64)


def _header_line(file: Path) -> int | None:
    """The 1-based line number of the header row, or None when the first row is data."""
    try:
        with open(file, encoding="utf-8-sig") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                fields = line.split(",")
                numeric = [_is_number(field) for field in fields]
                # A data row with one typo must still be reported, not silently skipped.
                if not numeric[0] or sum(numeric) * 2 < len(fields):
                    return number
                return None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    raise ValueError(f"{file}: the file is empty; expected a label and {PIXELS} pixel columns")


def _is_number(field: str) -> bool:
    """Whether ``field`` reads as a number (integer or not)."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def _first_problem(file: Path, header_line: int | None) -> str | None:
    """Describe the first bad row of ``file`` with its line number; None if none is found."""
    try:
        with open(file, encoding="utf-8-sig") as stream:
            for number, line in enumerate(stream, start=1):
                if number == header_line or not line.strip():
                    continue
                problem = _row_problem(line)
                if problem:
                    return f"{file}, line {number}: {problem}"
    except UnicodeDecodeError as exc:
        return f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})"
    return None


def _row_problem(line: str) -> str | None:
    """What is wrong with one data row, or None."""
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != COLUMNS:
        return f"expected {COLUMNS} columns (a label and {PIXELS} pixels), found {len(fields)}"
    for column, field in enumerate(fields, start=1):
        if not _INTEGER.fullmatch(field):
            return f"column {column}: {field.strip()!r} is not an integer"
        value = int(field)
        if column == 1 and value < 0:
            return f"the label must be a non-negative integer; found {value}"
        if column == 1 and value > _LABEL_MAX:
            return f"the label {value} is too large (at most {_LABEL_MAX})"
        if column > 1 and not 0 <= value <= 255:
            return f"column {column}: pixel value {value} is outside 0..255"
    return None
