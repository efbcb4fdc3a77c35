"""The CuPy backend where no GPU is needed: its CUDA sources compile, and without a usable
GPU it says why, plainly, and `auto` moves on. (Its numerical tests are the parametrized
suite, which runs on it wherever a GPU is.)"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import fastnn
from fastnn.backends import BackendUnavailableError, _unavailable_reason, cupy_backend

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", sorted(cupy_backend.KERNELS))
def test_cuda_source_compiles_without_warnings(source: str, tmp_path: Path) -> None:
    """Each .cu file, with every kernel instantiated for float and double, as CuPy does."""
    assert NVCC is not None
    folder = Path(str(cupy_backend.cuda_source_dir()))
    instances = [
        f"    (void*)&{cupy_backend.name_expression(kernel, ctype)},"
        for kernel in cupy_backend.KERNELS[source]
        for ctype in cupy_backend.CTYPES.values()
    ]
    wrapper = tmp_path / "instantiate.cu"
    wrapper.write_text(
        f'#include "{folder / source}"\n'
        "void* fastnn_instance(int i) {\n"
        "  void* const table[] = {\n" + "\n".join(instances) + "\n  };\n"
        "  return table[i];\n}\n"
    )
    result = subprocess.run(
        [NVCC, "-arch=sm_90", "--ptx", "-std=c++17", f"-I{folder}", "-Werror", "all-warnings",
         "-o", str(tmp_path / "out.ptx"), str(wrapper)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    ptx = (tmp_path / "out.ptx").read_text()
    for kernel in cupy_backend.KERNELS[source]:
        assert kernel in ptx  # every kernel was really compiled, for some type at least


def test_sources_ship_with_the_package() -> None:
    folder = cupy_backend.cuda_source_dir()
    for source in (*cupy_backend.KERNELS, "common.cuh"):
        assert (folder / source).is_file(), source


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
        "CuPy is not installed (pip install 'fastnn[cuda12]' or 'fastnn[cuda13]')"
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
        cupy_backend.name_expression(kernel, ctype)
        for kernels in cupy_backend.KERNELS.values()
        for kernel in kernels
        for ctype in cupy_backend.CTYPES.values()
    }
    assert "sparse_softmax_cross_entropy<float, long long>" in names
    assert "rmsprop<double>" in names
    assert len(names) == 2 * sum(len(k) for k in cupy_backend.KERNELS.values())
