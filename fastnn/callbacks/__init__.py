"""Callbacks: code that runs at fixed points of ``fit``, with Keras's hook names.

Besides the loggers ``fit`` uses itself, this package has Keras 3's callbacks, with
their names, arguments, defaults and semantics: :class:`ReduceLROnPlateau`,
:class:`EarlyStopping`, :class:`ModelCheckpoint` (``monitors``),
:class:`LearningRateScheduler`, :class:`TerminateOnNaN`, :class:`BackupAndRestore`
(``control``), :class:`CSVLogger` and :class:`LambdaCallback` (``loggers``). Epoch numbers
are 0-based in attributes and hooks, 1-based in printed messages and file names, as in
Keras.
"""

from fastnn.callbacks.base import Callback, EpochTimer, History, Logs, ProgressLogger, figures
from fastnn.callbacks.control import BackupAndRestore, LearningRateScheduler, TerminateOnNaN
from fastnn.callbacks.loggers import CSVLogger, LambdaCallback
from fastnn.callbacks.monitors import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "EpochTimer",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "Logs",
    "ModelCheckpoint",
    "ProgressLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "figures",
]
