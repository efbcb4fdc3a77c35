"""The Numba issue's speed targets, asserted: measured in one run, as ratios.

Skipped in short mode (--benchmark-disable): a ratio is only meaningful when timed.
``python -m bench.report`` measures the same figures and writes them to bench/results/.
"""

from __future__ import annotations

import pytest

from bench import targets
from bench.conftest import RUNNABLE
from fastnn.recipes import Data

pytestmark = [
    pytest.mark.skipif("numba" not in RUNNABLE, reason="the numba backend cannot run"),
]


@pytest.fixture(autouse=True)
def _timed_only(quick: bool) -> None:
    if quick:
        pytest.skip("speed targets need timing; run without --benchmark-disable")


def _check(ratios: dict[str, float]) -> None:
    missed = {
        name: value
        for name, value in ratios.items()
        if name in targets.TARGETS and not targets.meets(name, value)
    }
    assert not missed, f"targets missed: {missed} (targets: {targets.TARGETS})"


def test_keras_epoch_targets(mnist_data: Data) -> None:
    _check(targets.keras_epochs(mnist_data, rounds=5)["ratios"])


def test_op_targets() -> None:
    _check(targets.ops(rounds=5)["ratios"])


def test_keras_accuracy_targets() -> None:
    _check(targets.keras_accuracy()["ratios"])


def test_scratch_target(mnist_data: Data) -> None:
    _check(targets.scratch(mnist_data)["ratios"])
