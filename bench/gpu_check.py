"""The Python half of ``bench/gpu_check.sh``: what the machine is, and the results page.

``python -m bench.gpu_check environment`` prints the GPU, driver, CUDA and library
versions and CuPy's configuration, and exits 2 (saying why) where the cupy backend cannot
run. ``python -m bench.gpu_check report OUTDIR`` reads what the check wrote there (JUnit
XML, the training log, the sanitizer log, the benchmark JSON) and writes ``results.md``:
each target, what was measured, met or not, with the command that measured it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

#: the targets of the GPU check (fastnn issue "CUDA path correct before it meets a GPU")
ACCURACY_TARGET = 0.975
SGEMM_TARGET = 0.60
BIG_POINT = (8192, 4096)
#: the commands bench/gpu_check.sh runs, quoted in the report
COMMANDS = {
    "tests": 'python -m pytest tests -k "cupy and not emulated" --junitxml OUT/tests.xml',
    "sanitizer": "compute-sanitizer --tool memcheck python -m pytest tests/test_op_properties.py "
    'tests/test_gpu_path.py -k "cupy and not emulated"',
    "train": "python -m fastnn train --backend cupy --seed 0",
    "bench": "python -m fastnn bench --backend numpy --backend cupy --sections training,scaling "
    "--graphs both --points 8192x4096 --rounds 3 --json OUT/bench.json",
}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_facts() -> dict[str, Any]:
    """The machine as the check sees it; GPU facts are None where there is no GPU."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "cupy": _version("cupy-cuda13x") or _version("cupy-cuda12x") or _version("cupy"),
        "torch": _version("torch"),
        "gpu": None,
        "driver": None,
        "cuda_runtime": None,
        "cuda_driver_api": None,
    }
    try:
        import cupy

        runtime = cupy.cuda.runtime
        properties = runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = properties["name"]
        facts["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        facts["memory_gib"] = round(properties["totalGlobalMem"] / 2**30, 1)
        facts["compute_capability"] = f"{properties['major']}.{properties['minor']}"
        facts["cuda_runtime"] = _cuda_version(runtime.runtimeGetVersion())
        facts["cuda_driver_api"] = _cuda_version(runtime.driverGetVersion())
    except Exception as error:  # no CuPy, no driver, no device: said where it matters
        facts["gpu_error"] = f"{type(error).__name__}: {error}"
    smi = shutil.which("nvidia-smi")
    if smi:
        done = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.strip():
            facts["driver"] = done.stdout.strip().splitlines()[0].split(",")[-1].strip()
    return facts


def _cuda_version(number: int) -> str:
    """CUDA's 12080 -> ``"12.8"``."""
    return f"{number // 1000}.{number % 1000 // 10}"


def environment() -> int:
    """Print the machine's facts and CuPy's configuration; 2 where cupy cannot run."""
    from fastnn.backends import available_backends

    print(json.dumps(environment_facts(), indent=2))
    try:
        import cupy

        cupy.show_config(_full=True)
    except Exception as error:
        print(f"CuPy's configuration: unavailable ({type(error).__name__}: {error})")
    for info in available_backends(emulated=True):
        print(f"backend {info.name}: {'available' if info.available else info.reason}")
    cupy_info = next(info for info in available_backends() if info.name == "cupy")
    if not cupy_info.available:
        print(f"no usable GPU here: {cupy_info.reason}")
        return 2
    return 0


# ------------------------------------------------------------------- report
def test_counts(path: Path) -> dict[str, Any] | None:
    """Tests, failures, errors and skips of a JUnit XML file, with the failing names."""
    if not path.is_file():
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return None
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failing = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            if case.find(kind) is not None:
                counts[key] += 1
                if kind != "skipped":
                    failing.append(f"{case.get('classname')}::{case.get('name')}")
    return {**counts, "failing": failing}


def train_accuracy(log: Path) -> float | None:
    """The test accuracy ``fastnn train`` printed."""
    if not log.is_file():
        return None
    found = re.search(r"test accuracy: (\d\.\d+)", log.read_text(errors="replace"))
    return float(found.group(1)) if found else None


def sanitizer_summary(log: Path) -> str:
    """compute-sanitizer's verdict, or why it did not run."""
    if not log.is_file():
        return "not run"
    text = log.read_text(errors="replace")
    found = re.search(r"ERROR SUMMARY: (\d+) errors?", text)
    if found:
        return f"{found.group(1)} error(s) reported by compute-sanitizer memcheck"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _epoch(bench: dict[str, Any], implementation: str) -> dict[str, Any] | None:
    return next(
        (
            row
            for row in bench.get("training", [])
            if row["workload"] == "keras epoch" and row["implementation"] == implementation
        ),
        None,
    )


def report(out: Path, backend: str = "cupy") -> str:
    """The results page of a check that wrote into ``out`` (``backend``: the GPU backend
    measured; a rehearsal on the CPU passes cupy-emulated)."""
    facts = environment_facts()
    tests = test_counts(out / "tests.xml")
    accuracy = train_accuracy(out / "train.log")
    bench_path = out / "bench.json"
    bench = json.loads(bench_path.read_text()) if bench_path.is_file() else {}
    rows: list[tuple[str, str, str, str]] = []

    if tests is None:
        rows.append(("every op equal to NumPy (the cupy tests)", "no test report", "not measured",
                     COMMANDS["tests"]))  # fmt: skip
    else:
        bad = tests["failures"] + tests["errors"]
        measured = (
            f"{tests['tests'] - bad - tests['skipped']} passed, {bad} failed, "
            f"{tests['skipped']} skipped"
        )
        rows.append(("every op equal to NumPy (the cupy tests)", measured,
                     "met" if bad == 0 and tests["tests"] > 0 else "missed",
                     COMMANDS["tests"]))  # fmt: skip

    met = "not measured" if accuracy is None else "met" if accuracy >= ACCURACY_TARGET else "missed"
    shown = "-" if accuracy is None else f"{accuracy:.4f}"
    rows.append((f"keras recipe test accuracy >= {ACCURACY_TARGET}", shown, met, COMMANDS["train"]))

    names = (f"fastnn {backend}", f"fastnn {backend} (no graphs)", "pytorch cuda")
    ours, eager, torch = (_epoch(bench, name) for name in names)
    if ours is None or torch is None:
        missing = f"fastnn {backend}" if ours is None else "pytorch cuda"
        rows.append(("keras epoch faster than PyTorch's CUDA eager loop", f"{missing}: no figure",
                     "not measured", COMMANDS["bench"]))  # fmt: skip
    else:
        ratio = ours["median_s"] / torch["median_s"]
        measured = (
            f"{ours['median_s'] * 1e3:.1f} ms vs {torch['median_s'] * 1e3:.1f} ms "
            f"({ratio:.2f}x PyTorch's time; CUDA graphs on"
        )
        if eager is not None:
            measured += f"; {eager['median_s'] * 1e3:.1f} ms without them"
        measured += ")"
        rows.append(("keras epoch faster than PyTorch's CUDA eager loop", measured,
                     "met" if ratio < 1 else "missed", COMMANDS["bench"]))  # fmt: skip

    point = next(
        (
            row
            for row in bench.get("scaling", [])
            if row["backend"] == backend and (row["batch"], row["hidden"]) == BIG_POINT
        ),
        None,
    )
    target = f"batch {BIG_POINT[0]} / hidden {BIG_POINT[1]} step >= {SGEMM_TARGET:.0%} of SGEMM"
    if point is None:
        rows.append((target, "no figure", "not measured", COMMANDS["bench"]))
    else:
        measured = (
            f"{point['vs_sgemm']:.0%} ({point['gflops']:.0f} of {point['sgemm_gflops']:.0f} "
            f"GFLOP/s, {point['median_s'] * 1e3:.2f} ms a step)"
        )
        rows.append((target, measured, "met" if point["vs_sgemm"] >= SGEMM_TARGET else "missed",
                     COMMANDS["bench"]))  # fmt: skip

    graphs = bench.get("graphs", {}).get(backend)
    lines = [
        f"# fastnn GPU check: {facts.get('gpu') or 'no GPU'}",
        "",
        "| | |",
        "| --- | --- |",
        f"| GPU | {facts.get('gpu')} ({facts.get('memory_gib')} GiB, compute capability "
        f"{facts.get('compute_capability')}) |",
        f"| driver | {facts.get('driver')} (CUDA {facts.get('cuda_driver_api')}) |",
        f"| CUDA runtime | {facts.get('cuda_runtime')} |",
        f"| CuPy / PyTorch / NumPy | {facts.get('cupy')} / {facts.get('torch')} / "
        f"{facts.get('numpy')} |",
        f"| Python | {facts.get('python')} on {facts.get('platform')} |",
        "",
        "| target | measured | verdict | command |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {c} | `{d}` |" for a, b, c, d in rows),
        "",
        "Launches per `keras` training step: 10 (5 kernels of ours, 5 cuBLAS products), as "
        "counted through the CPU emulation (tests/test_gpu_path.py); CUDA graphs: "
        + (
            f"{graphs['captures']} captured, {graphs['replays']} replays"
            + (f", failed: {graphs['failure']}" if graphs.get("failure") else "")
            if graphs
            else "no record"
        )
        + ".",
        "",
        f"compute-sanitizer: {sanitizer_summary(out / 'sanitizer.log')}.",
    ]
    if tests and tests["failing"]:
        lines += ["", "Failing tests:", "", *(f"- `{name}`" for name in tests["failing"][:40])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("environment", help="print the machine; exit 2 if cupy cannot run")
    write = commands.add_parser("report", help="write OUTDIR/results.md from the check's files")
    write.add_argument("out", type=Path)
    write.add_argument("--backend", default="cupy", help="the GPU backend measured (cupy)")
    args = parser.parse_args(argv)
    if args.command == "environment":
        return environment()
    (args.out / "results.md").write_text(report(args.out, args.backend))
    print(f"wrote {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
