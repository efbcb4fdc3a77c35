"""Weight initializers, with Keras's names and defaults.

An initializer is called with the backend, the shape, the dtype and a NumPy
generator; it draws on the host (see ``Backend.random_uniform``) so a seed gives
the same weights on every backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastnn.backends import Array, Backend
from fastnn.validation import check_finite, shown


class Initializer:
    """Base class: ``init(backend, shape, dtype, rng)`` returns a new array."""

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {}


class Zeros(Initializer):
    """All zeros (Keras's default bias initializer)."""

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        return backend.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        return backend.asarray(np.ones(shape, dtype=dtype), dtype)


class RandomUniform(Initializer):
    """Uniform in ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05) -> None:
        self.minval = check_finite("minval", minval)
        self.maxval = check_finite("maxval", maxval)
        if not self.minval < self.maxval:
            raise ValueError(
                f"RandomUniform needs minval < maxval; received minval={minval}, maxval={maxval}"
            )

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        return backend.random_uniform(rng, shape, self.minval, self.maxval, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    """Normal of the given mean and standard deviation."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05) -> None:
        self.mean = check_finite("mean", mean)
        self.stddev = check_finite("stddev", stddev)
        if not self.stddev > 0:
            raise ValueError(f"RandomNormal needs stddev > 0; received stddev={stddev}")

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        return backend.random_normal(rng, shape, self.mean, self.stddev, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev}


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel (in, out); a vector counts as its length both ways."""
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[0], shape[1]


class VarianceScaling(Initializer):
    """Samples of variance ``scale / n``, n being fan_in, fan_out or their mean.

    The normal form is truncated at two standard deviations, its stddev
    corrected so the variance after truncation is still ``scale / n`` (as Keras).
    """

    _TRUNCATION_CORRECTION = 0.87962566103423978  # stddev of N(0, 1) truncated to [-2, 2]

    def __init__(self, scale: float, mode: str, distribution: str) -> None:
        self.scale = check_finite("scale", scale)
        if not self.scale > 0:
            raise ValueError(f"VarianceScaling needs scale > 0; received scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(
                f"mode must be fan_in, fan_out or fan_avg; received mode={shown(mode)}"
            )
        if distribution not in ("uniform", "truncated_normal"):
            raise ValueError(
                "distribution must be uniform or truncated_normal; "
                f"received distribution={shown(distribution)}"
            )
        self.mode = mode
        self.distribution = distribution

    def __call__(
        self, backend: Backend, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator
    ) -> Array:
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return backend.random_uniform(rng, shape, -limit, limit, dtype)
        stddev = math.sqrt(variance) / self._TRUNCATION_CORRECTION
        return backend.random_normal(rng, shape, 0.0, stddev, dtype, truncated=True)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


_NAMED: dict[str, tuple[float, str, str]] = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
_CLASSES: dict[str, type[Initializer]] = {
    "Zeros": Zeros,
    "Ones": Ones,
    "RandomUniform": RandomUniform,
    "RandomNormal": RandomNormal,
    "VarianceScaling": VarianceScaling,
}
_ALIASES: dict[str, type[Initializer]] = {
    "zeros": Zeros,
    "ones": Ones,
    "random_uniform": RandomUniform,
    "uniform": RandomUniform,
    "random_normal": RandomNormal,
    "normal": RandomNormal,
}
NAMES: tuple[str, ...] = (*_NAMED, *_ALIASES)


def get(identifier: str | Initializer) -> Initializer:
    """An initializer from its name (Keras's names) or the object itself."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _NAMED:
            return VarianceScaling(*_NAMED[key])
        if key in _ALIASES:
            return _ALIASES[key]()
    raise ValueError(
        f"unknown initializer {shown(identifier)}; use an Initializer or one of: {', '.join(NAMES)}"
    )


def serialize(initializer: Initializer) -> dict[str, Any]:
    """A JSON-able description of ``initializer``."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config: dict[str, Any]) -> Initializer:
    """The initializer described by :func:`serialize`'s output."""
    cls = _CLASSES.get(config.get("class_name", ""))
    if cls is None:
        raise ValueError(f"unknown initializer class in saved model: {config.get('class_name')!r}")
    return cls(**config.get("config", {}))
