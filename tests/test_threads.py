"""The thread policy: its settings, the tuner's choices, and that every pass restores the
libraries' thread counts."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnn
from fastnn import threads
from fastnn.threads import (
    FIRST_INTERVAL,
    MAX_INTERVAL,
    MIN_TUNED_STEPS,
    PROBE_SHARE,
    PROBE_STEPS,
    Tuner,
    check_threads,
    pass_threads,
    resolve_threads,
)

from .conftest import backend_params


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch):
    threads.Pools()  # loads every BLAS a pass would, so that "before" sees them all
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    fastnn.set_threads(None)
    yield
    fastnn.set_threads(None)


@pytest.mark.parametrize(
    ("given", "expected"), [("auto", "auto"), (" System ", "system"), ("3", 3), (2, 2)]
)
def test_settings_parse(given: object, expected: object) -> None:
    assert check_threads(given) == expected


@pytest.mark.parametrize("given", [0, -1, "0", "many", True, 1.5, None, ""])
def test_bad_settings_are_refused_in_one_line_naming_the_value(given: object) -> None:
    with pytest.raises(ValueError, match=r"^threads must be 'auto', 'system' or a positive") as err:
        fastnn.set_threads(given if given is not None else 0.0)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_the_environment_sets_the_default_and_code_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_threads() == "auto"
    monkeypatch.setenv(threads.ENV_VAR, "1")
    assert resolve_threads() == 1
    fastnn.set_threads("system")
    assert resolve_threads() == "system"
    fastnn.set_threads(None)
    monkeypatch.setenv(threads.ENV_VAR, "lots")
    with pytest.raises(ValueError, match=r"FASTNN_THREADS=.*'lots'"):
        resolve_threads()


class FakeStep:
    """A clock whose steps cost what ``cost`` says for the thread count last applied."""

    def __init__(self, cost: dict[int, float]) -> None:
        self.cost = cost
        self.now = 0.0
        self.threads: int | None = None
        self.applied: list[int] = []

    def apply(self, threads: int) -> None:
        self.threads = threads
        self.applied.append(threads)

    def clock(self) -> float:
        return self.now

    def run(self, tuner: Tuner, n: int, timed: bool = True) -> list[int]:
        """Run ``n`` steps; the thread count each ran under."""
        used = []
        for _ in range(n):
            with tuner.step(timed=timed):
                assert self.threads is not None
                used.append(self.threads)
                self.now += self.cost[self.threads]
        return used


def make(cost: dict[int, float]) -> tuple[Tuner, FakeStep]:
    fake = FakeStep(cost)
    return Tuner((2, 1), fake.apply, clock=fake.clock), fake


def test_the_tuner_probes_both_then_keeps_the_faster() -> None:
    tuner, fake = make({2: 1.0, 1: 3.0})
    probe = 2 * PROBE_STEPS
    assert fake.run(tuner, probe) == [2, 1] * PROBE_STEPS
    gap = tuner.until_probe
    assert fake.run(tuner, gap) == [2] * gap
    # A busy machine: one thread becomes the faster, and the next probe finds it.
    fake.cost = {2: 5.0, 1: 2.0}
    fake.run(tuner, probe)
    assert fake.run(tuner, 10) == [1] * 10
    assert tuner.steps == {2: gap + 2 * PROBE_STEPS, 1: 10 + 2 * PROBE_STEPS}


def test_a_confirmed_choice_is_probed_ever_less_often() -> None:
    tuner, fake = make({2: 1.0, 1: 1.01})  # a probe that costs next to nothing
    gaps = []
    for _ in range(8):
        fake.run(tuner, 2 * PROBE_STEPS)
        gaps.append(tuner.until_probe)
        fake.run(tuner, tuner.until_probe)
    assert gaps == [min(FIRST_INTERVAL * 2**k, MAX_INTERVAL) for k in range(1, 9)]
    fake.cost = {2: 5.0, 1: 2.0}  # the choice changes: back to short gaps
    fake.run(tuner, 2 * PROBE_STEPS)
    assert tuner.until_probe == FIRST_INTERVAL and tuner.chosen == 1


@pytest.mark.parametrize("slower", [1.5, 3.0, 100.0])
def test_a_costly_probe_comes_seldom_enough_to_cost_a_small_share(slower: float) -> None:
    """Where one thread takes ``slower`` times as long, a confirmed probe's extra time is
    at most PROBE_SHARE of the steps until the next (within the longest interval)."""
    tuner, fake = make({2: 1.0, 1: slower})
    fake.run(tuner, 2 * PROBE_STEPS)  # the first probe chooses
    fake.run(tuner, tuner.until_probe)
    fake.run(tuner, 2 * PROBE_STEPS)  # the second confirms
    extra = PROBE_STEPS * (slower - 1.0)
    gap = tuner.until_probe
    assert gap == MAX_INTERVAL or extra <= PROBE_SHARE * gap * 1.0 + 1e-9
    assert gap >= 2 * FIRST_INTERVAL  # never sooner than the doubling rule says


def test_the_tuner_judges_by_total_time_so_rare_stalls_count() -> None:
    tuner, fake = make({2: 1.0, 1: 1.5})
    stalls = iter([30.0, 0.0, 0.0])  # one of the two-thread steps waits for its core

    def clock_with_stalls() -> float:
        return fake.now

    tuner.clock = clock_with_stalls
    for _ in range(PROBE_STEPS):
        for _ in range(2):
            with tuner.step():
                fake.now += fake.cost[fake.threads or 1] + (
                    next(stalls) if fake.threads == 2 else 0.0
                )
    assert tuner.chosen == 1  # the median two-thread step was faster; the total was not


def test_untimed_steps_neither_probe_nor_count_down() -> None:
    tuner, fake = make({2: 1.0, 1: 3.0})
    assert fake.run(tuner, 5, timed=False) == [2] * 5
    assert tuner.plan == [] and tuner.until_probe == 0
    assert fake.run(tuner, 2)[1] == 1  # the first timed steps are the probe


def test_the_count_is_set_only_when_it_changes() -> None:
    tuner, fake = make({2: 1.0, 1: 3.0})
    fake.run(tuner, 2 * PROBE_STEPS + 20)
    assert fake.applied == [2, 1] * PROBE_STEPS + [2]


def test_a_fixed_count_holds_for_the_pass_and_is_restored_after() -> None:
    before = blas_threads()
    fastnn.set_threads(1)
    with pass_threads():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_a_short_pass_keeps_every_core_and_a_long_one_is_tuned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under auto, a pass known to be shorter than MIN_TUNED_STEPS is not probed (its
    one-thread steps would be a large share of it); an unknown or long one is."""
    monkeypatch.setattr(threads.Pools, "widest", property(lambda self: 2))
    fastnn.set_threads("auto")
    with pass_threads(steps=MIN_TUNED_STEPS - 1) as short:
        assert not isinstance(short, Tuner)
    for steps in (MIN_TUNED_STEPS, None):
        with pass_threads(steps=steps) as long:
            assert isinstance(long, Tuner)


