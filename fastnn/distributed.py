"""Data-parallel training over MPI ranks, through mpi4py.

Started as ``mpiexec -n N python script.py`` (or ``mpiexec -n N fastnn train ...``),
``fit(..., distributed=True)`` trains one model on N processes ("ranks"):

* every rank holds the whole model and the whole data set, and starts from rank 0's
  weights and seed (broadcast), so every rank shuffles the same way;
* each global batch of ``batch_size`` rows is split into N shards of nearly equal size
  (:func:`shard`); a rank computes its shard's gradients, weighted by its share of the
  batch, and the ranks sum them (MPI ``Allreduce``), so every rank applies the same
  update: the weights stay identical, and equal those of one process with that batch;
* before the gradients, the ranks agree on each step's status (:class:`Status`): the
  batch's loss (so all ranks see the same NaN and stop together), which ranks failed,
  and whether one was interrupted (Ctrl-C) - so one rank's error stops every rank at
  the same step, with an error naming it, instead of leaving them waiting;
* a rank that never arrives (dead, or stuck) makes the others give up after
  :data:`TIMEOUT_ENV` seconds (default :data:`DEFAULT_TIMEOUT`) and abort the job;
* losses and metrics are summed over the ranks, so History and callbacks see the global
  figures; only rank 0 prints, and only rank 0 runs the callbacks that write files.

Without mpi4py, ``distributed=True`` is refused with what to install.
"""

from __future__ import annotations

import faulthandler
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.backends import Array, Backend
from fastnn.launcher import launched_rank, launched_size

#: seconds a rank polls for the others before it sleeps between polls
SPIN_SECONDS = 0.05
#: seconds a rank waits for the others at a step before it aborts the job
TIMEOUT_ENV = "FASTNN_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
INSTALL_HINT = (
    'pip install -e ".[mpi]" in the fastnn folder (or: pip install mpi4py mpich), '
    "then start the ranks with mpiexec -n N"
)


#: the gradient sums' costs in the last distributed fit of this process (bench/distributed.py)
LAST_STATS: SumStats | None = None


class DistributedError(RuntimeError):
    """Another rank failed, disagreed, or did not arrive; the message names it."""


def describe() -> str:
    """A line for ``fastnn backends``: this process's rank and world size, or what to
    install."""
    size = launched_size()
    where = f"rank {launched_rank()} of {size}" if size > 1 else "1 process (not under mpiexec)"
    try:
        from mpi4py import MPI
    except ImportError:
        return f"distributed: unavailable ({INSTALL_HINT}); {where}"
    library = " ".join(MPI.Get_library_version().splitlines()[0].split())
    return f"distributed: available ({library}); {where}"


def rank_zero_value(value: Any) -> Any:
    """Rank 0's ``value`` on every rank of the launched world (for instance a seed that
    each rank drew on its own)."""
    return _mpi().COMM_WORLD.bcast(value, root=0)


def _mpi() -> Any:
    """mpi4py's MPI module, or an ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"distributed=True needs mpi4py and an MPI library: {INSTALL_HINT}; "
                          f"({error})") from None  # fmt: skip
    return MPI


def timeout() -> float:
    """Seconds a rank waits for the others (``$FASTNN_DISTRIBUTED_TIMEOUT``)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0; received {text!r}")
    return seconds


