"""What ``compile`` chose, kept apart from the model (as Keras keeps its compile state
apart from the layers): the optimizer, the loss, the metrics, and how the model's last
layer meets the loss (whether the loss takes logits, which accuracy applies).

The rules that need the model's output width take it as ``units``: a model compiled
before it is built learns it at build.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from fastnn import losses as losses_module
from fastnn import metrics as metrics_module
from fastnn import optimizers as optimizers_module
from fastnn.layers import Dense, Layer, _ActivatedLayer
from fastnn.training import Head
from fastnn.validation import shown

#: what ``compile(metrics=[...])`` accepts, and the name each is logged under. Precision,
#: recall and F1 are macro averages over the classes present (scikit-learn's "macro"),
#: or of the positive class for binary outputs; see :mod:`fastnn.metrics`.
METRIC_NAMES = {
    "accuracy": "accuracy",
    "acc": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "f1_score": "f1",
}
CONFUSION_METRICS = ("precision", "recall", "f1")
#: Keras's accuracies by name: fastnn's "accuracy" (one class per row, or thresholded
#: entries, as the model's outputs are), logged under the name given; (which outputs)
KERAS_ACCURACIES = {
    "sparse_categorical_accuracy": "argmax",
    "categorical_accuracy": "argmax",
    "binary_accuracy": "threshold",
}
#: fastnn.metrics' functions, given as metrics
METRIC_FUNCTIONS = {
    metrics_module.accuracy: "accuracy",
    metrics_module.precision: "precision",
    metrics_module.recall: "recall",
    metrics_module.f1: "f1",
}


def metric_entry(metric: object) -> tuple[str, str]:
    """A ``compile(metrics=[...])`` entry as (fastnn's name, the name it is logged under):
    a name, one of fastnn.metrics' functions, or a Keras metric function or object known
    by its name (``keras.metrics.sparse_categorical_accuracy``)."""
    given = metric if isinstance(metric, str) else None
    if given is None and callable(metric):
        function_name = next((n for f, n in METRIC_FUNCTIONS.items() if f is metric), None)
        given = function_name or getattr(metric, "name", None) or getattr(metric, "__name__", None)
    if isinstance(given, str):
        key = given.lower()
        if key in METRIC_NAMES:
            return METRIC_NAMES[key], METRIC_NAMES[key]
        if key in KERAS_ACCURACIES:
            return "accuracy", key
    known = ", ".join([*METRIC_NAMES, *KERAS_ACCURACIES])
    raise ValueError(
        f"unknown metric {shown(metric)}; valid: {known} (as names, or functions of those names)"
    )


class Compiled:
    """The optimizer, the loss and the metrics of a compiled model."""

    def __init__(
        self,
        optimizer: str | optimizers_module.Optimizer,
        loss: str | losses_module.Loss | None,
        metrics: Sequence[Any] | None,
    ) -> None:
        if loss is None:
            raise ValueError(
                "compile needs a loss; received loss=None. Valid names: "
                + ", ".join(losses_module.NAMES)
            )
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(
                "metrics must be a list of names, e.g. ['accuracy']; "
                f"received metrics={shown(metrics)}"
            )
        self.metrics: list[str] = []  # fastnn's names, in compile order
        #: each metric's name in logs: as given where Keras names it otherwise
        self.labels: dict[str, str] = {}
        self.accuracy_named: str | None = None  # a Keras accuracy name given to compile
        for metric in metrics or []:
            name, label = metric_entry(metric)
            if name not in self.metrics:
                self.metrics.append(name)
                self.labels[name] = label
                if label in KERAS_ACCURACIES:
                    self.accuracy_named = label

    @property
    def metrics_names(self) -> list[str]:
        """The names of what ``evaluate`` returns: ``["loss", *metrics]`` as logged."""
        return ["loss", *(self.labels.get(name, name) for name in self.metrics)]

    @property
    def folds_activation(self) -> bool:
        """True when training skips the last activation and the loss takes logits."""
        return self.loss.expected_activation not in (None, "linear")

    @property
    def confusion_metrics(self) -> bool:
        return any(name in CONFUSION_METRICS for name in self.metrics)

    def accuracy_kind(self, units: int) -> str:
        """Which accuracy applies: "argmax" (one class per row) or "threshold" (per entry)."""
        binary = isinstance(self.loss, losses_module.BinaryCrossentropy)
        return "threshold" if binary or units == 1 else "argmax"

    def accuracy_entries(self, units: int) -> int:
        """How many accuracy entries one sample has: 1 class, or one per binary output."""
        return 1 if self.accuracy_kind(units) == "argmax" else units

    def threshold(self, units: int) -> float | None:
        """The cut between predicted 0 and 1 on the outputs (None: one class per row)."""
        if self.accuracy_kind(units) == "argmax":
            return None
        # On logits (sigmoid folded into the loss) the 0.5 probability cut is at 0.
        return 0.0 if self.folds_activation else 0.5

    def accuracy_from_confusion(self, units: int) -> bool:
        """With one class per row, the correct predictions are the confusion matrix's
        diagonal: one count serves both. (Binary outputs count thresholded entries
        against targets that may be soft, so they keep their own count.)"""
        return self.confusion_metrics and self.threshold(units) is None

    def check_head(self, last: Layer, units: int | None) -> None:
        """Check the last layer suits the loss (and a Keras accuracy name the outputs,
        once ``units`` is known)."""
        final = last.activation if isinstance(last, _ActivatedLayer) else "linear"
        expected = self.loss.expected_activation
        if expected == "linear" and final != "linear":
            warnings.warn(
                f"loss {self.loss.name!r} has from_logits=True but the model ends in {final!r}; "
                "its outputs are treated as logits",
                stacklevel=3,
            )
        elif expected is not None and expected != "linear" and final != expected:
            raise ValueError(
                f"loss {self.loss.name!r} expects probabilities from a final {expected!r} "
                f"activation, but the model ends in {final!r}. Use activation={expected!r} on "
                f"the last layer, or {type(self.loss).__name__}(from_logits=True)"
            )
        named = self.accuracy_named
        if named is not None and units is not None:
            kind = self.accuracy_kind(units)
            if KERAS_ACCURACIES[named] != kind:
                what = "one class per row" if kind == "argmax" else "thresholded"
                raise ValueError(
                    f"metric {named!r} does not fit this model, whose accuracy is {what} "
                    f"(its loss and {units} output(s)); use 'accuracy'"
                )

    def head(self, last: Layer, units: int) -> Head:
        """How the output meets the loss: the last Dense's bias folded into the fused loss
        when the loss takes that layer's output without an activation, and what the loss
        counts for the accuracy metric."""
        folds_bias = (
            isinstance(last, Dense)
            and last.use_bias
            and (self.folds_activation or last.activation == "linear")
        )
        threshold = self.threshold(units)
        count = None
        if "accuracy" in self.metrics and not self.accuracy_from_confusion(units):
            count = "argmax" if threshold is None else "threshold"
        return Head(last if folds_bias else None, count, threshold or 0.0)  # type: ignore[arg-type]
