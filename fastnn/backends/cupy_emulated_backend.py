"""The cupy backend on the CPU: its own Python code, with its CUDA kernels compiled for
the CPU and run by :mod:`fastnn.kernels.emulator`, on the arrays of
:mod:`fastnn.backends.cuda_emulation`.

It exists to check the GPU code where there is no GPU (CI, a laptop): every test that
runs on the backends runs on it too. Launches are capped at a few small blocks, so each
grid-stride loop of a kernel takes several strides even on the tests' small arrays. It
is slow, and it says nothing of speed; the GPU run (``bench/gpu_check.sh``) stays the
authority on whether the GPU works.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastnn.backends.cupy_backend import CupyBackend


def probe() -> str | None:
    """Why the emulation cannot run here (no C++ compiler, or it fails), or None."""
    from fastnn.kernels import emulator

    if emulator.compiler() is None:
        return "no C++ compiler to build the emulated kernels (install g++ or set CXX)"
    from fastnn.backends import cuda_emulation
    from fastnn.backends.cuda_kernels import kernel_probe

    return kernel_probe(cuda_emulation.xp)


class CupyEmulatedBackend(CupyBackend):
    """CupyBackend on emulated device arrays; kernels run on the CPU."""

    name: ClassVar[str] = "cupy-emulated"
    threads: ClassVar[int] = 64  # two warps: the block-wide reductions still combine warps
    max_blocks: ClassVar[int] = 2
    head_threads: ClassVar[int] = 64

    def _array_module(self) -> Any:
        from fastnn.backends import cuda_emulation

        return cuda_emulation.xp

    def _address(self, a: Any) -> int:
        return int(a.ctypes.data)
