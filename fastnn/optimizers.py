"""Optimizers, with Keras's names, defaults and update rules.

Each optimizer keeps its per-parameter state ("slots") on the backend, with the count
of steps taken, and updates every parameter in place with one backend call per step
(``Backend.apply_updates``: one launch on the GPU).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from fastnn.backends import Array, Backend
from fastnn.backends.base import UPDATE_RULES, Adjustment
from fastnn.sparse import SparseRows
from fastnn.validation import check_finite, check_flag, shown


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


#: Keras's gradient clipping options, at most one of them set
CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


def _check_clipping(values: dict[str, Any]) -> tuple[str, float] | None:
    """(the option set, its value) of Keras's clipping options, or None."""
    given = {name: value for name, value in values.items() if value is not None}
    if len(given) > 1:
        shown_all = ", ".join(f"{name}={value!r}" for name, value in values.items())
        raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set; "
                         f"received {shown_all}")  # fmt: skip
    for name, value in given.items():
        number = check_finite(name, value)
        if number <= 0:
            raise ValueError(f"{name} must be > 0 (or None); received {name}={shown(value)}")
        return name, number
    return None


class SparseGradient(NamedTuple):
    """A weight gradient left for the update to make: ``x.T @ dz`` for the parameter at
    ``place``; x (B, F) compressed rows, dz (B, H) (``Backend.sparse_update``)."""

    place: int
    x: SparseRows
    dz: Array


class LazyRows(NamedTuple):
    """Rows of the velocity of the parameter at ``place`` that fused sparse steps left
    behind: ``stamps`` (F,) the step each row is current at, decaying by ``rho`` a step."""

    place: int
    stamps: Array
    rho: float


