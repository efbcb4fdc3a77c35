"""Data-parallel training over MPI ranks (fastnn/distributed.py): N ranks give one
process's weights; a failing, dying, disagreeing or interrupted rank stops them all."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastnn
from fastnn import distributed, launcher

from . import distributed_worker as worker
from .conftest import backend_params

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORKER = Path(worker.__file__)


def mpiexec() -> str:
    """The launcher beside this Python (MPICH's wheel puts it there), else on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip('no mpiexec: pip install -e ".[mpi]" in the fastnn folder')
    pytest.importorskip("mpi4py", reason='no mpi4py: pip install -e ".[mpi]" in the fastnn folder')
    return found


def launch(
    ranks: int, case: str, out: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the worker on ``ranks`` ranks; their output is returned with the exit code."""
    command = [mpiexec(), "-n", str(ranks), sys.executable, str(WORKER), case, str(out)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "FASTNN_DISTRIBUTED_TIMEOUT": "20", **(env or {})},
    )  # fmt: skip


def ended(out: Path, rank: int) -> str:
    return (out / f"rank{rank}.txt").read_text()


# ---------------------------------------------------------------- without MPI
@given(rows=st.integers(0, 500), size=st.integers(1, 17))
def test_shards_split_a_batch_into_nearly_equal_runs(rows: int, size: int) -> None:
    bounds = [distributed.shard(rows, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_the_launchers_world_is_read_without_mpi(monkeypatch: pytest.MonkeyPatch) -> None:
    where = (launcher.SIZE_VARIABLES, launcher.RANK_VARIABLES, launcher.LOCAL_RANK_VARIABLES)
    for name in itertools.chain(*where):
        monkeypatch.delenv(name, raising=False)
    read = (launcher.launched_size, launcher.launched_rank, launcher.launched_local_rank)
    assert [f() for f in read] == [1, 0, 0]
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert [f() for f in read] == [4, 3, 1]
    monkeypatch.setenv("MPI_LOCALRANKID", "0")  # MPICH's, looked at first
    assert launcher.launched_local_rank() == 0


def test_distributed_without_mpi4py_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # an import of it fails
    with pytest.raises(ImportError, match=r'pip install -e "\.\[mpi\]"'):
        worker.model().fit(*worker.data(), distributed=True, verbose=0)


def test_distributed_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="distributed must be True or False; received "
                                        "distributed='yes'"):  # fmt: skip
        worker.model().fit(*worker.data(), distributed="yes", verbose=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=f"FASTNN_DISTRIBUTED_TIMEOUT must be .*'{value}'"):
        distributed.timeout()


# ---------------------------------------------------------------- under mpiexec
@pytest.mark.parametrize(
    ("ranks", "sparse", "mode"),
    [(2, False, "overlap"), (3, False, "overlap"), (2, True, "overlap"), (2, False, "blocking")],
    ids=["2 ranks", "3 ranks", "2 ranks on compressed rows", "2 ranks, blocking sums"],
)
@pytest.mark.parametrize("name", backend_params(("numpy", "numba", "cupy-emulated")))
def test_ranks_train_the_weights_of_one_process(
    name: str, ranks: int, sparse: bool, mode: str, tmp_path: Path
) -> None:
    """Global batches of 20 (shards of 10 and 10, or 7, 7 and 6) and a last one of 1
    (81 training rows: some ranks get none), shuffled: the weights and the history of one
    process with batches of 20, within float64 rounding. The emulated GPU backend sums
    through the host."""
    env = {"FASTNN_BACKEND": name, "FASTNN_ALLREDUCE": mode, "WORKER_SPARSE": "1" * sparse}
    result = launch(ranks, "train", tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(ended(tmp_path, r) == "done" for r in range(ranks))
    with fastnn.use_backend(name):
        net = worker.model()
        history = net.fit(*worker.data(), **worker.FIT, sparse_inputs=sparse or None)
    got = np.load(tmp_path / "weights.npz")
    for i, want in enumerate(net.get_weights()):
        np.testing.assert_allclose(got[f"arr_{i}"], want, rtol=1e-10, atol=1e-12)
    logs = json.loads((tmp_path / "history.json").read_text())
    assert logs.keys() == history.history.keys()
    for key, values in history.history.items():
        np.testing.assert_allclose(logs[key], values, rtol=1e-10)


@pytest.mark.parametrize("mode", ["blocking", "overlap"])
@pytest.mark.parametrize(("gpus", "transport"), [(2, "nccl"), (1, "mpi")], ids=["2 GPUs", "1 GPU"])
@pytest.mark.parametrize("name", backend_params(("cupy-emulated",)))
def test_ranks_on_their_own_gpus_sum_with_nccl(
    name: str, gpus: int, transport: str, mode: str, tmp_path: Path
) -> None:
    """On the emulated GPU backend with a GPU for each rank, the gradients are summed by
    NCCL on the devices (emulated: MPI over the arrays found at the addresses NCCL is
    given) and train one process's weights; two ranks on one GPU, which NCCL refuses,
    sum through the host."""
    env = {"FASTNN_BACKEND": name, "FASTNN_ALLREDUCE": mode,
           "FASTNN_EMULATED_DEVICES": str(gpus)}  # fmt: skip
    result = launch(2, "train", tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(tmp_path / f"transport{r}.txt").read_text() for r in range(2)] == [transport] * 2
    with fastnn.use_backend(name):
        net = worker.model()
        net.fit(*worker.data(), **worker.FIT)
    got = np.load(tmp_path / "weights.npz")
    for i, want in enumerate(net.get_weights()):
        np.testing.assert_allclose(got[f"arr_{i}"], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", backend_params(("cupy", "cupy-emulated")))
def test_nccl_sums_in_place_on_this_device(name: str) -> None:
    """One rank's NCCL communicator on this process's GPU (emulated: MPI's world of one):
    sums of float32 and float64 arrays, queued on the stream and waited for, leave them as
    they are. Trivial in its numbers, but on a GPU machine (bench/gpu_check.sh runs it)
    it is where NCCL's own calls meet a GPU: the addresses, counts, type codes and stream."""
    backend = fastnn.get_backend(name)
    nccl = backend.nccl()
    if nccl is None:
        pytest.skip("this CuPy has no NCCL")
    if name == "cupy-emulated":
        pytest.importorskip("mpi4py", reason='the emulated NCCL is MPI: pip install -e ".[mpi]"')

    def give_up(what: str) -> None:
        raise AssertionError(f"{what} did not finish")

    group = SimpleNamespace(rank=0, size=1, timeout=30.0, broadcast=lambda v: v, give_up=give_up)
    sums = distributed.DeviceSums(group, backend, nccl)  # type: ignore[arg-type]
    try:
        for dtype in ("float32", "float64"):
            want = np.linspace(-2, 3, 11).astype(dtype)
            values = backend.asarray(want)
            sums.sum(values)
            sums.wait("a test's sum")
            np.testing.assert_array_equal(backend.to_numpy(values), want)
    finally:
        sums.close()


def test_a_bad_nccl_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.NCCL_ENV, "yes")
    with pytest.raises(ValueError, match="FASTNN_NCCL must be 'auto' or 'off'; received 'yes'"):
        distributed.nccl_setting()


def test_ranks_with_different_models_are_refused_at_start(tmp_path: Path) -> None:
    result = launch(2, "mismatch", tmp_path)
    assert result.returncode != 0
    for rank in (0, 1):
        message = ended(tmp_path, rank)
        assert message.startswith("ValueError: distributed ranks must train the same model")
        assert "rank 1 has model=" in message


def test_a_rank_that_raises_stops_every_rank_at_that_step(tmp_path: Path) -> None:
    result = launch(2, "raise", tmp_path)
    assert result.returncode != 0
    assert ended(tmp_path, 1) == "RuntimeError: rank 1 broke on purpose"
    assert ended(tmp_path, 0).startswith(
        "DistributedError: rank 1 failed at epoch 1, step 3 (its error is in its output)"
    )


def test_terminate_on_nan_stops_every_rank_and_says_so_once(tmp_path: Path) -> None:
    result = launch(2, "nan", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(ended(tmp_path, r) == "done" for r in range(2))
    assert result.stdout.count("Invalid loss, terminating training") == 1, result.stdout


def test_a_rank_that_dies_ends_the_job_within_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result = launch(2, "die", tmp_path, {"FASTNN_DISTRIBUTED_TIMEOUT": "5"}, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - started < 50
    assert not (tmp_path / "rank0.txt").exists() or ended(tmp_path, 0) != "done"


def test_the_watchdog_of_a_start_is_cancelled_when_it_returns() -> None:
    """:func:`distributed.within` gives the start's result, and its watchdog does not
    fire afterwards (it would end this process)."""
    assert distributed.within(0.3, lambda: 7) == 7
    time.sleep(0.6)  # past the watchdog's time: still here


def test_a_start_runs_unwatched_where_stderr_has_no_descriptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in a notebook, whose stderr is an object without a file descriptor."""
    monkeypatch.setattr(sys, "__stderr__", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert distributed.within(0.3, lambda: 7) == 7
    time.sleep(0.6)


@pytest.mark.parametrize("case", ["nccl-fails", "nccl-stalls"])
@pytest.mark.parametrize("name", backend_params(("cupy-emulated",)))
def test_a_rank_whose_nccl_start_fails_or_stalls_ends_the_job(
    name: str, case: str, tmp_path: Path
) -> None:
    """NCCL's start waits for every rank inside one call: a rank whose start raises
    aborts the job at once, saying why; one whose start never returns leaves the others
    to their watchdog, which ends them after the timeout."""
    env = {"FASTNN_BACKEND": name, "FASTNN_EMULATED_DEVICES": "2",
           "FASTNN_DISTRIBUTED_TIMEOUT": "5"}  # fmt: skip
    started = time.monotonic()
    result = launch(2, case, tmp_path, env, timeout=90)
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert not any((tmp_path / f"rank{r}.txt").exists() for r in (0, 1))  # none trained
    said = result.stdout + result.stderr
    if case == "nccl-fails":
        assert "fastnn rank 1: NCCL's communicator failed to start (RuntimeError: " in said
    else:
        # the watchdog's stacks name the function it watches from; the two ranks dump
        # theirs into one stream at once, which can split " in " from the name (seen:
        # "line 294 in \nwithin", "within159"), but faulthandler writes each name whole.
        # (Not "within 5 s": the wait's own message, which is not a stack.)
        assert "Timeout" in said and re.search(r"\bwithin(?! \d)", said), said


def test_ctrl_c_on_the_launcher_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    command = [mpiexec(), "-n", "2", sys.executable, str(WORKER), "interrupt", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"started{r}").exists() for r in (0, 1)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        time.sleep(2)  # into the training
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    messages = [ended(tmp_path, rank) for rank in (0, 1)]
    assert all(m.startswith("TrainingInterrupted: training interrupted") for m in messages), output
    assert messages[0] == messages[1]  # the same epoch and step


def test_the_ring_model_is_fitted_back_from_its_own_times() -> None:
    from bench import distributed as bench_distributed

    latency, bandwidth = 7e-6, 3e9
    sizes = bench_distributed.SIZES
    times = {size: bench_distributed.ring_seconds(2, size, bandwidth, latency) for size in sizes}
    fitted_latency, fitted_bandwidth = bench_distributed.fit_ring(times)
    assert fitted_latency == pytest.approx(latency, rel=1e-6)
    assert fitted_bandwidth == pytest.approx(bandwidth, rel=1e-6)
    # 2 (N - 1) / N of the bytes and 2 (N - 1) latencies: the bytes term tends to 2x
    assert bench_distributed.ring_seconds(512, 1e6, 1e9, 0.0) == pytest.approx(2e-3 * 511 / 512)
    assert bench_distributed.ring_seconds(8, 0.0, 1e9, 1e-6) == pytest.approx(14e-6)


def test_fastnn_backends_line_says_what_to_install_and_which_rank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_SIZE", "3")
    monkeypatch.setenv("PMI_RANK", "2")
    line = distributed.describe()
    assert line.startswith('distributed: unavailable (pip install -e ".[mpi]"')
    assert line.endswith("rank 2 of 3")
