"""The training loop, kept apart from the model (as Keras keeps its Trainer apart from
Model): epochs, batches, callbacks, progress, Ctrl-C and divergence.

``Sequential.fit`` checks its arguments and prepares the data, then hands them to
:meth:`Trainer.fit`; ``evaluate`` and the validation of ``fit`` make the same pass
(:meth:`Trainer.evaluate`); ``train_on_batch`` runs one :class:`~fastnn.training.Step`,
the step ``fit`` runs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn import metrics as metrics_module
from fastnn import optimizers
from fastnn.backends import Array, Backend
from fastnn.backends.base import CORRECT, FIRST_BAD_LOSS, FIRST_BAD_STEP, LAST_LOSS, LOSS_SUM
from fastnn.callbacks import Callback, History, ProgressLogger, TerminateOnNaN
from fastnn.config import make_rng
from fastnn.distributed import Group
from fastnn.interrupts import DeferredInterrupt, TrainingInterrupted
from fastnn.progress import ProgressBar
from fastnn.sparse import SparseRows
from fastnn.threads import Fixed, Tuner, pass_threads
from fastnn.training import (
    DeviceData,
    PassState,
    Step,
    TrainingDivergedError,
    correct_count,
    finish_pass,
)

if TYPE_CHECKING:  # pragma: no cover
    from fastnn.models import Sequential

#: one pass's data: (x, y, metric targets or None, sample weights or None), as
#: ``Sequential`` prepared them
Data = tuple[Any, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def pass_threads_for(
    backend: Backend, x: Any, steps: int | None = None, ranks_here: int = 1
) -> Any:
    """The thread policy of a pass over ``x`` on ``backend`` (see :mod:`fastnn.threads`)
    of ``steps`` steps (None: not known): a pass on compressed rows with products of the
    backend's own keeps BLAS to one thread. ``ranks_here``: the distributed ranks on this
    machine, which share its cores."""
    own = isinstance(x, SparseRows) and backend.sparse_products_own
    return pass_threads(backend.synchronous, own_products=own, steps=steps, ranks_here=ranks_here)


@dataclass
class FitPlan:
    """What ``fit`` was asked for, checked: the loop's settings."""

    epochs: int
    initial_epoch: int
    batch_size: int
    shuffle: bool
    verbose: int
    seed: int | None
    callbacks: list[Callback]
    validation_freq: int = 1
    distributed: bool = False


