"""Measure the speed targets in one run and write them to ``bench/results/``.

    python -m bench.report --out bench/results/cpu-2core [--rounds 5]

writes ``cpu-2core.json`` (every timing, the machine, the versions) and
``cpu-2core.md`` (the ratios against their targets). Needs the real MNIST
($FASTNN_DATA_DIR or the download cache) and both CPU backends; takes a few
minutes, mostly the two 500-iteration scratch runs and the tutorial's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench import targets
from fastnn.datasets import mnist
from fastnn.recipes import prepare_mnist


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import numba

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "platform": platform.platform(),
    }


def markdown(result: dict[str, Any]) -> str:
    """The ratios against their targets, as a short Markdown report."""
    lines = [
        f"# Numba backend targets: {result['machine']['cpu']}, {result['machine']['cores']} cores",
        "",
        f"Measured {result['date']} with `{result['command']}`.",
        "",
        "| figure | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in result["ratios"].items():
        if name in targets.TARGETS:
            comparison, bound = targets.TARGETS[name]
            met = "yes" if targets.meets(name, value) else "**no**"
            lines.append(f"| {name} | {value:.3f} | {comparison} {bound} | {met} |")
        else:
            lines.append(f"| {name} | {value:.3f} | | |")
    keras = result["keras"]["timings"]
    lines += ["", "Median seconds per keras epoch (60,000 images, batch 128):", ""]
    lines += [
        f"- {name}: {t['median']:.3f} s (first call {t['first']:.3f} s)"
        for name, t in keras.items()
    ]
    lines += ["", "Scratch recipe, 500 full-batch iterations:", ""]
    for name, run in result["scratch"].items():
        if name != "ratios":
            lines.append(f"- {name}: {run['seconds']:.1f} s, test accuracy {run['accuracy']:.4f}")
    compile_times = result["jit"]
    lines += [
        "",
        "JIT compilation (two keras steps in a fresh process, outside every figure above): "
        f"{compile_times['compile, empty cache']:.2f} s with an empty cache, "
        f"{compile_times['load from cache']:.2f} s loading from it.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="path stem: writes STEM.json and STEM.md")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    args = parser.parse_args(argv)
    data = prepare_mnist(mnist.load_data(), np.dtype("float32"))

    result: dict[str, Any] = {
        "command": "python -m bench.report "
        + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    print("keras epochs and GEMM floors ...", flush=True)
    result["keras"] = targets.keras_epochs(data, args.rounds)
    print("single ops ...", flush=True)
    result["ops"] = targets.ops(args.rounds)
    print("keras test accuracy ...", flush=True)
    result["accuracy"] = targets.keras_accuracy()
    print("scratch recipe against the tutorial's code ...", flush=True)
    result["scratch"] = targets.scratch(data)
    print("JIT compile time ...", flush=True)
    result["jit"] = targets.jit_compile_seconds()
    result["ratios"] = {
        **result["keras"]["ratios"],
        **result["ops"]["ratios"],
        **result["scratch"]["ratios"],
        **result["accuracy"]["ratios"],
    }

    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    report = markdown(result)
    stem.with_suffix(".md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