class Optimizer:
    """Base class: subclasses name their update rule and its hyperparameters.

    ``clipnorm`` (each gradient's L2 norm at most that), ``clipvalue`` (each entry within
    +-that) or ``global_clipnorm`` (all gradients' joint norm at most that) clip the
    gradients before the update, as Keras does (at most one of them); ``weight_decay``
    shrinks every trained weight by ``weight_decay * learning_rate`` of itself first.
    """

    def __init__(
        self,
        learning_rate: float,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        weight_decay: float | None = None,
    ) -> None:
        self.learning_rate = _check_learning_rate(learning_rate)
        #: Keras's decoupled weight decay: ``w -= w * weight_decay * lr`` before each update
        self.weight_decay = (
            None if weight_decay is None else _check_range(
                "weight_decay", weight_decay, 0.0, math.inf, True)
        )  # fmt: skip
        self.clipping = _check_clipping(
            {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        )
        self._slots: list[dict[str, Array]] | None = None  # per parameter, by slot name
        #: steps taken, on the backend beside the slots (where a GPU step advances it)
        self._state: Array = None
        self._backend: Backend | None = None
        self._iterations = 0  # the count while there is no state on a backend
        #: velocity rows that fused sparse steps left to decay later (None: all current)
        self._lazy: LazyRows | None = None

    @property
    def adjustment(self) -> Adjustment | None:
        """The clipping and weight decay a step applies before its update, or None."""
        if self.clipping is None and not self.weight_decay:
            return None
        clipping, limit = self.clipping or (None, 0.0)
        return Adjustment(clipping, limit, self.weight_decay or 0.0)

    @property
    def update_rule(self) -> str:
        """The backend update this optimizer runs (a key of ``UPDATE_RULES``)."""
        raise NotImplementedError

    @property
    def slot_groups(self) -> tuple[tuple[str, ...], ...]:
        """The per-parameter state arrays (zeros shaped like the parameter at first), in
        groups as Keras creates them: its file holds each group for every parameter in
        turn (Adam: each weight's m and v, then, with amsgrad, every weight's v_hat)."""
        return (UPDATE_RULES[self.update_rule],)

    @property
    def slot_names(self) -> tuple[str, ...]:
        """Every per-parameter state array's name (keywords of the backend's update)."""
        return tuple(name for group in self.slot_groups for name in group)

    def state_order(self, parameters: int) -> list[tuple[int, str]]:
        """(parameter index, slot name) of each state array in Keras's order."""
        return [(i, name) for group in self.slot_groups for i in range(parameters)
                for name in group]  # fmt: skip

    def hyperparameters(self) -> dict[str, Any]:
        """The update's keyword arguments besides the arrays (and Adam's step)."""
        return {"learning_rate": self.learning_rate}

    @property
    def iterations(self) -> int:
        """Steps applied so far (read from the backend once training has started)."""
        if self._backend is None:
            return self._iterations
        return int(self._backend.to_numpy(self._state)[0])

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.settle()
        self._iterations = int(value)
        if self._backend is not None:
            self._backend.copy_from_host(self._state, np.array([value, 0], dtype=np.uint64))

    @property
    def fuses_sparse(self) -> bool:
        """Whether a step can make a first layer's weight gradient from compressed rows
        itself, touching only the rows with nonzeros (``Backend.sparse_update``): a rule
        under which a zero gradient row keeps its weights, without clipping or decay."""
        return False

    def apply(
        self,
        backend: Backend,
        params: list[Array],
        grads: list[Array],
        sparse: SparseGradient | None = None,
    ) -> None:
        """One step: update every parameter in place from its gradient; ``sparse``: the
        gradient of one of them is left for the update to make (see :attr:`fuses_sparse`)."""
        if self._slots is None:
            self._slots = [
                {name: backend.zeros(p.shape, p.dtype) for name in self.slot_names} for p in params
            ]
        elif len(self._slots) != len(params):
            raise ValueError(
                f"the model trains {len(params)} weights but this optimizer has state for "
                f"{len(self._slots)}: a layer's trainable flag changed since its first step; "
                "call model.compile(...) again, as Keras requires"
            )
        if self._backend is not backend:
            self._attach(backend)
        rule, slots, hyper = self.update_rule, self._slots, self.hyperparameters()
        if sparse is None:
            self.settle()  # a dense step reads every row's state
            backend.apply_updates(rule, params, grads, slots, hyper, self._state, self.adjustment)
            return
        i = sparse.place
        rest = [j for j in range(len(params)) if j != i]
        backend.apply_updates(rule, [params[j] for j in rest], [grads[j] for j in rest],
                              [slots[j] for j in rest], hyper, self._state)  # fmt: skip
        stamps = None
        if "velocity" in slots[i]:
            step = self.iterations  # this step's number: apply_updates counted it
            stamps = self._stamps(backend, i, params[i], step, float(hyper["rho"]))
        backend.sparse_update(rule, sparse.x, sparse.dz, params[i], slots[i], hyper, stamps,
                              self._state)  # fmt: skip

    def _stamps(self, backend: Backend, index: int, param: Array, step: int, rho: float) -> Array:
        """The stamps of parameter ``index``'s velocity rows for step ``step`` under
        ``rho``: kept from the steps before, or, after a dense step or a change of rho,
        every row current."""
        lazy = self._lazy
        if lazy is None or lazy.place != index or lazy.rho != rho:
            self.settle(through=step - 1)  # the steps before this one, under their rho
            stamps = backend.asarray(np.full(param.shape[0], step - 1, np.int64))
            lazy = self._lazy = LazyRows(index, stamps, rho)
        return lazy.stamps

    def settle(self, through: int | None = None) -> None:
        """Bring the velocity rows that fused sparse steps left behind up to step
        ``through`` (default: the steps taken), before anything reads or replaces the
        state."""
        lazy, self._lazy = self._lazy, None
        if lazy is not None and self._backend is not None and self._slots is not None:
            step = self.iterations if through is None else through
            velocity = self._slots[lazy.place]["velocity"]
            self._backend.settle_rows(velocity, lazy.stamps, step, lazy.rho)

    def _attach(self, backend: Backend) -> None:
        """Keep the step count on ``backend`` from now on."""
        count = self.iterations
        self._state = backend.asarray(np.array([count, 0], dtype=np.uint64))
        self._backend = backend

    def slot_arrays(self) -> list[Array]:
        """Every state array, parameter by parameter, and the step count's."""
        self.settle()
        slots = [a for s in self._slots or [] for a in s.values()]
        return [*slots, self._state]

    def get_config(self) -> dict[str, Any]:
        options = {} if self.clipping is None else {self.clipping[0]: self.clipping[1]}
        if self.weight_decay is not None:
            options["weight_decay"] = self.weight_decay
        return {"learning_rate": self.learning_rate, **options}

    def get_state(self, backend: Backend) -> list[np.ndarray]:
        """Slot arrays on the host, in :meth:`state_order`."""
        if self._slots is None:
            return []
        self.settle()
        slots = self._slots
        return [backend.to_numpy(slots[i][name]) for i, name in self.state_order(len(slots))]

    def set_state(
        self, backend: Backend, iterations: int, arrays: list[np.ndarray], params: list[Array]
    ) -> None:
        """Restore what :meth:`get_state` returned, checking it fits ``params``."""
        order = self.state_order(len(params))
        if len(arrays) != len(order):
            raise ValueError(
                f"{type(self).__name__} state has {len(arrays)} arrays; expected "
                f"{len(self.slot_names)} per parameter x {len(params)} parameters"
            )
        self._lazy = None  # the state is replaced whole
        slots: list[dict[str, Array]] = [{} for _ in params]
        for (i, name), array in zip(order, arrays, strict=True):
            param = params[i]
            if array.shape != param.shape:
                raise ValueError(f"optimizer state for parameter {i} does not match its shape")
            slots[i][name] = backend.asarray(np.array(array, dtype=param.dtype))
        self._slots = slots if params else None
        self.iterations = int(iterations)

    def move_to(self, old: Backend, new: Backend) -> None:
        """Move the slots and the step count to another backend (through the host)."""
        self.settle()
        if self._slots is not None:
            self._slots = [
                {name: new.asarray(old.to_numpy(a)) for name, a in slots.items()}
                for slots in self._slots
            ]
        if self._backend is not None:
            self._attach(new)


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    ``velocity = momentum * velocity - lr * g``; ``w += velocity``.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **clipping: float | None,
    ) -> None:
        momentum = _check_range("momentum", momentum, 0.0, 1.0, False)
        super().__init__(learning_rate, **clipping)
        self.momentum = momentum
        self.nesterov = check_flag("nesterov", nesterov)

    @property
    def update_rule(self) -> str:
        return "momentum" if self.momentum > 0 else "sgd"

    def hyperparameters(self) -> dict[str, Any]:
        if self.momentum == 0:
            return super().hyperparameters()
        return {**super().hyperparameters(), "momentum": self.momentum, "nesterov": self.nesterov}

    @property
    def fuses_sparse(self) -> bool:
        # without momentum, a zero gradient row keeps its weights: nothing to do for it
        return self.momentum == 0 and self.adjustment is None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras's RMSprop: ``v = rho * v + (1 - rho) * g**2``; ``step = lr * g / sqrt(v +
    epsilon)``; ``w -= step``.

    ``centered=True`` also keeps the gradient's moving average ``a = rho * a + (1 - rho)
    * g`` and divides by ``sqrt(v - a**2 + epsilon)``, an estimate of the variance;
    ``momentum > 0`` keeps ``b = momentum * b + step`` and moves ``w -= b``.
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **clipping: float | None,
    ) -> None:
        super().__init__(learning_rate, **clipping)
        self.rho = _check_range("rho", rho, 0.0, 1.0, True)
        self.momentum = _check_range("momentum", momentum, 0.0, 1.0, False)
        self.epsilon = _check_range("epsilon", epsilon, 0.0, math.inf, True)
        self.centered = check_flag("centered", centered)

    update_rule = "rmsprop"

    @property
    def slot_groups(self) -> tuple[tuple[str, ...], ...]:
        # Keras's order: velocities, then momentums, then average gradients
        return (("velocity",), *([("momentum_buffer",)] if self.momentum > 0 else []),
                *([("average_gradient",)] if self.centered else []))  # fmt: skip

    @property
    def fuses_sparse(self) -> bool:
        # a zero gradient row keeps its weights (but for momentum's buffer) and its
        # velocity only decays, which can wait; epsilon 0 would make those weights NaN
        # where the velocity is 0, as the dense step does
        plain = self.momentum == 0 and not self.centered and self.epsilon > 0
        return plain and self.adjustment is None

    def hyperparameters(self) -> dict[str, Any]:
        extra = {"momentum": self.momentum} if self.momentum > 0 else {}
        return {**super().hyperparameters(), "rho": self.rho, "epsilon": self.epsilon, **extra}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}  # fmt: skip


