"""Where a numba `keras` epoch spends the time its matrix products do not take.

    python -m bench.overhead --out bench/results/overhead [--rounds 3]

Four measurements, on the real MNIST ($FASTNN_DATA_DIR), about a minute on a
2-core machine:

* ``epoch``: the `keras` recipe's epoch on the numba backend with a clock around
  every backend op it calls (the ops' own time, Python wrappers included), the
  rest being the training loop's Python; the GEMM floor beside it.
* ``stream``: the one-pass update kernels on the 784x512 weight, isolated: SGD
  reads two arrays and writes one, RMSprop reads three and writes two, so their
  bytes over their time is what one core streams.
* ``scratch read`` and ``scratch products``: one read of the `scratch` recipe's
  59,000 x 784 input over every core, the least any pass over it can take; its
  two products with the input, over the whole batch as the backend runs them and
  sharing one read of the input slice by slice.
* ``threads``: the same RMSprop update split over the thread pool, as fastnn
  configures it (OpenMP, passive wait) and, in a child process, with threads
  that spin between kernels (active wait), against the serial kernel.

Writes ``<out>.json`` (every figure) and ``<out>.md`` (the tables).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

import fastnn
from bench.child import call_in_child
from fastnn.benchmarks import timing, workloads
from fastnn.datasets import mnist
from fastnn.kernels import matmul, optimizers
from fastnn.kernels import threads as thread_setup
from fastnn.recipes import prepare_mnist

# fastnn's threading setup (passive OpenMP waiting) must be in place before the first
# parallel kernel loads OpenMP, whichever of the measurements below runs first
thread_setup.configure()

#: the backend ops a keras training step calls
STEP_OPS = (
    "take_rows",
    "matmul",
    "bias_activation",
    "sparse_softmax_cross_entropy",
    "relu_backward",
    "sum_rows",
    "rmsprop_update",
    "count_argmax_matches",
)
SHAPE = (784, 512)
SCRATCH_INPUT = (59_000, 784)


def _clocked(backend: Any, totals: dict[str, float]) -> Callable[[], None]:
    """Wrap the step ops of ``backend`` with clocks adding into ``totals``; returns undo."""
    originals = {name: getattr(backend, name) for name in STEP_OPS}

    def clock(name: str, op: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return op(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - start

        return timed

    for name, op in originals.items():
        setattr(backend, name, clock(name, op))

    def undo() -> None:
        for name in originals:
            delattr(backend, name)  # the class's method shows through again

    return undo


def epoch(rounds: int) -> dict[str, Any]:
    """Median milliseconds per epoch of each op, the Python rest, and the GEMM floor."""
    (x, y), _ = prepare_mnist(mnist.load_data(), np.dtype("float32"))
    epochs = workloads.KerasEpochs("numba", x, y)
    floor = workloads.gemm_floor(x, preallocated=False)
    epochs()  # compile, allocate the workspaces
    backend = fastnn.get_backend("numba")
    runs: list[dict[str, float]] = []
    for _ in range(rounds):
        totals: dict[str, float] = collections.defaultdict(float)
        undo = _clocked(backend, totals)
        try:
            seconds = epochs()
        finally:
            undo()
        totals["gemm floor"] = timing.seconds(floor)
        totals["python (the rest)"] = seconds - sum(totals[name] for name in STEP_OPS)
        totals["epoch"] = seconds
        runs.append(dict(totals))
    return {name: 1e3 * float(np.median([run[name] for run in runs])) for name in runs[0]}


def _median_us(work: Callable[[], object], repeats: int = 300) -> float:
    return 1e6 * timing.measure(work, repeat=repeats).median


def _arrays() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    param = rng.standard_normal(SHAPE, dtype=np.float32).reshape(-1)
    grad = 1e-2 * rng.standard_normal(SHAPE, dtype=np.float32).reshape(-1)
    velocity = np.abs(1e-4 * rng.standard_normal(SHAPE, dtype=np.float32)).reshape(-1)
    return param, grad, velocity


def _scalars() -> tuple[np.float32 | None, ...]:
    """RMSprop's scalars (rate, rho, 1 - rho, epsilon, tiny), then no clipping scale, no
    clipvalue, no weight decay and the rate again: the plain update, as fit runs it."""
    f32 = np.float32
    rate = f32(1e-3)
    return rate, f32(0.9), f32(0.1), f32(1e-7), f32(np.finfo(f32).tiny), None, None, None, rate


def stream() -> dict[str, float]:
    """Microseconds and GB/s of the SGD and RMSprop kernels on one 784x512 weight."""
    param, grad, velocity = _arrays()
    scalars = _scalars()
    rate, plain = scalars[0], scalars[5:]  # plain: no clipping, no decay
    nbytes = param.nbytes
    sgd = _median_us(lambda: optimizers.sgd(param, grad, rate, *plain))
    rmsprop = _median_us(lambda: optimizers.rmsprop(param, grad, velocity, *scalars))
    return {
        "sgd us": sgd,
        "sgd GB/s": 3 * nbytes / sgd / 1e3,
        "rmsprop us": rmsprop,
        "rmsprop GB/s": 5 * nbytes / rmsprop / 1e3,
    }


@numba.njit(parallel=True, cache=False, fastmath=True)
def _read(values: np.ndarray) -> float:
    total = 0.0
    for i in numba.prange(values.shape[0]):
        total += values[i]
    return total


def scratch_input_read() -> dict[str, float]:
    """Milliseconds and GB/s of one read of the scratch recipe's input (59,000 x 784
    float32), split over the thread pool: a lower bound for any pass over it."""
    values = np.random.default_rng(2).random(SCRATCH_INPUT[0] * SCRATCH_INPUT[1], np.float32)

    def read() -> None:  # a work returning a float would be taken for its own seconds
        _read(values)

    ms = _median_us(read, repeats=10) / 1e3
    return {"MB": values.nbytes / 1e6, "ms": ms, "GB/s": values.nbytes / ms / 1e6}


@numba.njit(parallel=True, cache=False, error_model="numpy")
def _one_read_products(
    x: np.ndarray,
    w1_t: np.ndarray,
    z: np.ndarray,
    dz: np.ndarray,
    partials: np.ndarray,
    scratch: np.ndarray,
    chunk: int,
) -> None:
    """``z = x @ w1`` and ``partials.sum(0) = (x.T @ dz).T``, reading ``x`` once.

    Each thread takes its share of the rows ``chunk`` rows at a time and runs both
    products on them while they are in its cache: what the scratch recipe's two input
    products would cost if the network did the forward and the weight gradient of one
    slice of the batch before moving to the next. x (R, K), w1_t (N, K), dz (R, N),
    partials and scratch (threads, N, K).
    """
    rows = x.shape[0]
    parts = partials.shape[0]
    size = (rows + parts - 1) // parts
    for part in numba.prange(parts):
        start, stop = min(rows, part * size), min(rows, (part + 1) * size)
        partials[part] = 0
        for low in range(start, stop, chunk):
            high = min(low + chunk, stop)
            matmul._dots(x, w1_t, z, low, high)
            matmul._blocked_rank_updates(x, dz, partials[part], scratch[part], low, high)


def scratch_products(
    repeats: int = 10, chunks: tuple[int, ...] = (512, 2048, 8192)
) -> dict[str, float]:
    """The scratch recipe's two products with its input (x @ W1 and x.T @ dz, 925 M
    multiply-adds an iteration), in milliseconds: as the numba backend runs them, each
    over the whole batch, and sharing one read of the input (the best of ``chunks``).

    The one-read variant is checked against NumPy before it is timed.
    """
    rows, depth = SCRATCH_INPUT
    rng = np.random.default_rng(3)
    x = rng.random(SCRATCH_INPUT, np.float32)
    w1 = rng.uniform(-0.5, 0.5, (depth, 10)).astype(np.float32)
    dz = rng.standard_normal((rows, 10), dtype=np.float32)
    z = np.empty((rows, 10), np.float32)
    grad = np.empty((depth, 10), np.float32)
    parts = numba.get_num_threads()
    partials = np.empty((parts, 10, depth), np.float32)
    scratch = np.empty_like(partials)
    w1_t = np.ascontiguousarray(w1.T)

    forward = _median_us(lambda: matmul.matmul(x, w1, out=z), repeats) / 1e3
    backward = _median_us(lambda: matmul.matmul(x, dz, transpose_a=True, out=grad), repeats) / 1e3
    _one_read_products(x, w1_t, z, dz, partials, scratch, chunks[0])
    np.testing.assert_allclose(z, x @ w1, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(partials.sum(axis=0).T, x.T @ dz, rtol=1e-4, atol=1e-2)

    def one_read_ms(chunk: int) -> float:
        def run() -> None:
            _one_read_products(x, w1_t, z, dz, partials, scratch, chunk)

        return _median_us(run, repeats) / 1e3

    one_read = {chunk: one_read_ms(chunk) for chunk in chunks}
    best = min(one_read, key=one_read.__getitem__)
    multiply_adds = 2 * rows * depth * 10
    return {
        "x @ W1 ms": forward,
        "x.T @ dz ms": backward,
        "whole batch ms": forward + backward,
        "one read ms": one_read[best],
        "one read chunk": best,
        "one read GMAC/s": multiply_adds / one_read[best] / 1e6,
    }


@numba.njit(parallel=True, cache=False, fastmath={"nsz", "contract"}, error_model="numpy")
def _parallel_rmsprop(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, scalars: tuple, parts: int
) -> None:
    size = param.shape[0]
    for part in numba.prange(parts):
        lo, hi = part * size // parts, (part + 1) * size // parts
        optimizers.rmsprop(param[lo:hi], grad[lo:hi], velocity[lo:hi], *scalars)


def threads(repeats: int = 300) -> dict[str, Any]:
    """The RMSprop update on one thread and split over numba's pool, each alone and
    right after a 128x784x512 BLAS product (as a training step runs it). Each case
    is timed in a run of its own, so "alone" means no BLAS product just before."""
    param, grad, velocity = _arrays()
    scalars = _scalars()
    parts = numba.get_num_threads()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, SHAPE[0]), dtype=np.float32)
    weight = rng.standard_normal(SHAPE, dtype=np.float32)
    product = np.empty((128, SHAPE[1]), np.float32)

    def serial() -> None:
        optimizers.rmsprop(param, grad, velocity, *scalars)

    def parallel() -> None:
        _parallel_rmsprop(param, grad, velocity, scalars, parts)

    def blas_product() -> None:
        np.matmul(x, weight, out=product)

    def after_product(update: Callable[[], None]) -> Callable[[], None]:
        def pair() -> None:
            blas_product()
            update()

        return pair

    cases = {
        "serial us": serial,
        "parallel us": parallel,
        "product us": blas_product,
        "product + serial us": after_product(serial),
        "product + parallel us": after_product(parallel),
    }
    result: dict[str, Any] = {name: _median_us(work, repeats) for name, work in cases.items()}
    return {
        "threads": parts,
        "threading layer": numba.threading_layer(),
        "wait policy": os.environ.get("OMP_WAIT_POLICY", ""),
        **result,
    }


def threads_waiting(policy: str, repeats: int = 300) -> dict[str, Any]:
    """:func:`threads` in a child process whose OpenMP threads wait by ``policy``.

    OpenMP reads its wait policy once, when it loads, so another policy needs
    another process. With "ACTIVE", threads spin between parallel kernels instead
    of sleeping: launches are cheap, but the spinning takes the cores from BLAS.
    """
    environment = {**os.environ, "OMP_WAIT_POLICY": policy}
    return call_in_child("overhead", f"threads({repeats})", environment)


def _waiting(threads: dict[str, Any]) -> str:
    """How the pool's threads wait between kernels, as a table header says it."""
    return "spinning" if threads["wait policy"].upper() == "ACTIVE" else "sleeping"


