"""The callbacks that watch a figure of the logs: ReduceLROnPlateau, EarlyStopping and
ModelCheckpoint, with Keras's arguments, defaults and semantics."""

from __future__ import annotations

import os
import string
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn.callbacks.base import Callback, Logs, _model, _optimizer, _require
from fastnn.validation import check_finite, check_int

if TYPE_CHECKING:
    from fastnn.models import Sequential


MODES = ("auto", "min", "max")
#: in mode "auto", a monitor whose name contains one of these is maximised
HIGHER_IS_BETTER_HINTS = ("acc", "precision", "recall", "f1")


class _MonitorCallback(Callback):
    """What the monitoring callbacks share: which figure, which way is better, by how much.

    ``best`` is the best value seen (None before the first); each subclass
    decides when to reset it, as in Keras.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        _require(isinstance(monitor, str) and bool(monitor), "monitor", "a log key string", monitor)
        _require(mode in MODES, "mode", "one of 'auto', 'min', 'max'", mode)
        self.monitor = monitor
        self.mode = mode
        # Keras takes the size of min_delta only: the direction gives its sign.
        self.min_delta = abs(check_finite("min_delta", min_delta))
        hinted = any(hint in monitor.lower() for hint in HIGHER_IS_BETTER_HINTS)
        self.higher_is_better = mode == "max" or (mode == "auto" and hinted)
        self.best: float | None = None

    def _current(self, epoch: int, logs: Logs | None) -> float | None:
        """The monitored value in ``logs``; None, with a warning, when it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            # The epoch number keeps the message distinct, so Python's warning
            # filter shows it every epoch rather than once per session.
            warnings.warn(
                f"{type(self).__name__} is conditioned on {self.monitor!r}, which is not in "
                f"the logs of epoch {epoch + 1}; available: {', '.join(logs) or 'none'}",
                stacklevel=3,
            )
            return None
        return float(value)

    def _improves(self, current: float, reference: float | None) -> bool:
        """True when ``current`` beats ``reference`` by more than min_delta (no reference: True)."""
        if reference is None:
            return True
        if self.higher_is_better:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def _best_text(self) -> str:
        if self.best is not None:
            return f"{self.best:.5f}"
        return "-inf" if self.higher_is_better else "inf"


