"""Backend registry and selection.

A backend is one module in this package, found by name. Each module has a
``probe()`` that says why the backend cannot run here (or None when it can)
and, when it can, a :class:`~fastnn.backends.base.Backend` subclass.

Which backend is active, highest precedence first:

1. the innermost ``with use_backend(name):`` of the current thread / context;
2. the last ``set_backend(name)`` of the process;
3. the environment variable ``FASTNN_BACKEND``, read when a backend is first
   needed (not at import), so it can be set after ``import fastnn``;
4. ``auto``: cupy when a GPU is usable, else numba when it runs, else numpy.

``cupy-emulated`` is the cupy backend's own code with its CUDA kernels compiled for the
CPU (:mod:`fastnn.backends.cuda_emulation`): a check of the GPU code's logic that runs
without a GPU, slowly. It is chosen only by name, never by ``auto``.

Names are case-insensitive; an empty variable counts as unset. Asking for a
backend that cannot run raises :class:`BackendUnavailableError`; there is no
silent fallback except under ``auto``, whose whole point is to fall back.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import threading
from collections.abc import Iterator
from typing import NamedTuple

from fastnn.backends.base import ACTIVATIONS, Array, Backend, Scalar
from fastnn.validation import shown

__all__ = [
    "ACTIVATIONS",
    "EMULATED_BACKENDS",
    "Array",
    "Backend",
    "BackendInfo",
    "BackendUnavailableError",
    "Scalar",
    "available_backends",
    "backend_name",
    "get_backend",
    "set_backend",
    "use_backend",
]

#: backend name -> (module, class name)
_REGISTRY: dict[str, tuple[str, str]] = {
    "cupy": ("fastnn.backends.cupy_backend", "CupyBackend"),
    "numba": ("fastnn.backends.numba_backend", "NumbaBackend"),
    "numpy": ("fastnn.backends.numpy_backend", "NumpyBackend"),
    "cupy-emulated": ("fastnn.backends.cupy_emulated_backend", "CupyEmulatedBackend"),
}
#: the backends that compute for real, in the order `auto` prefers
AUTO_ORDER: tuple[str, ...] = ("cupy", "numba", "numpy")
BACKEND_NAMES: tuple[str, ...] = ("numpy", "numba", "cupy")
#: backends that check another's code on this machine (named only, never `auto`)
EMULATED_BACKENDS: tuple[str, ...] = ("cupy-emulated",)
ENV_VAR = "FASTNN_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run on this machine."""


class BackendInfo(NamedTuple):
    """Whether one backend can run here, and if not, why."""

    name: str
    available: bool
    reason: str  # empty when available


_instances: dict[str, Backend] = {}
_instances_lock = threading.Lock()
_process_default: str | None = None
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastnn_backend", default=None
)


def _normalize(name: object, source: str) -> str:
    """Lower-case and validate a backend name; ``source`` says where it came from."""
    valid = ", ".join((*BACKEND_NAMES, "auto", *EMULATED_BACKENDS))
    if not isinstance(name, str):
        raise TypeError(
            f"{source} must be a backend name (str), one of {valid}; "
            f"received {source}={shown(name)}"
        )
    key = name.strip().lower()
    if key not in (*BACKEND_NAMES, "auto", *EMULATED_BACKENDS):
        raise ValueError(f"unknown backend {source}={shown(name)}; valid names: {valid}")
    return key


@functools.cache
def _unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run here (cached: probing imports heavy modules)."""
    module = importlib.import_module(_REGISTRY[name][0])
    reason: str | None = module.probe()
    return reason


def available_backends(emulated: bool = False) -> list[BackendInfo]:
    """Every backend, whether it can run here, and why not when it cannot; ``emulated``
    adds the emulated ones after the real ones."""
    infos = []
    for name in (*BACKEND_NAMES, *(EMULATED_BACKENDS if emulated else ())):
        reason = _unavailable_reason(name)
        infos.append(BackendInfo(name, reason is None, reason or ""))
    return infos


def _resolve_auto() -> str:
    for name in AUTO_ORDER:
        if _unavailable_reason(name) is None:
            return name
    raise AssertionError("the numpy backend always runs")  # pragma: no cover


def _instance(name: str) -> Backend:
    """The one backend object of ``name``, created on first use."""
    if name == "auto":
        name = _resolve_auto()
    backend = _instances.get(name)
    if backend is not None:
        return backend
    reason = _unavailable_reason(name)
    if reason is not None:
        runnable = ", ".join(info.name for info in available_backends() if info.available)
        raise BackendUnavailableError(
            f"backend {name!r} cannot run here: {reason}. Backends that can run: {runnable}"
        )
    with _instances_lock:
        if name not in _instances:
            module_name, class_name = _REGISTRY[name]
            cls = getattr(importlib.import_module(module_name), class_name)
            _instances[name] = cls()
        return _instances[name]


def _requested_name() -> str:
    """The backend name in force for this context, by the precedence rules above."""
    chosen = _context_choice.get()
    if chosen is not None:
        return chosen
    if _process_default is not None:
        return _process_default
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return _normalize(env, ENV_VAR)
    return "auto"


def get_backend(name: str | None = None) -> Backend:
    """The backend object called ``name``, or the active one when ``name`` is None."""
    if name is None:
        return _instance(_requested_name())
    return _instance(_normalize(name, "backend"))


def backend_name() -> str:
    """Name of the active backend ("numpy", "numba", "cupy" or "cupy-emulated")."""
    return get_backend().name


def set_backend(name: str | None) -> None:
    """Make ``name`` the process-wide backend (``None`` goes back to the env var / auto).

    The backend is checked at once, so a backend that cannot run fails here
    rather than at the first training step.
    """
    global _process_default
    if name is None:
        _process_default = None
        return
    key = _normalize(name, "backend")
    _instance(key)
    _process_default = key


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Use backend ``name`` inside the ``with`` block, in this thread / context only."""
    key = _normalize(name, "backend")
    backend = _instance(key)
    token = _context_choice.set(key)
    try:
        yield backend
    finally:
        _context_choice.reset(token)
