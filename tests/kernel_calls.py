"""Whether a backend call ran one of the backend's own kernels, or only NumPy code: the
property tests assert that their draws reach the kernels, not the fallbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: the numba backend's kernel modules, by the attribute it keeps each under
NUMBA_MODULES = ("_elementwise", "_softmax", "_rows", "_optimizers", "_normalization",
                 "_regularization")  # fmt: skip


class _Counting:
    """A kernel module whose compiled functions count their calls."""

    def __init__(self, module: Any, calls: list[int]) -> None:
        self._module, self._calls = module, calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._module, name)
        if not hasattr(attribute, "py_func"):  # not a compiled kernel
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[0] += 1
            return attribute(*args, **kwargs)

        return counted


@contextmanager
def counting(backend: Any) -> Iterator[Callable[[], int]]:
    """Within the block, a function returning how many kernels ``backend`` has run."""
    if backend.name == "numba":
        calls = [0]
        saved = {name: getattr(backend, name) for name in NUMBA_MODULES}
        for name, module in saved.items():
            setattr(backend, name, _Counting(module, calls))
        try:
            yield lambda: calls[0]
        finally:
            for name, module in saved.items():
                setattr(backend, name, module)
    elif backend.name == "cupy-emulated":
        from fastnn.backends import cuda_emulation

        start = cuda_emulation.launches()["kernel"]
        yield lambda: cuda_emulation.launches()["kernel"] - start
    else:  # numpy, and a real GPU (its kernels are not counted here)
        yield lambda: 0
