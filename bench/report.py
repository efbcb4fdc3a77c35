"""Measure everything in one run and write the machine's snapshot to ``bench/results/``.

    python -m bench.report --out bench/results/cpu-2core [--rounds 5] [--plot]
    python -m bench.report --out bench/results/cpu-2core --from-json [--plot]

writes ``cpu-2core.json`` (every timing, the machine, the versions),
``cpu-2core.md`` (the headline tables and the Numba targets) and, with
``--plot``, the charts in ``cpu-2core/``. It runs the full ``fastnn bench``
suite (ops sweep, training beside the peers and the GEMM floor, scaling) on every
backend that can run here, then the Numba issue's targets when numba can run.
Needs the real MNIST ($FASTNN_DATA_DIR or the download cache); takes about
twenty-five minutes on a 2-core machine, mostly the 500-iteration scratch rounds.
``--from-json`` measures nothing: it writes the Markdown and charts again from the
JSON already there, for when the report's wording changed and the figures did not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench import targets
from fastnn.backends import available_backends
from fastnn.benchmarks import report, suite
from fastnn.datasets import mnist
from fastnn.recipes import prepare_mnist


def targets_markdown(result: dict[str, Any]) -> str:
    """The Numba issue's ratios against their targets, as Markdown."""
    lines = [
        "## Numba backend targets",
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
    scratch = result["scratch"]
    if "timings" in scratch:
        lines += ["", "Scratch recipe, 500 full-batch iterations of training alone (median):", ""]
        lines += [
            f"- {name}: {timing['median']:.1f} s, test accuracy {scratch['accuracy'][name]:.4f}"
            for name, timing in scratch["timings"].items()
        ]
    else:  # snapshots before 2026-12: one run of each, data preparation and test included
        lines += ["", "Scratch recipe, 500 full-batch iterations:", ""]
        lines += [
            f"- {name}: {run['seconds']:.1f} s, test accuracy {run['accuracy']:.4f}"
            for name, run in scratch.items()
            if name != "ratios"
        ]
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
    parser.add_argument("--plot", action="store_true", help="also write the charts in STEM/")
    parser.add_argument(
        "--from-json", action="store_true", help="measure nothing: render STEM.json again"
    )
    args = parser.parse_args(argv)
    stem = Path(args.out)
    if args.from_json:
        result = json.loads(stem.with_suffix(".json").read_text())
    else:
        result = measure(args.rounds, "python -m bench.report " + " ".join(
            shlex.quote(a) for a in (argv or sys.argv[1:])
        ))  # fmt: skip
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = report.markdown(result)
    if "targets" in result:
        text += "\n" + targets_markdown(result["targets"])
    stem.with_suffix(".md").write_text(text)
    print(text)
    if args.plot:
        from fastnn.benchmarks import plots

        for path in plots.write_plots(result, stem):
            print(f"wrote {path}")
    return 0


def measure(rounds: int, command: str) -> dict[str, Any]:
    """The suite on every backend that runs here, then the Numba targets."""
    data = prepare_mnist(mnist.load_data(), np.dtype("float32"))
    runnable = [info.name for info in available_backends() if info.available]
    options = suite.Options(backends=runnable, rounds=rounds)
    result = suite.run(options, lambda message: print(f"... {message}", flush=True))
    result["command"] = command
    if "numba" in runnable:
        print("... numba targets: keras epochs and GEMM floors", flush=True)
        measured: dict[str, Any] = {"keras": targets.keras_epochs(data, rounds)}
        print("... numba targets: single ops", flush=True)
        measured["ops"] = targets.ops(rounds)
        print("... numba targets: keras test accuracy", flush=True)
        measured["accuracy"] = targets.keras_accuracy()
        print("... numba targets: scratch recipe against the tutorial's code", flush=True)
        measured["scratch"] = targets.scratch(data, rounds=min(rounds, 3))
        print("... numba targets: JIT compile time", flush=True)
        measured["jit"] = targets.jit_compile_seconds()
        measured["ratios"] = {
            **measured["keras"]["ratios"],
            **measured["ops"]["ratios"],
            **measured["scratch"]["ratios"],
            **measured["accuracy"]["ratios"],
        }
        result["targets"] = measured
    return result


if __name__ == "__main__":
    sys.exit(main())
