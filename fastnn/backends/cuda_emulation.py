"""A stand-in for CuPy on the CPU: what the cupy backend needs of CuPy, with its CUDA
kernels run by the emulation of :mod:`fastnn.kernels.emulator`.

Device arrays are NumPy arrays of a subclass, :class:`DeviceArray`, so the backend's
inherited NumPy code runs on them unchanged, while the stand-in keeps what a GPU would
enforce and counts what a GPU would launch:

* a host ``numpy.ndarray`` handed to a kernel, or mixed with device arrays in an
  operation, is refused, as CuPy refuses it;
* every kernel, product, elementwise or reduction operation, fill and copy is counted
  (:func:`launches`), so a test can count the launches of a training step;
* stream capture works as in CUDA: launches on a capturing stream are recorded, not run,
  and run when the graph is launched; an allocation, a host read or a synchronisation
  inside a capture is an error, as it is (or, for allocations from CuPy's pool, should
  be) on a GPU.

This checks the logic of the kernels and of the backend's Python code, not the GPU: the
memory model, timing and cuBLAS are the real GPU's business (``bench/gpu_check.sh``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

#: numpy functions that return views or metadata, never launching work on a GPU
_VIEWS = {
    np.reshape, np.transpose, np.squeeze, np.expand_dims, np.broadcast_to, np.swapaxes,
    np.moveaxis, np.shape, np.ndim, np.size, np.result_type, np.may_share_memory,
    np.shares_memory, np.can_cast,
}  # fmt: skip


class CaptureError(RuntimeError):
    """Something a CUDA stream capture does not allow happened inside one."""


class _Device:
    """The emulated GPU's process-wide state: launch counts and the random launch seeds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        seed = os.environ.get("FASTNN_EMULATOR_SEED")
        self.random = random.Random(int(seed) if seed else None)
        self.local = threading.local()

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def seed(self) -> int:
        with self.lock:
            return self.random.getrandbits(64)


_device = _Device()


def launches() -> Counter[str]:
    """How many operations of each kind the emulated GPU has run so far (a copy)."""
    with _device.lock:
        return Counter(_device.counts)


# ------------------------------------------------------------------------- streams
class Stream:
    """A CUDA stream: work on it runs at once here, unless the stream is capturing."""

    def __init__(self, non_blocking: bool = False, null: bool = False) -> None:
        self.null = null
        self.non_blocking = non_blocking
        self.ptr = 0 if null else id(self)  # what NCCL is handed: the stream's handle
        self._recording: list[Callable[[], None]] | None = None

    def __enter__(self) -> Stream:
        _stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _stack().pop()

    def begin_capture(self, mode: Any = None) -> None:
        if self.null:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if self._recording is not None:
            raise CaptureError("the stream is capturing already")
        self._recording = []

    def end_capture(self) -> Graph:
        if self._recording is None:
            raise CaptureError("end_capture() without begin_capture()")
        graph = Graph(self._recording)
        self._recording = None
        return graph

    def is_capturing(self) -> bool:
        return self._recording is not None

    def synchronize(self) -> None:
        _refuse_in_capture("a stream synchronisation")

    def record(self, event: Event | None = None) -> Event:
        return event or Event()

    def wait_event(self, event: Event) -> None:
        return None


class Event:
    """Nothing to wait for: emulated work is done when its launch returns."""

    done = True

    def synchronize(self) -> None:
        _refuse_in_capture("an event synchronisation")


class Graph:
    """The work a stream capture recorded; ``launch`` runs it again, as a CUDA graph."""

    def __init__(self, work: list[Callable[[], None]]) -> None:
        self._work = work

    def launch(self, stream: Stream | None = None) -> None:
        _device.count("graph")
        for item in self._work:
            item()

    def upload(self, stream: Stream | None = None) -> None:
        return None


_NULL_STREAM = Stream(null=True)


def _stack() -> list[Stream]:
    stack = getattr(_device.local, "streams", None)
    if stack is None:
        stack = _device.local.streams = []
    return stack


def get_current_stream() -> Stream:
    stack = _stack()
    return stack[-1] if stack else _NULL_STREAM


