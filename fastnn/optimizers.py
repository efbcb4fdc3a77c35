"""Optimizers, with Keras's names, defaults and update rules.

Each optimizer keeps its per-parameter state ("slots") on the backend and
applies one fused in-place update per parameter per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn.backends import Array, Backend
from fastnn.validation import check_finite, shown


def _check_range(name: str, value: object, low: float, high: float, high_open: bool) -> float:
    """``value`` as a float in [low, high] (or [low, high)), else a ValueError naming it."""
    number = check_finite(name, value)
    inside = low <= number < high if high_open else low <= number <= high
    if not inside:
        bracket = ")" if high_open else "]"
        raise ValueError(
            f"{name} must be in [{low}, {high}{bracket}; received {name}={shown(value)}"
        )
    return number


def _check_learning_rate(value: object) -> float:
    rate = check_finite("learning_rate", value)
    if rate <= 0.0:
        raise ValueError(f"learning_rate must be > 0; received learning_rate={shown(value)}")
    return rate


class Optimizer:
    """Base class: subclasses name their slots and write ``update``."""

    def __init__(self, learning_rate: float, slot_names: tuple[str, ...] = ()) -> None:
        self.learning_rate = _check_learning_rate(learning_rate)
        #: per-parameter state arrays, created as zeros shaped like the parameter
        self.slot_names = slot_names
        self.iterations = 0  # steps applied so far
        self._slots: list[dict[str, Array]] | None = None

    def apply(self, backend: Backend, params: list[Array], grads: list[Array]) -> None:
        """One step: update every parameter in place from its gradient."""
        if self._slots is None:
            self._slots = [
                {name: backend.zeros(p.shape, p.dtype) for name in self.slot_names} for p in params
            ]
        self.iterations += 1
        for param, grad, slots in zip(params, grads, self._slots, strict=True):
            self.update(backend, param, grad, slots)

    def update(self, backend: Backend, param: Array, grad: Array, slots: dict[str, Array]) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}

    def get_state(self, backend: Backend) -> list[np.ndarray]:
        """Slot arrays on the host, parameter by parameter, in ``slot_names`` order."""
        if self._slots is None:
            return []
        return [backend.to_numpy(slots[name]) for slots in self._slots for name in self.slot_names]

    def set_state(
        self, backend: Backend, iterations: int, arrays: list[np.ndarray], params: list[Array]
    ) -> None:
        """Restore what :meth:`get_state` returned, checking it fits ``params``."""
        per_param = len(self.slot_names)
        if len(arrays) != per_param * len(params):
            raise ValueError(
                f"{type(self).__name__} state has {len(arrays)} arrays; expected "
                f"{per_param} per parameter x {len(params)} parameters"
            )
        slots = []
        for i, param in enumerate(params):
            group = arrays[i * per_param : (i + 1) * per_param]
            if any(a.shape != param.shape for a in group):
                raise ValueError(f"optimizer state for parameter {i} does not match its shape")
            arrays_on_backend = [backend.asarray(np.array(a, dtype=param.dtype)) for a in group]
            slots.append(dict(zip(self.slot_names, arrays_on_backend, strict=True)))
        self._slots = slots if params else None
        self.iterations = int(iterations)

    def move_to(self, old: Backend, new: Backend) -> None:
        """Move the slots to another backend (through the host)."""
        if self._slots is not None:
            self._slots = [
                {name: new.asarray(old.to_numpy(a)) for name, a in slots.items()}
                for slots in self._slots
            ]


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    ``velocity = momentum * velocity - lr * g``; ``w += velocity``.
    """

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        momentum = _check_range("momentum", momentum, 0.0, 1.0, False)
        super().__init__(learning_rate, ("velocity",) if momentum > 0 else ())
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def update(self, backend: Backend, param: Array, grad: Array, slots: dict[str, Array]) -> None:
        if self.momentum > 0:
            backend.momentum_update(
                param, grad, slots["velocity"], self.learning_rate, self.momentum, self.nesterov
            )
        else:
            backend.sgd_update(param, grad, self.learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """``v = rho * v + (1 - rho) * g**2``; ``w -= lr * g / sqrt(v + epsilon)``."""

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, epsilon: float = 1e-7):
        super().__init__(learning_rate, ("velocity",))
        self.rho = _check_range("rho", rho, 0.0, 1.0, True)
        self.epsilon = _check_range("epsilon", epsilon, 0.0, math.inf, True)

    def update(self, backend: Backend, param: Array, grad: Array, slots: dict[str, Array]) -> None:
        backend.rmsprop_update(
            param, grad, slots["velocity"], self.learning_rate, self.rho, self.epsilon
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adam(Optimizer):
    """``m += (1 - b1)(g - m)``; ``v += (1 - b2)(g**2 - v)``;
    ``w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)``."""

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate, ("m", "v"))
        self.beta_1 = _check_range("beta_1", beta_1, 0.0, 1.0, True)
        self.beta_2 = _check_range("beta_2", beta_2, 0.0, 1.0, True)
        self.epsilon = _check_range("epsilon", epsilon, 0.0, math.inf, True)

    def update(self, backend: Backend, param: Array, grad: Array, slots: dict[str, Array]) -> None:
        backend.adam_update(
            param,
            grad,
            slots["m"],
            slots["v"],
            self.learning_rate,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.iterations,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


_CLASSES: dict[str, type[Optimizer]] = {"SGD": SGD, "RMSprop": RMSprop, "Adam": Adam}
NAMES: tuple[str, ...] = ("sgd", "rmsprop", "adam")


def get(identifier: str | Optimizer) -> Optimizer:
    """An optimizer from its name (with Keras's defaults) or the object itself."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        for class_name, cls in _CLASSES.items():
            if identifier.lower() == class_name.lower():
                return cls()  # type: ignore[call-arg]
    raise ValueError(
        f"unknown optimizer {shown(identifier)}; use a fastnn.optimizers.Optimizer or one of: "
        + ", ".join(NAMES)
    )


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any]) -> Optimizer:
    cls = _CLASSES.get(config.get("class_name", ""))
    if cls is None:
        raise ValueError(f"unknown optimizer class in saved model: {config.get('class_name')!r}")
    return cls(**config.get("config", {}))
