"""Ctrl-C during training: finish the current step, then stop with the model consistent.

A KeyboardInterrupt raised at an arbitrary bytecode would land in the middle of
an optimizer update, leaving some layers stepped and others not. While
:class:`DeferredInterrupt` is active, the first Ctrl-C only records the
request; the training loop checks it between steps and stops there. A second
Ctrl-C raises at once, for a user who would rather not wait.

Signals reach only the main thread, so in any other thread (and when the user
installed a SIGINT handler of their own) nothing is changed.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped on Ctrl-C between two steps.

    The model holds the weights after the last completed step; ``history`` holds
    the logs of the epochs completed before it (also in ``model.history``).
    """

    def __init__(self, message: str, history: Any) -> None:
        super().__init__(message)
        self.history = history


class DeferredInterrupt:
    """Context manager: while inside, the first SIGINT sets :attr:`requested`."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        self.requested = False
        owned_by_python = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if threading.current_thread() is threading.main_thread() and owned_by_python:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # the second Ctrl-C: the user does not want to wait
            raise KeyboardInterrupt
        self.requested = True
