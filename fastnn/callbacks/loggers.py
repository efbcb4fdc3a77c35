"""Callbacks that record or run code: CSVLogger and LambdaCallback, as Keras has them."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from fastnn.callbacks.base import Callback, Logs, _require


class CSVLogger(Callback):
    """Write each epoch's logs to a CSV file: a header ``epoch,<keys sorted>`` then a row
    per epoch (epochs 0-based, as Keras writes them); a key missing from a later epoch's
    logs (validation every other epoch) is written ``NA``. ``append=True`` adds to an
    existing file without a second header."""

    rank_zero_only = True

    def __init__(
        self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False
    ) -> None:
        super().__init__()
        _require(
            isinstance(filename, (str, os.PathLike)) and bool(str(filename)),
            "filename", "a file path", filename,
        )  # fmt: skip
        _require(isinstance(separator, str) and len(separator) == 1, "separator",
                 "one character", separator)  # fmt: skip
        self.filename = Path(filename)
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._header_due = True

    def on_train_begin(self, logs: Logs | None = None) -> None:
        header_written = self.append and self.filename.exists() and self.filename.stat().st_size
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self.keys = None
        self._header_due = not header_written

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        assert self._file is not None, "on_train_begin opens the file"
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if self._header_due:
                self._writer.writerow(["epoch", *self.keys])
        self._writer.writerow([epoch, *(logs.get(key, "NA") for key in self.keys)])
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


EpochHook = Callable[[int, Logs], Any]
TrainHook = Callable[[Logs], Any]


class LambdaCallback(Callback):
    """A callback from functions, Keras's arguments: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``.

    Only an ``on_train_batch_end`` makes ``fit`` read each step's loss back (a wait on
    the GPU)."""

    def __init__(
        self,
        on_epoch_begin: EpochHook | None = None,
        on_epoch_end: EpochHook | None = None,
        on_train_batch_begin: EpochHook | None = None,
        on_train_batch_end: EpochHook | None = None,
        on_train_begin: TrainHook | None = None,
        on_train_end: TrainHook | None = None,
    ) -> None:
        super().__init__()
        given = {
            "on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            "on_train_begin": on_train_begin, "on_train_end": on_train_end,
        }  # fmt: skip
        for name, function in given.items():
            _require(function is None or callable(function), name, "a function or None", function)
        self.functions = given

    def reads_batch_losses(self) -> bool:
        return self.functions["on_train_batch_end"] is not None

    def _call(self, name: str, *arguments: Any) -> None:
        function = self.functions[name]
        if function is not None:
            function(*arguments)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs or {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._call("on_epoch_end", epoch, logs or {})

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_train_batch_begin", batch, logs or {})

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._call("on_train_batch_end", batch, logs or {})

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._call("on_train_begin", logs or {})

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._call("on_train_end", logs or {})
