"""The ten-minute GPU check (bench/gpu_check.sh) as far as a CPU can test it: it stops at
once where no GPU can run, it finds fastnn's kernels from a checkout that was never
installed, and its results page judges each target from what the check wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu_check
from fastnn.backends import available_backends

ROOT = Path(__file__).resolve().parents[1]
CUPY_RUNS = any(info.name == "cupy" and info.available for info in available_backends())


@pytest.mark.skipif(CUPY_RUNS, reason="a GPU is usable here: the check would run for real")
def test_without_a_gpu_the_check_stops_at_once_and_says_why(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "stopped: no usable GPU here: " in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["check.log"]
    log = (tmp_path / "out" / "check.log").read_text()
    assert '"python": ' in log and "backend cupy-emulated: available" in log


def test_a_checkout_runs_without_being_installed(tmp_path: Path) -> None:
    """As on the GPU machine: the repository's root on sys.path, no install of fastnn
    (here the editable install's finder is taken out first)."""
    code = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
        "if 'editable' not in repr(f).lower()]; "
        f"sys.path.insert(0, {str(ROOT)!r}); "
        "import fastnn.kernels.emulator, fastnn.backends.cuda_kernels as k; "
        "print(fastnn.kernels.__file__); print(k.cuda_source('rows.cu')[:40])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(ROOT / "kernels" / "__init__.py")


def _write_check(out: Path, failures: int, accuracy: float, ours: float, torch: float,
                 fraction: float) -> None:  # fmt: skip
    cases = "".join(
        f'<testcase classname="tests.t" name="test_{i}">'
        + ("<failure message='x'/>" if i < failures else "")
        + "</testcase>"
        for i in range(5)
    )
    (out / "tests.xml").write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")
    (out / "train.log").write_text(f"recipe keras\ntest accuracy: {accuracy:.4f} - test loss\n")
    (out / "sanitizer.log").write_text("========= ERROR SUMMARY: 0 errors\n")

    def epoch(name: str, seconds: float) -> dict[str, object]:
        return {"workload": "keras epoch", "implementation": name, "median_s": seconds}

    training = [
        epoch("fastnn cupy", ours),
        epoch("fastnn cupy (no graphs)", ours * 3),
        epoch("pytorch cuda", torch),
    ]
    point = {"backend": "cupy", "batch": 8192, "hidden": 4096, "median_s": 0.002}
    point.update(gflops=1000 * fraction, sgemm_gflops=1000.0, vs_sgemm=fraction)
    bench = {
        "training": training,
        "scaling": [point],
        "graphs": {"cupy": {"captures": 2, "replays": 900, "failure": None}},
    }
    (out / "bench.json").write_text(json.dumps(bench))


def _verdicts(page: str) -> list[str]:
    rows = [line for line in page.splitlines() if line.startswith("| ") and "`" in line]
    return [row.split(" | ")[2] for row in rows]


def test_the_results_page_judges_each_target(tmp_path: Path) -> None:
    _write_check(tmp_path, failures=0, accuracy=0.981, ours=0.2, torch=0.9, fraction=0.71)
    page = gpu_check.report(tmp_path)
    assert _verdicts(page) == ["met", "met", "met", "met"]
    assert "5 passed, 0 failed, 0 skipped" in page
    assert "0.22x PyTorch's time" in page and "600.0 ms without them" in page
    assert "71% (710 of 1000 GFLOP/s" in page
    assert "2 captured, 900 replays" in page and "0 error(s) reported" in page

    _write_check(tmp_path, failures=2, accuracy=0.97, ours=1.0, torch=0.9, fraction=0.5)
    page = gpu_check.report(tmp_path)
    assert _verdicts(page) == ["missed", "missed", "missed", "missed"]
    assert "- `tests.t::test_0`" in page


def test_what_the_check_did_not_write_is_not_measured(tmp_path: Path) -> None:
    assert _verdicts(gpu_check.report(tmp_path)) == ["not measured"] * 4
