"""The GPU path, checked without a GPU: the cupy backend's code runs here on the emulated
GPU (``cupy-emulated``), and each test below once failed there.

* operands of any layout reach the kernels contiguous (strided or reversed labels were
  read as if contiguous, and out of bounds);
* losses, counts and column sums are the same bit for bit from run to run (a float
  atomic made evaluate() differ in its last bits);
* a subnormal input is not taken as 0 by a decision (CuPy compiles with -ftz=true);
* a wrong dtype or shape is refused, or computed as NumPy computes it, never read as
  another type's bytes (tests/test_backend_boundary.py, every backend);
* a training step is a handful of launches, and replays as a CUDA graph with the same
  numbers as eager steps.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers

from .conftest import backend_params

EMULATED = backend_params(("cupy-emulated",))
ALL = backend_params()


def _on(backend: Any, a: np.ndarray, layout: str) -> Any:
    """``a`` on ``backend`` in a layout: C order, every other entry, or reversed."""
    if layout == "strided":
        wide = np.zeros((2 * len(a), *a.shape[1:]), a.dtype)
        wide[::2] = a
        return backend.asarray(wide)[::2]
    if layout == "reversed":
        return backend.asarray(a[::-1].copy())[::-1]
    return backend.asarray(a)


# ------------------------------------------------------------ layouts of labels
@pytest.mark.parametrize("layout", ["strided", "reversed"])
@pytest.mark.parametrize("name", ALL)
def test_counts_read_labels_and_targets_of_any_layout(name: str, layout: str) -> None:
    backend = fastnn.get_backend(name)
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 40)
    labels[::3] = scores.argmax(axis=1)[::3]  # some right, some wrong
    expected = int((scores.argmax(axis=1) == labels).sum())
    got = backend.count_argmax_matches(backend.asarray(scores), _on(backend, labels, layout))
    assert int(got) == expected
    targets = (rng.random((40, 7)) > 0.5).astype(np.float32)
    expected = int(((scores > 0.1) == targets).sum())
    got = backend.count_threshold_matches(
        _on(backend, scores, layout), _on(backend, targets, layout), 0.1
    )
    assert int(got) == expected


# ----------------------------------------------------------------- determinism
#: optimizers of the steps below: plain, and clipping by the joint norm (which reads the
#: norms a kernel of its own leaves on the device) with weight decay
OPTIMIZERS = {
    "adam": lambda: fastnn.optimizers.Adam(),
    "adam-clipped-decayed": lambda: fastnn.optimizers.Adam(global_clipnorm=0.05, weight_decay=0.01),
}


def _trained(name: str, optimizer: str = "adam", **fit: Any) -> fastnn.Sequential:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    y = rng.integers(0, 5, 300)
    with fastnn.use_backend(name):
        model = fastnn.Sequential([layers.Dense(16, "relu"), layers.Dense(5, "softmax")], seed=0)
        model.compile(optimizer=OPTIMIZERS[optimizer](), loss="sparse_categorical_crossentropy",
                      metrics=["acc"])  # fmt: skip
        model.fit(x, y, epochs=2, batch_size=64, verbose=0, seed=0, **fit)
    model.x, model.y = x, y  # type: ignore[attr-defined]
    return model


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", ALL)
def test_evaluate_and_training_are_the_same_bit_for_bit_every_run(
    name: str, optimizer: str
) -> None:
    """On the emulated GPU every launch runs its blocks and threads in a new random order:
    only sums combined in a fixed order come out the same each time."""
    first, second = _trained(name, optimizer), _trained(name, optimizer)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with fastnn.use_backend(name):
        results = {tuple(first.evaluate(first.x, first.y)) for _ in range(4)}  # type: ignore[attr-defined]
    assert len(results) == 1


@pytest.mark.parametrize("name", ALL)
def test_column_sums_are_the_same_bit_for_bit_every_run(name: str) -> None:
    backend = fastnn.get_backend(name)
    x = backend.asarray(np.random.default_rng(2).standard_normal((500, 70)) * 1e3)
    sums = [backend.to_numpy(backend.sum_rows(x)) for _ in range(5)]
    for s in sums[1:]:
        np.testing.assert_array_equal(s, sums[0])
    np.testing.assert_allclose(sums[0], backend.to_numpy(x).sum(axis=0), rtol=1e-12)


# ---------------------------------------------------------- subnormal inputs
@pytest.mark.parametrize(("dtype", "tiny"), [(np.float32, 1e-40), (np.float64, 1e-310)])
@pytest.mark.parametrize("name", ALL)
def test_decisions_see_subnormal_inputs(name: str, dtype: type, tiny: float) -> None:
    """Only results below the smallest normal number may become 0, never inputs: a
    subnormal output of a ReLU still passes its gradient on, counts as above 0, and
    beats a smaller subnormal in an argmax."""
    backend = fastnn.get_backend(name)
    dy = backend.asarray(np.array([[5.0, 5.0]], dtype))
    y = backend.asarray(np.array([[tiny, 0.0]], dtype))
    np.testing.assert_array_equal(backend.to_numpy(backend.relu_backward(dy, y)), [[5.0, 0.0]])
    scores = backend.asarray(np.array([[tiny, 2 * tiny, 0.0]], dtype))
    assert int(backend.count_argmax_matches(scores, backend.asarray(np.array([1])))) == 1
    targets = backend.asarray(np.array([[1.0, 1.0, 0.0]], dtype))
    assert int(backend.count_threshold_matches(scores, targets, 0.0)) == 3


# ----------------------------------------------------- launches and CUDA graphs
def _keras_step_model(name: str) -> tuple[fastnn.Sequential, np.ndarray, np.ndarray]:
    """The `keras` recipe's network and optimizer, on 3 batches of 128 random images."""
    rng = np.random.default_rng(0)
    x = rng.random((384, 784), dtype=np.float32)
    y = rng.integers(0, 10, 384)
    with fastnn.use_backend(name):
        model = fastnn.Sequential(
            [layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")], seed=0
        )
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])  # fmt: skip
    return model, x, y