class Adam(Optimizer):
    """``m += (1 - b1)(g - m)``; ``v += (1 - b2)(g**2 - v)``;
    ``w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)``.

    ``amsgrad=True`` divides by the largest ``v`` seen so far instead (kept as ``v_hat``),
    so that an entry's step never grows because its gradients became smaller.
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **clipping: float | None,
    ) -> None:
        super().__init__(learning_rate, **clipping)
        self.beta_1 = _check_range("beta_1", beta_1, 0.0, 1.0, True)
        self.beta_2 = _check_range("beta_2", beta_2, 0.0, 1.0, True)
        self.epsilon = _check_range("epsilon", epsilon, 0.0, math.inf, True)
        self.amsgrad = check_flag("amsgrad", amsgrad)

    update_rule = "adam"

    @property
    def slot_groups(self) -> tuple[tuple[str, ...], ...]:
        return (("m", "v"), *([("v_hat",)] if self.amsgrad else []))

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay, Keras's defaults (``weight_decay=0.004``)."""

    def __init__(
        self,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **clipping: float | None,
    ) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **clipping)  # fmt: skip


_CLASSES: dict[str, type[Optimizer]] = {"SGD": SGD, "RMSprop": RMSprop, "Adam": Adam,
                                        "AdamW": AdamW}  # fmt: skip
NAMES: tuple[str, ...] = ("sgd", "rmsprop", "adam", "adamw")


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
