"""Memory over long and large runs: does training hold steady, and does it copy the data?

    python -m bench.memory --out bench/results/memory [--backends numba,numpy]
        [--epochs 50] [--rows 1000000]

Two measurements per backend, each in a fresh process so that one's peak does
not hide the other's:

* ``steady``: the ``keras`` recipe (784-512-10, RMSprop, batch 128) for
  ``--epochs`` epochs on the real MNIST; the process's resident memory (RSS)
  and its peak after every epoch. Steady means no growth from the second epoch
  (the first one allocates the workspaces) to the last.
* ``large``: MNIST repeated to ``--rows`` rows (float32: 3.1 GB at 1M rows),
  two epochs of the same network. The data are built before ``fit``; what
  ``fit`` adds on top of them (its peak minus the RSS before it) must be a small
  fraction of the data, which rules out any copy of the whole set, per epoch or
  at all.

Writes ``<out>.json`` (every figure) and ``<out>.md`` (the tables). Needs the
real MNIST ($FASTNN_DATA_DIR); about five minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.child import call_in_child

MIB = 1 << 20
#: growth from epoch 2 to the last that still counts as steady (allocator noise)
STEADY_SLACK_MIB = 16
#: what fit may add on top of a large data set, as a fraction of the data
LARGE_OVERHEAD = 0.10


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """This process's highest resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory_logger() -> Any:
    from fastnn.callbacks import Callback

    class MemoryLogger(Callback):
        """RSS and peak RSS after every epoch, in MiB."""

        def __init__(self) -> None:
            super().__init__()
            self.rss: list[float] = []
            self.peak: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.rss.append(rss_bytes() / MIB)
            self.peak.append(peak_rss_bytes() / MIB)

    return MemoryLogger()


def measure_steady(backend: str, epochs: int) -> dict[str, Any]:
    """The keras recipe for ``epochs`` epochs; RSS after each."""
    from fastnn import recipes
    from fastnn.backends import use_backend
    from fastnn.datasets import mnist

    with use_backend(backend):
        (x, y), _ = recipes.prepare_mnist(mnist.load_data(), np.dtype(np.float32))
        model = recipes.get("keras").build(0, np.dtype(np.float32))
        logger = _memory_logger()
        started = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=128, verbose=0, seed=0, callbacks=[logger])
        seconds = time.perf_counter() - started
    return {
        "kind": "steady",
        "backend": backend,
        "epochs": epochs,
        "seconds": seconds,
        "rss_mib": logger.rss,
        "peak_mib": logger.peak,
        "growth_mib": logger.rss[-1] - logger.rss[min(1, epochs - 1)],
        "peak_growth_mib": logger.peak[-1] - logger.peak[min(1, epochs - 1)],
        "final_loss": float(model.history.history["loss"][-1]),  # type: ignore[union-attr]
    }


def measure_large(backend: str, rows: int) -> dict[str, Any]:
    """Two epochs on MNIST repeated to ``rows`` rows; what fit adds on top of the data."""
    from fastnn import recipes
    from fastnn.backends import use_backend
    from fastnn.datasets import mnist

    (images, labels), _ = mnist.load_data()
    flat = images.reshape(len(images), -1)
    x = np.empty((rows, flat.shape[1]), dtype=np.float32)  # (rows, 784), built in place
    for start in range(0, rows, len(flat)):
        stop = min(start + len(flat), rows)
        np.multiply(flat[: stop - start], np.float32(1 / 255), out=x[start:stop])
    y = np.resize(labels, rows).astype(np.int64)
    with use_backend(backend):
        model = recipes.get("keras").build(0, np.dtype(np.float32))
        logger = _memory_logger()
        before = rss_bytes()
        peak_before = peak_rss_bytes()
        started = time.perf_counter()
        model.fit(x, y, epochs=2, batch_size=128, verbose=0, seed=0, callbacks=[logger])
        seconds = time.perf_counter() - started
    data = x.nbytes + y.nbytes
    peak_during = max(peak_rss_bytes(), peak_before)
    return {
        "kind": "large",
        "backend": backend,
        "rows": rows,
        "data_mib": data / MIB,
        "rss_before_fit_mib": before / MIB,
        "peak_mib": peak_during / MIB,
        "fit_overhead_mib": (peak_during - before) / MIB,
        "fit_overhead_fraction": (peak_during - before) / data,
        "rss_mib": logger.rss,
        "epoch_seconds": seconds / 2,
    }


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The two tables of a memory run."""
    steady = [r for r in results if r["kind"] == "steady"]
    large = [r for r in results if r["kind"] == "large"]
    lines = [
        "# fastnn memory: long and large runs",
        "",
        f"Measured with `{command}`.",
        "",
        "## keras recipe, RSS after each epoch",
        "",
        "| backend | epochs | RSS after epoch 1 | after epoch 2 | after last | growth 2..last "
        f"| peak growth 2..last | steady (< {STEADY_SLACK_MIB} MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in steady:
        ok = abs(r["growth_mib"]) < STEADY_SLACK_MIB and r["peak_growth_mib"] < STEADY_SLACK_MIB
        rss = r["rss_mib"]
        second = rss[min(1, len(rss) - 1)]
        lines.append(
            f"| {r['backend']} | {r['epochs']} | {rss[0]:.0f} MiB | {second:.0f} "
            f"MiB | {rss[-1]:.0f} MiB | {r['growth_mib']:+.1f} MiB | {r['peak_growth_mib']:+.1f} "
            f"MiB | {'yes' if ok else '**no**'} |"
        )
    lines += [
        "",
        "## a large data set: what fit adds on top of the data",
        "",
        "| backend | rows | data | RSS before fit | peak during fit | fit's overhead "
        f"| overhead / data | s/epoch | no copy (< {LARGE_OVERHEAD:.0%}) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in large:
        ok = r["fit_overhead_fraction"] < LARGE_OVERHEAD
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['data_mib']:,.0f} MiB | "
            f"{r['rss_before_fit_mib']:,.0f} MiB | {r['peak_mib']:,.0f} MiB | "
            f"{r['fit_overhead_mib']:,.0f} MiB | {r['fit_overhead_fraction']:.3f} | "
            f"{r['epoch_seconds']:.1f} | {'yes' if ok else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--out", required=True, help="path without suffix for .json and .md")
    parser.add_argument("--backends", default="numba,numpy")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    results = []
    for backend in args.backends.split(","):
        results.append(call_in_child("memory", f"measure_steady({backend!r}, {args.epochs})"))
        results.append(call_in_child("memory", f"measure_large({backend!r}, {args.rows})"))
        print(
            json.dumps({k: v for k, v in results[-2].items() if k not in ("rss_mib", "peak_mib")})
        )
        print(json.dumps({k: v for k, v in results[-1].items() if k != "rss_mib"}))
    command = "python -m bench.memory " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results, command))
    print(markdown(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
