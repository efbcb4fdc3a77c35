"""How many threads the CPU libraries fastnn computes with may use, chosen by measurement.

NumPy's BLAS (OpenBLAS, MKL, ...) splits every product evenly over its threads, and so
do numba's parallel kernels. On an idle machine that is faster; on a busy one it is a
trap: a thread that shares its core with another process waits for its time slice,
and the whole product waits for that thread. On this project's 2-core machine, with one
busy process beside it, the ``keras`` epoch took 2 to 7 times longer with two BLAS
threads than with one (``python -m bench.contention`` measures it).

So by default (``auto``) each pass over the data times its steps under both settings
now and then, all cores and one, and runs on with the faster: an idle machine keeps
every core, a busy one drops to a single thread, and the choice follows the load as it
changes. ``FASTNN_THREADS`` (or :func:`set_threads`) overrides it:

* ``auto``: as above (the default);
* a positive integer: that many threads for BLAS and numba during fastnn's passes;
* ``system``: leave the libraries as they are configured (``OPENBLAS_NUM_THREADS``,
  ``NUMBA_NUM_THREADS``, threadpoolctl, ...).

A pass known to be shorter than :data:`MIN_TUNED_STEPS` is not probed: it keeps every
core. Thread counts are set only for the length of a pass (``fit``, ``evaluate``,
``predict``) and restored after it. A library already limited to one thread (by its
environment variable, say) is left at one.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from fastnn.validation import shown

ENV_VAR = "FASTNN_THREADS"
MODES = ("auto", "system")
#: steps timed under each setting per probe, alternating between them
PROBE_STEPS = 3
#: timed steps a pass runs before its first probe: its first steps make the buffers and,
#: on numba, are recorded for replay (fastnn/backends/replay.py), so a probe among them
#: compared those, not the pass's steps (measured: a keras epoch as a fit of its own, 8
#: alternated fits, put 47-114 of 469 steps on one thread in 3 of them; after 4 steps,
#: 9 steps in each of 12)
FIRST_PROBE_AFTER = 4
#: steps between probes: starts short, doubles each time a probe confirms the choice
FIRST_INTERVAL = 32
MAX_INTERVAL = 1024
#: ... and a confirmed probe's cost, the slower choice's extra time, stays under this
#: share of the time until the next one: long steps (a full batch of tens of ms, where
#: one thread costs as much again) are probed less often (measured: the scratch recipe's
#: 25 ms iterations took 28 ms under 32-step probing, 25 ms with two threads fixed)
PROBE_SHARE = 0.02
#: a pass of fewer timed steps runs on every core unprobed: a probe's one-thread steps
#: cost about PROBE_STEPS steps (one core of two: twice as long), too large a share of a
#: short pass (predict on 10,000 rows is 10 steps, three of which ran on one thread)
MIN_TUNED_STEPS = math.ceil(PROBE_STEPS / PROBE_SHARE)

_override: str | int | None = None
#: passes under way that keep BLAS on one thread (``pass_threads(own_products=True)``)
_blas_on_one = 0


def blas_on_one_thread() -> bool:
    """Whether a pass under way keeps BLAS on one thread, its big products being
    fastnn's kernels: numba's pool then has the cores to itself, and small products
    are faster on kernels of our own (``kernels/heads.py``) than on one BLAS thread.
    Elsewhere BLAS's spinning threads would fight numba's for the cores."""
    return _blas_on_one > 0


def check_threads(value: object, name: str = "threads") -> str | int:
    """``value`` as a setting: "auto", "system" or a positive int (a numeric string too)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in MODES:
            return text
        if text.isdigit() and int(text) > 0:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(
        f"{name} must be 'auto', 'system' or a positive integer; received {name}={shown(value)}"
    )


def set_threads(value: str | int | None) -> None:
    """Set the process's thread setting (see the module's text); None goes back to
    ``$FASTNN_THREADS``, and to ``auto`` when that is unset."""
    global _override
    _override = None if value is None else check_threads(value)


