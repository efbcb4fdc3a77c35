"""A busy machine: the `keras` epoch with 0 and 1 busy processes beside it.

    python -m bench.contention --out bench/results/contention [--epochs 3] [--rounds 2]
        [--only "fastnn numba,jax (jit)"]

Every implementation trains the `keras` recipe's network (784-512-10, RMSprop, batch
128) on the 60,000 MNIST training images, in a fresh process with the user's
environment: fastnn on numba and on numpy, each with its default thread policy
(``FASTNN_THREADS=auto``) and with the libraries' own (``system``, fastnn before it
chose threads), numpy also on compressed rows (``FASTNN_SPARSE=on``: MNIST stays dense
under ``auto`` there), and the peers of ``fastnn.benchmarks.peers``. The load is a Python
busy loop per busy process (``while True: pass``), started before the trainer and
stopped after it; a machine with 2 cores and 1 busy process has one core to spare.

Each process runs a warm-up epoch (JIT compile, reported apart as ``first``), then
``--epochs`` timed ones. Rounds interleave the implementations and loads, so a
change in the machine's background touches all of them alike. Reported: each
one's median epoch idle and loaded over every round, loaded / idle, and loaded /
JAX-loaded. Writes ``<out>.json`` and ``<out>.md``. Needs $FASTNN_DATA_DIR.
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
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: fastnn's own entries: (backend, FASTNN_THREADS, FASTNN_SPARSE)
FASTNN = {
    "fastnn numba": ("numba", "auto", "auto"),
    "fastnn numba (threads: system)": ("numba", "system", "auto"),
    "fastnn numpy": ("numpy", "auto", "auto"),
    "fastnn numpy (threads: system)": ("numpy", "system", "auto"),
    "fastnn numpy (compressed rows)": ("numpy", "auto", "on"),
}
#: the peer every loaded figure is compared with
REFERENCE = "jax (jit)"
LOADS = (0, 1)
BUSY_LOOP = "while True: pass"


def implementations() -> tuple[list[str], dict[str, str]]:
    """Every entry that can run here, and why each of the others cannot."""
    from fastnn.benchmarks import peers

    ready, reasons = peers.runnable()
    names = list(FASTNN) + [p.name for p in ready if p.name != "pytorch cuda"]
    return names, reasons


def child(name: str, data: str, epochs: int) -> dict[str, Any]:
    """In the child process: build ``name``, run a warm-up epoch and ``epochs`` timed ones."""
    with np.load(data) as arrays:
        x, y = arrays["x"], arrays["y"]
    if name in FASTNN:
        from fastnn.benchmarks.workloads import KerasEpochs

        trainer: Any = KerasEpochs(FASTNN[name][0], x, y, seed=0)
    else:
        from fastnn.benchmarks import peers

        peer = next(p for p in peers.PEERS if p.name == name)
        trainer = peer.build(x, y, seed=0)
    first = trainer()
    runs = [trainer() for _ in range(epochs)]
    return {"first": first, "runs": runs, "losses": list(trainer.losses)}


def run_loaded(name: str, data: str, epochs: int, load: int) -> dict[str, Any]:
    """``child`` in a new process, ``load`` busy processes running beside it."""
    settings = ("FASTNN_BACKEND", "FASTNN_THREADS", "FASTNN_SPARSE")
    env = {k: v for k, v in os.environ.items() if k not in settings}
    if name in FASTNN:
        env["FASTNN_THREADS"], env["FASTNN_SPARSE"] = FASTNN[name][1:]
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(load)]
    try:
        time.sleep(0.2 if busy else 0.0)  # the loops are running before the trainer starts
        code = (
            "import json, sys; from bench import contention; "
            "print(json.dumps(contention.child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, name, data, str(epochs)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env=env,
        )
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if done.returncode != 0:
        raise RuntimeError(f"{name} with {load} busy failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summarize(runs: dict[str, dict[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Per entry: median epoch idle and loaded (over every round), and the ratios."""
    rows = []
    medians = {
        name: {load: statistics.median(t for r in rs for t in r["runs"]) for load, rs in by.items()}
        for name, by in runs.items()
    }
    reference = medians.get(REFERENCE, {})
    for name, by in runs.items():
        idle, loaded = medians[name].get(0), medians[name].get(1)
        rows.append(
            {
                "implementation": name,
                "idle_s": idle,
                "loaded_s": loaded,
                "first_idle_s": statistics.median(r["first"] for r in by[0]) if 0 in by else None,
                "loaded_over_idle": loaded / idle if idle and loaded else None,
                "loaded_over_reference_loaded": (
                    loaded / reference[1] if loaded and reference.get(1) else None
                ),
                "runs": {str(load): [r["runs"] for r in rs] for load, rs in by.items()},
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def cell(value: float | None, form: str, unit: str = "") -> str:
        return "n/a" if value is None else format(value, form) + unit

    lines = [
        "# fastnn on a busy machine: the `keras` epoch with a core taken",
        "",
        f"Measured with `{meta['command']}` on {meta['machine']}: {meta['rounds']} rounds, "
        f"{meta['epochs']} timed epochs per process after a warm-up one; each figure is the "
        "median epoch over every round. Busy: one `while True: pass` process beside the "
        "trainer.",
        "",
        "| implementation | idle (s/epoch) | 1 busy (s/epoch) | busy / idle | "
        f"busy / {REFERENCE} busy | first epoch idle (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['implementation']} | {cell(row['idle_s'], '.2f')} | "
            f"{cell(row['loaded_s'], '.2f')} | {cell(row['loaded_over_idle'], '.2f', 'x')} | "
            f"{cell(row['loaded_over_reference_loaded'], '.2f', 'x')} | "
            f"{cell(row['first_idle_s'], '.2f')} |"
        )
    if meta["skipped"]:
        lines += ["", "Not run here: " + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items())]
    return "\n".join(lines) + "\n"


def machine() -> str:
    from fastnn.benchmarks.suite import machine as describe

    facts = describe()
    return f"{facts.get('cpu', 'an unknown CPU')}, {facts.get('cores', os.cpu_count())} cores"


def write(out: str, data: dict[str, Any], text: str) -> None:
    """``<out>.json`` (``data``) and ``<out>.md`` (``text``), which is also printed."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__)
    parser.add_argument("--out", required=True, help="path without suffix for .json and .md")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated entries (default: all)")
    args = parser.parse_args(argv)
    from fastnn.datasets.mnist import load_data

    names, skipped = implementations()
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in names]
        if unknown:
            parser.error(f"--only: {unknown} not among {names}")
        names = wanted
    (x, y), _ = load_data()
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory() as folder:
        data = str(Path(folder) / "train.npz")
        np.savez(data, x=x.reshape(len(x), -1).astype(np.float32) / 255, y=y.astype(np.int64))
        for round_ in range(args.rounds):
            for load in LOADS if round_ % 2 == 0 else LOADS[::-1]:
                for name in names:
                    result = run_loaded(name, data, args.epochs, load)
                    runs[name].setdefault(load, []).append(result)
                    print(f"round {round_} busy {load} {name}: {result['runs']}", flush=True)
    rows = summarize(runs)
    command = shlex.join(["python", "-m", "bench.contention", *(argv or sys.argv[1:])])
    meta = {
        "command": command,
        "machine": machine(),
        "rounds": args.rounds,
        "epochs": args.epochs,
        "skipped": {k: v for k, v in skipped.items() if k != "pytorch cuda"},
    }
    write(args.out, {"meta": meta, "rows": rows}, markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
