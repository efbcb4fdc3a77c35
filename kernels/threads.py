"""The threading setup fastnn chooses for numba's parallel kernels.

Only the matmul kernels run in parallel (see ``fastnn/backends/numba_backend.py``
for why the others are serial), and only for products big enough to pay for it.
On the 2-core target machine, with a thin product interleaved with NumPy's
multi-threaded BLAS (as a training step interleaves them):

* OpenMP with its default "active" waiting launches fastest, but its spinning
  threads and BLAS's fight over the cores (bench/results/overhead.md measures
  an RMSprop update after a BLAS product: 8.0 ms against 0.67 ms on one thread);
* OpenMP with ``OMP_WAIT_POLICY=PASSIVE`` launches more slowly, with no fight;
* numba's own "workqueue" pool: no fight either, but it aborts when two Python
  threads launch parallel kernels at once.

So fastnn asks for OpenMP (then TBB, then workqueue, whichever loads) with
passive waiting, plus a short spin before a thread sleeps: ``GOMP_SPINCOUNT``
(:data:`SPIN_COUNT` polls, a few hundred microseconds here; GNU OpenMP's, which numba's
wheels load). A sleeping thread took 75 us to wake for each parallel region, against
2.6 us for one still spinning (2,000 launches of a tiny kernel), and a step on
compressed rows runs three regions a few hundred microseconds apart (the gather, the
forward product, the fused gradient and update). Measured on `keras` epochs, in
fresh processes alternated eight times: on MNIST's compressed rows a median of 0.54 s
against 0.61 s without the spin, and on dense random inputs 0.98 s against 1.06 s (the
fight above comes with spinning that does not stop).

Each is only a default: ``NUMBA_THREADING_LAYER``, ``OMP_WAIT_POLICY`` and
``GOMP_SPINCOUNT`` set by the user win, and the pool size follows
``NUMBA_NUM_THREADS`` or ``numba.set_num_threads`` (default: every core).
The wait settings are read when OpenMP loads, so they only take effect if no other
library loaded OpenMP before the first parallel kernel runs.
"""

from __future__ import annotations

import os

import numba

LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
WAIT_POLICY = "PASSIVE"
#: polls of a thread that finished its work before it sleeps (``GOMP_SPINCOUNT``)
SPIN_COUNT = "30000"
#: environment variables fastnn set itself (not the user): child processes that run
#: other libraries (the benchmark peers) get the environment without them
SET_BY_FASTNN: set[str] = set()


def configure() -> None:
    """Apply fastnn's threading defaults, leaving whatever the user set alone."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        SET_BY_FASTNN.add("OMP_WAIT_POLICY")
        if "GOMP_SPINCOUNT" not in os.environ:  # a short spin, with fastnn's policy only
            os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
            SET_BY_FASTNN.add("GOMP_SPINCOUNT")
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = LAYER_PRIORITY  # type: ignore[attr-defined]
