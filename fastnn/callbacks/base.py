"""The callback protocol (Keras's hook names), the loggers ``fit`` uses itself, and the
argument checks the other callbacks share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from fastnn.validation import shown

if TYPE_CHECKING:
    from fastnn.models import Sequential
    from fastnn.optimizers import Optimizer

Logs = dict[str, float]


class Callback:
    """Base class; override the hooks you need. ``self.model`` is set by ``fit``."""

    #: whether it prints or writes files: a distributed fit runs it on rank 0 only
    rank_zero_only: ClassVar[bool] = False

    def __init__(self) -> None:
        self.model: Sequential | None = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Sequential) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """After the last epoch (also when training stopped early or failed)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Before epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """After epoch ``epoch``; ``logs`` holds its loss, metrics and validation figures."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before step ``batch`` of the current epoch."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After step ``batch``; ``logs`` holds that step's loss."""

    def reads_batch_losses(self) -> bool:
        """Whether :meth:`on_train_batch_end` needs each step's loss, which ``fit`` then
        reads back every step (a wait on the GPU): true where a subclass overrides it."""
        return type(self).on_train_batch_end is not Callback.on_train_batch_end


class History(Callback):
    """Records the logs of every epoch: ``history.history["loss"][epoch]``."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class EpochTimer(Callback):
    """Records the wall time of every epoch (validation included), in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.seconds = []

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


class ProgressLogger(EpochTimer):
    """Prints a line every ``every`` epochs (and after the last): time, samples/s, figures.

    ``fit(verbose=1)`` adds one of these.
    """

    rank_zero_only = True

    def __init__(
        self, print_fn: Callable[[str], Any] = print, every: int = 1, unit: str = "Epoch"
    ) -> None:
        super().__init__()
        self.print_fn = print_fn
        self.every = every
        self.unit = unit  # what a pass is called: "Epoch", or "Iteration" for a full batch

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        epochs = self.params.get("epochs", 0)
        if (epoch + 1) % self.every and epoch + 1 != epochs:
            return
        seconds = self.seconds[-1]
        rate = self.params.get("samples", 0) / seconds if seconds > 0 else float("inf")
        self.print_fn(
            f"{self.unit} {epoch + 1}/{epochs} - {seconds:.2f}s - {rate:,.0f} samples/s"
            + figures(logs or {})
        )


def figures(logs: Logs) -> str:
    """`` - loss: 0.1234 - accuracy: 0.9876``: a pass's figures, as the loggers print them."""
    return "".join(
        # a learning rate reduced to 1e-7 would print as 0.0000
        f" - {key}: {value:.3g}" if key == "learning_rate" else f" - {key}: {value:.4f}"
        for key, value in logs.items()
    )


# ------------------------------------------------------------ argument checks
def _require(ok: bool, name: str, requirement: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} must be {requirement}; received {name}={shown(value)}")


def _model(callback: Callback) -> Sequential:
    if callback.model is None:
        raise RuntimeError(
            f"{type(callback).__name__} has no model: pass it to model.fit(callbacks=[...])"
        )
    return callback.model


def _optimizer(callback: Callback) -> Optimizer:
    optimizer = _model(callback).optimizer
    if optimizer is None:
        raise RuntimeError(f"{type(callback).__name__} needs a compiled model (model.compile)")
    return optimizer
