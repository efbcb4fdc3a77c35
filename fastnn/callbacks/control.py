"""Callbacks that steer training: LearningRateScheduler, TerminateOnNaN and
BackupAndRestore, with Keras's arguments and semantics."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fastnn import saving
from fastnn.callbacks.base import Callback, Logs, _model, _optimizer, _require
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


class TerminateOnNaN(Callback):
    """Stop training quietly when the loss becomes NaN or infinite, as Keras's does.

    Without it ``fit`` raises :class:`~fastnn.training.TrainingDivergedError`. With it,
    ``fit`` prints ``Batch N: Invalid loss, terminating training``, ends that epoch
    (its logs hold the non-finite loss, as in Keras) and returns. On the CPU backends the
    failing step's update is not applied; a GPU backend finds the loss at the epoch's
    end, having run the epoch through. The trainer watches the loss it already checks:
    this callback reads nothing back per step.
    """


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` where it stopped, as Keras's ``BackupAndRestore``.

    After every epoch the model (weights, optimizer state, learning rate) is saved to
    ``backup_dir/model.npz`` and the epoch number beside it; a ``fit`` that starts with a
    backup there restores it and goes on from the next epoch (as ``initial_epoch``
    would). When training ends normally the backup is deleted (``delete_checkpoint``).
    """

    rank_zero_only = True

    MODEL_FILE = "model.npz"
    EPOCH_FILE = "epoch.json"

    def __init__(self, backup_dir: str | os.PathLike[str], delete_checkpoint: bool = True) -> None:
        super().__init__()
        _require(
            isinstance(backup_dir, (str, os.PathLike)) and bool(str(backup_dir)),
            "backup_dir", "a folder path", backup_dir,
        )  # fmt: skip
        self.backup_dir = Path(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._finished = False

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._finished = False
        model = _model(self)
        epoch_file = self.backup_dir / self.EPOCH_FILE
        if not epoch_file.exists():
            return
        epoch = check_int("backup epoch", json.loads(epoch_file.read_text())["epoch"], 0)
        saved = saving.load_model(self.backup_dir / self.MODEL_FILE, type(model))
        model.set_weights(saved.get_weights())
        optimizer, backend = _optimizer(self), model._on_active_backend()
        assert saved.optimizer is not None and saved.backend is not None
        params, _ = model._trained()
        state = saved.optimizer.get_state(saved.backend)
        optimizer.set_state(backend, saved.optimizer.iterations, state, params if state else [])
        optimizer.learning_rate = saved.optimizer.learning_rate
        model._resume_epoch = epoch + 1

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        model = _model(self)
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(self.backup_dir / self.MODEL_FILE))
        # written after the model, by rename: a crash between the two resumes one epoch early
        temporary = self.backup_dir / (self.EPOCH_FILE + ".tmp")
        temporary.write_text(json.dumps({"epoch": epoch}))
        os.replace(temporary, self.backup_dir / self.EPOCH_FILE)
        self._finished = epoch + 1 >= self.params.get("epochs", 0) or model.stop_training

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self._finished and self.delete_checkpoint:
            for name in (self.EPOCH_FILE, self.MODEL_FILE):
                (self.backup_dir / name).unlink(missing_ok=True)