class Trainer:
    """Runs the passes of a compiled :class:`~fastnn.models.Sequential` over data."""

    def __init__(self, model: Sequential) -> None:
        self.model = model

    # ----------------------------------------------------------------- fit
    def fit(self, train: Data, val: Data | None, plan: FitPlan) -> History:
        """Train on ``train``, validating on ``val`` after the epochs ``plan`` says."""
        group = Group() if plan.distributed else None
        try:
            return self._fit(train, val, plan, group)
        finally:
            if group is not None:
                group.close()

    def _fit(self, train: Data, val: Data | None, plan: FitPlan, group: Group | None) -> History:
        model = self.model
        backend = model._on_active_backend()
        assert model._workspace is not None and model.optimizer is not None
        workspace = model._workspace
        history = History()
        model.history = history
        x_all = train[0]
        steps = math.ceil(len(x_all) / plan.batch_size)
        if group is not None and group.rank > 0:  # rank 0 alone prints and writes files
            plan.verbose = 0
            plan.callbacks = [hook for hook in plan.callbacks if not hook.rank_zero_only]
        loggers: list[Callback] = (
            [ProgressBar(steps)]
            if plan.verbose == 1
            else [ProgressLogger()]
            if plan.verbose
            else []
        )
        hooks = [history, *loggers, *plan.callbacks]
        params = {
            "epochs": plan.epochs, "steps": steps, "samples": len(x_all),
            "batch_size": plan.batch_size, "verbose": plan.verbose,
        }  # fmt: skip
        for hook in hooks:
            hook.set_model(model)
            hook.set_params(params)
        model.stop_training = False
        for hook in hooks:
            hook.on_train_begin()
        # BackupAndRestore may have restored a later epoch than the plan's
        plan.initial_epoch, model._resume_epoch = max(plan.initial_epoch, model._resume_epoch), 0
        if group is not None:
            self._join(group, plan, train, val)
        rng = make_rng(plan.seed)
        ranks_here = 1 if group is None else group.local_size
        try:
            with (
                DeferredInterrupt() as interrupt,
                backend.training_stream(),
                pass_threads_for(backend, x_all, ranks_here=ranks_here) as threads,
            ):
                data = DeviceData(backend, workspace, "train", *train)
                val_data = None if val is None else DeviceData(backend, workspace, "val", *val)
                order = workspace.only("order", (data.n,), np.int64) if plan.shuffle else None
                step = self.step(backend, data, order, plan.batch_size, "train", threads)
                step.group = group
                val_state = None if val_data is None else PassState(backend, workspace, "val")
                self._epochs(step, val_data, val_state, plan, rng, hooks, interrupt)
        finally:
            for hook in hooks:
                hook.on_train_end()
        return history

    def _join(self, group: Group, plan: FitPlan, train: Data, val: Data | None) -> None:
        """Start a distributed fit: refuse ranks that differ in model, data or settings,
        then take rank 0's weights, optimizer state, first epoch and seed."""
        model = self.model
        assert model.optimizer is not None and model.loss is not None
        config = model.get_config()
        config.pop("name", None)
        for layer in config["layers"]:
            layer["config"].pop("name", None)  # numbered by how many layers a rank made
        x, backend = train[0], model._on_active_backend()
        group.check_same({
            "model": config, "dtype": str(model.dtype), "backend": backend.name,
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": type(model.loss).__name__, "metrics": model.metrics,
            "training samples": len(x), "sample shape": tuple(x.shape[1:]),
            "sample weights": train[3] is not None,
            "validation samples": 0 if val is None else len(val[0]),
            "epochs": plan.epochs, "batch_size": plan.batch_size, "shuffle": plan.shuffle,
        })  # fmt: skip
        optimizer = model.optimizer
        ours = None
        if group.rank == 0:
            seed = plan.seed if plan.seed is not None else int(make_rng(None).integers(2**62))
            ours = (model.get_weights(), optimizer.iterations, optimizer.get_state(backend),
                    optimizer.learning_rate, plan.initial_epoch, seed)  # fmt: skip
        weights, iterations, state, rate, plan.initial_epoch, plan.seed = group.broadcast(ours)
        if group.rank > 0:
            model.set_weights(weights)
            params = model._trained()[0]
            optimizer.set_state(backend, iterations, state, params if state else [])
            optimizer.learning_rate = rate
        group.use_nccl(backend)

    def step(
        self,
        backend: Backend,
        data: DeviceData,
        order: Array | None,
        batch_size: int,
        prefix: str,
        threads: Tuner | Fixed,
    ) -> Step:
        """The training step of a pass over ``data`` (fit's, or train_on_batch's)."""
        model = self.model
        assert model._workspace is not None and model.optimizer is not None
        return Step(
            model=model,
            backend=backend,
            optimizer=model.optimizer,
            data=data,
            order=order,
            state=PassState(backend, model._workspace, prefix),
            head=model._compiled().head(model.layers[-1], model.output_units),
            batch_size=batch_size,
            params=[],
            grads=[],
            threads=threads,
        )

    def _epochs(
        self,
        step: Step,
        val_data: DeviceData | None,
        val_state: PassState | None,
        plan: FitPlan,
        rng: np.random.Generator,
        hooks: list[Callback],
        interrupt: DeferredInterrupt,
    ) -> None:
        """The epoch loop of :meth:`fit`; stops early on ``stop_training`` or Ctrl-C."""
        model = self.model
        for epoch in range(plan.initial_epoch, plan.epochs):
            # Ctrl-C came during validation or an epoch-end hook (distributed: the ranks
            # agree on it at the next step, so that all stop at the same one)
            if interrupt.requested and step.group is None:
                raise self.interrupted(f"after epoch {epoch} of {plan.epochs}")
            for hook in hooks:
                hook.on_epoch_begin(epoch)
            learning_rate = step.optimizer.learning_rate  # hooks may change it between epochs
            logs = self._train_epoch(step, rng, epoch, hooks, interrupt)
            if val_data is not None and (epoch + 1) % plan.validation_freq == 0:
                assert val_state is not None
                val_logs = self.evaluate(
                    step.backend, val_data, step.batch_size, val_state, step.threads, timed=False
                )
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            logs["learning_rate"] = learning_rate
            for hook in hooks:
                hook.on_epoch_end(epoch, logs)
            if model.stop_training:
                break

    def interrupted(self, where: str) -> TrainingInterrupted:
        history = self.model.history
        completed = len(history.epoch) if history is not None else 0
        return TrainingInterrupted(
            f"training interrupted (Ctrl-C) {where}; the model holds the weights of its last "
            f"completed step, and model.history the {completed} completed epoch(s)",
            history,
        )

    def _train_epoch(
        self,
        step: Step,
        rng: np.random.Generator,
        epoch: int,
        hooks: list[Callback],
        interrupt: DeferredInterrupt,
    ) -> dict[str, float]:
        model, backend, data = self.model, step.backend, step.data
        step.refresh()
        step.state.reset()
        picks = None  # the epoch's order on the host, kept for a distributed step's shard
        if step.order is not None:
            order = rng.permutation(data.n)
            backend.copy_from_host(step.order, order)
            picks = order if step.group is not None else None
            del order  # else freed now: fit adds little memory to the data's own
        # Reading a loss back makes a GPU wait, so hooks that want every step's loss
        # are the only reason to read it per step on an asynchronous backend.
        step_hooks = [hook for hook in hooks if hook.reads_batch_losses()]
        quietly = any(isinstance(hook, TerminateOnNaN) for hook in hooks)
        bars = [hook for hook in hooks if isinstance(hook, ProgressBar)]
        running = functools.partial(self.running_logs, step.state, step.batch_size, data.n)
        tally = MetricTally(model, backend)
        steps = math.ceil(data.n / step.batch_size)
        for i in range(steps):
            model._epoch, model._step = epoch, i
            for hook in hooks:
                hook.on_train_batch_begin(i)
            rows = min(step.batch_size, data.n - i * step.batch_size)
            key = step.key(rows) if backend.replays_steps else None
            try:
                with step.threads.step(timed=rows == step.batch_size):
                    if step.group is not None:
                        step.run_shard(i, rows, picks, interrupt.requested)
                    else:
                        check = step.check_loss if backend.synchronous else None
                        backend.run_step(functools.partial(step.run, rows), key, check)
            except TrainingDivergedError:
                if not quietly:
                    raise
                if step.group is None or step.group.rank == 0:  # one line for the job
                    print(f"Batch {i}: Invalid loss, terminating training")
                model.stop_training = True
                break
            if tally.confusion is not None and step.outputs is not None:  # never replayed
                tally.add(*step.outputs)
            if step_hooks:
                if step.group is not None:  # the batch's loss over every rank
                    logs = {"loss": step.agreed_loss}
                else:
                    logs = {"loss": float(backend.to_numpy(step.state.totals)[LAST_LOSS])}
                for hook in step_hooks:
                    hook.on_train_batch_end(i, logs)
            for bar in bars:
                bar.advance(i + 1, running if backend.synchronous else None)
            # between steps: every parameter has had this update (distributed: on every rank)
            if step.interrupted if step.group is not None else interrupt.requested:
                raise self.interrupted(f"at epoch {epoch + 1}, after step {i + 1} of {steps}")
        totals = step.state.read()  # one wait per epoch
        if step.group is not None:  # every rank's losses and counts: the global figures
            summed = step.group.sum(totals[[LOSS_SUM, CORRECT]], "the epoch's totals")
            totals[[LOSS_SUM, CORRECT]] = summed
            tally.combine(step.group)
        try:
            loss = finish_pass(totals, data.n, epoch, check=not backend.synchronous)
        except TrainingDivergedError:  # a GPU's losses are checked here, once per epoch
            if not quietly:
                raise
            print(f"Batch {int(totals[FIRST_BAD_STEP])}: Invalid loss, terminating training")
            model.stop_training, loss = True, float(totals[FIRST_BAD_LOSS])
        logs = {"loss": loss}
        logs.update(tally.results(data.n, correct_count(totals)))
        return logs

    def running_logs(
        self, state: PassState, batch_size: int, samples: int, steps_done: int
    ) -> dict[str, float]:
        """The pass's loss (and accuracy) so far, for a progress bar; reads the totals
        in place, so only for backends that compute in host memory."""
        model = self.model
        seen = min(steps_done * batch_size, samples)
        totals = np.asarray(state.totals)
        logs = {"loss": float(totals[LOSS_SUM]) / max(seen, 1)}
        compiled, units = model._compiled(), model.output_units
        if "accuracy" in compiled.metrics and not compiled.accuracy_from_confusion(units):
            label = compiled.labels.get("accuracy", "accuracy")
            logs[label] = float(totals[CORRECT]) / max(seen * compiled.accuracy_entries(units), 1)
        return logs

    # ------------------------------------------------------------ evaluate
    def evaluate(
        self,
        backend: Backend,
        data: DeviceData,
        batch_size: int,
        state: PassState,
        threads: Tuner | Fixed,
        timed: bool = True,
        bar: ProgressBar | None = None,
    ) -> dict[str, float]:
        """One pass of the loss and metrics over ``data``; ``threads`` runs its batches
        (``timed``: the full ones count towards its choice); ``bar`` shows its progress."""
        model = self.model
        assert model.loss is not None
        state.reset()
        head = model._compiled().head(model.layers[-1], model.output_units)
        tally = MetricTally(model, backend)
        running = functools.partial(self.running_logs, state, batch_size, data.n)
        for i, start in enumerate(range(0, data.n, batch_size)):
            xb, yb, metric_yb, weights = data.rows(start, min(start + batch_size, data.n))
            arguments = head.arguments(metric_yb, training=False, weights=weights)
            with threads.step(timed=timed and len(xb) == batch_size):
                outputs = model._forward(
                    xb, training=False, logits=True, skip_bias="bias" in arguments
                )
                model.loss.fused(backend, outputs, yb, totals=state.totals, **arguments)
            if tally.confusion is not None:
                tally.add(outputs, metric_yb)
            if bar is not None:
                bar.advance(i + 1, running if backend.synchronous else None)
        totals = state.read()  # one wait per pass
        penalty = model._penalty(with_grad=False)  # counted in the loss, as Keras does
        loss = finish_pass(totals, data.n, 0, check=False)
        logs = {"loss": loss + (0.0 if penalty is None else float(penalty))}
        logs.update(tally.results(data.n, correct_count(totals)))
        return logs


