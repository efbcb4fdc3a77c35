"""The CUDA sources of ``kernels/cuda/`` and how the cupy backend compiles them.

Each ``.cu`` file becomes one ``RawModule`` (CuPy's, or the CPU emulation's), compiled
once per process with every kernel instantiated for float and double. The source handed
to the compiler has its ``#include "common.cuh"`` replaced by the header's text: CuPy's
compile cache is keyed by the source text and the options, not by the files the source
includes, so a header edit must show in the text or stale binaries would load.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import Any

import numpy as np

from fastnn.backends.base import Adjustment

FLOAT, LABELLED, PLAIN = "float", "labelled", "plain"

#: the kernels of each source file, and how each is templated: over the float type,
#: over the float type and the label type, or not at all
KERNELS: dict[str, dict[str, str]] = {
    "elementwise.cu": {
        "bias_activation": FLOAT,
        "activation": FLOAT,
        "activation_backward": FLOAT,
    },
    "columns.cu": {"column_sums": FLOAT},
    "softmax.cu": {"softmax": FLOAT, "softmax_backward": FLOAT},
    "losses.cu": {
        "sparse_softmax_cross_entropy": LABELLED,
        "softmax_cross_entropy": FLOAT,
        "sigmoid_binary_cross_entropy": FLOAT,
        "mean_squared_error": FLOAT,
    },
    "optimizers.cu": {
        "gradient_norms": FLOAT,
        "sgd": FLOAT,
        "momentum": FLOAT,
        "rmsprop": FLOAT,
        "adam": FLOAT,
    },
    "rows.cu": {
        "count_argmax_matches": LABELLED,
        "count_threshold_matches": FLOAT,
        "gather_rows": PLAIN,
    },
}
LABEL_CTYPE, LABEL_DTYPE = "long long", np.dtype(np.int64)
CTYPES = {"float32": "float", "float64": "double"}
#: activation codes of kernels/cuda/common.cuh
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
#: what a fused loss counts (kernels/cuda/losses.cu)
COUNT_CODES: dict[str | None, int] = {None: 0, "argmax": 1, "threshold": 2}
COMPILE_OPTIONS = ("-std=c++17",)
#: numbers per parameter in optimizers.cu's table: size, param, grad, three state arrays
UPDATE_TABLE_ROW = 6
#: optimizers.cu's clipping codes
CLIPPING_CODES: dict[str | None, int] = {
    None: 0,
    "clipvalue": 1,
    "clipnorm": 2,
    "global_clipnorm": 3,
}

_INCLUDE = re.compile(r'^#include "([\w.]+)"\s*$', re.MULTILINE)
_PRAGMA_ONCE = re.compile(r"^#pragma once\s*$", re.MULTILINE)


def cuda_source_dir() -> Any:
    """The folder of the ``.cu`` sources, inside the installed package."""
    return resources.files("fastnn.kernels") / "cuda"


def name_expression(kernel: str, ctype: str | None) -> str:
    """The C++ name of one instantiation, e.g. ``count_argmax_matches<double, long long>``."""
    kind = next(kinds[kernel] for kinds in KERNELS.values() if kernel in kinds)
    if kind == PLAIN:
        return kernel
    arguments = [ctype, LABEL_CTYPE] if kind == LABELLED else [ctype]
    return f"{kernel}<{', '.join(str(a) for a in arguments)}>"


def name_expressions(source: str) -> list[str]:
    """Every instantiation compiled from ``source``."""
    names: list[str] = []
    for kernel, kind in KERNELS[source].items():
        types: list[str | None] = [None] if kind == PLAIN else list(CTYPES.values())
        names.extend(name_expression(kernel, ctype) for ctype in types)
    return names


def cuda_source(source: str) -> str:
    """The text of ``source`` with each local header pasted in place of its #include."""
    folder = cuda_source_dir()
    pasted: set[str] = set()

    def paste(match: re.Match[str]) -> str:
        header = match.group(1)
        if header in pasted:  # each header once, as #pragma once would
            return ""
        pasted.add(header)
        text = _PRAGMA_ONCE.sub("", (folder / header).read_text())  # once is the rule here
        return _INCLUDE.sub(paste, text)

    return _INCLUDE.sub(paste, (folder / source).read_text())


