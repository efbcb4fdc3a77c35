"""Time per training step against batch size (32..8192) and hidden width (64..4096).

Each point records the GFLOP/s its matrix products reach (extra_info), so a user
sees where each backend wins and how the cost grows with the work.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.conftest import backend_params
from fastnn.benchmarks import workloads

POINTS = [pytest.param(b, 512, id=f"batch{b}-hidden512") for b in workloads.SCALING_BATCHES]
POINTS += [pytest.param(128, h, id=f"batch128-hidden{h}") for h in workloads.SCALING_HIDDEN]


@pytest.mark.parametrize(("batch", "hidden"), POINTS)
@pytest.mark.parametrize("name", backend_params())
def test_training_step(benchmark: Any, quick: bool, name: str, batch: int, hidden: int) -> None:
    if quick and (batch > 512 or hidden > 512):
        pytest.skip("short mode runs the small points only")
    steps = workloads.TrainingSteps(name, batch, hidden)
    steps()  # warm-up: compilation and first-touch allocation
    if name != "numpy":  # same seed, same data: the same loss as the reference
        reference = workloads.TrainingSteps("numpy", batch, hidden)
        reference()
        assert steps.losses[0] == pytest.approx(reference.losses[0], rel=1e-3)
    benchmark.group = f"training step, {'batch' if hidden == 512 else 'hidden'} sweep"
    benchmark.pedantic(steps, rounds=1 if quick else 3, iterations=1)
    if benchmark.stats is not None:  # None in short mode (--benchmark-disable)
        per_step = benchmark.stats.stats.median / steps.steps
        benchmark.extra_info["seconds_per_step"] = per_step
        benchmark.extra_info["gflops"] = workloads.step_flops(batch, hidden) / per_step / 1e9