class MetricTally:
    """The confusion-matrix metrics of one pass over data, counted batch by batch on the
    backend (the accuracy count comes with the loss, in the pass's totals).

    The matrix stays on the device until :meth:`results`: one read per pass.
    """

    def __init__(self, model: Sequential, backend: Backend) -> None:
        self.backend = backend
        compiled, units = model._compiled(), model.output_units
        self.metrics = compiled.metrics
        self.labels = compiled.labels
        self.threshold = compiled.threshold(units) if compiled.metrics else None
        self.entries = compiled.accuracy_entries(units) if compiled.metrics else 1
        self.from_confusion = compiled.accuracy_from_confusion(units)
        self.confusion: Array | None = None
        if compiled.confusion_metrics:
            classes = model.output_units if self.threshold is None else 2
            self.confusion = backend.zeros((classes, classes), np.int64)  # (true, predicted)

    def add(self, outputs: Array, targets: Array) -> None:
        """Count one batch: outputs (B, K) as the loss saw them, the metric's targets."""
        assert self.confusion is not None
        self.backend.update_confusion(self.confusion, outputs, targets, self.threshold)

    def combine(self, group: Group) -> None:
        """Sum the confusion matrix over the ranks of a distributed pass."""
        if self.confusion is not None:
            summed = group.sum(np.array(self.backend.to_numpy(self.confusion)), "the metrics")
            self.backend.copy_from_host(self.confusion, summed)

    def results(self, samples: int, correct: int) -> dict[str, float]:
        """Each metric over the ``samples`` counted, in compile order; ``correct`` is what
        the loss counted for the accuracy."""
        scores: dict[str, float] = {}
        if self.confusion is not None:
            matrix = self.backend.to_numpy(self.confusion)
            if self.from_confusion:
                correct = int(np.trace(matrix))
            if self.threshold is None:
                precision, recall, f1 = metrics_module.scores_from_confusion(matrix, "macro")
            else:  # binary outputs: the positive class's figures, as Keras reports them
                per_class = metrics_module.scores_from_confusion(matrix, None)
                precision, recall, f1 = (values[1] for values in per_class)
            scores = {"precision": precision, "recall": recall, "f1": f1}
        if "accuracy" in self.metrics:
            scores["accuracy"] = correct / (samples * self.entries)
        return {self.labels.get(name, name): float(scores[name]) for name in self.metrics}
