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

A replayed call still runs its Python: argument checks, plans, scratch lookups, about
100 us of a 700 us ``keras`` step on numba. So a recording also notes the kernels each
call launches through the backend's kernel modules (its attributes that are modules of
``fastnn.kernels``). A call whose method says, by :meth:`StepTapes.launched_only`, that
its own code only launched kernels and called backend methods, and whose nested calls
all said the same, is replayed as its launches alone, where both records launched the
same kernels with the same arguments. A method says so only on a path that writes
nothing but through those kernels and passes them nothing read out of an array's
contents (a count, a norm, a loss); any other call is replayed as a call.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from fastnn.config import switch
from fastnn.sparse import SparseRows

REPLAY_VAR = "FASTNN_STEP_REPLAY"
#: the calls after which a replay checks the step's loss, before any update: the loss
#: alone, or the last layer with its loss
LOSS_CALLS = ("loss_and_gradient", "dense_loss_step")
#: the package whose modules, held as attributes of a backend, are its kernel launchers
KERNELS = "fastnn.kernels"

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


@dataclasses.dataclass
class Record:
    """A step's outermost backend calls and, for each, the kernels it launched if its
    method said they were its whole effect (:meth:`StepTapes.launched_only`), else None."""

    calls: list[Call] = dataclasses.field(default_factory=list)
    launches: list[list[Call] | None] = dataclasses.field(default_factory=list)

    def agrees(self, other: Record) -> bool:
        """Whether ``other`` made the same calls (then it may be replayed)."""
        return same_calls(self.calls, other.calls) and any(
            f.__name__ in LOSS_CALLS for f, _, _ in self.calls
        )

    def tape(self, other: Record) -> Tape:
        """The replay of two agreeing records: each call as its launches where both
        records launched the same kernels alike, else as the call itself."""
        calls, launched, check_after = [], set(), -1
        for call, mine, theirs in zip(self.calls, self.launches, other.launches, strict=True):
            if mine is not None and theirs is not None and same_calls(mine, theirs):
                calls.extend(mine)
                launched.add(call[0].__name__)
            else:
                calls.append(call)
            if call[0].__name__ in LOSS_CALLS and check_after < 0:
                check_after = len(calls) - 1
        return Tape(calls, check_after, frozenset(launched))


class _Launcher:
    """A kernel of a module seen through a recording: a call of it from the recording
    thread, inside a backend call, is noted as a launch of that call."""

    __slots__ = ("function", "note")

    def __init__(self, function: Callable[..., Any], note: Callable[..., Any]) -> None:
        self.function, self.note = function, note

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.note(self.function, args, kwargs)

    def __getattr__(self, name: str) -> Any:  # a kernel's own attributes (its __name__)
        return getattr(self.function, name)


class _Kernels:
    """A kernel module as a recording sees it: its functions as :class:`_Launcher`s, its
    other attributes (constants) as they are."""

    def __init__(self, module: ModuleType, note: Callable[..., Any]) -> None:
        self._module, self._note = module, note

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if callable(value) and not isinstance(value, type):
            return _Launcher(value, self._note)
        return value


@dataclasses.dataclass
class _Recording:
    """What a recording under way knows: its thread and the record; for each backend call
    open there (outermost first), [whether it said it only launched kernels, whether a
    call it made did not]; ``pure[i]``: whether outermost call i only launched kernels."""

    thread: int
    record: Record
    open: list[list[bool]] = dataclasses.field(default_factory=list)
    launches: list[list[Call]] = dataclasses.field(default_factory=list)
    pure: list[bool] = dataclasses.field(default_factory=list)


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
        self._active: _Recording | None = None
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
            with self.recording() as record:
                step()
        finally:
            self._recording.release()
        if not isinstance(entry, Record):  # 0: this is the first record
            self.tapes[key] = record
        elif entry.agrees(record):
            self.tapes[key] = entry.tape(record)
        else:
            self.tapes[key] = False

    def launched_only(self) -> None:
        """Said by a backend method on a path whose own code did nothing but launch
        kernels through the backend's kernel modules, with arguments that read nothing
        out of an array's contents, and call backend methods. A call that says so, and
        whose every nested backend call said so too, may be replayed as its launches
        alone. Heard during a recording, on its thread; free otherwise."""
        active = self._active
        if active is not None and active.open and active.thread == threading.get_ident():
            active.open[-1][0] = True

    @contextmanager
    def recording(self) -> Iterator[Record]:
        """The backend's public methods, for this thread, record their outermost calls
        into the record yielded (calls one makes of another are its own business), and its
        kernel modules the launches each of those calls makes."""
        backend = self.backend
        active = _Recording(threading.get_ident(), Record())
        kind = type(backend)
        names = [n for n in dir(kind) if not n.startswith("_") and n != "run_step"
                 and inspect.isfunction(inspect.getattr_static(kind, n, None))]  # fmt: skip
        methods = {n: getattr(backend, n) for n in names}
        modules = {
            n: m for n, m in vars(backend).items()
            if isinstance(m, ModuleType) and m.__name__.startswith(KERNELS + ".")
        }  # fmt: skip
        own = {n: backend.__dict__[n] for n in names if n in backend.__dict__}  # patched ones

        def recorded(method: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                if threading.get_ident() != active.thread:
                    return method(*args, **kwargs)
                if not active.open:
                    active.record.calls.append((method, args, kwargs))
                    active.launches.append([])
                    active.pure.append(False)
                active.open.append([False, False])  # [said so, a nested call did not]
                try:
                    return method(*args, **kwargs)
                finally:
                    said, tainted = active.open.pop()
                    pure = said and not tainted
                    if active.open:
                        active.open[-1][1] |= not pure
                    else:
                        active.pure[-1] = pure

            return call

        def launch(kernel: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
            if active.open and threading.get_ident() == active.thread:
                active.launches[-1].append((kernel, args, kwargs))
            return kernel(*args, **kwargs)

        for name, method in methods.items():
            setattr(backend, name, recorded(method))
        for name, module in modules.items():
            setattr(backend, name, _Kernels(module, launch))
        self._active = active
        try:
            yield active.record
        finally:
            self._active = None
            for name in methods:
                delattr(backend, name)
            backend.__dict__.update(own)
            backend.__dict__.update(modules)
            active.record.launches = [
                calls if pure else None
                for calls, pure in zip(active.launches, active.pure, strict=True)
            ]


@dataclasses.dataclass
class Tape:
    """A confirmed record of a step: the backend calls and kernel launches to make."""

    calls: list[Call]
    #: the place in ``calls`` after which the loss is checked: the loss's call or its last
    #: launch
    check_after: int
    #: the backend calls replayed as their launches, by name
    launched: frozenset[str] = frozenset()

    def play(self, check: Callable[[], None] | None) -> None:
        """Make the calls again; ``check`` right after the loss's."""
        for i, (function, args, kwargs) in enumerate(self.calls):
            function(*args, **kwargs)
            if i == self.check_after and check is not None:
                check()
