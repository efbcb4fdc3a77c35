"""The CuPy backend where no GPU is needed: its CUDA sources compile, and without a usable
GPU it says why, plainly, and `auto` moves on. (Its numerical tests are the parametrized
suite, which runs on it wherever a GPU is.)"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.backends import BackendUnavailableError, _unavailable_reason, cuda_kernels, cupy_backend

from . import nvrtc

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", sorted(cuda_kernels.KERNELS))
def test_cuda_source_compiles_without_warnings(source: str, tmp_path: Path) -> None:
    """Each .cu file as CuPy receives it (its header pasted in), every kernel instantiated
    for float and double, compiled for a GPU with the flush-to-zero CuPy adds."""
    assert NVCC is not None
    instances = [f"    (void*)&{name}," for name in cuda_kernels.name_expressions(source)]
    wrapper = tmp_path / "instantiate.cu"
    wrapper.write_text(
        cuda_kernels.cuda_source(source) + "\n"
        "void* fastnn_instance(int i) {\n"
        "  void* const table[] = {\n" + "\n".join(instances) + "\n  };\n"
        "  return table[i];\n}\n"
    )
    result = subprocess.run(
        [NVCC, "-arch=sm_90", "--ptx", *cuda_kernels.COMPILE_OPTIONS, "-ftz=true",
         "-Werror", "all-warnings", "-o", str(tmp_path / "out.ptx"), str(wrapper)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    ptx = (tmp_path / "out.ptx").read_text()
    for kernel in cuda_kernels.KERNELS[source]:
        assert kernel in ptx  # every kernel was really compiled, for some type at least


NVRTC = nvrtc.library()


@pytest.mark.skipif(NVRTC is None, reason="NVRTC not found (pip install nvidia-cuda-nvrtc)")
@pytest.mark.parametrize("source", sorted(cuda_kernels.KERNELS))
def test_cuda_source_compiles_with_nvrtc_as_cupy_does(source: str) -> None:
    """What CuPy's RawModule does on a GPU machine: NVRTC, no host headers, CuPy's
    options after ours, every kernel instantiation looked up by its name expression."""
    assert NVRTC is not None
    names = cuda_kernels.name_expressions(source)
    options = (*cuda_kernels.COMPILE_OPTIONS, *nvrtc.CUPY_OPTIONS)
    status, log, lowered = nvrtc.compile_source(
        NVRTC, cuda_kernels.cuda_source(source), names, options
    )
    assert status == 0, log
    assert "warning" not in log.lower(), log
    assert sorted(lowered) == sorted(names) and all(lowered.values())


def test_sources_ship_with_the_package() -> None:
    folder = cuda_kernels.cuda_source_dir()
    for source in (*cuda_kernels.KERNELS, "common.cuh"):
        assert (folder / source).is_file(), source
    emulation = folder / "emulation"
    for header in ("cuda_shim.h", "scheduler.h", "exports.h"):
        assert (emulation / header).is_file(), header


def _fake_cupy(monkeypatch: pytest.MonkeyPatch, device_count: object) -> None:
    """Install a stand-in `cupy` whose driver query returns or raises ``device_count``."""

    def get_device_count() -> int:
        if isinstance(device_count, Exception):
            raise device_count
        assert isinstance(device_count, int)
        return device_count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count)
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == "cupy":
            return importlib.machinery.ModuleSpec("cupy", None)
        return real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    _unavailable_reason.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_probes() -> object:
    _unavailable_reason.cache_clear()
    yield
    _unavailable_reason.cache_clear()


def test_missing_cupy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "cupy" else real_find_spec(name, *a),
    )
    assert cupy_backend.probe() == (
        'CuPy is not installed (pip install -e ".[cuda13]" (CUDA 13) or ".[cuda12]" (CUDA 12) '
        "in the fastnn folder)"
    )


class CUDARuntimeError(RuntimeError):
    """Stands in for cupy_backends.cuda.api.runtime.CUDARuntimeError."""


def test_no_driver_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cupy(monkeypatch, CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version"))
    reason = cupy_backend.probe()
    assert reason == (
        "no usable CUDA driver or device: CUDARuntimeError: "
        "cudaErrorInsufficientDriver: CUDA driver version"
    )
    with pytest.raises(BackendUnavailableError, match="backend 'cupy' cannot run here: no usable"):
        fastnn.set_backend("cupy")
    # auto quietly moves on to a CPU backend
    assert fastnn.backend_name() in ("numba", "numpy")
    listed = {info.name: info for info in fastnn.available_backends()}
    assert not listed["cupy"].available and listed["cupy"].reason == reason


def test_no_device_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cupy(monkeypatch, 0)
    assert cupy_backend.probe() == "no CUDA device found"


def test_env_var_asking_for_cupy_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cupy(monkeypatch, CUDARuntimeError("no CUDA-capable device is detected"))
    monkeypatch.setenv("FASTNN_BACKEND", "cupy")
    with pytest.raises(BackendUnavailableError) as caught:
        fastnn.backend_name()
    message = str(caught.value)
    assert "no CUDA-capable device is detected" in message
    assert "Backends that can run: numpy" in message


def test_kernel_names_cover_both_float_types() -> None:
    names = {
        name for source in cuda_kernels.KERNELS for name in cuda_kernels.name_expressions(source)
    }
    assert "sparse_softmax_cross_entropy<float, long long>" in names
    assert "rmsprop<double>" in names
    assert "gather_rows" in names  # untemplated: one instance
    kernels = [kind for kinds in cuda_kernels.KERNELS.values() for kind in kinds.values()]
    assert len(names) == sum(1 if kind == cuda_kernels.PLAIN else 2 for kind in kernels)


def test_a_header_edit_changes_the_code_cupy_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CuPy's compile cache is keyed by the code it is handed and the options, not by the
    files that code includes: the header is pasted in, so an edit of it reaches the key."""
    folder = tmp_path / "cuda"
    shutil.copytree(str(cuda_kernels.cuda_source_dir()), folder)
    monkeypatch.setattr(cuda_kernels, "cuda_source_dir", lambda: folder)
    handed: list[str] = []

    def raw_module(code: str, **options: object) -> object:
        handed.append(code)
        return types.SimpleNamespace(get_function=lambda name: name)

    compiler = types.SimpleNamespace(RawModule=raw_module)
    cuda_kernels.KernelCache(compiler).get("rows.cu", "gather_rows", None)
    header = folder / "common.cuh"
    header.write_text(header.read_text().replace("Grid-stride loop bounds", "Grid stride"))
    cuda_kernels.KernelCache(compiler).get("rows.cu", "gather_rows", None)
    assert '#include "common.cuh"' not in handed[0]
    assert handed[0] != handed[1]


