"""Weight penalties added to the loss, with Keras's names and defaults.

``Dense(256, kernel_regularizer=fastnn.regularizers.L2(0.001))`` adds
``0.001 * sum(kernel**2)`` to the training loss (and to ``evaluate``'s, as Keras
does) and ``2 * 0.001 * kernel`` to the kernel's gradient at every step.
"""

from __future__ import annotations

import math
from typing import Any

from fastnn.backends import Array, Backend, Scalar
from fastnn.validation import shown


def _check_factor(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0; received {name}={shown(value)}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; received {name}={shown(value)}")
    return float(value)


class L1L2:
    """``l1 * sum(|w|) + l2 * sum(w**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_factor("l1", l1)
        self.l2 = _check_factor("l2", l2)

    def __call__(self, backend: Backend, weight: Array, grad: Array | None = None) -> Scalar:
        """The penalty of ``weight``; with ``grad``, its gradient is added to ``grad`` in place."""
        return backend.weight_penalty(weight, self.l1, self.l2, grad)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1(L1L2):
    """``l1 * sum(|w|)``; Keras's default factor 0.01."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)


class L2(L1L2):
    """``l2 * sum(w**2)``; Keras's default factor 0.01."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)


NAMES = ("l1", "l2", "l1_l2")


def get(identifier: str | L1L2 | None) -> L1L2 | None:
    """A regularizer from a name (``"l2"``: Keras's default factor) or an instance; None passes."""
    if identifier is None or isinstance(identifier, L1L2):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return {"l1": L1, "l2": L2, "l1_l2": L1L2}[identifier.lower()]()
    raise ValueError(
        f"unknown regularizer {shown(identifier)}; valid: None, {', '.join(map(repr, NAMES))}, "
        "or a fastnn.regularizers.L1L2 instance"
    )


def serialize(regularizer: L1L2 | None) -> dict[str, float] | None:
    """Plain data for saving: the two factors (an L1 or L2 rebuilds as the same L1L2 sum)."""
    return None if regularizer is None else regularizer.get_config()


def deserialize(config: dict[str, float] | None) -> L1L2 | None:
    return None if config is None else L1L2(**config)
