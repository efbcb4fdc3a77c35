"""Training steps replayed on a CPU backend: the backend calls a step made, recorded,
then made again without the layers, loss and optimizer code around them.

A step of a Dense stack (``Backend.run_step`` with a key: fixed buffers, fixed settings)
is a dozen backend calls, and on the numba backend the Python around them (layers,
model, loss, optimizer) took about a sixth of a ``keras`` epoch. So, per key:

1. the first step runs as it is (it makes the buffers, scratch and optimizer state);
2. the next two run as they are while their backend calls are recorded: the outermost
   call of each, with its arguments;
3. if both records are the same calls with the same arguments (arrays: the same memory,
   shape and type; other values: equal), later steps call them again, and nothing else.

A record that differs (a Python value that changes every step, an array made anew) keeps
that key's steps as they are, which is always correct. A loss check between the loss's
call and the updates keeps the CPU backends' promise that a step with a non-finite loss
is not applied. ``FASTNN_STEP_REPLAY=0`` turns replay off.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from fastnn.config import switch
from fastnn.sparse import SparseRows

REPLAY_VAR = "FASTNN_STEP_REPLAY"
#: the call after which a replay checks the step's loss, before any update
LOSS_CALL = "loss_and_gradient"

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def replay_wanted() -> bool:
    """``FASTNN_STEP_REPLAY``: unset or 1 replays training steps; 0 does not."""
    wanted = switch(REPLAY_VAR)
    if wanted is None:
        value = os.environ[REPLAY_VAR].strip().lower()
        raise ValueError(f"{REPLAY_VAR} must be 1 (on) or 0 (off); received {REPLAY_VAR}={value!r}")
    return wanted


def same(a: Any, b: Any) -> bool:
    """Whether two recorded arguments would make the same call: arrays by their memory,
    shape, strides and type; compressed rows, containers and dataclasses by their parts;
    anything else by equality (functions and objects without it: by identity)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.__array_interface__["data"] == b.__array_interface__["data"]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
        )  # fmt: skip
    if type(a) is not type(b):
        return False
    if isinstance(a, SparseRows):
        return a.width == b.width and all(
            same(x, y) for x, y in ((a.indptr, b.indptr), (a.indices, b.indices),
                                    (a.values, b.values))
        )  # fmt: skip
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (bool, int, float, str, bytes, type(None), np.generic, np.dtype)):
        return bool(a == b)
    return a is b


def same_calls(first: list[Call], second: list[Call]) -> bool:
    """Whether two records are the same calls, in the same order, with the same arguments."""
    return len(first) == len(second) and all(
        f1 == f2 and same(a1, a2) and same(k1, k2)
        for (f1, a1, k1), (f2, a2, k2) in zip(first, second, strict=True)
    )


class StepTapes:
    """Recorded training steps of one backend, by key (see the module's docstring)."""

    LIMIT = 8  # keys kept: the full and the last, partial batch of a few fits

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        #: key -> 0 (warmed up), a record to confirm, the record confirmed (a Tape), or
        #: False (not replayable)
        self.tapes: dict[Hashable, Any] = {}
        self.replays = 0
        #: one recording at a time: it wraps the backend's methods, shared by threads
        self._recording = threading.Lock()
        self._fits = threading.local()

    @contextmanager
    def fit(self) -> Iterator[None]:
        """Around a pass over data: when the outermost one (on this thread) ends, the
        records go, and with them the arrays their keys and calls keep alive (a data set,
        a model's buffers)."""
        depth = getattr(self._fits, "depth", 0)
        self._fits.depth = depth + 1
        try:
            yield
        finally:
            self._fits.depth = depth
            if depth == 0:
                self.tapes.clear()

    def run(
        self, step: Callable[[], None], key: Hashable | None, check: Callable[[], None] | None
    ) -> None:
        if key is None or not replay_wanted():
            step()
            return
        entry = self.tapes.get(key)
        if isinstance(entry, Tape):
            entry.play(check)
            self.replays += 1
            return
        if entry is None or entry is False:
            if entry is None:  # the warm-up: buffers, scratch and state are made here
                if len(self.tapes) >= self.LIMIT:
                    self.tapes.pop(next(iter(self.tapes)))
                self.tapes[key] = 0
            step()
            return
        if not self._recording.acquire(blocking=False):  # another thread records
            step()
            return
        try:
            with self.recording() as calls:
                step()
        finally:
            self._recording.release()
        if entry == 0:
            self.tapes[key] = calls
        elif same_calls(entry, calls) and any(f.__name__ == LOSS_CALL for f, _, _ in calls):
            self.tapes[key] = Tape(calls)
        else:
            self.tapes[key] = False

    @contextmanager
    def recording(self) -> Iterator[list[Call]]:
        """The backend's public methods, for this thread, record their outermost calls
        into the list yielded (calls one makes of another are its own business)."""
        backend, calls = self.backend, []
        thread, depth = threading.get_ident(), [0]
        kind = type(backend)
        names = [n for n in dir(kind) if not n.startswith("_") and n != "run_step"
                 and inspect.isfunction(inspect.getattr_static(kind, n, None))]  # fmt: skip
        methods = {n: getattr(backend, n) for n in names}
        own = {n: backend.__dict__[n] for n in names if n in backend.__dict__}  # patched ones

        def recorded(method: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                if threading.get_ident() != thread:
                    return method(*args, **kwargs)
                if depth[0] == 0:
                    calls.append((method, args, kwargs))
                depth[0] += 1
                try:
                    return method(*args, **kwargs)
                finally:
                    depth[0] -= 1

            return call

        for name, method in methods.items():
            setattr(backend, name, recorded(method))
        try:
            yield calls
        finally:
            for name in methods:
                delattr(backend, name)
            backend.__dict__.update(own)


@dataclasses.dataclass
class Tape:
    """A confirmed record of a step's backend calls."""

    calls: list[Call]

    def play(self, check: Callable[[], None] | None) -> None:
        """Make the calls again; ``check`` right after the loss's call."""
        for method, args, kwargs in self.calls:
            method(*args, **kwargs)
            if check is not None and method.__name__ == LOSS_CALL:
                check()
