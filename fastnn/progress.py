"""``verbose=1``: a progress bar within each pass, as Keras draws one.

On a terminal the bar is redrawn in place at most every :data:`REDRAW_SECONDS` (the
loop only asks the clock each step); elsewhere (a log file, a notebook's captured
output) a plain line is written at most every :data:`PLAIN_LINE_SECONDS`, so a log
never gets a line per step. Each epoch ends with :class:`ProgressLogger`'s line.

The running loss and accuracy come from the pass's totals, read in place: only backends
that compute in host memory pass them (``running``); a GPU pass shows its step count and
ETA, and its figures at the end, so that drawing never makes the device wait.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from fastnn.callbacks import Logs, ProgressLogger, figures

REDRAW_SECONDS = 0.25
PLAIN_LINE_SECONDS = 15.0
BAR_WIDTH = 24

#: the figures of a pass so far, given the steps done (None: not readable without a wait)
Running = Callable[[int], Logs] | None


def verbosity(value: object) -> int:
    """Keras's ``verbose``: 0 silent, 1 a progress bar, 2 a line per epoch, "auto" = 1."""
    if value == "auto":
        return 1
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1, 2)):
        return int(value)
    raise ValueError(f'verbose must be 0, 1, 2 or "auto"; received verbose={value!r}')


class ProgressBar(ProgressLogger):
    """The bar of ``fit(verbose=1)`` (a callback), and of ``evaluate`` / ``predict``
    (:meth:`begin`, :meth:`advance`, :meth:`finish` called by them)."""

    def __init__(
        self,
        steps: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        draws: bool = True,
    ) -> None:
        super().__init__()
        self.steps = steps
        #: False: only the closing line (``evaluate(verbose=2)``)
        self.draws = draws
        self.stream = stream
        self.clock = clock
        self.label = ""
        self.started = self.next_draw = 0.0
        self.drawn = False

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def tty(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def begin(self, label: str = "") -> None:
        """Start a pass; ``label`` leads each line (``Epoch 2/5``)."""
        self.label = label
        self.started = self.clock()
        self.next_draw = self.started + (REDRAW_SECONDS if self.tty else PLAIN_LINE_SECONDS)
        self.drawn = False

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self.begin(f"Epoch {epoch + 1}/{self.params.get('epochs', 0)}")

    def advance(self, done: int, running: Running) -> None:
        """``done`` steps of the pass are over; draws if it is time to."""
        if not self.draws:
            return
        now = self.clock()
        if now < self.next_draw:
            return
        tty = self.tty
        self.next_draw = now + (REDRAW_SECONDS if tty else PLAIN_LINE_SECONDS)
        elapsed = now - self.started
        eta = elapsed / max(done, 1) * (self.steps - done)
        filled = BAR_WIDTH * done // max(self.steps, 1)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + "." * (BAR_WIDTH - filled - 1)
        text = f"{self.label} {done}/{self.steps} [{bar}] ETA {_seconds(eta)}"
        text = text.lstrip() + (figures(running(done)) if running is not None else "")
        out = self._out
        out.write(f"\r{text}\x1b[K" if tty else text + "\n")
        out.flush()
        self.drawn = True

    def _clear(self) -> None:
        if self.drawn and self.tty:
            self._out.write("\r\x1b[K")
        self.drawn = False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._clear()
        super().on_epoch_end(epoch, logs)

    def finish(self, logs: Logs | None) -> None:
        """End an ``evaluate`` / ``predict`` pass: ``steps/steps - 0.12s`` and its figures."""
        self._clear()
        seconds = self.clock() - self.started
        self.print_fn(f"{self.steps}/{self.steps} - {seconds:.2f}s{figures(logs or {})}")

    def __repr__(self) -> str:
        return f"ProgressBar(steps={self.steps})"


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value) // 60}:{int(value) % 60:02d}"


def pass_bar(verbose: int, steps: int) -> ProgressBar | None:
    """The bar of an ``evaluate`` / ``predict`` pass: verbose 1 draws as it goes, 2 writes
    the closing line only (as Keras does), 0 nothing."""
    return ProgressBar(steps, draws=verbose == 1) if verbose else None
