"""NVRTC, CUDA's run-time compiler, called as CuPy calls it: a check, without a GPU, that
each source compiles where CuPy compiles it (no host headers, CuPy's own options).

NVRTC comes from the ``nvidia-cuda-nvrtc`` wheel (``.ci/run`` installs it) or a CUDA
toolkit; :func:`library` is None where neither is found.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from collections.abc import Sequence

#: what CuPy's RawModule adds to our options (cupy/cuda/compiler.py), for an sm_90 GPU
CUPY_OPTIONS = ("-ftz=true", "-arch=compute_90", "--device-as-default-execution-space")


def library() -> ctypes.CDLL | None:
    """libnvrtc from the nvidia-cuda-nvrtc wheel or a CUDA toolkit, or None."""
    candidates = []
    spec = importlib.util.find_spec("nvidia")
    for root in spec.submodule_search_locations or [] if spec else []:
        candidates += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libnvrtc.so*")))
        candidates += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so*")))
    candidates += sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    for path in candidates:
        if "builtins" in os.path.basename(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def compile_source(
    lib: ctypes.CDLL, source: str, name_expressions: Sequence[str], options: Sequence[str]
) -> tuple[int, str, dict[str, str]]:
    """(status, log, lowered names) of compiling ``source`` with ``options``; status 0 is
    success, and then every name expression has its lowered (mangled) name."""
    program = ctypes.c_void_p()
    check = _checker(lib)
    check(lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"source.cu",
                                 0, None, None))  # fmt: skip
    try:
        for name in name_expressions:
            check(lib.nvrtcAddNameExpression(program, name.encode()))
        encoded = [option.encode() for option in options]
        array = (ctypes.c_char_p * len(encoded))(*encoded)
        status = lib.nvrtcCompileProgram(program, len(encoded), array)
        size = ctypes.c_size_t()
        check(lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)))
        log = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetProgramLog(program, log))
        lowered: dict[str, str] = {}
        if status == 0:
            for name in name_expressions:
                result = ctypes.c_char_p()
                check(lib.nvrtcGetLoweredName(program, name.encode(), ctypes.byref(result)))
                lowered[name] = (result.value or b"").decode()
        return status, log.value.decode(errors="replace"), lowered
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def _checker(lib: ctypes.CDLL):  # type: ignore[no-untyped-def]
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(status: int) -> None:
        if status != 0:
            raise RuntimeError(lib.nvrtcGetErrorString(status).decode())

    return check
