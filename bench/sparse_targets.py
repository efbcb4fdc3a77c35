"""The targets of sparse inputs and thread ownership, measured in one run as ratios.

    python -m bench.sparse_targets --out bench/results/sparse-targets [--rounds 5]
        [--baseline 7dd3294]

* the `keras` epoch on numba with the default ``sparse_inputs="auto"``, against the same
  with dense inputs, the dense GEMM floor, Keras 3 on JAX and a ``jax.jit`` loop (each
  peer in a process of its own, :class:`fastnn.benchmarks.peers.ServedPeer`), all in
  interleaved rounds: each ratio is the median of its rounds' ratios; and the recipe's
  test accuracy, compressed against dense;
* the `scratch` recipe (500 full-batch iterations) against the tutorial's own NumPy code
  (``bench.targets.scratch``, with ``auto`` in force);
* "today": the `keras` epoch on dense random-normal data and ``predict`` on the 10,000
  MNIST test images, in fresh processes of this checkout and of the ``--baseline``
  revision (checked out to a temporary folder), alternated ``--rounds`` times;
* memory: the compressed training set against its dense float32 form.

Peers need the ``peers`` extra; without them their ratios are left out with the reason.
Writes ``<out>.json`` and ``<out>.md``. Needs $FASTNN_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import checkouts, targets
from bench.contention import machine, write

TARGETS = {
    "keras epoch, numba auto / keras 3 (jax)": ("<=", 0.5),
    "keras epoch, numba auto / GEMM floor": ("<=", 0.7),
    "scratch 500 iterations, numba / tutorial NumPy": ("<=", 0.25),
    "keras epoch on dense data, this / baseline": ("<=", 1.03),
    "predict 10,000 images, baseline / this": (">=", 2.0),
    "compressed MNIST / dense float32": ("<=", 0.35),
    "keras test accuracy, compressed minus dense (absolute)": ("<=", 0.003),
}

#: run in a fresh process of either checkout: the dense epoch and predict's time
_TODAY = """
import inspect, json, statistics, sys, time
import numpy as np, fastnn
from fastnn.benchmarks.workloads import KerasEpochs, keras_model
from fastnn.datasets.mnist import load_data
rng = np.random.default_rng(0)
x = rng.standard_normal((60000, 784)).astype(np.float32); y = rng.integers(0, 10, 60000)
epochs = KerasEpochs("numba", x, y)
epochs()
dense = [epochs() for _ in range(3)]
(_, _), (xt, _) = load_data()
xt = (xt.reshape(len(xt), -1) / np.float32(255)).astype(np.float32)
with fastnn.use_backend("numba"):
    model = keras_model(0)
    model.fit(xt[:256], np.arange(256) % 10, epochs=1, verbose=0)
    # silent where predict has Keras's verbose (this checkout), as the baseline's is
    quiet = {"verbose": 0} if "verbose" in inspect.signature(model.predict).parameters else {}
    model.predict(xt, **quiet)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        model.predict(xt, **quiet)
        times.append(time.perf_counter() - start)
