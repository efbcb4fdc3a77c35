"""Data-parallel training: the `keras` epoch on 1 and 2 ranks, what the gradient sums
cost, and a model of the sums fitted here that projects the step to many ranks.

    python -m bench.distributed --out bench/results/distributed [--epochs 3] [--rounds 2]
        [--ranks 1,2]

Each configuration runs under ``mpiexec -n RANKS`` (MPICH's, from the ``mpi`` extra), each
rank on one thread (``FASTNN_THREADS=1``), so that 1 and 2 ranks use the same CPU in all
on a 2-core machine: the `keras` recipe's network (784-512-10, RMSprop, global batch 128)
on the 60,000 MNIST training images, one warm-up epoch, then ``--epochs`` timed ones, on
numba with dense inputs (the ranks sum whole gradients). Configurations: 1 process without
MPI, then 1 rank, and each count of ``--ranks`` above 1 with the sums all after the
backward (``FASTNN_ALLREDUCE=blocking``) and started layer by layer during it
(``overlap``); on a machine with more cores, give more counts. ``--rounds`` interleave
them. Rank 0 also times ``Allreduce`` alone for message sizes from 8 B to 4 MB.

The model: a ring allreduce of ``b`` bytes over ``N`` ranks takes
``2 (N - 1) / N * b / bandwidth + 2 (N - 1) * latency``. Fitted to the loopback timings
here (least squares over the sizes, with N = 2), and with each network's bandwidth and
latency assumed (written in the output), it projects a step of this network with the
per-rank batch of the 2-rank run (64 rows, the global batch growing with the ranks: weak
scaling) to 8, 64 and 512 ranks: step = compute (the blocking 2-rank step less its wait
for the sums) + the sum's time not hidden by the backward (the share the overlapped run
hid), efficiency = compute / step. Writes ``<out>.json`` and ``<out>.md``. Needs
$FASTNN_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.contention import machine, write

ROOT = Path(__file__).resolve().parents[1]


def configs(ranks: list[int]) -> list[tuple[str, int, str | None]]:
    """(name, ranks, $FASTNN_ALLREDUCE or None for no MPI at all) of each configuration:
    one process without MPI, one rank, and each larger count with either way of summing."""
    chosen: list[tuple[str, int, str | None]] = [("1 process, no MPI", 1, None)]
    for count in sorted(set(ranks)):
        modes = ("overlap",) if count == 1 else ("blocking", "overlap")
        chosen += [(f"{count} rank{'s' * (count > 1)}, {mode}", count, mode) for mode in modes]
    return chosen


SIZES = tuple(8 * 4**k for k in range(10))  # 8 B .. 2 MB, then the gradients' size
#: networks the projection assumes: (bandwidth in Gb/s, latency per ring step in us)
NETWORKS = {"10 Gb/s Ethernet": (10, 25.0), "100 Gb/s": (100, 5.0), "400 Gb/s": (400, 2.0)}
PROJECTED_RANKS = (8, 64, 512)


def child(out: Path, epochs: int, distributed: bool) -> None:
    """One rank of a configuration: timed epochs, and on rank 0 the results."""
    from fastnn import distributed as dist
    from fastnn import launcher
    from fastnn.benchmarks.workloads import _TimedEpochs, keras_model
    from fastnn.datasets.mnist import load_data

    (x, y), _ = load_data()
    x = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
    options: dict[str, Any] = {"batch_size": 128, "seed": 0, "sparse_inputs": False}
    if distributed:
        options["distributed"] = True
    run = _TimedEpochs("numba", keras_model(0), x, y, **options)
    first = run()
    seconds = [run() for _ in range(epochs)]
    result: dict[str, Any] = {"first_s": first, "epochs_s": seconds, "losses": run.losses}
    if distributed:
        stats = dist.LAST_STATS
        assert stats is not None
        result["sum"] = {"steps": stats.steps, "bytes_per_step": stats.bytes / stats.steps,
                         "wait_s_per_step": stats.wait_seconds / stats.steps}  # fmt: skip
        result["allreduce_s"] = allreduce_times()
        if launcher.launched_rank() > 0:
            return
    out.write_text(json.dumps(result))


def allreduce_times() -> dict[int, float]:
    """Median seconds of one float32 ``Allreduce`` of each size in :data:`SIZES`."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    times = {}
    for size in (*SIZES, 4 * 407_050):  # ... and the keras network's gradients
        values = np.ones(size // 4, np.float32)
        runs = []
        for _ in range(30):
            comm.Barrier()
            start = MPI.Wtime()
            comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
            runs.append(MPI.Wtime() - start)
        times[size] = statistics.median(runs[5:])
    return times


def launcher() -> str:
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else "mpiexec"


def run_config(ranks: int, mode: str | None, epochs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "FASTNN_THREADS": "1", "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "bench.distributed", "--child", str(out),
                   "--epochs", str(epochs)]  # fmt: skip
        if mode is not None:
            env["FASTNN_ALLREDUCE"] = mode
            command = [launcher(), "-n", str(ranks), *command, "--distributed"]
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return dict(json.loads(out.read_text()))


def fit_ring(times: dict[int, float]) -> tuple[float, float]:
    """(latency s, bandwidth bytes/s) of the ring model for 2 ranks fitted to ``times``:
    t = 2 (N-1)/N * b / bandwidth + 2 (N-1) * latency, with N = 2: t = b / bw + 2 latency."""
    sizes = np.array(list(times), dtype=np.float64)
    seconds = np.array(list(times.values()))
    slope, intercept = np.polyfit(sizes, seconds, 1)
    return max(intercept / 2, 0.0), 1.0 / slope


def ring_seconds(ranks: int, size: float, bandwidth: float, latency: float) -> float:
    return 2 * (ranks - 1) / ranks * size / bandwidth + 2 * (ranks - 1) * latency


def project(result: dict[str, Any]) -> dict[str, Any]:
    """The step at many ranks, from the 2-rank run's compute and the ring model; the
    share of the sum the backward hid, from the overlapped run."""
    two = result["configs"]["2 ranks, blocking"]  # the default way
    steps = two["sum"]["steps"]  # of the last epoch (a fit of its own)
    epoch = statistics.median(two["epochs_s"])
    wait = two["sum"]["wait_s_per_step"]
    compute = epoch / steps - wait  # a step's own work on 64 rows, the sums' waits left out
    size = two["sum"]["bytes_per_step"]
    latency, bandwidth = fit_ring({int(k): v for k, v in two["allreduce_s"].items()})
    here = ring_seconds(2, size, bandwidth, latency)
    overlapped = result["configs"]["2 ranks, overlap"]["sum"]["wait_s_per_step"]
    hidden = min(1.0, max(0.0, 1.0 - overlapped / here))  # share the backward hid
    rows: dict[str, Any] = {}
    for network, (gbits, micros) in NETWORKS.items():
        for ranks in PROJECTED_RANKS:
            sum_s = ring_seconds(ranks, size, gbits * 1e9 / 8, micros * 1e-6)
            step = compute + (1.0 - hidden) * sum_s
            rows[f"{network}, {ranks} ranks"] = {
                "allreduce_ms": sum_s * 1e3, "step_ms": step * 1e3,
                "efficiency": compute / step,
            }  # fmt: skip
    return {
        "fitted": {"latency_us": latency * 1e6, "bandwidth_GBps": bandwidth / 1e9,
                   "ring_here_ms": here * 1e3},
        "step_compute_ms": compute * 1e3, "bytes_per_step": size, "hidden_share": hidden,
        "rows": rows,
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    configs, model = result["configs"], result["model"]
    lines = [
        "# Data-parallel training: 1 and 2 ranks, and the ring allreduce projected",
        "",
        f"Measured with `{result['command']}` on {result['machine']}: the `keras` recipe's "
        "network (784-512-10, RMSprop, global batch 128, dense inputs) on numba, one thread "
        "a rank; the median epoch over every round.",
        "",
        "| configuration | s / epoch | vs 1 process | gradient bytes / step a rank | "
        "wait for the sums / step (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    alone = result["medians_s"]["1 process, no MPI"]
    for name, runs in configs.items():
        median = result["medians_s"][name]
        total = runs.get("sum")
        sums = (f"{total['bytes_per_step']:,.0f} | {total['wait_s_per_step'] * 1e3:.3f}"
                if total else "- | -")  # fmt: skip
        lines.append(f"| {name} | {median:.3f} | {median / alone:.3f} | {sums} |")
    fitted = model["fitted"]
    gain = result["medians_s"]["2 ranks, blocking"] / result["medians_s"]["2 ranks, overlap"]
    lines += [
        "",
        f"Overlap: the 2-rank epoch with blocking sums takes {gain:.3f}x the overlapped one.",
        "",
        f"Allreduce alone between the 2 ranks here (loopback, shared memory): fitted latency "
        f"{fitted['latency_us']:.1f} us a ring step, bandwidth {fitted['bandwidth_GBps']:.2f} "
        f"GB/s; the step's {model['bytes_per_step']:,.0f} bytes take "
        f"{fitted['ring_here_ms']:.3f} ms by the model. A step's compute on 64 rows: "
        f"{model['step_compute_ms']:.3f} ms; share of the sum hidden by the backward: "
        f"{model['hidden_share']:.2f}.",
        "",
        "Projected (weak scaling: 64 rows a rank; ring allreduce; each network's latency a "
        "ring step is an assumption: "
        + ", ".join(f"{n}: {u:g} us" for n, (_, u) in NETWORKS.items())
        + "; the share hidden by the backward measured here kept):",
        "",
        "| network, ranks | allreduce (ms) | step (ms) | scaling efficiency |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in model["rows"].items():
        lines.append(f"| {name} | {row['allreduce_ms']:.3f} | {row['step_ms']:.3f} | "
                     f"{row['efficiency']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__)
    parser.add_argument("--out", help="path without suffix for .json and .md")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ranks", default="1,2", help="rank counts, comma-separated (1,2)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child), args.epochs, args.distributed)
        return 0
    if not args.out:
        parser.error("--out is required")
    chosen = configs([int(text) for text in args.ranks.split(",")])
    if "2 ranks, blocking" not in [name for name, _, _ in chosen]:
        parser.error("--ranks must include 2: the model is fitted to the 2-rank run")
    runs: dict[str, Any] = {}
    epochs: dict[str, list[float]] = {name: [] for name, _, _ in chosen}
    for _ in range(args.rounds):
        for name, ranks, mode in chosen:
            print(f"measuring {name}", flush=True)
            runs[name] = run_config(ranks, mode, args.epochs)
            epochs[name] += runs[name]["epochs_s"]
    result: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench.distributed", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "configs": runs,
        "medians_s": {name: statistics.median(times) for name, times in epochs.items()},
    }
    result["model"] = project(result)
    write(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