class KernelCache:
    """Compiled modules of one array module (CuPy or the emulation), one per source."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self._modules: dict[str, Any] = {}
        self._lock = threading.Lock()

    def module(self, source: str) -> Any:
        with self._lock:
            module = self._modules.get(source)
            if module is None:
                module = self._modules[source] = self.xp.RawModule(
                    code=cuda_source(source),
                    options=COMPILE_OPTIONS,
                    name_expressions=name_expressions(source),
                )
            return module

    def get(self, source: str, kernel: str, dtype: Any) -> Any:
        """The instantiation of ``kernel`` for ``dtype`` (None: an untemplated kernel)."""
        ctype = None
        if dtype is not None:
            ctype = CTYPES.get(np.dtype(dtype).name)
            if ctype is None:
                raise TypeError(f"the CUDA kernels compute in float32 or float64; received {dtype}")
        return self.module(source).get_function(name_expression(kernel, ctype))


def kernel_probe(xp: Any) -> str | None:
    """Why our kernels cannot run through ``xp`` (CuPy or its stand-in), or None.

    Compiles one source and runs a ReLU over a few numbers: a CuPy without NVRTC runs
    its own precompiled operations but fails here, and ``auto`` must not pick it.
    """
    try:
        kernel = KernelCache(xp).get("elementwise.cu", "activation", np.float32)
        x = xp.asarray(np.array([-1.0, 0.5, 2.0], dtype=np.float32))
        out = xp.empty(3, dtype=np.float32)
        kernel((1,), (32,), (x, out, np.int64(3), np.int32(ACTIVATION_CODES["relu"])))
        result = xp.asnumpy(out)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return (
            f"fastnn's CUDA kernels cannot be compiled or run: {type(error).__name__}: "
            f"{first_line} (the cuda12 / cuda13 extras install the NVRTC compiler they need)"
        )
    if not np.array_equal(result, [0.0, 0.5, 2.0]):
        return f"fastnn's ReLU kernel returned {result.tolist()} for [-1, 0.5, 2]"
    return None


def adjust_scalars(adjust: Adjustment | None, rate: float, dtype: np.dtype) -> tuple[Any, ...]:
    """An update kernel's clipping code, limit, weight decay and rate (optimizers.cu's
    Adjust, less the norms), in order."""
    cast = dtype.type
    if adjust is None:
        return (np.int32(0), cast(0.0), cast(0.0), cast(rate))
    return (np.int32(CLIPPING_CODES[adjust.clipping]), cast(adjust.limit),
            cast(adjust.weight_decay), cast(rate))  # fmt: skip


def update_scalars(rule: str, hyper: dict[str, Any], dtype: np.dtype) -> tuple[Any, ...]:
    """The scalar arguments of optimizers.cu's kernel ``rule`` after its Adjust, in order."""
    cast = dtype.type
    tiny = cast(np.finfo(dtype).tiny)
    lr = hyper["learning_rate"]
    if rule == "sgd":
        return (cast(lr),)
    if rule == "momentum":
        return (cast(lr), cast(hyper["momentum"]), np.int32(hyper["nesterov"]), tiny)
    if rule == "rmsprop":
        rho = hyper["rho"]
        return (cast(lr), cast(rho), cast(1.0 - rho), cast(hyper["epsilon"]),
                cast(hyper.get("momentum", 0.0)), tiny)  # fmt: skip
    if rule == "adam":
        beta_1, beta_2 = hyper["beta_1"], hyper["beta_2"]
        return (np.float64(lr), np.float64(beta_1), np.float64(beta_2), cast(1.0 - beta_1),
                cast(1.0 - beta_2), cast(hyper["epsilon"]), tiny)  # fmt: skip
    raise ValueError(f"unknown update rule {rule!r}")