def resolve_threads() -> str | int:
    """The setting in force: :func:`set_threads`'s, else ``$FASTNN_THREADS``, else auto."""
    if _override is not None:
        return _override
    text = os.environ.get(ENV_VAR, "").strip()
    return check_threads(text, ENV_VAR) if text else "auto"


_scanned: tuple[int, list[Any]] | None = None  # (modules loaded then, the controllers)


def _blas_controllers() -> list[Any]:
    """threadpoolctl's controllers of every BLAS loaded. Finding them walks the process's
    loaded libraries (0.6 ms, measured), so the result is kept until a module is imported:
    a library is loaded with one. Passes (a predict on one row, say) then skip the walk."""
    global _scanned
    if _scanned is None or _scanned[0] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        controllers = ThreadpoolController().select(user_api="blas").lib_controllers
        _scanned = (len(sys.modules), controllers)
    return _scanned[1]


class Pools:
    """The thread pools fastnn's computations run on: the BLAS libraries NumPy loaded and,
    once it is imported, numba's. Reads and sets their thread counts together."""

    def __init__(self, blas_single: bool = False) -> None:
        #: BLAS kept at one thread whatever the count (see :func:`pass_threads`)
        self.blas_single = blas_single
        self._numba = sys.modules.get("numba")
        if self._numba is not None:
            # numba's compiled products call the BLAS that scipy bundles, which it loads
            # on the first compile: load it now so that its threads are counted too.
            with suppress(ImportError):
                import scipy.linalg.cython_blas  # noqa: F401
        self._blas = _blas_controllers()
        self.saved = (
            [lib.num_threads for lib in self._blas],
            self._numba.get_num_threads() if self._numba is not None else None,
        )

    @property
    def widest(self) -> int:
        """The most threads any of the pools uses now."""
        blas, numba_threads = self.saved
        return max([*blas, numba_threads or 1])

    def set(self, threads: int, cap: bool = True) -> None:
        """Every pool to ``threads``; with ``cap``, at most what each had when this was
        made (numba's at most the ``NUMBA_NUM_THREADS`` it started with, always)."""
        blas, numba_threads = self.saved
        blas_threads = 1 if self.blas_single else threads
        for lib, most in zip(self._blas, blas, strict=True):
            lib.set_num_threads(min(blas_threads, most) if cap else blas_threads)
        if self._numba is not None and numba_threads is not None:
            most = numba_threads if cap else self._numba.config.NUMBA_NUM_THREADS
            self._numba.set_num_threads(min(threads, most))

    def restore(self) -> None:
        """Every pool back to the count it had when this was made."""
        blas, numba_threads = self.saved
        for lib, count in zip(self._blas, blas, strict=True):
            lib.set_num_threads(count)
        if self._numba is not None and numba_threads is not None:
            self._numba.set_num_threads(numba_threads)


@dataclass
class Tuner:
    """Chooses between two thread counts by timing the steps of a pass.

    A probe runs :data:`PROBE_STEPS` steps under each choice, alternating, and keeps the
    one with the lower total time; the next probe comes :data:`FIRST_INTERVAL` steps
    later, twice as late each time a probe keeps the same choice (up to
    :data:`MAX_INTERVAL`), back to the first interval when it changes. Only the steps
    the caller marks as timed (full batches) count.
    """

    choices: tuple[int, int]  # (all cores, one)
    apply: Callable[[int], None]
    clock: Callable[[], float] = time.perf_counter
    chosen: int = 0  # index into choices
    interval: int = FIRST_INTERVAL
    until_probe: int = 0  # timed steps until the next probe begins
    plan: list[int] = field(default_factory=list)  # the probe's remaining choices
    times: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    #: steps run under each choice, for reports
    steps: dict[int, int] = field(default_factory=dict)
    applied: int | None = None  # the count last set: setting it again is skipped

    def _apply(self, threads: int) -> None:
        if threads != self.applied:
            self.apply(threads)
            self.applied = threads

    def _next(self, timed: bool) -> int:
        if timed and not self.plan and self.until_probe <= 0:
            self.plan = [0, 1] * PROBE_STEPS
            self.times = ([], [])
        return self.plan[0] if timed and self.plan else self.chosen

    def _record(self, which: int, seconds: float, timed: bool) -> None:
        threads = self.choices[which]
        self.steps[threads] = self.steps.get(threads, 0) + 1
        if not timed:
            return
        if not self.plan:
            self.until_probe -= 1
            return
        self.times[self.plan.pop(0)].append(seconds)
        if self.plan:
            return
        # Means, not medians: under contention the cost is in rare stalls (a step of
        # 25-65 ms among steps of 3-4 ms, measured), which a median would not see.
        totals = [sum(t) for t in self.times]
        best = 0 if totals[0] <= totals[1] else 1
        same = best == self.chosen
        self.interval = min(2 * self.interval, MAX_INTERVAL) if same else FIRST_INTERVAL
        self.chosen = best
        self.until_probe = self.interval
        if same:  # a changed choice is checked again soon, whatever the probe cost
            self.until_probe = max(self.interval, _spacing(totals))

    @contextmanager
    def step(self, timed: bool = True) -> Iterator[None]:
        """Run one step under the setting the tuner picks, timing it."""
        which = self._next(timed)
        self._apply(self.choices[which])
        start = self.clock()
        yield
        self._record(which, self.clock() - start, timed)


