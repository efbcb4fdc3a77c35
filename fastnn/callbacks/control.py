"""Callbacks that steer training: LearningRateScheduler, TerminateOnNaN and
BackupAndRestore, with Keras's arguments and semantics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn.callbacks.base import Callback, Logs, _optimizer, _require
from fastnn.validation import check_int


class LearningRateScheduler(Callback):
    """At each epoch's start, set the learning rate to ``schedule(epoch, lr)``.

    ``epoch`` is 0-based and ``lr`` the optimizer's current rate; the schedule
    must return a finite number > 0.
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        _require(callable(schedule), "schedule", "a function (epoch, lr) -> lr", schedule)
        self.schedule = schedule
        self.verbose = check_int("verbose", verbose, 0)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = _optimizer(self)
        rate: Any = self.schedule(epoch, optimizer.learning_rate)
        number = isinstance(rate, (int, float, np.integer, np.floating))
        if not number or isinstance(rate, bool) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(
                f"LearningRateScheduler's schedule must return a finite number > 0; "
                f"for epoch {epoch} it returned {rate!r}"
            )
        optimizer.learning_rate = float(rate)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")