def markdown(result: dict[str, Any]) -> str:
    run = result["epoch"]
    floor = run["gemm floor"]
    rest = run["epoch"] - run["matmul"]
    ops = sum(run[name] for name in STEP_OPS if name != "matmul")
    lines = [
        "# Where a numba keras epoch's time goes",
        "",
        f"Measured {result['when']} with `{result['command']}`.",
        "",
        "| part | ms / epoch | share of the epoch |",
        "| --- | --- | --- |",
    ]
    order = sorted(
        (name for name in run if name not in ("epoch", "gemm floor")), key=lambda n: -run[n]
    )
    for name in order:
        lines.append(f"| {name} | {run[name]:.1f} | {run[name] / run['epoch']:.0%} |")
    lines += [
        f"| **epoch** | {run['epoch']:.1f} | 100% |",
        "",
        f"GEMM floor (the five products alone, NumPy's BLAS): {floor:.1f} ms; the epoch is "
        f"{run['epoch'] / floor:.2f}x it. Everything but the products: {rest:.1f} ms; 1.25x the "
        f"floor would leave {0.25 * floor:.1f} ms for it. Were every op but the products "
        f"twice as fast (split over two cores, waking the threads for free), it would still "
        f"take {rest - ops / 2:.1f} ms.",
        "",
        "One-pass update kernels on a 784x512 float32 weight (one core):",
        "",
        "| kernel | us | GB/s streamed |",
        "| --- | --- | --- |",
    ]
    s = result["stream"]
    lines.append(f"| SGD (2 reads, 1 write) | {s['sgd us']:.1f} | {s['sgd GB/s']:.1f} |")
    lines.append(
        f"| RMSprop (3 reads, 2 writes) | {s['rmsprop us']:.1f} | {s['rmsprop GB/s']:.1f} |"
    )
    r = result["scratch read"]
    p = result["scratch products"]
    mega_multiply_adds = p["one read GMAC/s"] * p["one read ms"]
    lines += [
        "",
        f"The scratch recipe's input ({r['MB']:.0f} MB, float32), read once over every core: "
        f"{r['ms']:.1f} ms ({r['GB/s']:.1f} GB/s). Its two products with the input "
        f"(x @ W1 and x.T @ dz, {mega_multiply_adds:.0f} M multiply-adds an iteration), "
        "numba's own kernels:",
        "",
        "| | ms / iteration | 500 iterations (s) |",
        "| --- | --- | --- |",
        f"| x @ W1, whole batch | {p['x @ W1 ms']:.1f} | {0.5 * p['x @ W1 ms']:.1f} |",
        f"| x.T @ dz, whole batch | {p['x.T @ dz ms']:.1f} | {0.5 * p['x.T @ dz ms']:.1f} |",
        f"| both, whole batch (as the backend runs them) | {p['whole batch ms']:.1f} | "
        f"{0.5 * p['whole batch ms']:.1f} |",
        f"| both on each {p['one read chunk']}-row slice while it is in cache (one read) | "
        f"{p['one read ms']:.1f} | {0.5 * p['one read ms']:.1f} |",
        "",
        f"Sharing one read, the products take {p['one read ms'] / r['ms']:.1f}x the read "
        f"alone: {p['one read GMAC/s']:.0f} GMAC/s over the cores.",
    ]
    t = result["threads"]
    active = result["threads, active waiting"]
    lines += [
        "",
        f"RMSprop on the 784x512 weight, on one thread and split over {t['threads']} "
        f"({t['threading layer']}), with OMP_WAIT_POLICY={t['wait policy']} (this "
        f"process's; fastnn sets PASSIVE unless the user set it) and, in a process of its "
        f"own, with OMP_WAIT_POLICY={active['wait policy']}:",
        "",
        f"| | one thread (us) | split, {_waiting(t)} (us) | split, {_waiting(active)} (us) |",
        "| --- | --- | --- | --- |",
        f"| alone | {t['serial us']:.1f} | {t['parallel us']:.1f} | {active['parallel us']:.1f} |",
        f"| after a 128x784x512 BLAS product ({t['product us']:.1f} us alone) | "
        f"{t['product + serial us']:.1f} | {t['product + parallel us']:.1f} | "
        f"{active['product + parallel us']:.1f} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--out", required=True, help="path stem: writes STEM.json and STEM.md")
    parser.add_argument("--rounds", type=int, default=3, help="epochs timed (default 3)")
    args = parser.parse_args(argv)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": f"python -m bench.overhead --out {args.out} --rounds {args.rounds}",
        "epoch": epoch(args.rounds),
        "stream": stream(),
        "scratch read": scratch_input_read(),
        "scratch products": scratch_products(),
        "threads": threads(),
        "threads, active waiting": threads_waiting("ACTIVE"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
