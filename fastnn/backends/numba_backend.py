"""The Numba backend: NumPy arrays, with the hot ops run by JIT-compiled CPU kernels.

The kernels live in ``kernels/`` (imported as ``fastnn.kernels``); this file only
checks arguments and hands arrays to them. Ops a kernel cannot do better than
NumPy (sigmoid/tanh forward, which need SIMD ``exp``/``tanh``) and layouts a
kernel does not take (arrays of 3+ dimensions) stay on the inherited NumPy code.

Matrix products go through :mod:`fastnn.kernels.matmul`, which picks, per shape,
NumPy's BLAS or a Numba kernel of our own (see that module for the measurements); a
model's thin last layer, in a pass that keeps BLAS on one thread, runs with its loss on
:mod:`fastnn.kernels.heads` (:meth:`NumbaBackend.dense_loss_step`).

Threading: the elementwise, loss and optimizer kernels are serial (vectorized
with SIMD). On the 2-core target machine a split RMSprop update of a 784x512 weight
gains nothing with sleeping threads and, with spinning ones, fights NumPy's BLAS
threads for the cores when it follows a product, as training runs it
(bench/results/overhead.md: 682 and 7,996 us against 665 us on one thread). Only
the product kernels (dense, compressed-row and the last layer's) and the compressed-row
gather, sort and update use numba's thread pool; see
:func:`fastnn.kernels.threads.configure`.

A training step's methods say so (``self._tapes.launched_only()``) where their every
effect was the kernels they launched: a replayed step then launches those alone
(``fastnn/backends/replay.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fastnn.backends.base import (
    TOTALS_START,
    UPDATE_RULES,
    Adjustment,
    Array,
    Count,
    Scalar,
    check_activation_name,
)
from fastnn.backends.numpy_backend import (
    NumpyBackend,
    adam_step_size,
    check_confusion_matrix,
    require_columns,
    require_entries,
)
from fastnn.backends.replay import StepTapes, replay_wanted
from fastnn.extras import install_hint
from fastnn.sparse import SparseRows, index_dtype


def probe() -> str | None:
    """Why the numba backend cannot run here, or None when it can."""
    if importlib.util.find_spec("numba") is None:
        return f"numba is not installed ({install_hint('numba', 'numba')})"
    try:
        import numba  # noqa: F401
    except Exception as error:  # a broken install (e.g. a NumPy it does not support)
        return f"numba is installed but failed to import: {error}"
    return None


def _as_2d(a: np.ndarray) -> np.ndarray | None:
    """A 2-D view of a 1-D or 2-D array (kernels loop over rows and columns), else None."""
    if a.ndim == 2:
        return a
    if a.ndim == 1:
        return a.reshape(1, -1)
    return None


def _alike(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out``, or a new C-contiguous array shaped like ``a``."""
    if out is None:
        return np.empty(a.shape, dtype=a.dtype)
    if out.shape != a.shape:
        raise ValueError(f"out has shape {out.shape}; expected {a.shape}")
    return out


