"""The passes over data that ``fit`` and ``evaluate`` make, and the training step.

A training step is the whole algorithm, in plain sight (:func:`train_step`):

    gather the mini-batch                 xb, yb = backend.gather_batch(...)
    forward through every layer           h = layer.forward(h)
    loss and its gradient, fused          loss, g = backend.loss_and_gradient(...)
    backward through every layer          g = layer.backward(g)
    one optimizer update of every weight  backend.apply_updates(...)

It reads and writes fixed arrays only: the data, the weights, their gradients and
optimizer state, workspace buffers kept per batch shape, and the pass's bookkeeping (a
step cursor and the totals the loss adds to). Nothing is read back during a pass: the
loss and the accuracy count of every step are summed on the backend and read once at the
end. So a GPU backend runs a step as about ten launches and, after one eager run,
replays it as a single CUDA graph, and the numba backend replays the backend calls it
recorded, without the Python around them (``Backend.run_step``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn.backends import Array, Backend
from fastnn.backends.base import (
    CORRECT,
    FIRST_BAD_LOSS,
    FIRST_BAD_STEP,
    LAST_LOSS,
    LOSS_SUM,
    TOTALS_START,
    Count,
)
from fastnn.distributed import DistributedError, GradientSum, Group, shard
from fastnn.layers import Activation, Dense, Flatten, Layer, Workspace
from fastnn.optimizers import Optimizer, SparseGradient
from fastnn.sparse import SparseRows
from fastnn.threads import Fixed, Tuner

if TYPE_CHECKING:  # pragma: no cover
    from fastnn.models import Sequential


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite.

    On the CPU backends the weights are those before the failing step. An
    asynchronous (GPU) backend reads its losses back once per epoch, so there
    the error names the first failing step but the epoch has run to its end.
    """


def diverged(value: float, epoch: int, step: int, after_epoch: bool) -> TrainingDivergedError:
    """The error for a non-finite loss at ``step`` (0-based) of ``epoch`` (0-based)."""
    when = (
        "; found at the end of that epoch (the GPU backend checks once per epoch)"
        if after_epoch
        else "; training stopped before applying that step"
    )
    return TrainingDivergedError(
        f"the loss became {value} at epoch {epoch + 1}, step {step + 1}{when}. "
        "Lower the learning rate or check the data"
    )


class Identity:
    """An object compared and hashed by identity, and kept alive: part of a step's key."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.obj is self.obj


def on_backend(backend: Backend, workspace: Workspace, name: str, values: np.ndarray) -> Array:
    """``values`` on the backend: the array itself where the backend computes in host
    memory; elsewhere copied into the workspace's array ``name``, which keeps its device
    address from one ``fit`` to the next, so a step captured as a CUDA graph in one fit
    replays in the next."""
    if backend.synchronous:
        return backend.asarray(values)
    buffer = workspace.only(name, values.shape, values.dtype)
    backend.copy_from_host(buffer, values)
    return buffer


class DeviceData:
    """A dataset moved once to the backend, served as mini-batches.

    The accuracy metric needs targets of its own only for one-hot targets (their class
    indices); otherwise it reads the loss's targets. ``prefix`` names the data's arrays
    in the workspace (training and validation data each have their own).
    """

    def __init__(
        self,
        backend: Backend,
        workspace: Workspace,
        prefix: str,
        x: np.ndarray | SparseRows,
        y: np.ndarray,
        metric_targets: np.ndarray | None,
        weights: np.ndarray | None = None,
    ) -> None:
        self.backend = backend
        self.n = len(x)
        self.x: Array | SparseRows = (  # (n, *sample_shape)
            x if isinstance(x, SparseRows) else on_backend(backend, workspace, f"{prefix} x", x)
        )
        #: room for a batch of compressed rows: its rows times the most any row holds
        self.most_per_row = x.most_per_row() if isinstance(x, SparseRows) else 0
        self.y = on_backend(backend, workspace, f"{prefix} y", y)  # (n,) labels or (n, K)
        self.metric = (
            "none" if metric_targets is None else "shared" if metric_targets is y else "own"
        )
        self.metric_y = None
        if metric_targets is not None and self.metric == "own":
            self.metric_y = on_backend(backend, workspace, f"{prefix} metric y", metric_targets)
        self.sources = [self.x, self.y] + ([self.metric_y] if self.metric == "own" else [])
        #: Keras's sample weights (n,), the last source when given
        self.weighted = weights is not None
        if weights is not None:
            self.sources.append(on_backend(backend, workspace, f"{prefix} weights", weights))
        #: each source's name for its batch buffers in the workspace
        self.names = ["x", "y", *(["metric_y"] if self.metric == "own" else [])]
        self.names += ["weights"] if self.weighted else []

    def buffers(self, workspace: Workspace, rows: int) -> list[Array]:
        """Workspace arrays for a batch of ``rows`` rows of each source."""
        return [
            self._sparse_buffer(workspace, rows, a)
            if isinstance(a, SparseRows)
            else workspace.get(name, (rows, *a.shape[1:]), a.dtype)
            for name, a in zip(self.names, self.sources, strict=True)
        ]

    def _sparse_buffer(self, workspace: Workspace, rows: int, x: SparseRows) -> SparseRows:
        room = rows * self.most_per_row
        return SparseRows(
            workspace.get("x indptr", (rows + 1,), np.int64),
            workspace.get("x indices", (room,), x.indices.dtype),
            workspace.get("x values", (room,), x.dtype),
            x.width,
        )

    def split(self, batch: list[Array]) -> tuple[Array, Array, Array | None, Array | None]:
        """(x, y, metric targets, sample weights) of a batch of :attr:`sources`."""
        weights = batch[-1] if self.weighted else None
        metric = batch[2] if self.metric == "own" else batch[1] if self.metric == "shared" else None
        return batch[0], batch[1], metric, weights

    def rows(self, start: int, stop: int) -> tuple[Array, Array, Array | None, Array | None]:
        """Rows ``start:stop`` in order, as views."""
        return self.split([source[start:stop] for source in self.sources])

    def take(self, workspace: Workspace, picks: np.ndarray) -> list[Array]:
        """Rows ``picks`` (B,) of each source, into the workspace's batch buffers."""
        outs = self.buffers(workspace, len(picks))
        return self.backend.take_batch(self.sources, self.backend.asarray(picks), outs)


