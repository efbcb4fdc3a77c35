"""Measure everything in one run and write the machine's snapshot to ``bench/results/``.

    python -m bench.report --out bench/results/cpu-2core [--rounds 5] [--plot]

writes ``cpu-2core.json`` (every timing, the machine, the versions),
``cpu-2core.md`` (the headline tables and the Numba targets) and, with
``--plot``, the charts in ``cpu-2core/``. It runs the full ``fastnn bench``
suite (ops sweep, training beside the peers and the GEMM floor, scaling) on every
backend that can run here, then the Numba issue's targets when numba can run.
Needs the real MNIST ($FASTNN_DATA_DIR or the download cache); takes about
twenty-five minutes on a 2-core machine, mostly the 500-iteration scratch rounds.
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
    lines += ["", "Scratch recipe, 500 full-batch iterations of training alone (median):", ""]
    scratch = result["scratch"]
    for name, timing in scratch["timings"].items():
        lines.append(
            f"- {name}: {timing['median']:.1f} s, test accuracy {scratch['accuracy'][name]:.4f}"
        )
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
    args = parser.parse_args(argv)
    data = prepare_mnist(mnist.load_data(), np.dtype("float32"))
    runnable = [info.name for info in available_backends() if info.available]

    options = suite.Options(backends=runnable, rounds=args.rounds)
    result = suite.run(options, lambda message: print(f"... {message}", flush=True))
    result["command"] = "python -m bench.report " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    if "numba" in runnable:
        print("... numba targets: keras epochs and GEMM floors", flush=True)
        measured: dict[str, Any] = {"keras": targets.keras_epochs(data, args.rounds)}
        print("... numba targets: single ops", flush=True)
        measured["ops"] = targets.ops(args.rounds)
        print("... numba targets: keras test accuracy", flush=True)
        measured["accuracy"] = targets.keras_accuracy()
        print("... numba targets: scratch recipe against the tutorial's code", flush=True)
        measured["scratch"] = targets.scratch(data, rounds=min(args.rounds, 3))
        print("... numba targets: JIT compile time", flush=True)
        measured["jit"] = targets.jit_compile_seconds()
        measured["ratios"] = {
            **measured["keras"]["ratios"],
            **measured["ops"]["ratios"],
            **measured["scratch"]["ratios"],
            **measured["accuracy"]["ratios"],
        }
        result["targets"] = measured

    stem = Path(args.out)
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


if __name__ == "__main__":
    sys.exit(main())
