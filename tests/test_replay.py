"""Training steps replayed as their recorded backend calls (fastnn/backends/replay.py):
the same numbers as steps run in full, and no replay where a step's calls change."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.backends import replay
from fastnn.training import TrainingDivergedError

pytest.importorskip("numba")


def _data(sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1000, 30)).astype(np.float32)
    if sparse:  # a fifth nonzero: fit compresses the rows and fuses the first update
        x *= rng.random(x.shape) < 0.2
    return x, rng.integers(0, 5, 1000)


def _fit(optimizer: str, sparse: bool, monkeypatch: pytest.MonkeyPatch, setting: str) -> Any:
    monkeypatch.setenv(replay.REPLAY_VAR, setting)
    x, y = _data(sparse)
    with fastnn.use_backend("numba"):
        backend = fastnn.get_backend("numba")
        before = backend._tapes.replays
        net = fastnn.Sequential([layers.Dense(64, "relu"), layers.Dense(5, "softmax")], seed=2)
        net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])  # fmt: skip
        rates = fastnn.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.5)
        history = net.fit(x, y, epochs=3, batch_size=64, validation_split=0.1, seed=1,
                          sparse_inputs=sparse or None, callbacks=[rates], verbose=0)  # fmt: skip
        return net.get_weights(), history.history, backend._tapes.replays - before


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "compressed rows"])
@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd", "adam"])
def test_replayed_steps_give_the_numbers_of_full_ones(
    optimizer: str, sparse: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shuffled epochs of 15 steps (the last partial), validation, and a rate halved each
    epoch (a new key each epoch): weights and history those of full steps.

    Within float32 rounding, not bitwise: the CPU path's sums round differently with the
    alignment of the arrays they get, which depends on what an earlier test left
    allocated (full steps against full steps differ alike; in a fresh process each, a
    replayed fit gave the full fit's bits). A step replayed wrongly (a row's velocity
    decayed twice, a stale buffer) moves the weights by far more."""
    full_weights, full_history, none = _fit(optimizer, sparse, monkeypatch, "0")
    weights, history, replays = _fit(optimizer, sparse, monkeypatch, "1")
    assert none == 0 and replays > 20  # 3 epochs x 14 full steps, less 3 a key to record
    for got, want in zip(weights, full_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert history.keys() == full_history.keys()
    for name, values in history.items():
        np.testing.assert_allclose(values, full_history[name], rtol=1e-5, atol=1e-6)


def test_a_replayed_step_whose_loss_is_not_finite_is_not_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rate that overflows the weights after some steps: the same error, at the same
    step, and the same weights (those before it) as when every step runs in full."""
    x, y = _data(sparse=False)
    results = []
    for setting in ("0", "1"):
        monkeypatch.setenv(replay.REPLAY_VAR, setting)
        with fastnn.use_backend("numba"):
            net = fastnn.Sequential([layers.Dense(64, "relu"), layers.Dense(5, "softmax")],
                                    seed=2)  # fmt: skip
            net.compile(optimizer=fastnn.optimizers.SGD(learning_rate=3e3),
                        loss="sparse_categorical_crossentropy")  # fmt: skip
            with pytest.raises(TrainingDivergedError) as raised:
                net.fit(x, y, epochs=50, batch_size=64, seed=1, verbose=0)
            results.append((str(raised.value), net.get_weights()))
    (full_message, full_weights), (message, weights) = results
    assert message == full_message
    assert "step 1," not in message  # far enough in for the replay to be running
    for got, want in zip(weights, full_weights, strict=True):  # finite: before the step
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_records_go_when_the_fit_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """They hold the fit's arrays (its data, the model's buffers) alive."""
    _fit("rmsprop", True, monkeypatch, "1")
    assert fastnn.get_backend("numba")._tapes.tapes == {}


def test_models_trained_side_by_side_in_threads_replay_their_own_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two threads share the backend (one records at a time, each its own calls): each
    model ends as it does trained alone with every step in full."""
    import threading

    alone = [_fit(optimizer, True, monkeypatch, "0")[0] for optimizer in ("rmsprop", "adam")]
    monkeypatch.setenv(replay.REPLAY_VAR, "1")
    together: dict[str, Any] = {}

    def train(optimizer: str) -> None:
        together[optimizer] = _fit(optimizer, True, monkeypatch, "1")[0]

    threads = [threading.Thread(target=train, args=(o,)) for o in ("rmsprop", "adam")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for weights, optimizer in zip(alone, ("rmsprop", "adam"), strict=True):
        for got, want in zip(together[optimizer], weights, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class _Backend:
    """Just enough of a backend: its calls go into ``log``."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.buffer = np.zeros(3)

    def gather(self, out: np.ndarray, n: int) -> None:
        self.log.append("gather")
        out += n

    def loss_and_gradient(self, out: np.ndarray) -> float:
        self.log.append("loss")
        return float(out.sum())

    def update(self, out: np.ndarray) -> None:
        self.log.append("update")


def _tapes_run(steps: int, step: Any, backend: _Backend) -> list[str]:
    tapes = replay.StepTapes(backend)
    checks: list[int] = []
    for _ in range(steps):
        tapes.run(step, "key", lambda: checks.append(len(backend.log)))
    return [*backend.log, f"replays {tapes.replays}", f"checks at {checks}"]


def test_a_step_is_replayed_after_two_records_agree() -> None:
    """Step 1 runs as it is, steps 2 and 3 are recorded and agree, steps 4 and 5 are
    their calls again (the step function itself is not called), each checked right after
    the loss's call."""
    backend = _Backend()
    ran: list[int] = []

    def step() -> None:
        ran.append(1)
        backend.gather(backend.buffer, 1)
        backend.loss_and_gradient(backend.buffer)
        backend.update(backend.buffer)

    log = _tapes_run(5, step, backend)
    assert len(ran) == 3
    assert log[-2:] == ["replays 2", "checks at [11, 14]"]
    assert log[:-2] == ["gather", "loss", "update"] * 5
    np.testing.assert_array_equal(backend.buffer, 5)  # every step's gather happened
    assert "gather" not in vars(backend)  # the recording's wrappers are gone


@pytest.mark.parametrize("change", ["a number", "a new array"])
def test_a_step_whose_calls_change_is_never_replayed(change: str) -> None:
    backend = _Backend()
    count = [0]

    def step() -> None:
        count[0] += 1
        out = backend.buffer if change == "a number" else np.zeros(3)
        backend.gather(out, count[0] if change == "a number" else 1)
        backend.loss_and_gradient(out)

    log = _tapes_run(6, step, backend)
    assert count[0] == 6 and log[-2] == "replays 0"


class _Launching:
    """A backend that launches the kernels of a module of its own (``_kernels``): ``scale``
    says its launch was its whole effect, ``shift`` does not say so, ``counted`` says so
    but passes its kernel a count that changes, ``outer``'s nested call says so while
    ``outer`` itself changes the buffer outside a kernel, and ``both`` says so of its own
    code, which calls ``scale`` and ``shift``."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.buffer = np.zeros(3)
        self.count = 0
        self._kernels = types.ModuleType(replay.KERNELS + ".fake")
        self._kernels.add = np.add  # type: ignore[attr-defined]
        self.tapes = replay.StepTapes(self)

    def scale(self, out: np.ndarray) -> None:
        self.log.append("scale")
        self._kernels.add(out, 1.0, out=out)
        self.tapes.launched_only()

    def shift(self, out: np.ndarray) -> None:
        self.log.append("shift")
        self._kernels.add(out, 10.0, out=out)

    def counted(self, out: np.ndarray) -> None:
        self.count += 1
        self._kernels.add(out, float(self.count), out=out)
        self.tapes.launched_only()

    def outer(self, out: np.ndarray) -> None:
        self.log.append("outer")
        self.scale(out)
        out *= 2

    def both(self, out: np.ndarray) -> None:
        self.log.append("both")
        self.scale(out)
        self.shift(out)
        self.tapes.launched_only()

    def twice(self, out: np.ndarray) -> None:
        self.log.append("twice")
        self.scale(out)
        self.scale(out)
        self.tapes.launched_only()

    def loss_and_gradient(self, out: np.ndarray) -> float:
        return float(out.sum())


def _launching_run(calls: list[str], steps: int = 5) -> tuple[_Launching, Any]:
    backend = _Launching()

    def step() -> None:
        for name in calls:
            getattr(backend, name)(backend.buffer)

    for _ in range(steps):
        backend.tapes.run(step, "key", None)
    return backend, backend.tapes.tapes["key"]


def test_a_call_that_says_it_only_launched_kernels_is_replayed_as_its_launches() -> None:
    """``scale`` said so: steps 4 and 5 launch its kernel without its Python (no log);
    ``shift`` did not: it runs as a call. Every step's effect happens."""
    backend, tape = _launching_run(["scale", "loss_and_gradient", "shift"])
    assert tape.launched == {"scale"} and backend.tapes.replays == 2
    assert backend.log == ["scale", "shift"] * 3 + ["shift"] * 2
    np.testing.assert_array_equal(backend.buffer, 5 * 11.0)
    assert isinstance(backend._kernels, types.ModuleType)  # the recording's view is gone


def test_launches_that_differ_between_the_records_are_replayed_as_the_call() -> None:
    backend, tape = _launching_run(["counted", "loss_and_gradient"])
    assert tape.launched == frozenset() and backend.tapes.replays == 2
    np.testing.assert_array_equal(backend.buffer, 1 + 2 + 3 + 4 + 5.0)


def test_a_call_is_its_launches_only_if_it_and_every_call_it_makes_say_so() -> None:
    """``outer`` doubles the buffer itself: its nested ``scale`` saying so must not make
    ``outer`` a launch of ``scale``'s kernel alone; nor may ``both``, whose nested
    ``shift`` does not say so; ``twice`` and its two ``scale`` calls do."""
    backend, tape = _launching_run(["outer", "loss_and_gradient"])
    assert tape.launched == frozenset() and backend.log.count("outer") == 5
    want = 0.0
    for _ in range(5):
        want = (want + 1) * 2
    np.testing.assert_array_equal(backend.buffer, want)
    backend, tape = _launching_run(["both", "twice", "loss_and_gradient"])
    assert tape.launched == {"twice"}
    assert backend.log.count("both") == 5 and backend.log.count("twice") == 3
    np.testing.assert_array_equal(backend.buffer, 5 * 13.0)


@pytest.mark.parametrize("classes", [10, 20], ids=["thin head", "wide head"])
def test_a_keras_step_replays_as_its_kernels(classes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls of a step on compressed rows with RMSprop (a first layer large enough
    for the fused sparse update) that do only what their kernels do are replayed as
    those kernels (the last layer with its loss: kernels of its own for a thin layer,
    the products and the loss one by one for a wide one); with clipnorm, whose scales
    come from the gradients' values each step, the update runs as a call, and the
    weights are those of full steps."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((640, 300)) * (rng.random((640, 300)) < 0.2)).astype(np.float32)
    y = rng.integers(0, classes, 640)
    seen: list[frozenset[str]] = []
    original = replay.Tape.play

    def play(tape: replay.Tape, check: Any) -> None:
        seen.append(tape.launched)
        original(tape, check)

    def fit(setting: str, clipnorm: float | None) -> list[np.ndarray]:
        monkeypatch.setenv(replay.REPLAY_VAR, setting)
        seen.clear()
        with fastnn.use_backend("numba"):
            net = fastnn.Sequential(
                [layers.Dense(256, "relu"), layers.Dense(classes, "softmax")], seed=3
            )
            net.compile(optimizer=fastnn.optimizers.RMSprop(clipnorm=clipnorm),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
            net.fit(x, y, epochs=2, batch_size=64, seed=1, sparse_inputs=True, verbose=0)
        return net.get_weights()

    monkeypatch.setattr(replay.Tape, "play", play)
    hot = {"gather_batch", "sparse_dense", "dense_loss_step", "bias_activation_backward",
           "apply_updates", "sparse_update"}  # fmt: skip
    fit("1", None)
    assert len(seen) > 10 and all(launched >= hot for launched in seen)
    weights = fit("1", 0.05)
    # (clipping needs whole gradients: no fused sparse update either)
    assert len(seen) > 10 and all(launched == hot - {"apply_updates", "sparse_update"}
                                  for launched in seen)  # fmt: skip
    for got, want in zip(weights, fit("0", 0.05), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_arrays_are_the_same_argument_only_as_the_same_memory() -> None:
    a = np.zeros((4, 3))
    assert replay.same(a, a[:]) and replay.same([a, 1.5], [a.view(), 1.5])
    assert not replay.same(a, a.copy())
    assert not replay.same(a, a[:2]) and not replay.same(a, a.T)
    assert not replay.same({"x": a, "n": 1}, {"x": a, "n": 2})


def test_a_bad_replay_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """At once, and by fit before its first step (the weights as they were)."""
    monkeypatch.setenv(replay.REPLAY_VAR, "maybe")
    message = "FASTNN_STEP_REPLAY must be 1 .on. or 0 .off.; received FASTNN_STEP_REPLAY='maybe'"
    with pytest.raises(ValueError, match=message):
        replay.replay_wanted()
    with fastnn.use_backend("numba"):
        net = fastnn.Sequential(
            [layers.Dense(4, "relu", input_dim=3), layers.Dense(2, "softmax")], seed=2
        )
        net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        before = net.get_weights()
        with pytest.raises(ValueError, match=message):
            net.fit(np.ones((8, 3), np.float32), np.zeros(8, int), epochs=1, verbose=0)
    for got, want in zip(net.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)