def _refuse_in_capture(what: str) -> None:
    if get_current_stream().is_capturing():
        raise CaptureError(f"{what} inside a CUDA stream capture: the graph could not replay it")


def _run(kind: str, work: Callable[[], Any], writes: bool) -> Any:
    """Run (or, when capturing, record) one launch of ``kind``.

    ``writes``: the work writes only into arrays that exist already (it can be recorded);
    otherwise it allocates its result, which a capture cannot hold.
    """
    stream = get_current_stream()
    if stream._recording is None:
        _device.count(kind)
        return work()
    if not writes:
        raise CaptureError(
            f"a {kind} operation that allocates its result inside a CUDA stream capture"
        )

    def replay() -> None:
        _device.count(kind)
        work()

    stream._recording.append(replay)
    return None


# -------------------------------------------------------------------------- arrays
def _host(value: Any) -> Any:
    """``value`` with device arrays as plain NumPy views; host arrays refused like CuPy."""
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise TypeError(
            f"Unsupported type {type(value)}: a host numpy.ndarray of shape {value.shape} "
            "mixed with device arrays (move it with asarray first)"
        )
    if isinstance(value, (tuple, list)):
        return type(value)(_host(v) for v in value)
    return value


def _index(key: Any) -> Any:
    """An indexing key with device arrays as NumPy views (CuPy takes host indices too)."""
    if isinstance(key, DeviceArray):
        return key.view(np.ndarray)
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _device_result(value: Any) -> Any:
    """NumPy results as device arrays; scalars as 0-d device arrays, as CuPy returns them."""
    if isinstance(value, np.ndarray):
        return value.view(DeviceArray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_device_result(v) for v in value)
    return value


class DeviceArray(np.ndarray):
    """An array in the emulated GPU's memory (NumPy underneath)."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        kind = "gemm" if ufunc is np.matmul else "elementwise"
        args = _host(inputs)
        host_kwargs = {k: _host(v) for k, v in kwargs.items()}

        def work() -> Any:
            return getattr(ufunc, method)(*args, **host_kwargs)

        result = _run(kind, work, writes=out is not None)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device_result(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        host_args, host_kwargs = _host(args), {k: _host(v) for k, v in kwargs.items()}
        if func in _VIEWS:
            return _device_result(func(*host_args, **host_kwargs))
        out = kwargs.get("out")
        result = _run(
            "elementwise", lambda: func(*host_args, **host_kwargs), writes=out is not None
        )
        return out if out is not None else _device_result(result)

    def __getitem__(self, key: Any) -> Any:
        host_key = _index(key)
        result = np.ndarray.__getitem__(self, host_key)
        if isinstance(result, np.generic):  # CuPy gives a 0-d device array, a view
            key_tuple = host_key if isinstance(host_key, tuple) else (host_key,)
            return np.ndarray.__getitem__(self, (*key_tuple, Ellipsis))
        if isinstance(result, np.ndarray) and not np.may_share_memory(result, self):
            # fancy indexing gathers into a new array: a launch, and an allocation
            _refuse_in_capture("indexing that gathers into a new array")
            _device.count("elementwise")
        return result

    # a GPU copies for these; NumPy's methods would not pass through the hooks above
    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
            value = np.array(value)  # CuPy copies a host value to the device first
        host_key, host_value = _index(key), _host(value)
        _run("copy", lambda: np.ndarray.__setitem__(self, host_key, host_value), writes=True)

    def copy(self, order: Any = "C") -> DeviceArray:
        return _run("copy", lambda: np.ndarray.copy(self, order), writes=False).view(DeviceArray)

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> DeviceArray:
        if kwargs.get("copy") is False and np.dtype(dtype) == self.dtype:
            return self
        result = _run("copy", lambda: np.ndarray.astype(self, dtype, *args, **kwargs), False)
        return result.view(DeviceArray)

    def fill(self, value: Any) -> None:
        _run("memset", lambda: np.ndarray.fill(self, value), writes=True)

    def set(self, host: np.ndarray) -> None:
        """Copy a host array into this one (CuPy's ``ndarray.set``)."""
        # a copy from pageable host memory is not a graph node: refused, as CUDA does
        _refuse_in_capture("a copy from the host")
        if np.shape(host) != self.shape:
            raise ValueError(f"set() takes an array of shape {self.shape}; got {np.shape(host)}")
        _device.count("copy")
        np.copyto(self.view(np.ndarray), host)

    def get(self) -> np.ndarray:
        return asnumpy(self)

    # reading a value back to the host waits for the GPU
    def item(self, *args: Any) -> Any:
        _refuse_in_capture("reading a device value back to the host")
        _device.count("copy")
        return np.ndarray.item(self, *args)

    def tolist(self) -> Any:
        _refuse_in_capture("reading a device array back to the host")
        _device.count("copy")
        return np.ndarray.tolist(self)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())


