"""The Numba backend: JIT-compiled CPU kernels (its kernels land in ``kernels/``)."""

from __future__ import annotations

import importlib.util


def probe() -> str | None:
    """Why the numba backend cannot run here, or None when it can."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'fastnn[numba]')"
    return "not implemented yet"
