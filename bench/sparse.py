"""Where compressed rows pay: the first layer's step, sparse against dense, over density.

    python -m bench.sparse --out bench/results/sparse [--rounds 7] [--backends numba,numpy]

For each density (the share of nonzero inputs), a batch of 128 rows of 784 inputs
against a 784 x 512 layer, the work of one training step's first layer:

* dense: the batch gathered from a pool of rows (``take_rows``), ``x @ W`` and
  ``x.T @ dZ`` (NumPy's BLAS, every core);
* sparse: the same rows gathered as compressed rows (``take_sparse_rows``),
  ``sparse_matmul`` and ``sparse_weight_gradient`` (numba's pool on every core and BLAS
  on one thread, as a sparse pass runs them; numpy's column blocks on BLAS's every core).

The nonzeros sit at random places (MNIST's are not: a third of its columns are zero in
every row of a batch, which makes its weight gradient cheaper than random data's of the
same density); the real MNIST batch is measured too when ``$FASTNN_DATA_DIR`` has it.
Each figure is the median over ``--rounds`` interleaved rounds of the median of many
calls, after a warm-up (JIT compile excluded). The crossover is the density at which
the two lines cross (linear between the measured points): ``sparse_inputs="auto"``
compresses data below it. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
#: densities of the whole-epoch comparison (60,000 random rows, the keras network)
EPOCH_DENSITIES = (0.1, 0.2, 0.3, 0.4, 0.6, 1.0)
BATCH, INPUTS, UNITS, POOL = 128, 784, 512, 8192


def _median_call(call: Callable[[], object], seconds: float = 0.15) -> float:
    """Median seconds of one call over as many calls as fit in ``seconds`` (at least 5)."""
    call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_calls(backend_name: str, pool: np.ndarray, seed: int) -> dict[str, Callable[[], object]]:
    """The dense and the sparse first-layer step on ``pool``'s rows (pool (N, 784))."""
    from fastnn import get_backend, sparse
    from fastnn.threads import Pools

    backend = get_backend(backend_name)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((INPUTS, UNITS)).astype(np.float32)
    dz = rng.standard_normal((BATCH, UNITS)).astype(np.float32)
    order = rng.permutation(len(pool))[:BATCH]
    rows = sparse.compress(pool)
    room = BATCH * max(rows.most_per_row(), 1)
    batch = sparse.SparseRows(
        np.empty(BATCH + 1, np.int64),
        np.empty(room, rows.indices.dtype),
        np.empty(room, np.float32),
        INPUTS,
    )
    dense_x = np.empty((BATCH, INPUTS), np.float32)
    out, grad = np.empty((BATCH, UNITS), np.float32), np.empty((INPUTS, UNITS), np.float32)
    pools = Pools()

    def dense() -> None:
        pools.blas_single = False
        pools.set(pools.widest)
        xb = backend.take_rows(pool, order, out=dense_x)
        backend.matmul(xb, w, out=out)
        backend.matmul(xb, dz, transpose_a=True, out=grad)

    def compressed() -> None:
        pools.blas_single = backend.sparse_products_own  # as a pass on compressed rows
        pools.set(pools.widest)
        xb = backend.take_sparse_rows(rows, order, batch)
        backend.sparse_matmul(xb, w, out=out)
        backend.sparse_weight_gradient(xb, dz, out=grad)

    return {"dense": dense, "sparse": compressed}