def _spacing(totals: list[float]) -> int:
    """Steps until the next probe for its cost to be :data:`PROBE_SHARE` of their time
    (``totals``: each choice's time over the probe), at most :data:`MAX_INTERVAL`."""
    faster, slower = min(totals), max(totals)
    if faster <= 0:
        return 0
    step = faster / PROBE_STEPS
    return min(math.ceil((slower - faster) / (PROBE_SHARE * step)), MAX_INTERVAL)


class Fixed:
    """The same thread count (or, with None, the libraries' own) for every step."""

    def __init__(self, threads: int | None, pools: Pools | None) -> None:
        if threads is not None and pools is not None:
            pools.set(threads, cap=False)
        self.steps: dict[int, int] = {}

    @contextmanager
    def step(self, timed: bool = True) -> Iterator[None]:
        yield


@contextmanager
def pass_threads(
    cpu: bool = True, own_products: bool = False, steps: int | None = None, ranks_here: int = 1
) -> Iterator[Tuner | Fixed]:
    """The thread policy for one pass over data: yields an object whose ``step()`` each
    step runs inside; restores every pool's thread count afterwards. ``cpu=False`` (a GPU
    backend) leaves the pools alone. ``steps``: how many steps the pass will run, when
    known; under ``auto``, a pass of fewer than :data:`MIN_TUNED_STEPS` keeps every core.

    ``own_products``: the step's big products are fastnn's kernels (compressed input
    rows), so its BLAS calls are small: BLAS then runs on one thread and the count chosen
    applies to numba's pool alone. Two BLAS threads spinning after each small product
    took the second core from numba's kernels: a step's sparse products took 1.7 ms
    instead of 0.9 ms beside them (measured on the 2-core machine).

    ``ranks_here``: processes of a distributed fit on this machine (``fastnn.distributed``);
    under ``auto`` they share its cores evenly, unprobed (a probe's one-thread steps
    would make every other rank wait for them).
    """
    global _blas_on_one
    setting = resolve_threads()
    if not cpu or setting == "system":
        yield Fixed(None, None)
        return
    pools = Pools(blas_single=own_products)
    _blas_on_one += int(own_products)
    try:
        if setting == "auto" and ranks_here > 1:
            pools.set(max(1, pools.widest // ranks_here))
            yield Fixed(None, None)
        elif setting == "auto":
            widest = pools.widest
            if widest > 1 and (steps is None or steps >= MIN_TUNED_STEPS):
                yield Tuner((widest, 1), pools.set, until_probe=FIRST_PROBE_AFTER)
            else:  # every core, as a probe's first choice would be
                pools.set(widest)
                yield Fixed(None, None)
        else:
            assert isinstance(setting, int)
            yield Fixed(setting, pools)
    finally:
        pools.restore()
        _blas_on_one -= int(own_products)