class PassState:
    """A pass's bookkeeping on the backend: the totals its losses add to (see
    :data:`fastnn.backends.base.TOTALS_START`) and the cursor of its next batch, kept in
    the workspace under ``prefix`` (the same arrays every fit)."""

    def __init__(self, backend: Backend, workspace: Workspace, prefix: str) -> None:
        self.backend = backend
        self.totals = workspace.get(f"{prefix} totals", TOTALS_START.shape, np.float64)
        self.cursor = workspace.get(f"{prefix} cursor", (2,), np.uint64)

    def reset(self) -> None:
        self.backend.copy_from_host(self.totals, TOTALS_START)
        self.backend.copy_from_host(self.cursor, np.zeros(2, dtype=np.uint64))

    def read(self) -> np.ndarray:
        """The totals on the host: one copy, the pass's one wait."""
        return np.asarray(self.backend.to_numpy(self.totals), dtype=np.float64)


@dataclass
class Head:
    """How a model's output meets its loss in a step.

    ``bias_layer``: the last Dense layer, whose bias the fused loss adds (and whose bias
    gradient it computes), or None. ``count``: what the loss counts for the accuracy
    metric ("argmax", "threshold" or None) and the threshold.
    """

    bias_layer: Dense | None
    count: str | None
    threshold: float = 0.0

    def arguments(
        self, metric_targets: Array | None, training: bool, weights: Array | None = None
    ) -> dict[str, Any]:
        """The keyword arguments of ``Backend.loss_and_gradient`` for one batch."""
        layer = self.bias_layer
        arguments: dict[str, Any] = {} if weights is None else {"weights": weights}
        if layer is not None:
            arguments["bias"] = layer.params["bias"]
            if training:
                arguments["bias_grad"] = layer.grads["bias"]
        if self.count is not None and metric_targets is not None:
            arguments["count"] = Count(self.count, metric_targets, self.threshold)
        return arguments


#: layers whose training step runs on fixed arrays with backend ops only (Dropout draws
#: masks on the host; BatchNormalization's moving averages allocate temporaries)
REPLAYABLE_LAYERS = (Dense, Activation, Flatten)


def penalized(layers: list[Layer]) -> bool:
    """Whether any of these layers has a weight penalty (a regularizer)."""
    return any(any(getattr(layer, "regularizers", {}).values()) for layer in layers)


def replayable(layers: list[Layer]) -> bool:
    """Whether a training step of these layers can be replayed as a CUDA graph."""
    return all(type(layer) in REPLAYABLE_LAYERS for layer in layers) and not penalized(layers)


