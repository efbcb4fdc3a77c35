"""The benchmark suite behind ``fastnn bench`` and ``bench/results/``.

Three sections, each a list of plain-dict rows (what ``--json`` writes):

- ``ops``: every op of the interface per backend and size, first checked against
  the NumPy backend, then timed; speedup over numpy.
- ``training``: a `keras` epoch and `scratch` iterations per backend, beside the
  peers (plain NumPy, PyTorch, JAX, Keras 3: each when it imports) and the GEMM
  floor, timed in interleaved rounds (the peers that bring thread pools of their
  own in a process of their own); ratios to numpy and the floor.
- ``scaling``: one training step against batch size and hidden width, per backend,
  with the GFLOP/s its matrix products reach, beside the SGEMM throughput that backend's
  own matrix product reaches on a large square product (its compute roof).

On the GPU backend, ``graphs`` chooses whether training steps replay as CUDA graphs
(the default), run eagerly, or both side by side ("cupy" and "cupy (no graphs)").

Every timed figure is a median over rounds taken after a first, untimed call; the
first call's time (JIT or kernel compilation) is reported apart as ``first_s``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastnn import sparse
from fastnn.backends import get_backend
from fastnn.benchmarks import peers, scratch_tutorial, workloads
from fastnn.benchmarks.timing import Timing, Work, interleaved, round_ratio, seconds

SECTIONS = ("ops", "training", "scaling")
GRAPHS = ("on", "off", "both")
NO_GRAPHS = " (no graphs)"  # the label of a GPU backend's eager variant
Progress = Callable[[str], None]


def _graphs(backend: Any) -> bool:
    """Whether ``backend`` replays training steps as CUDA graphs (a GPU backend); the
    numba backend's replays are its recorded calls, with no switch of their own here."""
    return bool(backend.replays_steps and not backend.synchronous)


@dataclass
class Options:
    """What to run. ``quick`` shrinks every workload to a few seconds in all."""

    backends: Sequence[str]
    ops: Sequence[str] = tuple(workloads.OP_SIZES)
    sizes: str = "sweep"  # "real": the network's own sizes only; "sweep": and those around
    sections: Sequence[str] = SECTIONS
    quick: bool = False
    rounds: int = 5
    with_peers: bool = True
    graphs: str = "on"
    #: the scaling section's (batch, hidden) points; None: the sweep
    points: Sequence[tuple[int, int]] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if "numpy" not in self.backends:  # every figure is relative to it
            self.backends = ["numpy", *self.backends]

    def variants(self) -> list[tuple[str, str]]:
        """(label, backend) of each timed variant: a GPU backend with its CUDA graphs on,
        off, or both, as ``graphs`` says; any other backend once."""
        chosen = []
        for name in self.backends:
            if not _graphs(get_backend(name)):
                chosen.append((name, name))
                continue
            if self.graphs in ("on", "both"):
                chosen.append((name, name))
            if self.graphs in ("off", "both"):
                chosen.append((name + NO_GRAPHS, name))
        return chosen