# --------------------------------------------------------------- array creation
def _allocate(shape: Any, dtype: Any, fill: Any = None) -> DeviceArray:
    _refuse_in_capture("an allocation")
    array = np.empty(shape, dtype=dtype if dtype is not None else np.float64).view(DeviceArray)
    if fill is not None:
        array.fill(fill)
    return array


def empty(shape: Any, dtype: Any = None, order: str = "C") -> DeviceArray:
    return _allocate(shape, dtype)


def zeros(shape: Any, dtype: Any = None, order: str = "C") -> DeviceArray:
    return _allocate(shape, dtype, 0)


def ones(shape: Any, dtype: Any = None, order: str = "C") -> DeviceArray:
    return _allocate(shape, dtype, 1)


def full(shape: Any, fill_value: Any, dtype: Any = None) -> DeviceArray:
    return _allocate(shape, dtype if dtype is not None else np.asarray(fill_value).dtype,
                     fill_value)  # fmt: skip


def empty_like(a: Any, dtype: Any = None) -> DeviceArray:
    return _allocate(np.shape(a), dtype if dtype is not None else a.dtype)


def zeros_like(a: Any, dtype: Any = None) -> DeviceArray:
    return _allocate(np.shape(a), dtype if dtype is not None else a.dtype, 0)


def arange(*args: Any, dtype: Any = None) -> DeviceArray:
    _refuse_in_capture("an allocation")
    _device.count("elementwise")
    return np.arange(*args, dtype=dtype).view(DeviceArray)