@dataclass
class Step:
    """Everything one training step of a pass uses; fixed for the pass."""

    model: Sequential
    backend: Backend
    optimizer: Optimizer
    data: DeviceData
    order: Array | None  # the pass's shuffled row order on the backend (None: in order)
    state: PassState
    head: Head
    batch_size: int
    params: list[Array]
    grads: list[Array]
    threads: Tuner | Fixed  # the pass's thread policy: each step runs in its step()
    #: (outputs as the loss saw them, metric targets) of the last step run eagerly
    outputs: tuple[Array, Array | None] | None = None
    #: the arrays a replay uses, as a key: set by :meth:`refresh`
    arrays: tuple[Identity, ...] | None = None
    #: the place in ``params`` of the first layer's kernel when the update makes its
    #: gradient (:func:`fused_kernel`); set by :meth:`refresh`
    fused: int | None = None
    #: the ranks of a distributed fit (None: this process alone), and what they agreed
    #: at the last step: the batch's mean loss, and whether a rank was interrupted
    group: Group | None = None
    agreed_loss: float = math.nan
    interrupted: bool = False
    #: the gradients in the order the backward makes them (set by :meth:`refresh`)
    sum_order: list[Array] = field(default_factory=list)

    def refresh(self) -> None:
        """Take the model's weights as they are now (hooks may have replaced them since the
        last epoch); what a replayed step depends on is noted at the next :meth:`key`."""
        model = self.model
        self.params, self.grads = model._trained()
        self.arrays = None
        if self.group is None:  # the ranks sum whole gradients: no fused update for them
            self.fused = fused_kernel(model, self.optimizer, self.backend, self.params, self.data)
            return
        self.fused = None
        # the order the backward makes the gradients in, last layer first
        trained = {id(grad) for grad in self.grads}
        self.sum_order = [grad for layer in reversed(model.layers)
                          for grad in layer.grads.values() if id(grad) in trained]  # fmt: skip

    def key(self, rows: int) -> Hashable | None:
        """What a replay of a step of ``rows`` rows depends on; None if it cannot replay.

        The arrays' part is built once per epoch, after the optimizer's first step has
        made its state; the settings' part every step (hooks may change the rate), with
        the stamps of lazily decayed rows, which a fused step makes anew after its
        optimizer's state has been settled (read or saved).
        """
        model, optimizer = self.model, self.optimizer
        confusion = model.compiled is not None and model.compiled.confusion_metrics
        if optimizer._slots is None or not replayable(model.layers) or confusion:
            return None
        if self.arrays is None:
            arrays = (*self.data.sources, self.order, self.state.totals, self.state.cursor,
                      model._workspace, *self.params, *self.grads,
                      *optimizer.slot_arrays())  # fmt: skip
            self.arrays = tuple(Identity(a) for a in arrays)
        lazy = None if optimizer._lazy is None else Identity(optimizer._lazy.stamps)
        return (rows, self.batch_size, optimizer.update_rule,
                tuple(optimizer.hyperparameters().values()), optimizer.adjustment,
                self.arrays, self.fused, lazy)  # fmt: skip

    def check_loss(self) -> None:
        """Stop before the updates if this step's loss (the totals' last) is not finite:
        what :meth:`run` checks, for a step the backend replays."""
        value = float(self.state.totals[LAST_LOSS])
        if not math.isfinite(value):
            raise diverged(value, self.model._epoch, self.model._step, after_epoch=False)

    def run(self, rows: int) -> None:
        """One step on the next ``rows`` rows; :attr:`outputs` keeps what the metrics read.
        The caller's ``backend.run_step`` may replay it instead of calling it."""
        model, backend = self.model, self.backend
        assert model._workspace is not None
        batch = backend.gather_batch(
            self.data.sources, self.order, self.state.cursor, self.batch_size,
            self.data.buffers(model._workspace, rows),
        )  # fmt: skip
        xb, yb, metric_yb, weights = self.data.split(batch)
        head = self.head.arguments(metric_yb, training=True, weights=weights)
        fused = self.fused
        loss, outputs = model._forward_backward(
            backend, xb, yb, self.state.totals, head, defer_kernel=fused is not None
        )
        if backend.synchronous:  # the check costs nothing here: before the update
            value = float(loss)
            if not math.isfinite(value):
                raise diverged(value, model._epoch, model._step, after_epoch=False)
        sparse = None
        if fused is not None:
            first = model.layers[0]
            assert isinstance(first, Dense) and isinstance(xb, SparseRows)
            sparse = SparseGradient(fused, xb, first.deferred_dz)
        self.optimizer.apply(backend, self.params, self.grads, sparse)
        self.outputs = (outputs, metric_yb)

    def run_shard(self, step: int, rows: int, picks: np.ndarray | None, interrupted: bool) -> None:
        """Step ``step`` of a distributed pass on this rank's share of the next ``rows``
        rows (those of ``picks`` (rows,), the pass's shuffled order; None: in order):
        the ranks agree on the step's status (:meth:`Group.status`), sum their gradients
        weighted by their shares (:class:`GradientSum`: after the status, or with
        ``overlap`` each layer's started as its backward ends, before it), and all apply
        the same update."""
        model, backend, group = self.model, self.backend, self.group
        assert model._workspace is not None and group is not None
        group.where = (model._epoch, step)
        lo, hi = shard(rows, group.rank, group.size)
        first = step * self.batch_size
        failure: BaseException | None = None
        loss_sum = 0.0
        self.outputs = None
        # a penalty's gradient is added after the backward: then the sums wait for it
        overlap = group.overlap and not penalized(model.layers)
        grads = GradientSum(group, backend, self.sum_order, (hi - lo) / rows, overlap,
                            group.stats)  # fmt: skip
        try:
            if hi > lo:
                batch = (
                    [source[first + lo : first + hi] for source in self.data.sources]
                    if picks is None
                    else self.data.take(model._workspace, picks[first + lo : first + hi])
                )
                xb, yb, metric_yb, weights = self.data.split(batch)
                head = self.head.arguments(metric_yb, training=True, weights=weights)
                loss, outputs = model._forward_backward(
                    backend, xb, yb, self.state.totals, head, done=grads.add if overlap else None
                )
                loss_sum = float(loss) * (hi - lo)
                self.outputs = (outputs, metric_yb)
            else:  # fewer rows than ranks: this one adds nothing
                for grad in self.grads:
                    grad[...] = 0
        except Exception as error:  # every rank must hear of it, or the others wait
            failure = error
        if overlap:  # sums started: finish them on a rank that failed too, as all do
            grads.finish()
        status = group.status(loss_sum, failure is not None, interrupted)
        if not overlap and not status.failed:  # every rank is here: sum, blocking
            grads.finish()
        if failure is not None:
            raise failure
        if status.failed:
            raise DistributedError(
                f"rank {status.failed[0]} failed at epoch {model._epoch + 1}, step {step + 1} "
                "(its error is in its output); every rank stopped before that step's update"
            )
        self.agreed_loss = status.loss_sum / rows
        if not math.isfinite(self.agreed_loss):
            raise diverged(self.agreed_loss, model._epoch, step, after_epoch=False)
        self.optimizer.apply(backend, self.params, self.grads)
        self.interrupted = status.interrupted


