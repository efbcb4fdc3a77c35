"""The CUDA sources of ``cuda/`` compiled for the CPU, to check their logic without a GPU.

A module is what ``cupy.RawModule`` makes of a source: the kernel instantiations named by
``name_expressions``. Here the unmodified source is compiled by the system C++ compiler
through ``cuda/emulation/cuda_shim.h`` into a shared library, one fiber per CUDA thread
(``cuda/emulation/scheduler.h``), and loaded with ctypes. Each kernel knows its
parameter types, so a launch whose arguments do not match them (an int64 array where the
kernel reads doubles, an int where it reads a long long) is refused here, where CuPy
would pass the bytes through.

Libraries are cached by a digest of everything they are built from (the source, the
shim, the compiler's command line), under ``$FASTNN_CACHE_DIR`` or ``~/.cache/fastnn``.
``FASTNN_EMULATOR_SANITIZE=address`` builds them with AddressSanitizer; the process must
then have the ASan runtime preloaded (``LD_PRELOAD=$(g++ -print-file-name=libasan.so)``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

#: the C type of each parameter code of cuda/emulation/exports.h
SCALAR_DTYPES: dict[str, np.dtype] = {
    "f4": np.dtype(np.float32),
    "f8": np.dtype(np.float64),
    "i4": np.dtype(np.int32),
    "i8": np.dtype(np.int64),
    "u4": np.dtype(np.uint32),
    "u8": np.dtype(np.uint64),
    "b1": np.dtype(np.bool_),
}
SANITIZERS = {"address": ("-fsanitize=address", "-fno-omit-frame-pointer")}
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-x", "c++")

_lock = threading.Lock()


class EmulatorError(RuntimeError):
    """A kernel did something CUDA leaves undefined, or its arguments do not fit it."""


def compiler() -> str | None:
    """The C++ compiler the emulation uses ($CXX, else g++ or c++ on PATH), or None."""
    for candidate in (os.environ.get("CXX"), "g++", "c++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def sanitizer() -> str | None:
    """The sanitizer asked for by ``FASTNN_EMULATOR_SANITIZE`` (None: none)."""
    value = os.environ.get("FASTNN_EMULATOR_SANITIZE", "").strip().lower()
    if not value:
        return None
    if value not in SANITIZERS:
        raise ValueError(
            f"FASTNN_EMULATOR_SANITIZE={value!r} is not supported; valid: " + ", ".join(SANITIZERS)
        )
    return value


def cache_dir() -> Path:
    """Where built libraries are kept."""
    root = os.environ.get("FASTNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fastnn"
    )
    return Path(root) / "cuda-emulator"


def _emulation_dir() -> Path:
    return Path(str(resources.files("fastnn.kernels") / "cuda" / "emulation"))


def _translation_unit(code: str, name_expressions: Sequence[str]) -> str:
    """The C++ the compiler sees: the shim, the unmodified source, the table of kernels."""
    entries = ",\n".join(f'    FASTNN_EMU_ENTRY("{name}", &{name})' for name in name_expressions)
    return (
        '#include "cuda_shim.h"\n'
        '#line 1 "source.cu"\n'
        f"{code}\n"
        '#include "exports.h"\n'
        f"FASTNN_EMU_TABLE(\n{entries}\n)\n"
    )


def build(code: str, name_expressions: Sequence[str], sanitize: str | None = None) -> Path:
    """The shared library of ``code``'s kernels ``name_expressions`` (built if not cached)."""
    cxx = compiler()
    if cxx is None:
        raise EmulatorError("no C++ compiler found (set CXX, or install g++)")
    folder = _emulation_dir()
    unit = _translation_unit(code, name_expressions)
    command = [
        cxx,
        *FLAGS,
        *SANITIZERS.get(sanitize or "", ()),
        f"-I{folder}",
        f"-I{folder.parent}",
    ]
    digest = hashlib.sha256()
    for part in (unit, " ".join(command[1:])):
        digest.update(part.encode())
    for header in sorted(folder.glob("*.h")):
        digest.update(header.read_bytes())
    target = cache_dir() / f"{digest.hexdigest()[:32]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        source = Path(scratch) / "module.cpp"
        source.write_text(unit)
        built = Path(scratch) / "module.so"
        result = subprocess.run(
            [*command, "-o", str(built), str(source)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise EmulatorError(f"the C++ compiler rejected the kernels:\n{result.stderr}")
        os.replace(built, target)  # atomic: a concurrent build of the same digest is alike
    return target


def _dtype_name(dtype: np.dtype) -> str:
    return "bool" if dtype == np.bool_ else dtype.name


def _describe(code: str) -> str:
    if code.startswith("*"):
        return "a pointer to " + ("anything" if code == "*v" else _describe(code[1:]))
    return _dtype_name(SCALAR_DTYPES[code])


class Kernel:
    """One compiled kernel instantiation of a :class:`Module`."""

    def __init__(self, module: Module, index: int, name: str, signature: str) -> None:
        self.module = module
        self.index = index
        self.name = name
        self.parameters = signature.split(",") if signature else []

    def _argument(self, position: int, code: str, value: Any) -> np.ndarray:
        """The bytes of argument ``position`` as the kernel takes it (a pointer's address,
        or a scalar's value), checked against the kernel's parameter type."""
        where = f"{self.name}: argument {position}"
        if code.startswith("*"):
            if value is None:
                return np.zeros(1, dtype=np.uint64)
            if not isinstance(value, np.ndarray):
                raise EmulatorError(
                    f"{where} is {_describe(code)}; received {type(value).__name__}"
                )
            pointee = code[1:]
            if pointee != "v" and value.dtype != SCALAR_DTYPES[pointee]:
                raise EmulatorError(
                    f"{where} is {_describe(code)}; received an array of {_dtype_name(value.dtype)}"
                )
            return np.array([value.ctypes.data], dtype=np.uint64)
        expected = SCALAR_DTYPES[code]
        # CuPy passes a Python int as int64, a float as float64, a bool as bool
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            value = np.asarray(value)[()]
        if not isinstance(value, np.generic) or value.dtype != expected:
            shown = (
                type(value).__name__
                if not isinstance(value, np.generic)
                else (_dtype_name(value.dtype))
            )
            raise EmulatorError(f"{where} is {_describe(code)}; received {shown}")
        return np.array(value, dtype=expected).reshape(1)

    def launch(
        self,
        grid: Sequence[int],
        block: Sequence[int],
        args: Sequence[Any],
        seed: int,
        flush_subnormals: bool = True,
    ) -> None:
        """Run the kernel over ``grid`` blocks of ``block`` threads (up to 3-D each)."""
        if len(args) != len(self.parameters):
            raise EmulatorError(
                f"{self.name} takes {len(self.parameters)} arguments; received {len(args)}"
            )
        # Each argument's bytes in an 8-byte slot, and a pointer to each slot: the
        # void** that cudaLaunchKernel takes. NumPy arrays, not ctypes objects, so a
        # launch leaves nothing behind.
        values = np.zeros(max(1, len(args)), dtype=np.uint64)
        slots = values.view(np.uint8).reshape(-1, 8)
        for position, (code, value) in enumerate(zip(self.parameters, args, strict=True)):
            data = self._argument(position, code, value).view(np.uint8)
            slots[position, : len(data)] = data
        pointers = values.ctypes.data + 8 * np.arange(len(values), dtype=np.uint64)
        dims = np.array([_dims(grid, "grid"), _dims(block, "block")], dtype=np.uint32)
        error = np.zeros(1024, dtype=np.uint8)
        status = self.module.library.fastnn_emu_launch(
            self.index, dims.ctypes.data, dims.ctypes.data + 12, pointers.ctypes.data,
            seed, int(flush_subnormals), error.ctypes.data, len(error),
        )  # fmt: skip
        if status:
            message = error.tobytes().split(b"\0", 1)[0].decode()
            raise EmulatorError(f"{self.name}: {message}")


def _dims(value: Sequence[int], what: str) -> list[int]:
    dims = [int(v) for v in value] + [1] * (3 - len(value))
    if len(dims) != 3 or any(d < 1 for d in dims):
        raise EmulatorError(f"{what} must be 1 to 3 positive sizes; received {tuple(value)}")
    return dims


class Module:
    """The kernels of one CUDA source, compiled for the CPU."""

    def __init__(
        self, code: str, name_expressions: Sequence[str], sanitize: str | None = None
    ) -> None:
        with _lock:
            path = build(code, name_expressions, sanitize)
        self.library = ctypes.CDLL(str(path))
        lib = self.library
        lib.fastnn_emu_name.restype = ctypes.c_char_p
        lib.fastnn_emu_signature.restype = ctypes.c_char_p
        lib.fastnn_emu_launch.restype = ctypes.c_int
        lib.fastnn_emu_launch.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
            ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
        ]  # fmt: skip
        self.kernels = {}
        for index in range(lib.fastnn_emu_count()):
            name = lib.fastnn_emu_name(index).decode()
            signature = lib.fastnn_emu_signature(index).decode()
            self.kernels[name] = Kernel(self, index, name, signature)

    def get_function(self, name: str) -> Kernel:
        kernel = self.kernels.get(name)
        if kernel is None:
            raise EmulatorError(f"no kernel {name!r} in this module; it has {sorted(self.kernels)}")
        return kernel