def _writable(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether a kernel may write a result of ``shape`` and ``dtype`` into ``out``: absent
    (the result is allocated) or of exactly that shape and dtype, C-contiguous. Anything
    else goes to NumPy, which casts, refuses or copies as its rules say."""
    return out is None or (out.shape == shape and out.dtype == dtype and out.flags.c_contiguous)


def _flat(*arrays: np.ndarray) -> list[np.ndarray] | None:
    """1-D views of same-shape, same-dtype arrays all C-contiguous or all F-contiguous
    (entry i of each view is then the same element of each array), or None otherwise."""
    shape, dtype = arrays[0].shape, arrays[0].dtype
    c_order = bool(arrays[0].flags.c_contiguous)
    views = []
    for a in arrays:  # a plain loop: this runs for every weight at every step
        contiguous = a.flags.c_contiguous if c_order else a.flags.f_contiguous
        if a.shape != shape or a.dtype != dtype or not contiguous:
            return None
        views.append(a.reshape(-1, order="C" if c_order else "F"))
    return views


def _pieces(*arrays: np.ndarray) -> list[list[np.ndarray]] | None:
    """1-D pieces covering same-shape, same-dtype arrays alike, for elementwise kernels:
    one flat view of each where :func:`_flat` gives them, else each 1-D or 2-D array
    whole or row by row, of any strides (numba compiles the kernel for strided views
    too); None for anything else."""
    flat = _flat(*arrays)
    if flat is not None:
        return [flat]
    shape, dtype = arrays[0].shape, arrays[0].dtype
    if len(shape) > 2 or any(a.shape != shape or a.dtype != dtype for a in arrays):
        return None
    if len(shape) == 1:
        return [list(arrays)]
    return [[a[r] for a in arrays] for r in range(shape[0])]


#: a sparse weight gradient of at most this many bytes (F x H) sums the batch's rows into
#: a copy per thread instead of sorting the batch by column: measured on 784 inputs, rows
#: win up to 64 units at batch 128 (0.6x the sort's time) and at any width full-batch
SCATTER_BYTES = 256 * 1024

_TINY = {np.dtype(t): t(np.finfo(t).tiny) for t in (np.float32, np.float64)}


#: the stamps an SGD step, which has no velocity, passes to the fused sparse update
_NO_STAMPS = np.empty(0, np.int64)

_EMPTY = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}


def _empty(dtype: np.dtype) -> np.ndarray:
    """A 0-length array of ``dtype``: an optional state array a kernel was not given."""
    empty = _EMPTY.get(dtype)
    return empty if empty is not None else np.empty(0, dtype)


#: what an update runs over: the parameter's dtype, the names of the state arrays given
#: (in the rule's order), and pieces of (param, grad, those arrays) from :func:`_pieces`
UpdatePlan = tuple[np.dtype, tuple[str, ...], list[list[np.ndarray]]]


def _plan(param: Array, grad: Array, slots: Mapping[str, Array]) -> UpdatePlan | None:
    """How the kernels run one parameter's update, or None where they cannot. ``slots``:
    the state arrays given, by name (in any order: a launch places them by name)."""
    pieces = _pieces(param, grad, *slots.values())
    return None if pieces is None else (param.dtype, tuple(slots), pieces)


class UpdateLaunch(NamedTuple):
    """An update kernel and its arguments besides the arrays, for a step's parameters of
    one dtype and one set of state arrays (``key``)."""

    key: tuple[np.dtype, tuple[str, ...]]
    kernel: str  # its name in kernels/optimizers.py (looked up at each run)
    places: tuple[int, ...]  # each state array's place among the views, -1: not given
    scalars: tuple[Any, ...]  # the rule's scalars
    scaled: bool  # whether the clipping scale is passed (else None)
    after_scale: tuple[Any, ...]  # clipvalue's limit, weight decay, rate (None: not wanted)

    def run(self, kernels: Any, pieces: list[list[np.ndarray]], scale: float) -> None:
        """Run the kernel (from ``kernels``) over each piece of (param, grad, *state)."""
        dtype = self.key[0]
        adjust = (dtype.type(scale) if self.scaled else None, *self.after_scale)
        empty = _empty(dtype)
        kernel = getattr(kernels, self.kernel)
        for views in pieces:
            state = [views[i] if i >= 0 else empty for i in self.places]
            kernel(views[0], views[1], *state, *self.scalars, *adjust)


def _pool_size() -> int:
    """numba's thread pool, as the process started it (NUMBA_NUM_THREADS)."""
    from numba.core import config

    settings: Any = config  # its settings are made at run time, from the environment
    return int(settings.NUMBA_NUM_THREADS)


def _by_norm(adjust: Adjustment | None) -> bool:
    """Whether gradients are clipped by their norms (found from their values each step)."""
    return adjust is not None and adjust.clipping in ("clipnorm", "global_clipnorm")


def _tiny(dtype: np.dtype) -> Any:
    """The smallest normal number of ``dtype``, as a scalar of that dtype."""
    tiny = _TINY.get(dtype)
    return tiny if tiny is not None else dtype.type(np.finfo(dtype).tiny)


class NumbaBackend(NumpyBackend):
    """NumPy arrays; kernels from ``fastnn.kernels`` for every op where they win."""

    name: ClassVar[str] = "numba"
    replays_steps: ClassVar[bool] = True
    # tanh needs SIMD tanh, which NumPy has and Numba does not; multiply and the dropout
    # mask are one NumPy pass already; products go to NumPy's BLAS except the thin ones
    inherited_ops: ClassVar[frozenset[str]] = frozenset({"tanh", "multiply", "dropout_mask"})

    def __init__(self) -> None:
        from fastnn.kernels import (
            elementwise,
            heads,
            loss_steps,
            narrow,
            normalization,
            optimizers,
            regularization,
            rows,
            softmax,
            sparse,
            sparse_updates,
            threads,
        )
        from fastnn.kernels import matmul as matmul_kernels

        super().__init__()
        threads.configure()
        self._elementwise = elementwise
        self._softmax = softmax
        self._loss_steps = loss_steps
        self._heads = heads
        self._rows = rows
        self._optimizers = optimizers
        self._matmul = matmul_kernels
        self._normalization = normalization
        self._regularization = regularization
        self._sparse = sparse
        self._sparse_updates = sparse_updates
        self._narrow = narrow
        #: per thread (models may train side by side): scratch arrays (see _scratch)
        self._local = threading.local()
        #: update launches by their settings (see _launch)
        self._launches: dict[tuple[Any, ...], UpdateLaunch] = {}
        #: training steps replayed as their recorded calls (see run_step)
        self._tapes = StepTapes(self)

    def run_step(
        self,
        step: Callable[[], None],
        key: Hashable | None,
        check: Callable[[], None] | None = None,
    ) -> None:
        # the Python around a step's dozen calls took about a sixth of a keras epoch
        self._tapes.run(step, key, check)

    @contextlib.contextmanager
    def training_stream(self) -> Iterator[None]:
        replay_wanted()  # a bad FASTNN_STEP_REPLAY is refused before the first step
        with self._tapes.fit():
            yield

    def kernels_cached(self) -> bool:
        # Numba keeps compiled kernels on disk (kernels/jit.py), an index file per kernel
        # beside its machine code: a kernel every step runs stands for them all
        kernel = self._elementwise.bias_activation
        folder = Path(kernel.stats.cache_path)
        return any(folder.glob(f"{kernel.__module__.rsplit('.', 1)[-1]}.bias_activation-*.nbi"))

    # ------------------------------------------------------------ mini-batches
    def gather_batch(
        self,
        sources: Sequence[Array],
        order: Array | None,
        cursor: Array,
        batch_size: int,
        outs: Sequence[Array],
    ) -> list[Array]:
        if order is None or not self._gathers(sources, order, cursor, outs):
            return super().gather_batch(sources, order, cursor, batch_size, outs)
        # the batch's rows picked out of the pass's order, and the step counted, by a
        # kernel: then the gather changes nothing but through kernels
        (picks,) = self._scratch("batch rows", order.dtype, (len(outs[0]),))
        self._rows.next_batch(order, cursor, batch_size, picks)
        batch: list[Array] = []
        for source, out in zip(sources, outs, strict=True):
            if isinstance(source, SparseRows):
                indptr = out.indptr[: len(picks) + 1]
                self._sparse.take_rows(source.indptr, source.indices, source.values, picks,
                                       indptr, out.indices, out.values)  # fmt: skip
                batch.append(SparseRows(indptr, out.indices, out.values, source.width))
            else:
                width = math.prod(source.shape[1:])  # 1 for labels (n,)
                self._rows.take_rows(source.reshape(len(source), width), picks,
                                     out.reshape(len(out), width))  # fmt: skip
                batch.append(out)
        self._tapes.launched_only()
        return batch

    @staticmethod
    def _gathers(
        sources: Sequence[Array], order: Array, cursor: Array, outs: Sequence[Array]
    ) -> bool:
        """Whether :meth:`gather_batch`'s kernels take these arrays: the order and the
        cursor as fit makes them, each source and its batch buffer of one dtype (dense
        ones C-contiguous, of the same row shape)."""
        if not (
            order.ndim == 1 and order.dtype.kind in "iu"
            and cursor.shape == (2,) and cursor.dtype == np.uint64
        ):  # fmt: skip
            return False
        rows = len(outs[0])
        for source, out in zip(sources, outs, strict=True):
            if isinstance(source, SparseRows):
                if not (
                    isinstance(out, SparseRows) and len(out) == rows
                    and out.indices.dtype == source.indices.dtype
                    and out.values.dtype == source.values.dtype
                ):  # fmt: skip
                    return False
            elif not (
                isinstance(source, np.ndarray) and isinstance(out, np.ndarray)
                and source.ndim >= 1 and out.shape == (rows, *source.shape[1:])
                and out.dtype == source.dtype
                and source.flags.c_contiguous and out.flags.c_contiguous
            ):  # fmt: skip
                return False
        return True

    def take_rows(self, x: Array, indices: Array, out: Array | None = None) -> Array:
        indices = np.asarray(indices)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            return super().take_rows(x, indices, out=out)  # NumPy's refusal or its rules
        shape = (len(indices), *x.shape[1:])
        if out is None:
            out = np.empty(shape, dtype=x.dtype)
        if (
            x.ndim < 2
            or not (x.flags.c_contiguous and out.flags.c_contiguous)
            or out.shape != shape
        ):
            return super().take_rows(x, indices, out=out)
        # the row width spelled out: reshape(n, -1) cannot infer it when there are no rows
        width = math.prod(x.shape[1:])
        self._rows.take_rows(x.reshape(len(x), width), indices, out.reshape(len(out), width))
        return out

    # ------------------------------------------------------- compressed rows
    sparse_crossover: ClassVar[float] = 0.25  # bench/results/sparse.md: epochs cross above 0.3
    sparse_products_own: ClassVar[bool] = True
    sparse_narrow_units: ClassVar[int] = 16  # kernels/narrow.py (its LANES)

    def compress_rows(self, x: np.ndarray) -> SparseRows:
        rows = x.reshape(len(x), math.prod(x.shape[1:]))  # -1 cannot say it for 0 rows
        if not rows.flags.c_contiguous or rows.dtype.kind != "f":
            return super().compress_rows(x)
        counts = np.empty(len(rows), np.int64)
        self._sparse.count_nonzeros(rows, counts)
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.empty(int(indptr[-1]), index_dtype(rows.shape[1]))
        values = np.empty(int(indptr[-1]), rows.dtype)
        self._sparse.compress(rows, indptr, indices, values)
        return SparseRows(indptr, indices, values, rows.shape[1])

    def take_sparse_rows(self, x: SparseRows, indices: Array, out: SparseRows) -> SparseRows:
        rows = np.asarray(indices)
        if (
            rows.ndim != 1
            or rows.dtype.kind not in "iu"
            or out.indices.dtype != x.indices.dtype
            or out.values.dtype != x.values.dtype
        ):
            return super().take_sparse_rows(x, indices, out)
        indptr = out.indptr[: len(rows) + 1]
        self._sparse.take_rows(x.indptr, x.indices, x.values, rows, indptr, out.indices, out.values)
        return SparseRows(indptr, out.indices, out.values, x.width)

    def _sparse_product_runs(self, x: SparseRows, w: Array, out: Array | None) -> bool:
        """Whether our kernels make ``x @ w`` into ``out``: same dtypes, w C-contiguous."""
        return bool(
            w.dtype == x.dtype and w.flags.c_contiguous
            and _writable(out, (len(x), w.shape[1]), w.dtype)
        )  # fmt: skip

    def sparse_matmul(self, x: SparseRows, w: Array, out: Array | None = None) -> Array:
        if not self._sparse_product_runs(x, w, out):
            return super().sparse_matmul(x, w, out=out)
        out = np.empty((len(x), w.shape[1]), w.dtype) if out is None else out
        parts = self._threads()
        lanes = self._narrow.LANES
        if w.shape[1] <= lanes:  # too narrow to vectorize along the units
            padded, rows = self._scratch("narrow matmul", w.dtype,
                                         (w.shape[0], lanes), (parts, lanes))  # fmt: skip
            self._narrow.pad(w, padded)
            self._narrow.matmul(x.indptr, x.indices, x.values, padded, out, rows, parts)
            return out
        no_bias = w.reshape(-1)[:0]
        self._sparse.matmul(x.indptr, x.indices, x.values, w, out, parts, no_bias, False)
        return out

    def sparse_dense(
        self,
        x: SparseRows,
        w: Array,
        bias: Array | None,
        activation: str,
        out: Array | None = None,
    ) -> Array:
        fuses = (
            activation in ("relu", "linear")
            and w.ndim == 2
            and w.shape[1] > self._narrow.LANES
            and (bias is None or (bias.dtype == w.dtype and bias.shape == (w.shape[1],)))
            and self._sparse_product_runs(x, w, out)
        )
        if not fuses:
            return super().sparse_dense(x, w, bias, activation, out=out)
        out = np.empty((len(x), w.shape[1]), w.dtype) if out is None else out
        bias = w.reshape(-1)[:0] if bias is None else np.ascontiguousarray(bias)
        relu = activation == "relu"
        self._sparse.matmul(x.indptr, x.indices, x.values, w, out, self._threads(), bias, relu)
        self._tapes.launched_only()
        return out

    def _scratch(
        self, use: str, dtype: np.dtype, *shapes: tuple[int, ...]
    ) -> tuple[np.ndarray, ...]:
        """This thread's scratch arrays for ``use``, of ``dtype`` and ``shapes``: made the
        first time these are asked for, then kept for the next steps."""
        kept: dict[Any, tuple[np.ndarray, ...]] = self._local.__dict__
        key = (use, dtype, shapes)
        arrays = kept.get(key)
        if arrays is None:
            arrays = kept[key] = tuple(np.empty(shape, dtype) for shape in shapes)
        return arrays

    def sparse_weight_gradient(self, x: SparseRows, dz: Array, out: Array | None = None) -> Array:
        shape = (x.width, dz.shape[1])
        if dz.dtype != x.dtype or not dz.flags.c_contiguous or not _writable(out, shape, dz.dtype):
            return super().sparse_weight_gradient(x, dz, out=out)
        out = np.empty(shape, dz.dtype) if out is None else out
        threads = self._threads()
        lanes = self._narrow.LANES
        if shape[1] <= lanes:  # too narrow to vectorize along the units
            partial, rows = self._scratch("narrow gradient", dz.dtype,
                                          (threads, shape[0], lanes), (threads, lanes))  # fmt: skip
            self._narrow.weight_gradient(x.indptr, x.indices, x.values, dz, out, partial, rows)
            return out
        if out.nbytes <= SCATTER_BYTES:  # narrow: stream the rows into one copy a thread
            (partial,) = self._scratch("copies", dz.dtype, (threads, *shape))
            self._sparse.weight_gradient_by_rows(x.indptr, x.indices, x.values, dz, out, partial)
            return out
        # runs of columns with about the same number of entries, four a thread
        self._sparse.weight_gradient(
            x.indptr, x.indices, x.values, dz, out, self._column_scratch(x), 4 * threads
        )
        return out

    def _column_scratch(
        self, x: SparseRows
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This thread's arrays for ``x`` sorted by column (``kernels/sparse.by_column``):
        starts (F + 1,), rows and values with room for the most nonzeros a batch has had,
        kept for the next steps, and the sort's counts, a row of F for each thread.

        A batch gathered into a buffer (whose arrays hold at most a dense batch's entries)
        gets room for the whole buffer: then every batch gathered into it fits, whatever
        its nonzeros, and a replayed step may launch the sort alone (:meth:`sparse_update`).
        """
        kept: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = self._local.__dict__
        nonzeros = int(x.indptr[-1] - x.indptr[0])
        if len(x.values) <= len(x) * x.width:
            nonzeros = max(nonzeros, len(x.values))
        scratch = kept.get((x.width, x.dtype))
        if scratch is None or len(scratch[1]) < nonzeros:
            size = max(nonzeros, 1 if scratch is None else 2 * len(scratch[1]))
            scratch = (
                np.empty(x.width + 1, np.int64), np.empty(size, np.int64), np.empty(size, x.dtype)
            )  # fmt: skip
            kept[(x.width, x.dtype)] = scratch
        (counts,) = self._scratch("column counts", np.dtype(np.int64), (self._threads(), x.width))
        return (*scratch, counts)

    def fuses_sparse_update(self, rule: str, kernel: Array, slot_names: tuple[str, ...]) -> bool:
        # the by-column path only: narrow layers and small gradients are made other ways
        return (
            (rule, slot_names) in (("sgd", ()), ("rmsprop", ("velocity",)))
            and kernel.ndim == 2
            and kernel.flags.c_contiguous
            and kernel.shape[1] > self._narrow.LANES
            and kernel.nbytes > SCATTER_BYTES
        )

    def sparse_update(
        self,
        rule: str,
        x: SparseRows,
        dz: Array,
        param: Array,
        slots: Mapping[str, Array],
        hyper: dict[str, Any],
        stamps: Array | None,
        state: Array,
    ) -> None:
        dtype = param.dtype
        cast, tiny = dtype.type, _tiny(dtype)
        dz = np.ascontiguousarray(dz, dtype)
        starts, rows_of, values_of, counts = self._column_scratch(x)
        self._sparse.by_column(x.indptr, x.indices, x.values, starts, rows_of, values_of, counts)
        # runs of columns with about the same number of entries, four a thread (measured
        # on MNIST batches: 339 us against 371 us for the update with one run a thread)
        parts = 4 * self._threads()
        (grad_rows,) = self._scratch("gradient rows", dtype, (parts, param.shape[1]))
        lr = cast(hyper["learning_rate"])
        if rule == "sgd":  # no velocity: an empty one, kept like any scratch
            (velocity,), rho = self._scratch("no velocity", dtype, (0, param.shape[1])), 0.0
            stamps = _NO_STAMPS
        else:
            velocity, rho = slots["velocity"], hyper["rho"]
        # 1 - rho rounded once from the float, as the dense update's kernel has it
        epsilon = hyper.get("epsilon", 0.0)
        self._sparse_updates.update_rows(
            starts, rows_of, values_of, dz, param, velocity, stamps, state,
            lr, cast(rho), cast(1.0 - rho), cast(epsilon), tiny, grad_rows,
        )  # fmt: skip
        if len(rows_of) >= len(x.values):  # (see _column_scratch) room for any batch here
            self._tapes.launched_only()

    def settle_rows(self, velocity: Array, stamps: Array, step: int, rho: float) -> None:
        dtype = velocity.dtype
        self._sparse_updates.settle(velocity, stamps, step, dtype.type(rho), _tiny(dtype))

    @staticmethod
    def _threads() -> int:
        import numba

        return int(numba.get_num_threads())

    # ---------------------------------------------------------- linear algebra
    def matmul(
        self,
        a: Array,
        b: Array,
        transpose_a: bool = False,
        transpose_b: bool = False,
        out: Array | None = None,
    ) -> Array:
        product = self._matmul.matmul(a, b, transpose_a, transpose_b, out)
        self._tapes.launched_only()
        return product

    def bias_add(self, x: Array, bias: Array, out: Array | None = None) -> Array:
        if x.ndim != 2 or bias.shape != (x.shape[1],) or bias.dtype != x.dtype:
            return super().bias_add(x, bias, out=out)  # NumPy broadcasts, casts or refuses
        return self.bias_activation(x, bias, "linear", out=out)

    def sum_rows(self, x: Array, out: Array | None = None) -> Array:
        if x.ndim != 2 or not _writable(out, (x.shape[1],), x.dtype):
            return super().sum_rows(x, out=out)  # NumPy's checks and rules for the rest
        if out is None:
            out = np.empty(x.shape[1], dtype=x.dtype)
        self._rows.sum_rows(x, out)
        return out

    # ------------------------------------------------------------- activations
    def _elementwise_op(
        self, kernel: Any, fallback: Any, inputs: tuple[np.ndarray, ...], out: np.ndarray | None
    ) -> Array:
        """Run a 2-D elementwise kernel on same-shape inputs, or the NumPy fallback (for
        operands of mixed dtypes too: NumPy's type rules decide those)."""
        if any(a.shape != inputs[0].shape for a in inputs):
            raise ValueError(f"shapes differ: {[a.shape for a in inputs]}")
        dtype = inputs[0].dtype
        if any(a.dtype != dtype for a in inputs) or (out is not None and out.dtype != dtype):
            return fallback(*inputs, out=out)
        out = _alike(inputs[0], out)
        written = _as_2d(out)
        sources = [v for v in map(_as_2d, inputs) if v is not None]
        if written is None or len(sources) != len(inputs):
            return fallback(*inputs, out=out)
        target = self._apart(written, sources)
        kernel(*sources, target)
        if target is not written:
            np.copyto(written, target)
        return out

    def _apart(self, out: np.ndarray, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Where an elementwise kernel writes ``out``: ``out`` itself, or, when it shares
        memory with an input (a layer's ops run in place), this thread's scratch of its
        shape, copied into ``out`` after. LLVM cannot prove a loop safe whose output may
        be its input and runs it scalar: on 128 x 512 float32, in place as Dense calls
        them, bias + ReLU took 32 us straight against 19 us through the scratch and back,
        ReLU's backward 37 us against 28-32 us (alternated processes)."""
        if not any(np.may_share_memory(out, a) for a in inputs):
            return out
        (scratch,) = self._scratch("elementwise", out.dtype, out.shape)
        return scratch

    def relu(self, x: Array, out: Array | None = None) -> Array:
        return self._elementwise_op(self._elementwise.relu, super().relu, (x,), out)

    def sigmoid(self, x: Array, out: Array | None = None) -> Array:
        return self._elementwise_op(self._elementwise.sigmoid, super().sigmoid, (x,), out)

    def relu_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        kernel = self._elementwise.relu_backward
        return self._elementwise_op(kernel, super().relu_backward, (dy, y), out)

    def bias_activation_backward(
        self, dy: Array, y: Array, activation: str, bias_grad: Array, out: Array | None = None
    ) -> Array:
        if (  # else the unfused ops (sum_rows's NumPy fallback, whose sums differ, too)
            activation != "relu"
            or dy.ndim != 2
            or y.shape != dy.shape
            or y.dtype != dy.dtype
            or not _writable(bias_grad, dy.shape[1:], dy.dtype)
            or (out is not None and out.dtype != dy.dtype)
        ):
            return super().bias_activation_backward(dy, y, activation, bias_grad, out=out)
        out = _alike(dy, out)
        if out is not dy:
            np.copyto(out, dy)
        self._elementwise.relu_backward_sums(out, y, bias_grad)
        if out is dy:  # (else the copy above was NumPy's)
            self._tapes.launched_only()
        return out

    def sigmoid_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        kernel = self._elementwise.sigmoid_backward
        return self._elementwise_op(kernel, super().sigmoid_backward, (dy, y), out)

    def tanh_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        kernel = self._elementwise.tanh_backward
        return self._elementwise_op(kernel, super().tanh_backward, (dy, y), out)

    def softmax(self, x: Array, out: Array | None = None) -> Array:
        require_columns(x, "softmax")
        if x.ndim != 2 or not _writable(out, x.shape, x.dtype):
            return super().softmax(x, out=out)
        out = _alike(x, out)
        self._softmax.softmax(x, out)
        return out

    def softmax_backward(self, dy: Array, y: Array, out: Array | None = None) -> Array:
        if dy.ndim != 2:
            return super().softmax_backward(dy, y, out=out)
        kernel = self._softmax.softmax_backward
        return self._elementwise_op(kernel, super().softmax_backward, (dy, y), out)

    def bias_activation(
        self, x: Array, bias: Array, activation: str, out: Array | None = None
    ) -> Array:
        check_activation_name(activation)
        if (
            x.ndim != 2
            or bias.shape != (x.shape[1],)
            or bias.dtype != x.dtype
            or (out is not None and out.dtype != x.dtype)
        ):
            return super().bias_activation(x, bias, activation, out=out)
        out = _alike(x, out)
        elementwise = self._elementwise
        code = {"relu": elementwise.RELU, "sigmoid": elementwise.SIGMOID}.get(
            activation, elementwise.LINEAR
        )
        target = self._apart(out, (x, bias))
        elementwise.bias_activation(x, bias, target, code)
        if target is not out:
            np.copyto(out, target)
        if code == elementwise.LINEAR:  # softmax, tanh: the bias added, then the activation
            return self.activation(out, activation, out=out)
        return out

    # ------------------------------------------------------------------ losses
    def loss_and_gradient(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None = None,
        *,
        bias: Array | None = None,
        bias_grad: Array | None = None,
        totals: Array | None = None,
        count: Count | None = None,
        weights: Array | None = None,
    ) -> tuple[Scalar, Array]:
        kernel = self._loss_step(loss, outputs, targets, grad_out, bias, bias_grad, totals,
                                 count, weights)  # fmt: skip
        if kernel is None:  # the ops one by one, with their checks, refusals and casts
            return super().loss_and_gradient(
                loss, outputs, targets, grad_out, bias=bias, bias_grad=bias_grad,
                totals=totals, count=count, weights=weights,
            )  # fmt: skip
        grad = _alike(outputs, grad_out)
        value = self._run_loss_step(kernel, outputs, targets, grad, bias, bias_grad, totals,
                                    count, weights)  # fmt: skip
        self._tapes.launched_only()
        return value, grad

    def _run_loss_step(
        self,
        kernel: Any,
        outputs: Array,
        targets: Array,
        grad: Array,
        bias: Array | None,
        bias_grad: Array | None,
        totals: Array,
        count: Count | None,
        weights: Array | None,
    ) -> float:
        """Launch a kernel of ``kernels/loss_steps.py`` (from :meth:`_loss_step`)."""
        labels = count.targets if count is not None and count.kind == "argmax" else None
        marks = count.targets if count is not None and count.kind == "threshold" else None
        threshold = outputs.dtype.type(count.threshold if count is not None else 0.0)
        return float(kernel(outputs, targets, grad, weights, bias, bias_grad, totals,
                            labels, marks, threshold))  # fmt: skip

    #: the most rows :meth:`dense_loss_step` takes to its kernels (kernels/heads.py sums a
    #: part's rows in one run; a full batch goes to the products one by one)
    HEAD_ROWS: ClassVar[int] = 1024

    def dense_loss_step(
        self,
        loss: str,
        x: Array,
        kernel: Array,
        targets: Array,
        outputs: Array,
        grad_out: Array,
        kernel_grad: Array,
        input_grad: Array | None,
        **step: Any,
    ) -> tuple[Scalar, Array, Array | None]:
        # the products first: where they are not ours, the loss call below picks its kernel
        loss_kernel = None
        fits = self._head_fits(x, kernel, outputs, grad_out, kernel_grad, input_grad)
        if fits and step.keys() <= {"bias", "bias_grad", "totals", "count", "weights"}:
            loss_kernel = self._loss_step(
                loss, outputs, targets, grad_out, step.get("bias"), step.get("bias_grad"),
                step.get("totals"), step.get("count"), step.get("weights"),
            )  # fmt: skip
        if loss_kernel is None:
            # the ops one by one: backend calls, each replayed as its launches if it can be
            made = super().dense_loss_step(loss, x, kernel, targets, outputs, grad_out,
                                           kernel_grad, input_grad, **step)  # fmt: skip
            self._tapes.launched_only()
            return made
        (rows, width), units = x.shape, kernel.shape[1]
        # parts fixed by the batch and numba's pool, not by the threads in use now (the
        # thread tuner changes those): the gradient's sums come out the same either way
        parts = max(1, min(_pool_size(), rows // 32))
        wt, partial, no_input = self._scratch(
            "dense head", x.dtype, (units, width), (parts, units, width), (0, width)
        )
        self._heads.forward(x, kernel, wt, outputs, parts)
        value = self._run_loss_step(
            loss_kernel, outputs, targets, grad_out, step.get("bias"), step.get("bias_grad"),
            step["totals"], step.get("count"), step.get("weights"),
        )  # fmt: skip
        dx = no_input if input_grad is None else input_grad
        self._heads.backward(x, grad_out, wt, kernel_grad, dx, partial)
        self._tapes.launched_only()
        return value, grad_out, input_grad

    def _head_fits(
        self,
        x: Array,
        kernel: Array,
        outputs: Array,
        grad_out: Array,
        kernel_grad: Array,
        input_grad: Array | None,
    ) -> bool:
        """Whether ``kernels/heads.py`` makes :meth:`dense_loss_step`'s products: in a pass
        that keeps BLAS on one thread (where a step with dense products runs BLAS on every
        core, the kernels' threads and BLAS's fought for them: the `keras` epoch on dense
        data took 1.57 times as long), a thin kernel (at most LANES units) of x's dtype on
        a mini-batch, every array C-contiguous and of the shape the products give, none
        written sharing memory with another array of the step."""
        from fastnn.threads import blas_on_one_thread

        if not (
            blas_on_one_thread()
            and isinstance(x, np.ndarray) and x.ndim == 2 and kernel.ndim == 2
        ):  # fmt: skip
            return False
        (rows, width), units, dtype = x.shape, kernel.shape[1], x.dtype
        shapes = [(x, (rows, width)), (kernel, (width, units)), (outputs, (rows, units)),
                  (grad_out, (rows, units)), (kernel_grad, (width, units))]  # fmt: skip
        if input_grad is not None:
            shapes.append((input_grad, (rows, width)))
        if not (
            0 < rows <= self.HEAD_ROWS and 0 < units <= self._narrow.LANES and width > 0
            and all(a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
                    for a, shape in shapes)
        ):  # fmt: skip
            return False
        arrays = [a for a, _ in shapes]  # every array from the third on is written
        return not any(
            np.may_share_memory(arrays[i], arrays[j])
            for j in range(2, len(arrays)) for i in range(j)
        )  # fmt: skip

    def _loss_step(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        bias: Array | None,
        bias_grad: Array | None,
        totals: Array | None,
        count: Count | None,
        weights: Array | None,
    ) -> Any:
        """The kernel of ``kernels/loss_steps.py`` that makes :meth:`loss_and_gradient`'s
        whole effect, or None where the composed ops do something it does not (a NumPy
        fallback's casts or broadcasts, a refusal, a copy out of a scratch array)."""
        kernels = {
            "sparse_softmax_cross_entropy": self._loss_steps.sparse_softmax_cross_entropy_step,
            "softmax_cross_entropy": self._loss_steps.softmax_cross_entropy_step,
        }
        kernel = kernels.get(loss)
        if kernel is None or totals is None or outputs.ndim != 2 or outputs.size == 0:
            return None
        rows, dtype = outputs.shape[0], outputs.dtype
        if loss == "sparse_softmax_cross_entropy":
            fits = targets.shape == (rows,) and targets.dtype.kind in "iu"
        else:
            fits = targets.shape == outputs.shape and targets.dtype == dtype
        if count is not None:
            fits = fits and count.targets.shape == (
                (rows,) if count.kind == "argmax" else outputs.shape
            )
        given = (
            grad_out is None
            or (grad_out.shape == outputs.shape and grad_out.dtype == dtype
                and grad_out.flags.c_contiguous and not np.may_share_memory(grad_out, outputs))
        )  # fmt: skip
        alike = all(
            a is None or (a.shape == shape and a.dtype == dtype)
            for a, shape in ((bias, outputs.shape[1:]), (weights, (rows,)))
        )
        sums = bias_grad is None or _writable(bias_grad, outputs.shape[1:], dtype)
        usual = dtype in _TINY and totals.dtype == np.float64 and totals.shape == TOTALS_START.shape
        return kernel if fits and given and alike and sums and usual else None

    def _loss(
        self,
        kernel: Any,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        weights: Array | None = None,
    ) -> tuple[Scalar, Array]:
        if outputs.ndim != 2:
            raise ValueError(f"outputs must be 2-D (batch, units); received {outputs.shape}")
        require_entries(outputs, kernel.__name__)
        if grad_out is not None and grad_out.dtype != outputs.dtype:  # NumPy's casting rules
            return self._reference_loss(kernel.__name__, outputs, targets, grad_out, weights)
        grad = _alike(outputs, grad_out)
        # The kernels write grad as one flat array and read the outputs after it.
        if not grad.flags.c_contiguous or np.may_share_memory(grad, outputs):
            scratch = np.empty_like(outputs, order="C")
            loss = kernel(outputs, targets, scratch, weights)
            grad[...] = scratch
            return float(loss), grad
        return float(kernel(outputs, targets, grad, weights)), grad

    def _reference_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        weights: Array | None,
    ) -> tuple[Scalar, Array]:
        """The NumPy backend's loss ``loss``, with its type rules and refusals."""
        if weights is None:
            return getattr(super(), loss)(outputs, targets, grad_out)
        return super().weighted_loss(loss, outputs, targets, weights, grad_out)

    def weighted_loss(
        self,
        loss: str,
        outputs: Array,
        targets: Array,
        weights: Array,
        grad_out: Array | None = None,
    ) -> tuple[Scalar, Array]:
        if weights.shape != outputs.shape[:1] or weights.dtype != outputs.dtype:
            return super().weighted_loss(loss, outputs, targets, weights, grad_out)
        if loss == "sparse_softmax_cross_entropy":
            return self._sparse_loss(outputs, targets, grad_out, weights)
        return self._dense_loss(getattr(self._softmax, loss), outputs, targets, grad_out, weights)

    def _sparse_loss(
        self, logits: Array, labels: Array, grad_out: Array | None, weights: Array | None
    ) -> tuple[Scalar, Array]:
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"labels must have shape ({len(logits)},); received {labels.shape}")
        if labels.dtype.kind not in "iu":  # NumPy refuses other indices
            return self._reference_loss(
                "sparse_softmax_cross_entropy", logits, labels, grad_out, weights
            )
        kernel = self._softmax.sparse_softmax_cross_entropy
        return self._loss(kernel, logits, labels, grad_out, weights)

    def sparse_softmax_cross_entropy(
        self, logits: Array, labels: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._sparse_loss(logits, labels, grad_out, None)

    def _dense_loss(
        self,
        kernel: Any,
        outputs: Array,
        targets: Array,
        grad_out: Array | None,
        weights: Array | None = None,
    ) -> tuple[Scalar, Array]:
        if targets.shape != outputs.shape:
            raise ValueError(f"targets have shape {targets.shape}; expected {outputs.shape}")
        if targets.dtype != outputs.dtype:  # NumPy's type rules decide the result's dtype
            return self._reference_loss(kernel.__name__, outputs, targets, grad_out, weights)
        return self._loss(kernel, outputs, targets, grad_out, weights)

    def softmax_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        return self._dense_loss(self._softmax.softmax_cross_entropy, logits, targets, grad_out)

    def sigmoid_binary_cross_entropy(
        self, logits: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        kernel = self._softmax.sigmoid_binary_cross_entropy
        return self._dense_loss(kernel, logits, targets, grad_out)

    def mean_squared_error(
        self, predictions: Array, targets: Array, grad_out: Array | None = None
    ) -> tuple[Scalar, Array]:
        kernel = self._softmax.mean_squared_error
        return self._dense_loss(kernel, predictions, targets, grad_out)

    # ----------------------------------------------------------------- metrics
    def argmax_rows(self, x: Array) -> Array:
        require_columns(x, "argmax_rows")
        out = np.empty(x.shape[0], dtype=np.intp)
        self._rows.argmax_rows(x, out)
        return out

    def count_argmax_matches(self, scores: Array, labels: Array) -> Scalar:
        if labels.shape != scores.shape[:1]:
            raise ValueError(f"labels must have shape ({len(scores)},); received {labels.shape}")
        require_columns(scores, "count_argmax_matches")
        return int(self._rows.count_argmax_matches(scores, labels))

    def count_threshold_matches(self, scores: Array, targets: Array, threshold: float) -> Scalar:
        if targets.shape != scores.shape or scores.ndim != 2:
            return super().count_threshold_matches(scores, targets, threshold)
        # compared in the scores' dtype, as NumPy compares an array with a Python float
        cut = scores.dtype.type(threshold)
        return int(self._rows.count_threshold_matches(scores, targets, cut))

    def update_confusion(
        self, matrix: Array, scores: Array, targets: Array, threshold: float | None = None
    ) -> None:
        if scores.ndim != 2 or not matrix.flags.c_contiguous:
            return super().update_confusion(matrix, scores, targets, threshold)
        check_confusion_matrix(matrix, scores, threshold)  # the kernels index it unchecked
        if threshold is None:
            if targets.shape != scores.shape[:1]:
                raise ValueError(f"targets must have shape ({len(scores)},); got {targets.shape}")
            require_columns(scores, "update_confusion")
            self._rows.confusion_argmax(scores, targets, matrix)
        else:
            if targets.shape != scores.shape:
                raise ValueError(f"targets must have shape {scores.shape}; got {targets.shape}")
            cut = scores.dtype.type(threshold)  # in the scores' dtype, as NumPy compares
            self._rows.confusion_threshold(scores, targets, cut, matrix)
        return None

    # ----------------------------------------------------------- regularization
    def weight_penalty(
        self, param: Array, l1: float, l2: float, grad: Array | None = None
    ) -> Scalar:
        flat = _flat(param) if grad is None else _flat(param, grad)
        if flat is None:
            return super().weight_penalty(param, l1, l2, grad)
        cast = param.dtype.type
        target = flat[-1]  # the gradient, or (unused) the weight itself
        return float(
            self._regularization.weight_penalty(
                flat[0], cast(l1), cast(l2), target, grad is not None
            )
        )

    # ------------------------------------------------------------ normalization
    def _normalization_args(self, x: Array, *columns: Array) -> bool:
        """Whether the kernels take these: x 2-D, every per-column array 1-D of its width
        and of x's dtype."""
        return x.ndim == 2 and all(c.shape == x.shape[1:] and c.dtype == x.dtype for c in columns)

    def batch_norm_forward(
        self,
        x: Array,
        gamma: Array,
        beta: Array,
        epsilon: float,
        mean_out: Array,
        variance_out: Array,
        out: Array | None = None,
    ) -> Array:
        if len(x) == 0 or not self._normalization_args(x, gamma, beta, mean_out, variance_out):
            return super().batch_norm_forward(x, gamma, beta, epsilon, mean_out, variance_out, out)
        self._normalization.column_statistics(x, mean_out, variance_out)
        return self.batch_norm_inference(x, mean_out, variance_out, gamma, beta, epsilon, out)

    def batch_norm_inference(
        self,
        x: Array,
        mean: Array,
        variance: Array,
        gamma: Array,
        beta: Array,
        epsilon: float,
        out: Array | None = None,
    ) -> Array:
        if not self._normalization_args(x, mean, variance, gamma, beta) or not _writable(
            out, x.shape, x.dtype
        ):
            return super().batch_norm_inference(x, mean, variance, gamma, beta, epsilon, out)
        out = _alike(x, out)
        self._normalization.normalize(x, mean, variance, gamma, beta, x.dtype.type(epsilon), out)
        return out

    def batch_norm_backward(
        self,
        dy: Array,
        x: Array,
        mean: Array,
        variance: Array,
        gamma: Array,
        epsilon: float,
        dgamma_out: Array,
        dbeta_out: Array,
        out: Array | None = None,
    ) -> Array:
        columns = (mean, variance, gamma, dgamma_out, dbeta_out)
        if (
            dy.shape != x.shape
            or dy.dtype != x.dtype
            or not self._normalization_args(x, *columns)
            or not _writable(out, x.shape, x.dtype)
        ):
            return super().batch_norm_backward(
                dy, x, mean, variance, gamma, epsilon, dgamma_out, dbeta_out, out
            )
        out = _alike(dy, out)
        self._normalization.backward(
            dy, x, mean, variance, gamma, x.dtype.type(epsilon), dgamma_out, dbeta_out, out
        )
        return out

    def moving_average_update(self, average: Array, value: Array, momentum: float) -> None:
        flat = _flat(average, value)
        if flat is None:
            return super().moving_average_update(average, value, momentum)
        cast = average.dtype.type
        # 1 - momentum rounded once from the float, as NumPy's (1.0 - momentum) * value does:
        # in float32, 1 - float32(0.9999) is 2e-4 off in relative terms
        self._normalization.moving_average(*flat, cast(momentum), cast(1.0 - momentum))
        return None

    # -------------------------------------------------------------- optimizers
    def apply_updates(
        self,
        rule: str,
        params: Sequence[Array],
        grads: Sequence[Array],
        slots: Sequence[Mapping[str, Array]],
        hyper: dict[str, Any],
        state: Array,
        adjust: Adjustment | None = None,
    ) -> None:
        plans = []
        for param, grad, param_slots in zip(params, grads, slots, strict=True):
            plan = _plan(param, grad, param_slots)
            if plan is None:
                super().apply_updates(rule, params, grads, slots, hyper, state, adjust)
                return
            plans.append(plan)
        scales = self._clipping_scales(grads, adjust)
        # Adam's step size needs the step's number here; the other rules leave counting
        # to a kernel, and so do only what kernels do (unless norms were read above)
        step = int(state[0]) + 1 if rule == "adam" else 0
        launch: UpdateLaunch | None = None
        for (dtype, given, pieces), scale in zip(plans, scales, strict=True):
            if launch is None or launch.key != (dtype, given):  # once a step, as a rule
                launch = self._launch(rule, dtype, given, hyper, step, adjust)
            launch.run(self._optimizers, pieces, scale)
        self._optimizers.count_step(state)
        if rule != "adam" and not _by_norm(adjust):
            self._tapes.launched_only()

    def _clipping_scales(self, grads: Sequence[Array], adjust: Adjustment | None) -> list[float]:
        """The factor each gradient is multiplied by, as Keras's ``clipnorm`` (each by its
        own norm) or ``global_clipnorm`` (all by their joint norm) has it; 1 otherwise. A
        NaN or infinite norm gives NaN, as in Keras."""
        if adjust is None or not _by_norm(adjust):
            return [1.0] * len(grads)
        squares = [self._optimizers.sum_of_squares(g.reshape(-1)) for g in grads]
        limit = adjust.limit
        if adjust.clipping == "clipnorm":  # limit / max(norm, limit), a NaN norm kept
            return [limit / n if not n <= limit else 1.0 for n in map(math.sqrt, squares)]
        norm = math.sqrt(sum(squares))
        scale = 1.0 if norm <= limit else limit / norm if math.isfinite(norm) else math.nan
        return [scale] * len(grads)

    def _launch(
        self,
        rule: str,
        dtype: np.dtype,
        given: tuple[str, ...],
        hyper: dict[str, Any],
        step: int,
        adjust: Adjustment | None,
    ) -> UpdateLaunch:
        """How the kernel of ``rule`` runs this step for parameters of ``dtype`` given the
        state arrays ``given``: clipping and decay fused in. Kept while its settings stay
        (every step of a run, but for Adam, whose step size changes each step)."""
        key = (rule, dtype, given, *hyper.values(), adjust, step if rule == "adam" else 0)
        launch = self._launches.get(key)
        if launch is None:
            if len(self._launches) >= 64:  # settings that keep changing: a schedule
                self._launches.clear()
            launch = self._launches[key] = self._new_launch(rule, dtype, given, hyper, step,
                                                            adjust)  # fmt: skip
        return launch

    def _new_launch(
        self,
        rule: str,
        dtype: np.dtype,
        given: tuple[str, ...],
        hyper: dict[str, Any],
        step: int,
        adjust: Adjustment | None,
    ) -> UpdateLaunch:
        cast, tiny = dtype.type, _tiny(dtype)
        lr = hyper["learning_rate"]
        # None for what is not wanted: the kernels are compiled without that work
        clipping = adjust.clipping if adjust is not None else None
        decay = adjust.weight_decay if adjust is not None else 0.0
        after_scale = (cast(adjust.limit) if clipping == "clipvalue" else None,  # type: ignore[union-attr]
                       cast(decay) if decay else None, cast(lr))  # fmt: skip
        # 1 - rho and 1 - beta are rounded once from the float, as NumPy's (1.0 - rho) is
        scalars: tuple[Any, ...]
        plain_rmsprop = rule == "rmsprop" and given == ("velocity",)
        if rule == "sgd":
            kernel, scalars = "sgd", (cast(lr),)
        elif rule == "momentum":
            kernel = "momentum"
            scalars = (cast(lr), cast(hyper["momentum"]), bool(hyper["nesterov"]), tiny)
        elif rule == "adam":
            beta_1, beta_2 = hyper["beta_1"], hyper["beta_2"]
            kernel = "adam"
            scalars = (cast(adam_step_size(lr, beta_1, beta_2, step)), cast(1.0 - beta_1),
                       cast(1.0 - beta_2), cast(hyper["epsilon"]), tiny)  # fmt: skip
        else:
            rho = hyper["rho"]
            rmsprop = (cast(lr), cast(rho), cast(1.0 - rho), cast(hyper["epsilon"]))
            if plain_rmsprop:  # a kernel of its own, which skips zero blocks
                kernel, scalars = "rmsprop", (*rmsprop, tiny)
            else:
                kernel = "rmsprop_with_state"
                scalars = (*rmsprop, cast(hyper.get("momentum", 0.0)), tiny)
        # every state array the kernel takes: its place among (param, grad, *given), or -1
        # for one not given, which the kernel gets as an empty array
        every = given if plain_rmsprop else UPDATE_RULES[rule]
        places = tuple(2 + given.index(name) if name in given else -1 for name in every)
        scaled = clipping in ("clipnorm", "global_clipnorm")
        return UpdateLaunch((dtype, given), kernel, places, scalars, scaled, after_scale)

    def _update_alone(
        self, rule: str, param: Array, grad: Array, slots: dict[str, Array | None],
        hyper: dict[str, Any], step: int = 1,
    ) -> bool:  # fmt: skip
        """One parameter's update as step ``step`` (its state by name, None for those not
        given); False, doing nothing, where the kernels do not take its arrays."""
        plan = _plan(param, grad, {name: a for name, a in slots.items() if a is not None})
        if plan is None:
            return False
        dtype, given, pieces = plan
        self._launch(rule, dtype, given, hyper, step, None).run(self._optimizers, pieces, 1.0)
        return True

    def sgd_update(self, param: Array, grad: Array, learning_rate: float) -> None:
        if not self._update_alone("sgd", param, grad, {}, {"learning_rate": learning_rate}):
            super().sgd_update(param, grad, learning_rate)

    def momentum_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        momentum: float,
        nesterov: bool,
    ) -> None:
        hyper = {"learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov}
        if not self._update_alone("momentum", param, grad, {"velocity": velocity}, hyper):
            super().momentum_update(param, grad, velocity, learning_rate, momentum, nesterov)

    def rmsprop_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        learning_rate: float,
        rho: float,
        epsilon: float,
        momentum: float = 0.0,
        momentum_buffer: Array | None = None,
        average_gradient: Array | None = None,
    ) -> None:
        hyper = {"learning_rate": learning_rate, "rho": rho, "epsilon": epsilon,
                 "momentum": momentum}  # fmt: skip
        slots = {"velocity": velocity, "momentum_buffer": momentum_buffer,
                 "average_gradient": average_gradient}  # fmt: skip
        if not self._update_alone("rmsprop", param, grad, slots, hyper):
            super().rmsprop_update(param, grad, velocity, learning_rate, rho, epsilon, momentum,
                                   momentum_buffer, average_gradient)  # fmt: skip

    def adam_update(
        self,
        param: Array,
        grad: Array,
        m: Array,
        v: Array,
        learning_rate: float,
        beta_1: float,
        beta_2: float,
        epsilon: float,
        step: int,
        v_hat: Array | None = None,
    ) -> None:
        hyper = {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2,
                 "epsilon": epsilon}  # fmt: skip
        slots = {"m": m, "v": v, "v_hat": v_hat}
        if not self._update_alone("adam", param, grad, slots, hyper, step):
            super().adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step,
                                v_hat)  # fmt: skip