def test_a_cupy_that_cannot_compile_our_kernels_is_not_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CuPy's own operations are precompiled and run without NVRTC; ours need it. A probe
    that only ran CuPy's let `auto` pick a backend that failed at its first kernel."""
    _fake_cupy(monkeypatch, 1)
    fake = sys.modules["cupy"]

    def no_nvrtc(**options: object) -> object:
        raise RuntimeError("CuPy failed to load libnvrtc.so.13: cannot open shared object file")

    fake.zeros = np.zeros  # type: ignore[attr-defined]  # CuPy's precompiled work runs
    fake.asarray, fake.empty = np.asarray, np.empty  # type: ignore[attr-defined]
    fake.RawModule = no_nvrtc  # type: ignore[attr-defined]
    reason = cupy_backend.probe()
    assert reason == (
        "fastnn's CUDA kernels cannot be compiled or run: RuntimeError: CuPy failed to load "
        "libnvrtc.so.13: cannot open shared object file (the cuda12 / cuda13 extras install "
        "the NVRTC compiler they need)"
    )
    assert fastnn.backend_name() in ("numba", "numpy")  # auto moves on


def test_the_cuda_extras_bring_nvrtc() -> None:
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for name, cupy in (("cuda12", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")):
        assert re.search(rf'^{name} = \["{cupy}\[ctk\]>=', text, re.MULTILINE), name