def shard(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s rows [start, stop) of a batch of ``rows`` rows split over
    ``size`` ranks: the first ``rows % size`` ranks take one row more."""
    base, extra = divmod(rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


@dataclass
class Status:
    """What the ranks agree on at each step: the batch's summed loss (loss x rows), and
    per rank whether it failed and whether it was interrupted."""

    loss_sum: float
    failed: list[int]
    interrupted: bool


class Group:
    """The ranks of one ``fit``: a duplicate of MPI's world communicator."""

    def __init__(self) -> None:
        mpi = _mpi()
        self.mpi = mpi
        self.timeout = timeout()
        self.overlap = sum_mode() == "overlap"
        #: the step the ranks are at, for errors: (epoch, step), both 0-based
        self.where = (0, 0)
        self.stats = SumStats()
        self.comm = mpi.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self._wait(self.comm.Ibarrier(), "the start of training")  # every rank is in fit
        self.comm = self.comm.Dup()  # this fit's messages apart from any other's

        local = self.comm.Split_type(mpi.COMM_TYPE_SHARED)
        #: ranks on this machine: they share its cores
        self.local_size: int = local.Get_size()
        local.Free()
        #: NCCL's sums of device arrays, when every rank has its own GPU (:meth:`use_nccl`)
        self.device: DeviceSums | None = None

    def close(self) -> None:
        global LAST_STATS
        LAST_STATS = self.stats
        if self.device is not None:
            self.device.close()
        self.comm.Free()

    def use_nccl(self, backend: Backend) -> None:
        """Sum device arrays with NCCL from here on, if every rank can: its backend has
        NCCL (:meth:`Backend.nccl`), ``$FASTNN_NCCL`` is not "off", and no two ranks on a
        machine share a GPU (NCCL needs one each); otherwise they go through the host."""
        nccl = backend.nccl() if nccl_setting() == "auto" else None
        mine = None if nccl is None else (socket.gethostname(), backend.device_id())
        everyone = self.gather(mine, "the start of training")
        if nccl is not None and None not in everyone and len(set(everyone)) == self.size:
            self.device = DeviceSums(self, backend, nccl)
            self.stats.transport = "nccl"

    def _post(self, values: np.ndarray) -> Any:
        """Start summing ``values`` (contiguous, on the host) over the ranks, in place."""
        return self.comm.Iallreduce(self.mpi.IN_PLACE, values, op=self.mpi.SUM)

    # ------------------------------------------------------------- agreeing
    def _wait(self, request: Any, what: str) -> None:
        """Wait for a non-blocking collective, or abort the job after the timeout: a rank
        that never arrives must not leave the others waiting for ever."""
        started = time.monotonic()
        pause = 0.0
        while not request.Test():
            waited = time.monotonic() - started
            if waited > self.timeout:
                self.give_up(what)
            # a step's sums take well under a millisecond: poll (yielding the core to a
            # rank that shares it) for a while, then back off to sleeping
            if waited > SPIN_SECONDS:
                pause = min(2 * pause + 1e-4, 0.01)
            time.sleep(pause)

    def give_up(self, what: str) -> None:
        """Say which wait ran out, and abort the job (every rank's process)."""
        epoch, step = self.where
        self.abort(
            f"the other ranks did not reach {what} at epoch {epoch + 1}, step {step + 1} "
            f"within {self.timeout:g} s (${TIMEOUT_ENV}); a rank died or hangs"
        )

    def abort(self, why: str) -> None:
        """Say ``why`` on stderr, and abort the job (every rank's process)."""
        sys.stderr.write(f"fastnn rank {self.rank}: {why}: aborting the job\n")
        sys.stderr.flush()
        self.comm.Abort(3)

    def sum(self, values: np.ndarray, what: str) -> np.ndarray:
        """``values`` summed over the ranks, in place (a contiguous host array)."""
        self._wait(self._post(values), what)
        return values

    def gather(self, value: Any, what: str) -> list[Any]:
        """Every rank's ``value`` (a picklable object), in rank order. Objects have no
        non-blocking collective: a non-blocking barrier first bounds the wait."""
        self._wait(self.comm.Ibarrier(), what)
        return list(self.comm.allgather(value))

    def status(self, loss_sum: float, failed: bool, interrupted: bool) -> Status:
        """This step's :class:`Status`, agreed by every rank."""
        values = np.zeros(self.size + 2, np.float64)
        values[0] = loss_sum
        values[1 + self.rank] = failed
        values[-1] = interrupted
        self.sum(values, "the step's status")
        failed_ranks = [r for r in range(self.size) if values[1 + r] > 0]
        return Status(float(values[0]), failed_ranks, bool(values[-1] > 0))

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object) on every rank."""
        self._wait(self.comm.Ibarrier(), "the start of training")
        return self.comm.bcast(value, root=0)

    def check_same(self, facts: dict[str, Any]) -> None:
        """Refuse to start unless every rank gives the same ``facts`` (model, dtype, data
        size ...): a one-line ValueError naming the first rank and fact that differ."""
        everyone = self.gather(facts, "the start of training")
        for rank, theirs in enumerate(everyone):
            for name in facts:
                if theirs.get(name) != everyone[0].get(name):
                    raise ValueError(
                        f"distributed ranks must train the same model on the same data; rank "
                        f"{rank} has {name}={theirs.get(name)!r} but rank 0 has "
                        f"{name}={everyone[0].get(name)!r}"
                    )


#: how a step's gradients are summed: all after the backward (``blocking``, the default),
#: or each layer's started as soon as its backward is done, while the layers below compute
#: (``overlap``). MPICH moves a started sum on only while a rank is inside MPI, so on the
#: 2-core machine overlap hid none of it, and a 2-rank epoch took 1.39x the blocking one's
#: (bench/results/distributed.md); an MPI with a progress thread or offload may differ.
SUM_ENV = "FASTNN_ALLREDUCE"
SUM_MODES = ("blocking", "overlap")


def sum_mode() -> str:
    """``$FASTNN_ALLREDUCE``: "blocking" (the default) or "overlap"."""
    text = os.environ.get(SUM_ENV, "").strip().lower() or "blocking"
    if text not in SUM_MODES:
        raise ValueError(f"{SUM_ENV} must be 'blocking' or 'overlap'; received {text!r}")
    return text


@dataclass
class SumStats:
    """What the gradient sums of a run cost: steps, bytes summed a rank, and the seconds
    spent waiting for them after the backward (the part the backward did not hide)."""

    steps: int = 0
    bytes: int = 0
    wait_seconds: float = 0.0
    #: how they were summed: "mpi" (through host memory) or "nccl" (on the GPUs)
    transport: str = "mpi"


NCCL_ENV = "FASTNN_NCCL"


def nccl_setting() -> str:
    """``$FASTNN_NCCL``: "auto" (the default: NCCL where every rank has it and a GPU of
    its own) or "off" (device arrays are summed through the host, by MPI)."""
    text = os.environ.get(NCCL_ENV, "").strip().lower() or "auto"
    if text not in ("auto", "off"):
        raise ValueError(f"{NCCL_ENV} must be 'auto' or 'off'; received {text!r}")
    return text


def within(seconds: float, start: Callable[[], Any]) -> Any:
    """``start()``, or the process ended (exit status 1, every thread's stack on stderr
    under "Timeout") if it has not returned after ``seconds``.

    NCCL's communicator start waits until every rank has joined, inside one call that
    holds the GIL, so a rank that never joins would leave the others there for ever, and
    no Python thread could time it out. faulthandler's watchdog is a thread of C that
    needs no GIL; it replaces any watchdog the user armed with
    ``faulthandler.dump_traceback_later``, and is cancelled on return. It writes to the
    process's own stderr; where that has no file descriptor (a notebook may have none),
    the start runs unwatched."""
    stream = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=stream)
    except (OSError, ValueError, RuntimeError, AttributeError):  # no descriptor to write to
        return start()
    try:
        return start()
    finally:
        faulthandler.cancel_dump_traceback_later()


class DeviceSums:
    """Sums of device arrays over the ranks by NCCL, each rank on its own GPU, with no
    copy through the host: rank 0 makes the communicator's id, MPI hands it to the others.

    A sum is queued on the backend's current stream, behind the backward that made the
    gradient and ahead of the update that reads it. :meth:`wait` bounds the wait for the
    queued sums as :class:`Group` bounds MPI's: a rank that never joins them would leave
    the others' GPUs waiting for ever, so past the timeout the communicator is aborted and
    the job with it. The communicator's start is bounded too (:func:`within`), and a rank
    whose start fails aborts the job at once: the others are inside NCCL's start."""

    def __init__(self, group: Group, backend: Backend, nccl: Any) -> None:
        self.group, self.backend, self.nccl = group, backend, nccl
        token = group.broadcast(nccl.get_unique_id() if group.rank == 0 else None)
        try:
            self.comm = within(
                group.timeout, lambda: nccl.NcclCommunicator(group.size, token, group.rank)
            )
        except Exception as error:  # the others wait inside NCCL's start: end them all
            group.abort(f"NCCL's communicator failed to start ({type(error).__name__}: {error})")
            raise
        self.types = {
            np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64
        }  # fmt: skip

    def sum(self, array: Array) -> None:
        """``array`` (contiguous, on the device) summed over the ranks, in place."""
        address, stream = self.backend.device_address(array), self.backend.stream_handle()
        kind = self.types[np.dtype(array.dtype)]
        self.comm.allReduce(address, address, array.size, kind, self.nccl.NCCL_SUM, stream)

    def wait(self, what: str) -> None:
        """Wait until the queued sums are done, or abort the job after the timeout."""
        done = self.backend.stream_done()
        started = time.monotonic()
        while not done():
            if time.monotonic() - started > self.group.timeout:
                self.comm.abort()  # NCCL's own waits end with it
                self.group.give_up(what)
            time.sleep(1e-4)
        self.comm.check_async_error()

    def close(self) -> None:
        self.comm.destroy()