_result = {"dense_epoch": statistics.median(dense), "predict": statistics.median(times)}
"""


def today(baseline: str, rounds: int) -> dict[str, Any]:
    """The dense epoch and predict in this checkout and in ``baseline``, alternated."""
    runs = checkouts.alternate(baseline, rounds, _TODAY)
    med = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in runs.items()}
    return {
        "baseline": baseline,
        "runs": runs,
        "medians": med,
        "ratios": {
            "keras epoch on dense data, this / baseline": med["this"]["dense_epoch"]
            / med["baseline"]["dense_epoch"],
            "predict 10,000 images, baseline / this": med["baseline"]["predict"]
            / med["this"]["predict"],
        },
    }


def keras(rounds: int) -> dict[str, Any]:
    from fastnn.benchmarks import peers, workloads
    from fastnn.benchmarks.timing import interleaved, round_ratio
    from fastnn.datasets.mnist import load_data
    from fastnn.recipes import prepare_mnist

    (x, y), _ = prepare_mnist(load_data(), np.dtype("float32"))
    timed: dict[str, Callable[[], object]] = {
        "numba auto": workloads.KerasEpochs("numba", x, y),
        "numba dense inputs": workloads.KerasEpochs("numba", x, y, sparse_inputs=False),
        "gemm floor": workloads.gemm_floor(x, preallocated=False),
    }
    skipped = {}
    start = workloads.keras_model(0).get_weights()
    served = []
    try:
        for peer in peers.PEERS:
            if peer.name not in ("keras 3", "jax (jit)"):
                continue
            reason = peer.probe()
            if reason is not None:
                skipped[peer.name] = reason
                continue
            # a process of its own, taking its turn in each round with fastnn's epochs
            served.append(peers.ServedPeer(peer, x, y, tuple(start)))  # type: ignore[arg-type]
            timed[peer.name] = served[-1]
        timings = interleaved(timed, rounds)
    finally:
        for peer_process in served:
            peer_process.close()
    medians = {name: t.median for name, t in timings.items()}
    ratios = {
        "keras epoch, numba auto / GEMM floor": round_ratio(timings, "numba auto", "gemm floor"),
        "keras epoch, numba auto / numba dense inputs": round_ratio(
            timings, "numba auto", "numba dense inputs"
        ),
    }
    for peer_process in served:
        label = "keras 3 (jax)" if peer_process.name == "keras 3" else peer_process.name
        ratios[f"keras epoch, numba auto / {label}"] = round_ratio(
            timings, "numba auto", peer_process.name
        )
    runs = {name: t.runs for name, t in timings.items()}  # by round, to see a slow spell
    return {"medians_s": medians, "runs_s": runs, "ratios": ratios, "skipped": skipped}


def accuracy_and_memory() -> dict[str, Any]:
    from fastnn import recipes, sparse
    from fastnn.datasets.mnist import load_data

    (x, _), _ = load_data()
    dense = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
    rows = sparse.compress(dense)
    size = rows.indptr.nbytes + rows.indices.nbytes + rows.values.nbytes
    accuracy = {}
    for setting in ("off", "auto"):
        os.environ[sparse.ENV_VAR] = setting
        accuracy[setting] = recipes.run("keras", backend="numba", seed=0, verbose=0).test_accuracy
    del os.environ[sparse.ENV_VAR]
    return {
        "accuracy": accuracy,
        "bytes": {"dense": dense.nbytes, "compressed": size},
        "ratios": {
            "compressed MNIST / dense float32": size / dense.nbytes,
            "keras test accuracy, compressed minus dense (absolute)": abs(
                accuracy["auto"] - accuracy["off"]
            ),
        },
    }


def scratch() -> dict[str, Any]:
    from fastnn.datasets.mnist import load_data
    from fastnn.recipes import prepare_mnist

    result: dict[str, Any] = targets.scratch(prepare_mnist(load_data(), np.dtype("float32")))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Sparse inputs and thread ownership: the targets",
        "",
        f"Measured with `{result['command']}` on {result['machine']}.",
        "",
        "| ratio | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    ratios: dict[str, float] = {}
    for section in ("keras", "scratch", "today", "accuracy_and_memory"):
        ratios.update(result[section]["ratios"])
    for name, value in ratios.items():
        target = TARGETS.get(name)
        shown = f"{target[0]} {target[1]}" if target else "-"
        met = ("yes" if targets.meets(name, value, TARGETS) else "**no**") if target else "-"
        lines.append(f"| {name} | {value:.3f} | {shown} | {met} |")
    lines += ["", "Medians (s): " + json.dumps(result["keras"]["medians_s"])]
    lines += ["", "Today: " + json.dumps(result["today"]["medians"])]
    lines += ["", "Test accuracy: " + json.dumps(result["accuracy_and_memory"]["accuracy"])]
    lines += ["", "Scratch accuracy: " + json.dumps(result["scratch"].get("accuracy", {}))]
    if result["keras"]["skipped"]:
        lines += ["", "Peers not run: " + json.dumps(result["keras"]["skipped"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sparse_targets", description=__doc__)
    parser.add_argument("--out", required=True, help="path without suffix for .json and .md")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default="7dd3294")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench.sparse_targets", *(argv or sys.argv[1:])]),
        "machine": machine(),
    }
    for name, section in (
        ("keras", lambda: keras(args.rounds)),
        ("scratch", scratch),
        ("today", lambda: today(args.baseline, args.rounds)),
        ("accuracy_and_memory", accuracy_and_memory),
    ):
        print(f"measuring {name}", flush=True)
        result[name] = section()
        print(json.dumps(result[name]["ratios"]), flush=True)
    write(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
