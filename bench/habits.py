"""What the Keras habits cost the hot loop: the `keras` epoch on numba.

    python -m bench.habits --out bench/results/habits [--rounds 5] [--baseline 127ec53]

* one process, one model, interleaved rounds: ``fit(verbose=0)`` against ``verbose=1`` with the
  bar drawn into a terminal (a stand-in whose ``isatty()`` is true, so the bar redraws in
  place as on a console; what it writes is counted and dropped) and ``verbose=2``, which
  does nothing per step: its ratio shows how far the machine's noise alone moves one;
* the bar's own time per step against the median step of ``verbose=0``: an ``advance``
  call that only asks the clock, plus the draws of an epoch (one per redraw interval,
  each reading the running loss and writing to that terminal) spread over its steps:
  the cost an epoch's ratio cannot resolve;
* fresh processes of this checkout and of ``--baseline`` (the revision before the
  training loop left ``Sequential``), alternated: the epoch with ``verbose=0``.

Each figure is the epoch's own seconds (``EpochTimer``), median of the rounds; a ratio is
the median of the rounds' ratios (in-process) or the ratio of the medians (processes).
Writes ``<out>.json`` and ``<out>.md``. Needs $FASTNN_DATA_DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import checkouts
from bench.contention import machine, write

TARGETS = {
    "the bar's time per step / the step's time": ("<=", 0.001),
    "keras epoch, this / baseline (verbose=0)": ("<=", 1.03),
}
STEPS = 469  # batches of 128 in 60,000 images

_EPOCHS = """
import json, statistics
import numpy as np, fastnn
from fastnn.benchmarks.workloads import KerasEpochs
from fastnn.datasets.mnist import load_data
(x, y), _ = load_data()
x = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
epochs = KerasEpochs("numba", x, y)
epochs()
_result = {"epoch": statistics.median(epochs() for _ in range(3))}
"""


class Terminal(io.StringIO):
    """A console stand-in: says it is a terminal, keeps only a count of what it got."""

    written = 0

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.written += len(text)
        return len(text)


def verbosity_cost(rounds: int) -> dict[str, Any]:
    from fastnn.benchmarks.timing import interleaved, round_ratio
    from fastnn.benchmarks.workloads import _TimedEpochs, keras_model
    from fastnn.datasets.mnist import load_data
    from fastnn.progress import REDRAW_SECONDS
    from fastnn.recipes import prepare_mnist

    (x, y), _ = prepare_mnist(load_data(), np.dtype("float32"))
    terminal = Terminal()

    model = keras_model(0)  # one model for every setting: the same arrays, in one place

    def epochs(verbose: int) -> Callable[[], float]:
        train = _TimedEpochs("numba", model, x, y, batch_size=128, seed=0, verbose=verbose)

        def run() -> float:
            with contextlib.redirect_stdout(terminal):
                return train()

        return run

    timed: dict[str, Callable[[], object]] = {
        f"verbose={verbose}": epochs(verbose) for verbose in (0, 1, 2)
    }
    timings = interleaved(timed, rounds)
    bar = bar_seconds(terminal)
    epoch = timings["verbose=0"].median
    # every step asks the clock; an epoch draws once per REDRAW_SECONDS
    per_step = bar["check"] + bar["draw"] * (epoch / REDRAW_SECONDS + 1) / STEPS
    return {
        "medians_s": {name: t.median for name, t in timings.items()},
        "characters_drawn": terminal.written,
        "bar_seconds": bar,
        "ratios": {
            "the bar's time per step / the step's time": per_step / (epoch / STEPS),
            "keras epoch, verbose=1 on a terminal / verbose=0": round_ratio(
                timings, "verbose=1", "verbose=0"
            ),
            "keras epoch, verbose=2 / verbose=0": round_ratio(timings, "verbose=2", "verbose=0"),
        },
    }


def bar_seconds(terminal: Terminal, calls: int = 200_000) -> dict[str, float]:
    """Seconds of a ``ProgressBar.advance`` call that does not draw (it asks the clock),
    and of one that draws into ``terminal`` (made due before each call)."""
    from fastnn.progress import ProgressBar

    bar = ProgressBar(calls, stream=terminal)
    bar.begin("Epoch 1/1")
    running = lambda done: {"loss": 1.0 / done, "accuracy": 0.5}  # noqa: E731
    bar.next_draw = float("inf")
    start = time.perf_counter()
    for done in range(1, calls + 1):
        bar.advance(done, running)
    check = (time.perf_counter() - start) / calls
    draws = calls // 100
    start = time.perf_counter()
    for done in range(1, draws + 1):
        bar.next_draw = float("-inf")
        bar.advance(done, running)
    return {"check": check, "draw": (time.perf_counter() - start) / draws}


def against_baseline(baseline: str, rounds: int) -> dict[str, Any]:
    runs = checkouts.alternate(baseline, rounds, _EPOCHS)
    medians = {which: statistics.median(r["epoch"] for r in rs) for which, rs in runs.items()}
    return {
        "baseline": baseline,
        "runs": runs,
        "medians_s": medians,
        "ratios": {
            "keras epoch, this / baseline (verbose=0)": medians["this"] / medians["baseline"]
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# What the Keras habits cost the hot loop",
        "",
        f"Measured with `{result['command']}` on {result['machine']}. The `keras` epoch "
        "(784-512-10, RMSprop, batch 128, 60,000 MNIST images) on numba.",
        "",
        "| ratio | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    ratios = {**result["verbosity"]["ratios"], **result["baseline"]["ratios"]}
    for name, value in ratios.items():
        sign, bound = TARGETS.get(name, ("", None))
        met = "-" if bound is None else "yes" if value <= bound else "**no**"
        shown = f"{value:.2e}" if value < 0.01 else f"{value:.3f}"
        lines.append(f"| {name} | {shown} | {sign} {bound if bound else '-'} | {met} |")
    lines += [
        "",
        "In-process medians (s): " + json.dumps(result["verbosity"]["medians_s"]),
        "",
        f"Processes, this and baseline {result['baseline']['baseline']} (s): "
        + json.dumps(result["baseline"]["medians_s"]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default="127ec53")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "command": "python -m bench.habits " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "verbosity": verbosity_cost(args.rounds),
        "baseline": against_baseline(args.baseline, args.rounds),
    }
    write(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
