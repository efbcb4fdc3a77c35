"""The CuPy backend: the network on an NVIDIA GPU (its CUDA kernels land in ``kernels/cuda``)."""

from __future__ import annotations

import importlib.util


def probe() -> str | None:
    """Why the cupy backend cannot run here, or None when it can."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install 'fastnn[cuda12]' or 'fastnn[cuda13]')"
    return "not implemented yet"