def test_predict_on_a_few_batches_runs_no_step_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied: list[int] = []
    monkeypatch.setattr(threads.Pools, "widest", property(lambda self: 2))
    monkeypatch.setattr(threads.Pools, "set", lambda self, n, cap=True: applied.append(n))
    fastnn.set_threads("auto")
    model = fastnn.Sequential([fastnn.layers.Dense(3, "softmax")], seed=0)
    model.predict(np.ones((40, 4), np.float32), batch_size=4, verbose=0)  # 10 steps
    assert applied and 1 not in applied


def test_system_leaves_the_libraries_alone() -> None:
    before = blas_threads()
    fastnn.set_threads("system")
    with pass_threads() as policy:
        assert blas_threads() == before
        assert not isinstance(policy, Tuner)


def test_a_gpu_pass_leaves_the_libraries_alone() -> None:
    fastnn.set_threads(1)
    before = blas_threads()
    with pass_threads(cpu=False):
        assert blas_threads() == before


def test_fit_runs_under_the_setting_and_restores_the_pools() -> None:
    before = blas_threads()
    seen: list[list[int]] = []

    class Watch(fastnn.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            seen.append(blas_threads())

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    model = fastnn.Sequential([fastnn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    fastnn.set_threads(1)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Watch()])
    assert seen and all(n == 1 for counts in seen for n in counts)
    assert blas_threads() == before
    model.evaluate(x, y)
    model.predict(x)
    assert blas_threads() == before


@pytest.mark.parametrize("name", backend_params(("numpy", "numba")))
def test_compressed_rows_keep_blas_to_one_thread_only_beside_products_of_their_own(
    name: str,
) -> None:
    """numba multiplies compressed rows in kernels of its own, so BLAS (its small
    products) gets one thread; numpy gives those products to BLAS, which keeps them all."""
    seen: list[list[int]] = []

    class Watch(fastnn.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            seen.append(blas_threads())

    before = blas_threads()
    if max(before, default=1) == 1:
        pytest.skip("BLAS runs on one thread here already")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32) * (rng.random((64, 8)) < 0.3)
    y = rng.integers(0, 3, size=64)
    with fastnn.use_backend(name):
        model = fastnn.Sequential([fastnn.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        fastnn.set_threads(2)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Watch()], sparse_inputs=True)
    want = [1 if name == "numba" else min(2, n) for n in before]
    assert seen and all(counts == want for counts in seen)


def test_a_bad_setting_stops_fit_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=16)
    model = fastnn.Sequential([fastnn.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.build((None, 4))
    weights = [w.copy() for w in model.get_weights()]
    monkeypatch.setenv(threads.ENV_VAR, "-2")
    with pytest.raises(ValueError, match="FASTNN_THREADS"):
        model.fit(x, y, epochs=1, verbose=0)
    for old, new in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
