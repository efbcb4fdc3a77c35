"""One rank of a distributed fit, for tests/test_distributed.py, started as
``mpiexec -n N python tests/distributed_worker.py CASE OUT_FOLDER``.

Cases: ``train`` (rank 0 writes the weights and history), ``mismatch`` (rank 1 builds a
wider model), ``raise`` (rank 1 fails in its third step), ``die`` (rank 1 exits in its
third step), ``interrupt`` (a long fit, stopped by Ctrl-C on the launcher), and on the
emulated GPU backend ``nccl-fails`` and ``nccl-stalls`` (rank 1's NCCL communicator
raises, or never returns, when it starts). Every rank
writes ``rank<r>.txt``: "done", or the class and message of the error that ended it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn import distributed, layers

#: the data and the fit, shared with the single-process run the test compares with
ROWS, FEATURES, CLASSES = 90, 12, 4
FIT = {"epochs": 2, "batch_size": 20, "seed": 5, "validation_split": 0.1, "verbose": 0}


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, FEATURES))
    x[rng.random(x.shape) < 0.5] = 0  # sparse enough for compressed rows where asked
    return x, rng.integers(0, CLASSES, ROWS)


def model(units: int = 16) -> fastnn.Sequential:
    net = fastnn.Sequential(
        [layers.Dense(units, "relu"), layers.Dense(CLASSES, "softmax")],
        seed=int(os.environ.get("WORKER_SEED", "1")),
        dtype=os.environ.get("WORKER_DTYPE", "float64"),
    )
    net.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


def fail_at_third_step(net: fastnn.Sequential, how: str) -> None:
    """Make this rank's third training step raise, or end the process."""
    forward_backward = net._forward_backward
    calls = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            if how == "die":
                os._exit(7)
            raise RuntimeError("rank 1 broke on purpose")
        return forward_backward(*args, **kwargs)

    net._forward_backward = failing  # type: ignore[method-assign]


def break_nccl_start(how: str) -> None:
    """This rank's (emulated) NCCL communicator raises, or never returns, at its start."""
    from fastnn.backends import cuda_emulation

    def broken(*args: Any) -> None:
        if how == "nccl-fails":
            raise RuntimeError("NCCL error: unhandled cuda error (on purpose)")
        while True:  # never joins the others
            time.sleep(1)

    cuda_emulation.nccl.NcclCommunicator = broken


def main(case: str, out: Path) -> None:
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    x, y = data()
    net = model(units=20 if case == "mismatch" and rank == 1 else 16)
    fit: dict[str, Any] = dict(FIT)
    if os.environ.get("WORKER_SPARSE"):
        fit["sparse_inputs"] = True
    if case in ("raise", "die") and rank == 1:
        fail_at_third_step(net, case)
    if case in ("nccl-fails", "nccl-stalls") and rank == 1:
        break_nccl_start(case)
    if case == "nan":  # a rate that overflows the weights: every rank's summed loss is NaN
        net.optimizer.learning_rate = 1e300
        fit["callbacks"] = [fastnn.callbacks.TerminateOnNaN()]
    if case == "interrupt":
        x, y = np.tile(x, (200, 1)), np.tile(y, 200)
        fit.update(epochs=1000, validation_split=0.0)
        (out / f"started{rank}").write_text("")
    try:
        history = net.fit(x, y, distributed=True, **fit)
    except BaseException as error:
        (out / f"rank{rank}.txt").write_text(f"{type(error).__name__}: {error}")
        raise
    (out / f"rank{rank}.txt").write_text("done")
    stats = distributed.LAST_STATS
    (out / f"transport{rank}.txt").write_text(stats.transport if stats is not None else "")
    if rank == 0:
        np.savez(out / "weights.npz", *net.get_weights())
        (out / "history.json").write_text(json.dumps(history.history))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
