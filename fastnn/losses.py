"""Losses, with Keras's names.

Each loss returns the batch mean and its gradient in one backend call. The
cross-entropies take *logits*: when the model ends in the matching activation
(softmax for the categorical ones, sigmoid for the binary one) the model skips
that activation during training and hands its input to the loss, which then
computes activation + loss + gradient fused, stable for any logit. With
``from_logits=True`` the model's raw output is taken as the logits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fastnn.backends import Array, Backend, Scalar
from fastnn.validation import as_numbers, shown

#: how far Keras keeps probabilities from 0 and 1 before taking their logarithm
EPSILON = 1e-7


class Loss:
    """Base class. ``target_kind`` says what ``y`` must look like for this loss."""

    #: registry name, as given to ``compile(loss=...)``
    name: ClassVar[str]
    #: "sparse": integer class labels (n,); "dense": one row of targets per sample (n, K)
    target_kind: ClassVar[str] = "dense"
    #: the output activation this loss takes the logits of (None: takes outputs as they are)
    folds_activation: ClassVar[str | None] = None
    #: the backend's fused loss (a name of fastnn.backends.base.LOSSES)
    op: ClassVar[str]

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    @property
    def expected_activation(self) -> str | None:
        """The final activation the model must end in (None: any)."""
        if self.folds_activation is None:
            return None
        return "linear" if self.from_logits else self.folds_activation

    def fused(
        self,
        backend: Backend,
        outputs: Array,
        targets: Array,
        grad_out: Array | None = None,
        **step: Any,
    ) -> tuple[Scalar, Array]:
        """(mean loss, gradient w.r.t. ``outputs``), as training computes them: outputs
        (B, K) are logits where the loss folds the activation; targets per ``target_kind``.

        ``step`` holds what a training step adds around the loss (the last layer's bias,
        the pass's totals, the accuracy count): see ``Backend.loss_and_gradient``.
        """
        return backend.loss_and_gradient(self.op, outputs, targets, grad_out, **step)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """Keras's call: the loss of the model's outputs ``y_pred`` (probabilities, or
        logits with ``from_logits=True``) against ``y_true``, on NumPy arrays: the
        per-sample losses, weighted by ``sample_weight`` (n,) if given, summed and divided
        by the number of samples (Keras's ``sum_over_batch_size``)."""
        predicted = as_numbers("y_pred", y_pred).astype(np.float64)
        if predicted.ndim == 1:
            predicted = predicted[:, np.newaxis]
        if self.target_kind == "sparse":
            labels = as_numbers("y_true", y_true)
            true = np.zeros_like(predicted)
            true[np.arange(len(labels)), labels.reshape(len(labels)).astype(np.int64)] = 1.0
        else:
            true = as_numbers("y_true", y_true).astype(np.float64).reshape(predicted.shape)
        per_sample = self._per_sample(true, predicted)  # (n,)
        if sample_weight is None:
            return float(per_sample.mean())
        weights = as_numbers("sample_weight", sample_weight).astype(np.float64)
        if weights.shape != per_sample.shape:
            raise ValueError(
                f"sample_weight must have shape {per_sample.shape}; received {weights.shape}"
            )
        return float((per_sample * weights).sum() / len(per_sample))

    def _per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The loss of each sample (n,) from float64 rows (n, K)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits} if self.folds_activation else {}


class CategoricalCrossentropy(Loss):
    """Cross-entropy of softmax outputs against one-hot (or soft) target rows (n, K)."""

    name = "categorical_crossentropy"
    folds_activation = "softmax"
    op = "softmax_cross_entropy"

    def _per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        if self.from_logits:
            shifted = y_pred - y_pred.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        else:  # as Keras: rows rescaled to sum to 1, then clipped away from 0 and 1
            p = y_pred / y_pred.sum(axis=1, keepdims=True)
            log_p = np.log(np.clip(p, EPSILON, 1.0 - EPSILON))
        return -(y_true * log_p).sum(axis=1)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy of softmax outputs against integer labels (n,)."""

    name = "sparse_categorical_crossentropy"
    target_kind = "sparse"
    op = "sparse_softmax_cross_entropy"


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of sigmoid outputs against targets in [0, 1] (n,) or (n, K)."""

    name = "binary_crossentropy"
    folds_activation = "sigmoid"
    op = "sigmoid_binary_cross_entropy"

    def _per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        if self.from_logits:  # log(1 + e^z) - t z, stable for any z
            entries = np.logaddexp(0.0, y_pred) - y_true * y_pred
        else:
            p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
            entries = -(y_true * np.log(p) + (1.0 - y_true) * np.log(1.0 - p))
        return entries.mean(axis=1)


class MeanSquaredError(Loss):
    """Mean of squared differences over every output, for regression."""

    name = "mean_squared_error"
    op = "mean_squared_error"

    def __init__(self) -> None:
        super().__init__(from_logits=False)

    def _per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return ((y_true - y_pred) ** 2).mean(axis=1)


_CLASSES: dict[str, type[Loss]] = {
    cls.__name__: cls
    for cls in (
        SparseCategoricalCrossentropy,
        CategoricalCrossentropy,
        BinaryCrossentropy,
        MeanSquaredError,
    )
}
_NAMES: dict[str, type[Loss]] = {cls.name: cls for cls in _CLASSES.values()}
_NAMES["mse"] = MeanSquaredError
NAMES: tuple[str, ...] = tuple(_NAMES)


def get(identifier: str | Loss) -> Loss:
    """A loss from its name (Keras's names) or the object itself."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return _NAMES[identifier.lower()]()
    raise ValueError(
        f"unknown loss {shown(identifier)}; use a fastnn.losses.Loss or one of: {', '.join(NAMES)}"
    )


def serialize(loss: Loss) -> dict[str, Any]:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config: dict[str, Any]) -> Loss:
    cls = _CLASSES.get(config.get("class_name", ""))
    if cls is None:
        raise ValueError(f"unknown loss class in saved model: {config.get('class_name')!r}")
    return cls(**config.get("config", {}))