@pytest.mark.parametrize("graphs", ["0", "1"])
@pytest.mark.parametrize("name", EMULATED)
def test_a_keras_step_is_at_most_ten_launches(
    name: str, graphs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted in an epoch's steady state: every launch of the emulated GPU (kernels,
    products, CuPy operations, copies, fills), eager or replayed from a CUDA graph."""
    from fastnn.backends import cuda_emulation

    monkeypatch.setenv("FASTNN_CUDA_GRAPHS", graphs)
    model, x, y = _keras_step_model(name)
    counts: list[Any] = []

    class Count(fastnn.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self.before = cuda_emulation.launches()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            counts.append(cuda_emulation.launches() - self.before)

    with fastnn.use_backend(name):
        model.fit(x, y, epochs=2, batch_size=128, verbose=0, seed=0, callbacks=[Count()])
    steady = counts[-1]
    steady.pop("copy", None)  # the hook's own read of the step's loss, not the step's
    work = {kind: n for kind, n in steady.items() if kind != "graph"}
    assert sum(work.values()) <= 10, steady
    assert work["gemm"] == 5 and work["kernel"] == 5, steady
    assert steady.get("graph", 0) == (1 if graphs == "1" else 0), steady


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample-weights"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", EMULATED)
def test_graph_replays_give_the_eager_numbers(
    name: str, optimizer: str, weighted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replayed steps (sample weights, clipping and decay too: their work is all kernels
    on fixed buffers) end with the weights and figures the eager steps give."""
    results = {}
    backend = fastnn.get_backend(name)
    replays = backend.graph_status()["replays"]  # type: ignore[attr-defined]
    fit = {"sample_weight": np.linspace(0.0, 2.0, 300)} if weighted else {}
    for graphs in ("0", "1"):
        monkeypatch.setenv("FASTNN_CUDA_GRAPHS", graphs)
        model = _trained(name, optimizer, **fit)
        with fastnn.use_backend(name):
            logs = model.evaluate(model.x, model.y)  # type: ignore[attr-defined]
        results[graphs] = (model.get_weights(), logs, model.history.history)  # type: ignore[union-attr]
    assert backend.graph_status()["replays"] > replays  # type: ignore[attr-defined]
    for a, b in zip(results["0"][0], results["1"][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert results["0"][1:] == results["1"][1:]


@pytest.mark.parametrize("name", EMULATED)
def test_a_failed_capture_warns_and_training_goes_on(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastnn.backends import cuda_emulation

    def refuse(self: Any, mode: Any = None) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    reference = _trained(name).get_weights()
    backend = fastnn.get_backend(name)
    monkeypatch.setattr(backend, "_graphs", type(backend._graphs)(backend))  # type: ignore[attr-defined]
    monkeypatch.setattr(cuda_emulation.Stream, "begin_capture", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        weights = _trained(name).get_weights()
    assert any("CUDA graph capture of a training step failed" in str(w.message) for w in caught)
    assert "operation not permitted" in backend.graph_status()["failure"]  # type: ignore[attr-defined]
    for a, b in zip(weights, reference, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_the_loss_adds_the_bias_before_any_lane_reads_the_row(name: str) -> None:
    """The fused loss adds the last layer's bias to the outputs in place, then takes each
    row's maximum. A lane that read an entry before the lane owning it had added its bias
    (as the kernel once did, starting its maximum from a row's first entry) would shift
    the row by a stale maximum: here 200 where the true one is near 0, so every exp()
    underflows and the loss is NaN."""
    backend = fastnn.get_backend(name)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((8, 40)).astype(np.float32)
    z[:, 0] = 200.0
    bias = np.zeros(40, np.float32)
    bias[0] = -300.0
    labels = rng.integers(0, 40, 8)
    loss, grad = backend.loss_and_gradient(
        "sparse_softmax_cross_entropy", backend.asarray(z.copy()), backend.asarray(labels),
        bias=backend.asarray(bias),
    )  # fmt: skip
    shifted = (z + bias).astype(np.float64)
    shifted -= shifted.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(8), labels])
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(backend.to_numpy(grad)).all()