class GradientSum:
    """One step's gradient sum: each gradient times this rank's share of the batch,
    summed over the ranks, in place: by NCCL on the GPU where the group uses it
    (:meth:`Group.use_nccl`), else by MPI, through the host for device arrays.

    Every rank must start the same sums in the same order, whatever happens to it, so
    the order is fixed (``order``: the gradients as the backward makes them, last layer
    first): :meth:`add` starts those of a layer whose backward is done (only with
    ``overlap``), and :meth:`finish` starts the rest in that order (on a rank that failed
    too) and waits for them all.
    """

    def __init__(
        self,
        group: Group,
        backend: Backend,
        order: Sequence[Array],
        share: float,
        overlap: bool,
        stats: SumStats,
    ) -> None:
        self.group, self.backend, self.order = group, backend, list(order)
        self.share, self.overlap, self.stats = share, overlap, stats
        self._places = {id(grad): i for i, grad in enumerate(self.order)}
        self._posted: list[tuple[Array, Array, Any]] = []  # (array, its buffer, request)
        self._queued = False  # whether NCCL sums are queued on the GPU

    def add(self, grads: Sequence[Array]) -> None:
        """The gradients of a layer whose backward is done (those of ``order``)."""
        if not self.overlap:
            return
        for grad in grads:
            if self._places.get(id(grad)) == len(self._posted):
                self._post(grad)

    def _buffer(self, grad: Array) -> Array:
        """``grad`` times the share, in place (a host array, or a device array NCCL sums),
        or a host copy of it for a device array that goes through the host."""
        if self._on_device(grad) or (isinstance(grad, np.ndarray) and grad.flags.c_contiguous):
            grad *= grad.dtype.type(self.share)
            buffer = grad
        else:  # through the host
            buffer = np.ascontiguousarray(self.backend.to_numpy(grad)) * self.share
        self.stats.bytes += buffer.nbytes
        return buffer

    def _on_device(self, grad: Array) -> bool:
        """Whether NCCL sums ``grad`` where it is: the group uses NCCL (so the backend's
        arrays are device arrays) and ``grad`` is contiguous."""
        return self.group.device is not None and bool(grad.flags.c_contiguous)

    def _post(self, grad: Array) -> None:
        buffer = self._buffer(grad)
        if self.group.device is not None and buffer is grad and self._on_device(grad):
            self.group.device.sum(grad)  # queued on the GPU: waited for in finish
            self._queued = True
            self._posted.append((grad, buffer, None))
        else:
            self._posted.append((grad, buffer, self.group._post(buffer)))

    def finish(self) -> None:
        """Start the sums not started yet, in order, and wait for every one. Without
        ``overlap`` the ranks have just agreed that all are here (``Group.status``): the
        sums are MPI's blocking ``Allreduce``, faster in MPICH than its non-blocking one
        waited for (measured, 2 ranks: a `keras` epoch took 1.65 s against 2.32 s, the
        wait for the sums 1.0 ms a step against 1.8 ms)."""
        started = time.perf_counter()
        if not self.overlap:
            for grad in self.order:
                if self._on_device(grad):
                    self._post(grad)
                    continue
                buffer = self._buffer(grad)
                self.group.comm.Allreduce(self.group.mpi.IN_PLACE, buffer, op=self.group.mpi.SUM)
                self._posted.append((grad, buffer, None))
        else:
            for grad in self.order[len(self._posted) :]:
                self._post(grad)
        for grad, buffer, request in self._posted:
            if request is not None:
                self.group._wait(request, "the gradients' sum")
            if buffer is not grad:
                self.backend.copy_from_host(grad, buffer.astype(grad.dtype, copy=False))
        if self.group.device is not None and self._queued:
            self.group.device.wait("the gradients' sum")
        self.stats.wait_seconds += time.perf_counter() - started
        self.stats.steps += 1
