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
passive waiting. Each is only a default: ``NUMBA_THREADING_LAYER`` and
``OMP_WAIT_POLICY`` set by the user win, and the pool size follows
``NUMBA_NUM_THREADS`` or ``numba.set_num_threads`` (default: every core).
The wait policy is read when OpenMP loads, so it only takes effect if no other
library loaded OpenMP before the first parallel kernel runs.
"""

from __future__ import annotations

import os

import numba

LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
WAIT_POLICY = "PASSIVE"
#: environment variables fastnn set itself (not the user): child processes that run
#: other libraries (the benchmark peers) get the environment without them
SET_BY_FASTNN: set[str] = set()


def configure() -> None:
    """Apply fastnn's threading defaults, leaving whatever the user set alone."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        SET_BY_FASTNN.add("OMP_WAIT_POLICY")
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = LAYER_PRIORITY  # type: ignore[attr-defined]