def fused_kernel(
    model: Sequential, optimizer: Optimizer, backend: Backend, params: list[Array], data: DeviceData
) -> int | None:
    """The place in ``params`` of the first layer's kernel when each step's update makes
    that kernel's gradient itself (``Backend.sparse_update``: only the rows with
    nonzeros): the data is compressed rows, the first layer a trained Dense with no kernel
    penalty, and the optimizer's rule and the backend allow it. Else None."""
    first = model.layers[0] if model.layers else None
    if (
        not isinstance(data.sources[0], SparseRows)
        or not isinstance(first, Dense)
        or not first.trainable
        or first.regularizers["kernel"] is not None
        or not optimizer.fuses_sparse
    ):
        return None
    kernel = first.params["kernel"]
    if not backend.fuses_sparse_update(optimizer.update_rule, kernel, optimizer.slot_names):
        return None
    return next((i for i, param in enumerate(params) if param is kernel), None)


def finish_pass(totals: np.ndarray, samples: int, epoch: int, check: bool) -> float:
    """The pass's mean loss from its totals; raises on a non-finite step when ``check``."""
    if check and totals[FIRST_BAD_STEP] >= 0:
        raise diverged(float(totals[FIRST_BAD_LOSS]), epoch, int(totals[FIRST_BAD_STEP]), True)
    return float(totals[LOSS_SUM]) / samples


def correct_count(totals: np.ndarray) -> int:
    """How many accuracy entries the pass's losses counted as right."""
    return int(totals[CORRECT])