def asarray(a: Any, dtype: Any = None, order: Any = None) -> DeviceArray:
    """``a`` on the device: itself when it is one already (converted if ``dtype`` differs),
    else copied from the host."""
    if isinstance(a, DeviceArray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    _refuse_in_capture("a copy from the host (it allocates)")
    _device.count("copy")
    return np.array(a, dtype=dtype, order=order or "K", copy=True).view(DeviceArray)


def array(a: Any, dtype: Any = None, copy: bool = True) -> DeviceArray:
    result = asarray(a, dtype)
    return result.copy() if copy and result is a else result


def ascontiguousarray(a: Any, dtype: Any = None) -> DeviceArray:
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def asnumpy(a: Any) -> np.ndarray:
    """A host copy (CuPy's ``asnumpy``); host arrays come back as they are."""
    if isinstance(a, DeviceArray):
        _refuse_in_capture("a copy to the host")
        _device.count("copy")
        return np.array(a.view(np.ndarray), copy=True)
    return np.asarray(a)


# ----------------------------------------------------------------- kernel modules
class RawModule:
    """``cupy.RawModule``: the source compiled for the CPU by the emulation."""

    def __init__(
        self,
        code: str,
        options: Sequence[str] = (),
        name_expressions: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        from fastnn.kernels import emulator

        self.options = tuple(options)
        self._module = emulator.Module(code, list(name_expressions), emulator.sanitizer())

    def get_function(self, name: str) -> RawFunction:
        return RawFunction(self._module.get_function(name))


class RawFunction:
    """One kernel; called as CuPy calls one: ``kernel(grid, block, args)``.

    CuPy's ``-ftz=true`` flushes float32 subnormals only; the emulation can flush only all
    SSE arithmetic or none, so it flushes in the float instantiations and not in the
    double ones, as a GPU does.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.name = kernel.name
        self.flushes = "<float" in kernel.name

    def __call__(
        self, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], **kwargs: Any
    ) -> None:
        host_args = []
        for value in args:
            if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
                if value.size != 1:
                    raise TypeError(
                        f"You are trying to pass a numpy.ndarray of shape {value.shape} as a "
                        "kernel parameter; kernels take device arrays"
                    )
                value = value.reshape(())[()]  # CuPy passes a one-element array by value
            host_args.append(value.view(np.ndarray) if isinstance(value, DeviceArray) else value)
        grid, block = tuple(grid), tuple(block)
        flush = self.flushes

        def work() -> None:
            self.kernel.launch(grid, block, host_args, seed=_device.seed(), flush_subnormals=flush)

        _run("kernel", work, writes=True)


# ------------------------------------------------------------- the cupy namespace
class _Namespace(SimpleNamespace):
    """What the backend calls ``xp``: these functions, then NumPy's for the rest (NumPy
    hands device arrays to the hooks of :class:`DeviceArray`)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


#: how many GPUs the emulation has (default 1): more let the tests give each rank of a
#: distributed fit its own, as NCCL requires
DEVICES_ENV = "FASTNN_EMULATED_DEVICES"


def _device_count() -> int:
    return int(os.environ.get(DEVICES_ENV, "1"))


class Device:
    """A GPU by number; ``use`` makes it the current one (nothing else changes here)."""

    def __init__(self, device: int | None = None) -> None:
        self.id = _device.local.__dict__.get("device", 0) if device is None else device

    def use(self) -> None:
        if not 0 <= self.id < _device_count():
            raise ValueError(f"CUDA error: invalid device ordinal {self.id}")
        _device.local.device = self.id


class _NcclCommunicator:
    """NCCL's communicator of one GPU a process, its sums made by MPI over the emulated
    device arrays' host memory (found from their addresses, as NCCL is given them)."""

    def __init__(self, ndev: int, comm_id: bytes, rank: int) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD.Dup()  # collective: every rank makes its communicator
        if (self._comm.Get_size(), self._comm.Get_rank()) != (ndev, rank):
            raise RuntimeError(f"NCCL error: rank {rank} of {ndev} in a world of another size")

    def allReduce(  # NCCL's name
        self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int
    ) -> None:
        if op != nccl.NCCL_SUM:
            raise NotImplementedError("the emulated NCCL sums only")
        dtype = np.dtype(_NCCL_TYPES[datatype])
        send, recv = (_at(address, count, dtype) for address in (sendbuf, recvbuf))

        def work() -> None:
            source = self._mpi.IN_PLACE if sendbuf == recvbuf else send
            self._comm.Allreduce(source, recv, op=self._mpi.SUM)

        _run("nccl", work, writes=True)

    def check_async_error(self) -> None:
        pass

    def abort(self) -> None:
        self._comm.Free()

    def destroy(self) -> None:
        self._comm.Free()


def _at(address: int, count: int, dtype: np.dtype) -> np.ndarray:
    """The ``count`` entries of ``dtype`` at host ``address`` (an emulated device array's)."""
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(memoryview(buffer), dtype, count)


def _unique_id() -> bytes:
    return os.urandom(128)


_NCCL_TYPES = {7: np.float32, 8: np.float64}
nccl = SimpleNamespace(
    available=True,
    NCCL_FLOAT32=7,
    NCCL_FLOAT64=8,
    NCCL_SUM=0,
    NcclCommunicator=_NcclCommunicator,
    get_unique_id=_unique_id,
)

cuda = SimpleNamespace(
    Stream=Stream,
    Event=Event,
    Graph=Graph,
    Device=Device,
    get_current_stream=get_current_stream,
    runtime=SimpleNamespace(getDeviceCount=_device_count),
    nccl=nccl,
)

xp = _Namespace(
    ndarray=DeviceArray,
    empty=empty,
    zeros=zeros,
    ones=ones,
    full=full,
    empty_like=empty_like,
    zeros_like=zeros_like,
    arange=arange,
    asarray=asarray,
    array=array,
    ascontiguousarray=ascontiguousarray,
    asnumpy=asnumpy,
    RawModule=RawModule,
    cuda=cuda,
)


@contextlib.contextmanager
def counting() -> Iterator[Counter[str]]:
    """Within the block, the launches of each kind so far (filled in when it ends)."""
    before = launches()
    counts: Counter[str] = Counter()
    try:
        yield counts
    finally:
        counts.update(launches() - before)
