"""Timing: medians of repetitions after warm-up, first calls reported apart.

Every figure is a median of several timed repetitions taken after warm-up runs;
the first call of each workload (which includes JIT compilation on the numba
backend and kernel compilation on cupy) is timed separately and never mixed into
the median. GPU work is synchronised before each clock read.

Workloads that are compared are timed in interleaved rounds (each round times
every workload once, in turn), so a slow spell of a shared machine touches all of
them alike; a ratio is the median over rounds of that round's ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fastnn.backends import Backend

#: a workload: runs once; returns its own seconds (a float) when it timed itself
#: to leave set-up out, or anything else to be timed by the caller
Work = Callable[[], object]


@dataclass
class Timing:
    """Seconds: the first call (warm-up, compilation included) and the timed repetitions."""

    first: float
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median}


def seconds(work: Work, backend: Backend | None = None) -> float:
    """Wall seconds of one call of ``work`` (or the seconds it reports itself)."""
    start = time.perf_counter()
    result = work()
    if backend is not None:
        backend.synchronize()
    elapsed = time.perf_counter() - start
    return result if isinstance(result, float) else elapsed


def measure(work: Work, repeat: int = 5, warmup: int = 1, backend: Backend | None = None) -> Timing:
    """Time ``work()``: one first call, ``warmup`` untimed calls, then ``repeat`` timed ones."""
    timing = Timing(first=seconds(work, backend))
    for _ in range(warmup):
        seconds(work, backend)
    timing.runs = [seconds(work, backend) for _ in range(repeat)]
    return timing


def interleaved(
    workloads: Mapping[str, Work],
    rounds: int,
    backends: Mapping[str, Backend] | None = None,
) -> dict[str, Timing]:
    """Time each workload once per round, rounds interleaved; first calls apart. The
    order turns by one each round, so no workload always runs first (or right after the
    same neighbour).

    ``backends`` maps a workload's name to the backend to synchronise after it.
    """
    sync = backends or {}
    timings = {
        name: Timing(first=seconds(work, sync.get(name))) for name, work in workloads.items()
    }
    names = list(workloads)
    for round_ in range(rounds):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            timings[name].runs.append(seconds(workloads[name], sync.get(name)))
    return timings


def round_ratio(timings: Mapping[str, Timing], top: str, bottom: str) -> float:
    """Median over rounds of top's time / bottom's time in the same round."""
    pairs = zip(timings[top].runs, timings[bottom].runs, strict=True)
    return statistics.median(a / b for a, b in pairs)