@contextlib.contextmanager
def graphs_as_labelled(label: str) -> Iterator[None]:
    """CUDA graphs off inside the block when ``label`` names an eager variant."""
    if not label.endswith(NO_GRAPHS):
        yield
        return
    before = os.environ.get("FASTNN_CUDA_GRAPHS")
    os.environ["FASTNN_CUDA_GRAPHS"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["FASTNN_CUDA_GRAPHS"]
        else:
            os.environ["FASTNN_CUDA_GRAPHS"] = before


def labelled(label: str, work: Work) -> Work:
    """``work`` run with the CUDA graph setting its variant's label names."""

    def run() -> object:
        with graphs_as_labelled(label):
            return work()

    for attribute in ("losses", "steps"):  # what the rows read back from the workload
        if hasattr(work, attribute):
            setattr(run, attribute, getattr(work, attribute))
    return run


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, GPU, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in ("numpy", "numba", "cupy-cuda12x", "cupy-cuda13x", "torch", "jax", "keras"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": _gpu_name(),
        "python": platform.python_version(),
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "platform": platform.platform(),
        **versions,
    }


def _gpu_name() -> str | None:
    from fastnn.backends import available_backends

    if not any(info.name == "cupy" and info.available for info in available_backends()):
        return None
    import cupy

    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name: bytes | str = properties["name"]
    return name.decode() if isinstance(name, bytes) else name


def run(options: Options, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Run the chosen sections; the result as a JSON-ready dict."""
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {
            "backends": list(options.backends),
            "sizes": options.sizes,
            "quick": options.quick,
            "rounds": options.rounds,
            "graphs": options.graphs,
        },
        "ops": [],
        "training": [],
        "scaling": [],
    }
    if "ops" in options.sections:
        result["ops"] = op_rows(options, progress)
    if "training" in options.sections:
        result["training"] = training_rows(options, progress)
    if "scaling" in options.sections:
        result["scaling"] = scaling_rows(options, progress)
    # how often the GPU backends replayed a training step as a CUDA graph, and why not
    result["graphs"] = {
        name: backend.graph_status()  # type: ignore[attr-defined]
        for name in options.backends
        if _graphs(backend := get_backend(name))
    }
    result["skipped"] = options.skipped
    return result


# -------------------------------------------------------------------- ops
def _per_call(timing: Timing, calls: int) -> Timing:
    return Timing(first=timing.first, runs=[t / calls for t in timing.runs])


def _first_call(call: Callable[[], Any], backend_name: str) -> tuple[float, Any]:
    """Seconds of the first call (compilation included) and what it returned."""
    start = time.perf_counter()
    produced = call()
    get_backend(backend_name).synchronize()
    return time.perf_counter() - start, produced


def _calls_for(work: Work, budget: float) -> int:
    """How many calls of ``work`` fill about ``budget`` seconds (after one warm call)."""
    once = max(seconds(work), 1e-7)
    return max(1, min(10_000, math.ceil(budget / once)))


def _repeated(call: Callable[[], Any], times: int) -> Work:
    def many() -> None:
        for _ in range(times):
            call()

    return many


def op_rows(options: Options, progress: Progress) -> list[dict[str, Any]]:
    """Each op at each size on each backend: equivalence with numpy, then time."""
    rows = []
    budget = 0.005 if options.quick else 0.05
    for op in options.ops:
        sizes = workloads.OP_SIZES[op]
        for size in sizes[:1] if options.sizes == "real" else sizes:
            label = workloads.size_label(size)
            progress(f"op {op} {label}")
            reference = workloads.on_host("numpy", workloads.op_workload("numpy", op, size)())
            timed: dict[str, Work] = {}
            firsts: dict[str, float] = {}
            calls: dict[str, int] = {}
            checks: dict[str, tuple[float, float, bool]] = {}
            for name in options.backends:
                call = workloads.op_workload(name, op, size)
                firsts[name], produced = _first_call(call, name)
                checks[name] = workloads.differences(workloads.on_host(name, produced), reference)
                calls[name] = _calls_for(call, budget)
                timed[name] = _repeated(call, calls[name])
            sync = {name: get_backend(name) for name in options.backends}
            timings = interleaved(timed, options.rounds, sync)
            per_call = {name: _per_call(t, calls[name]) for name, t in timings.items()}
            for name in options.backends:
                max_abs, max_rel, same = checks[name]
                median = per_call[name].median
                flops = workloads.op_flops(op, size)
                rows.append(
                    {
                        "op": op,
                        "size": label,
                        "backend": name,
                        "median_s": median,
                        "first_s": firsts[name],
                        "calls_per_round": calls[name],
                        "speedup_vs_numpy": round_ratio(per_call, "numpy", name),
                        "max_abs_diff": max_abs,
                        "max_rel_diff": max_rel,
                        "equivalent": same,
                        "gflops": flops / median / 1e9 if flops else None,
                    }
                )
    return rows


# --------------------------------------------------------------- training
#: first-epoch mean loss, relative to the numpy backend's: fastnn backends run the
#: same float32 math in another order. Peers start from the same weights and batch
#: order, but their losses are shown, not judged: PyTorch's RMSprop puts epsilon
#: outside the square root (2-3% higher first-epoch loss here), Keras shuffles itself.
LOSS_TOLERANCE = {"backend": 1e-3}


@dataclass
class _Entry:
    kind: str  # "backend", "peer" or "floor"
    work: Work | None  # timed here, in interleaved rounds; or None: ``timing`` is given
    timing: Timing | None = None  # measured elsewhere (a peer in its own process)
    measured_losses: list[float] | None = None
    backend: str | None = None  # the fastnn backend to wait for after each call

    def losses(self) -> list[float]:
        """Mean loss per call, where the workload keeps one."""
        if self.measured_losses is not None:
            return self.measured_losses
        return list(getattr(self.work, "losses", []))


def training_rows(options: Options, progress: Progress) -> list[dict[str, Any]]:
    """The `keras` epoch and `scratch` iterations: backends, peers and floor side by side."""
    from fastnn.datasets import mnist
    from fastnn.recipes import prepare_mnist

    try:
        (x, y), _ = prepare_mnist(mnist.load_data(), np.dtype("float32"))
    except Exception as error:  # no data here and no download: say so, run the rest
        options.skipped.append({"what": "training", "reason": f"MNIST unavailable: {error}"})
        return []
    rows = x.shape[0] if not options.quick else 10_000
    x, y = x[:rows], y[:rows]
    share = sparse.density(x)  # auto compresses below each backend's crossover
    progress(
        f"training: keras epoch on {rows} images of input density {share:.2f} (first calls compile)"
    )
    rows_out = _time_entries("keras epoch", rows, _keras_entries(options, x, y), options)
    iterations = 5 if options.quick else 20
    progress(f"training: scratch, {iterations} full-batch iterations on {rows} images")
    scratch = _scratch_entries(options, x, y, iterations)
    rows_out += _time_entries(
        f"scratch {iterations} iterations", rows * iterations, scratch, options
    )
    return rows_out


def _keras_entries(options: Options, x: np.ndarray, y: np.ndarray) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for label, name in options.variants():
        work = labelled(label, workloads.KerasEpochs(name, x, y))
        entries[f"fastnn {label}"] = _Entry("backend", work, backend=name)
        if get_backend(name).sparse_kernels:  # the dense path beside the default (auto)
            work = labelled(label, workloads.KerasEpochs(name, x, y, sparse_inputs=False))
            entries[f"fastnn {label}, dense inputs"] = _Entry("backend", work, backend=name)
    entries["gemm floor"] = _Entry("floor", workloads.gemm_floor(x, preallocated=False))
    if not options.with_peers:
        return entries
    runnable, reasons = peers.runnable()
    options.skipped += [{"what": name, "reason": why} for name, why in reasons.items()]
    w1, b1, w2, b2 = workloads.keras_model(0).get_weights()  # every peer starts from these
    for peer in runnable:
        if not peer.isolated:
            entries[peer.name] = _Entry("peer", peer.build(x, y, seed=0, weights=(w1, b1, w2, b2)))
            continue
        measured = peers.time_in_subprocess(peer, x, y, (w1, b1, w2, b2), options.rounds)
        timing = Timing(first=measured["first"], runs=measured["runs"])
        entries[peer.name] = _Entry("peer", None, timing, measured["losses"])
    return entries


def _scratch_entries(
    options: Options, x: np.ndarray, y: np.ndarray, iterations: int
) -> dict[str, _Entry]:
    entries = {
        f"fastnn {label}": _Entry(
            "backend",
            labelled(label, workloads.ScratchIterations(name, x, y, iterations)),
            backend=name,
        )
        for label, name in options.variants()
    }
    if options.with_peers:
        columns = np.ascontiguousarray(x.astype(np.float64).T)  # (784, m): the tutorial's layout
        rng = np.random.default_rng(1)
        entries["numpy (scratch tutorial, float64)"] = _Entry(
            "peer", lambda: scratch_tutorial.gradient_descent(columns, y, 0.1, iterations, rng)
        )
    return entries


def _time_entries(
    workload: str, samples: int, entries: dict[str, _Entry], options: Options
) -> list[dict[str, Any]]:
    """Time every entry in interleaved rounds; one row each, with ratios and loss check."""
    sync = {name: get_backend(e.backend) for name, e in entries.items() if e.backend}
    here = {name: e.work for name, e in entries.items() if e.work is not None}
    timings = interleaved(here, options.rounds, sync)
    timings.update({name: e.timing for name, e in entries.items() if e.timing is not None})
    reference = entries["fastnn numpy"].losses()

    def ratio(top: str, bottom: str) -> float:
        """Paired round by round where both ran in the same rounds; a peer timed in a
        process of its own ran in rounds of its own, so its ratio is of the medians."""
        if entries[top].timing is not None or entries[bottom].timing is not None:
            return timings[top].median / timings[bottom].median
        return round_ratio(timings, top, bottom)

    rows = []
    for name, entry in entries.items():
        losses = entry.losses()
        row: dict[str, Any] = {
            "workload": workload,
            "implementation": name,
            "kind": entry.kind,
            "samples": samples,
            "median_s": timings[name].median,
            "first_s": timings[name].first,
            "samples_per_s": samples / timings[name].median,
            "final_loss": losses[-1] if losses else None,
            "first_loss": losses[0] if losses else None,
            "vs_numpy": ratio(name, "fastnn numpy"),
            "vs_floor": ratio(name, "gemm floor") if "gemm floor" in timings else None,
            "ratios": "of medians" if entry.timing is not None else "per round",
            "loss_rel_diff": None,
            "equivalent": None,
        }
        if losses and reference:
            diff = abs(losses[0] - reference[0]) / abs(reference[0])
            row["loss_rel_diff"] = diff
            if entry.kind in LOSS_TOLERANCE:
                row["equivalent"] = bool(diff <= LOSS_TOLERANCE[entry.kind])
        rows.append(row)
    return rows


# ---------------------------------------------------------------- scaling
def scaling_rows(options: Options, progress: Progress) -> list[dict[str, Any]]:
    """Time per training step against batch (hidden 512) and hidden width (batch 128), or
    at ``options.points``; each beside its backend's SGEMM throughput."""
    batches: Sequence[int] = workloads.SCALING_BATCHES
    widths: Sequence[int] = workloads.SCALING_HIDDEN
    if options.quick:
        batches, widths = batches[::2], widths[::3]
    points = [("batch", b, 512) for b in batches] + [("hidden", 128, h) for h in widths]
    if options.points is not None:
        points = [("point", b, h) for b, h in options.points]
    side = 1024 if options.quick else 8192
    progress(f"scaling: SGEMM throughput, {side}x{side}x{side}")
    roofs = {name: sgemm_gflops(name, side, options.rounds) for name in options.backends}
    rows = []
    for sweep, batch, hidden in points:
        progress(f"scaling: batch {batch}, hidden {hidden}")
        variants = options.variants()
        steps = {label: workloads.TrainingSteps(name, batch, hidden) for label, name in variants}
        timed = {label: labelled(label, steps[label]) for label, _ in variants}
        sync = {label: get_backend(name) for label, name in variants}
        rounds = max(1, min(options.rounds, 3))  # the big points take seconds a round
        timings = interleaved(timed, rounds, sync)
        flops = workloads.step_flops(batch, hidden)
        for label, name in variants:
            per_step = timings[label].median / steps[label].steps
            gflops = flops / per_step / 1e9
            rows.append(
                {
                    "backend": label,
                    "sweep": sweep,
                    "batch": batch,
                    "hidden": hidden,
                    "median_s": per_step,
                    "first_s": timings[label].first,
                    "gflops": gflops,
                    "sgemm_gflops": roofs[name],
                    "vs_sgemm": gflops / roofs[name],
                    "speedup_vs_numpy": round_ratio(timings, "numpy", label),
                }
            )
    return rows


def sgemm_gflops(backend_name: str, side: int, rounds: int) -> float:
    """GFLOP/s of the backend's float32 matrix product on two ``side`` x ``side``
    matrices: on a GPU, cuBLAS's SGEMM at a size where it runs near its peak."""
    call = workloads.op_workload(backend_name, "matmul", (side, side, side))
    backend = get_backend(backend_name)
    seconds(call, backend)  # warm-up: the handle, the kernel's first load
    median = statistics.median(seconds(call, backend) for _ in range(max(3, rounds)))
    return workloads.op_flops("matmul", (side, side, side)) / median / 1e9
