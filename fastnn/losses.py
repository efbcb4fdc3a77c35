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

from fastnn.backends import Array, Backend, Scalar
from fastnn.validation import shown


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

    def __call__(
        self,
        backend: Backend,
        outputs: Array,
        targets: Array,
        grad_out: Array | None = None,
        **step: Any,
    ) -> tuple[Scalar, Array]:
        """(mean loss, gradient w.r.t. ``outputs``). outputs (B, K); targets per ``target_kind``.

        ``step`` holds what a training step adds around the loss (the last layer's bias,
        the pass's totals, the accuracy count): see ``Backend.loss_and_gradient``.
        """
        return backend.loss_and_gradient(self.op, outputs, targets, grad_out, **step)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits} if self.folds_activation else {}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy of softmax outputs against integer labels (n,)."""

    name = "sparse_categorical_crossentropy"
    target_kind = "sparse"
    folds_activation = "softmax"
    op = "sparse_softmax_cross_entropy"


class CategoricalCrossentropy(Loss):
    """Cross-entropy of softmax outputs against one-hot (or soft) target rows (n, K)."""

    name = "categorical_crossentropy"
    folds_activation = "softmax"
    op = "softmax_cross_entropy"


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of sigmoid outputs against targets in [0, 1] (n,) or (n, K)."""

    name = "binary_crossentropy"
    folds_activation = "sigmoid"
    op = "sigmoid_binary_cross_entropy"


class MeanSquaredError(Loss):
    """Mean of squared differences over every output, for regression."""

    name = "mean_squared_error"
    op = "mean_squared_error"

    def __init__(self) -> None:
        super().__init__(from_logits=False)


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