class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement of more than ``min_delta``
    the rate becomes ``max(lr * factor, min_lr)`` (nothing happens once it is
    at ``min_lr``). After a reduction, ``cooldown`` epochs pass before waiting
    starts again; as in Keras, the epoch that ends the cooldown already counts
    towards the next ``patience``, so ``cooldown=1`` adds no delay.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.factor = check_finite("factor", factor)
        _require(self.factor < 1.0, "factor", "< 1.0", factor)
        _require(self.factor > 0.0, "factor", "> 0", factor)  # 0 would stop learning
        self.patience = check_int("patience", patience, 0)
        self.verbose = check_int("verbose", verbose, 0)
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = check_finite("min_lr", min_lr)
        _require(self.min_lr >= 0.0, "min_lr", ">= 0", min_lr)
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self._current(epoch, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch)

    def _reduce(self, epoch: int) -> None:
        optimizer = _optimizer(self)
        if optimizer.learning_rate <= self.min_lr:
            return  # already at the floor: keep waiting, no cooldown
        new_lr = max(optimizer.learning_rate * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        self.cooldown_counter = self.cooldown
        self.wait = 0


class EarlyStopping(_MonitorCallback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Epochs before ``start_from_epoch`` are ignored. With a ``baseline``, the
    wait restarts only on epochs that beat both the best so far and the
    baseline (Keras 3: an epoch that improves the best but not the baseline
    never stops training, but does not reset the wait either).

    ``restore_best_weights=True`` keeps a copy of the weights of the best epoch
    and puts it back at the end of training, whether it stopped early or not,
    unless the best epoch is the last one. After training, ``stopped_epoch``
    is the 0-based epoch it stopped at (0 when it did not stop) and
    ``best_epoch`` the 0-based best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = check_int("patience", patience, 0)
        self.verbose = check_int("verbose", verbose, 0)
        self.baseline = None if baseline is None else check_finite("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int("start_from_epoch", start_from_epoch, 0)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        # Whether the model's weights are still those of the best epoch.
        self._weights_are_best = False

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # Reset everything so one instance can serve several fit calls.
        self.best = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None
        self._weights_are_best = False

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        # Training moves the weights away from the snapshot; if fit fails
        # mid-epoch, on_train_end must still restore it.
        self._weights_are_best = False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._weights_are_best = False
        current = self._current(epoch, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        model = _model(self)
        self.wait += 1
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
                self._weights_are_best = True
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        # The first monitored epoch always improves on best=None, so this
        # never stops training before there is a best epoch to report.
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.best_weights is None or self._weights_are_best:
            return
        if self.verbose:
            print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
        _model(self).set_weights(self.best_weights)
        self._weights_are_best = True


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or only its weights) at the end of every epoch.

    ``filepath`` is a template: ``{epoch:02d}`` (1-based) and any log key
    (``{val_loss:.4f}``) are filled in at each save. Whole models are written
    with ``model.save`` (fastnn's ``.npz`` format, or Keras 3's ``.keras``, both read
    back by ``fastnn.load_model``), so the path must end in one of those. With
    ``save_weights_only=True`` the path must end in ``.weights.npz`` (like
    Keras's ``.weights.h5``) and the file is an ``np.savez`` archive of
    ``model.get_weights()`` under the keys ``weight_000``, ``weight_001``, ...
    (the layout of the weights inside a model file); restore it with
    ``model.load_weights(path)``.

    ``save_best_only=True`` saves only when ``monitor`` improves on the best
    seen so far (which starts at ``initial_value_threshold``, and carries over
    between fit calls as in Keras). Only ``save_freq="epoch"`` is supported.
    """

    rank_zero_only = True

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, 0.0)
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else filepath
        suffixes = (".weights.npz",) if save_weights_only else (".npz", ".keras")
        if not isinstance(path, str) or not path.endswith(suffixes):
            raise ValueError(
                f"filepath must end in {' or '.join(suffixes)}; received filepath={path!r}"
            )
        self._check_template(path)
        if isinstance(save_freq, int) and not isinstance(save_freq, bool):
            raise ValueError(
                f"save_freq={save_freq!r} (saving every N batches) is not supported; "
                "use save_freq='epoch'"
            )
        _require(save_freq == "epoch", "save_freq", "'epoch'", save_freq)
        self.filepath = path
        self.verbose = check_int("verbose", verbose, 0)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = save_freq
        if initial_value_threshold is not None:
            self.best = check_finite("initial_value_threshold", initial_value_threshold)

    @staticmethod
    def _check_template(path: str) -> None:
        """Refuse a malformed template now, not at the end of the first epoch."""
        try:
            fields = [
                field for _, field, _, _ in string.Formatter().parse(path) if field is not None
            ]
        except ValueError as error:
            raise ValueError(
                f"filepath is not a valid template ({error}); received filepath={path!r}"
            ) from error
        for field in fields:
            name = field.split(".")[0].split("[")[0]
            if not name or name.isdigit():
                raise ValueError(
                    "filepath fields must be named, like {epoch:02d} or {val_loss:.4f}; "
                    f"received filepath={path!r}"
                )

    def _path_for(self, epoch: int, logs: Logs) -> str:
        values: dict[str, Any] = {**logs, "epoch": epoch + 1}
        try:
            return self.filepath.format_map(values)
        except KeyError as error:
            raise KeyError(
                f"ModelCheckpoint filepath {self.filepath!r} names {error}, which is not in "
                f"the logs of epoch {epoch + 1}; available: {', '.join(values)}"
            ) from None
        except ValueError as error:  # a format spec that does not suit the value
            raise ValueError(
                f"cannot format ModelCheckpoint filepath {self.filepath!r} for epoch "
                f"{epoch + 1}: {error}"
            ) from error

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        model = _model(self)
        path = self._path_for(epoch, logs)
        current = None
        if self.save_best_only:
            current = self._current(epoch, logs)
            if current is None:
                return
            if not self._improves(current, self.best):
                if self.verbose:
                    best = self._best_text()
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {best}")
                return
        if self.verbose:
            improved = (
                f"{self.monitor} improved from {self._best_text()} to {current:.5f}, "
                if current is not None
                else ""
            )
            print(f"Epoch {epoch + 1}: {improved}saving model to {path}")
        self._save(model, path)
        if current is not None:
            self.best = current  # only once saved, so a failed save is retried

    def _save(self, model: Sequential, path: str) -> None:
        if self.save_weights_only:
            model.save_weights(path)
        else:
            model.save(path)