def random_pool(density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pool = rng.random((POOL, INPUTS), dtype=np.float32)
    pool[rng.random((POOL, INPUTS)) >= density] = 0
    return pool


def crossover(points: list[dict[str, Any]]) -> float | None:
    """The density where sparse stops being faster (linear between points), None if
    it never is; 1.0 if it always is."""
    ratios = [(p["density"], p["sparse_s"] / p["dense_s"]) for p in points]
    if ratios[0][1] >= 1:
        return None
    for (d0, r0), (d1, r1) in itertools.pairwise(ratios):
        if r1 >= 1:
            return d0 + (1 - r0) * (d1 - d0) / (r1 - r0)
    return 1.0


def measure(backend_name: str, rounds: int, mnist: np.ndarray | None) -> dict[str, Any]:
    pools = {d: random_pool(d, i) for i, d in enumerate(DENSITIES)}
    if mnist is not None:
        pools["mnist"] = mnist  # type: ignore[index]
    calls = {d: step_calls(backend_name, pool, 0) for d, pool in pools.items()}
    times: dict[Any, dict[str, list[float]]] = {d: {"dense": [], "sparse": []} for d in calls}
    for round_ in range(rounds):
        for d, pair in calls.items():
            kinds = ("dense", "sparse") if round_ % 2 == 0 else ("sparse", "dense")
            for kind in kinds:
                times[d][kind].append(_median_call(pair[kind]))
    points = []
    for d, pool in pools.items():
        dense_s = statistics.median(times[d]["dense"])
        sparse_s = statistics.median(times[d]["sparse"])
        share = float(np.count_nonzero(pool)) / pool.size
        points.append(
            {"data": "mnist" if d == "mnist" else "random", "density": share,
             "dense_s": dense_s, "sparse_s": sparse_s, "sparse_over_dense": sparse_s / dense_s}
        )  # fmt: skip
    random_points = [p for p in points if p["data"] == "random"]
    return {"backend": backend_name, "points": points, "crossover": crossover(random_points)}


def epoch_sweep(backend_name: str, rounds: int, mnist: np.ndarray | None) -> dict[str, Any]:
    """The `keras` epoch with ``sparse_inputs`` on and off, over density (random data with
    random labels, 60,000 rows; and MNIST's training set when given)."""
    from fastnn.benchmarks.workloads import KerasEpochs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 60_000)
    sets: list[tuple[str, np.ndarray, np.ndarray]] = []
    for share in EPOCH_DENSITIES:
        x = rng.random((60_000, INPUTS), dtype=np.float32)
        x[rng.random((60_000, INPUTS), dtype=np.float32) >= share] = 0
        sets.append(("random", x, labels))
    if mnist is not None:
        sets.append(("mnist", mnist, mnist_labels()))
    points = []
    for data, x, y in sets:
        runs = {s: KerasEpochs(backend_name, x, y, sparse_inputs=s) for s in ("off", "on")}
        times: dict[str, list[float]] = {"off": [], "on": []}
        for run in runs.values():
            run()  # warm-up: compile, and the compression of a first fit
        for round_ in range(rounds):
            for setting in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                times[setting].append(runs[setting]())
        dense_s, sparse_s = statistics.median(times["off"]), statistics.median(times["on"])
        points.append(
            {"data": data, "density": float(np.count_nonzero(x)) / x.size, "dense_s": dense_s,
             "sparse_s": sparse_s, "sparse_over_dense": sparse_s / dense_s}
        )  # fmt: skip
    return {"backend": backend_name, "points": points}


def mnist_labels() -> np.ndarray:
    from fastnn.datasets.mnist import load_data

    (_, y), _ = load_data()
    return np.asarray(y)


def crossing(density: float | None) -> str:
    if density is None:
        return "compressed rows never faster"
    return f"crossover at density {density:.2f}"


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Compressed rows against dense, over density",
        "",
        f"Measured with `{meta['command']}` on {meta['machine']}; {meta['rounds']} interleaved "
        f"rounds. A step: gather {BATCH} of {POOL:,} rows of {INPUTS} inputs, the product with "
        f"a {INPUTS} x {UNITS} weight and the weight gradient. Median microseconds.",
        "",
        '`sparse_inputs="auto"` compresses below a threshold set from the whole-epoch '
        "crossover (which includes what the step alone does not: the dense path's BLAS "
        f"threads against the rest of the step), with a margin: {meta['thresholds']}.",
    ]
    for result in results:
        cross = result["crossover"]
        lines += [
            "",
            f"## {result['backend']}: the first layer's step; " + crossing(cross),
            "",
            "| data | density | dense (us) | sparse (us) | sparse / dense |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in result["points"]:
            lines.append(
                f"| {p['data']} | {p['density']:.3f} | {p['dense_s'] * 1e6:.0f} | "
                f"{p['sparse_s'] * 1e6:.0f} | {p['sparse_over_dense']:.2f}x |"
            )
    for result in meta.get("epochs", []):
        lines += [
            "",
            f"## {result['backend']}: the whole `keras` epoch, compressed rows on and off; "
            + crossing(crossover([p for p in result["points"] if p["data"] == "random"])),
            "",
            "The epoch's seconds (60,000 rows, 784-512-10, RMSprop, batch 128), median of "
            f"{meta['epoch_rounds']} interleaved epochs after a warm-up one.",
            "",
            "| data | density | dense inputs (s) | compressed rows (s) | compressed / dense |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in result["points"]:
            lines.append(
                f"| {p['data']} | {p['density']:.3f} | {p['dense_s']:.3f} | "
                f"{p['sparse_s']:.3f} | {p['sparse_over_dense']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def thresholds(names: list[str]) -> str:
    from fastnn import get_backend

    return ", ".join(f"{n} {get_backend(n).sparse_crossover:.2f}" for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sparse", description=__doc__)
    parser.add_argument("--out", required=True, help="path without suffix for .json and .md")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backends", default="numba,numpy")
    parser.add_argument("--epoch-rounds", type=int, default=3, help="0: no epoch sweep")
    args = parser.parse_args(argv)
    from bench.contention import machine
    from fastnn.datasets.mnist import DatasetUnavailableError, load_data

    try:
        (x, _), _ = load_data()
        full: np.ndarray | None = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
    except DatasetUnavailableError:
        full = None
    mnist = None if full is None else full[:POOL]
    names = args.backends.split(",")
    results = [measure(name, args.rounds, mnist) for name in names]
    epochs = [epoch_sweep(name, args.epoch_rounds, full) for name in names if args.epoch_rounds]
    meta = {
        "command": shlex.join(["python", "-m", "bench.sparse", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "rounds": args.rounds,
        "epoch_rounds": args.epoch_rounds,
        "thresholds": thresholds(names),
        "epochs": epochs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
    )
    out.with_suffix(".md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
