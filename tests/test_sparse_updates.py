"""The first layer's weight gradient fused with its optimizer update on compressed rows
(numba: kernels/sparse_updates.py; numpy: fastnn/backends/numpy_columns.py): the same
weights and optimizer state as the step that writes the whole gradient, and the lazy
velocity settled before anything reads it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import layers, optimizers
from fastnn.backends import numba_backend, numpy_backend, numpy_columns

from .conftest import backend_params

pytestmark = pytest.mark.parametrize("name", backend_params(("numpy", "numba")))

TOL = {"float32": 2e-5, "float64": 1e-12}


@pytest.fixture
def fused_calls(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every fused update a step runs, by rule: on numba counted at its kernel, which a
    replayed step launches without the backend's method; first layers of any size take
    the by-column path the fused update belongs to (the test data are small)."""
    calls: list[str] = []
    if name == "numpy":
        update = numpy_backend.NumpyBackend.sparse_update

        def spy_update(self: Any, rule: str, *args: Any) -> None:
            calls.append(rule)
            update(self, rule, *args)

        monkeypatch.setattr(numpy_backend.NumpyBackend, "sparse_update", spy_update)
        yield calls
        return
    from fastnn.kernels import sparse_updates

    monkeypatch.setattr(numba_backend, "SCATTER_BYTES", 0)
    run = sparse_updates.update_rows

    def spy(*args: Any) -> None:
        velocity = args[5]
        calls.append("rmsprop" if len(velocity) else "sgd")
        run(*args)

    monkeypatch.setattr(sparse_updates, "update_rows", spy)
    yield calls


def unfused(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the backends offer no fused update: the reference steps."""
    for backend in (numpy_backend.NumpyBackend, numba_backend.NumbaBackend):
        monkeypatch.setattr(backend, "fuses_sparse_update", lambda *a: False)


def data(seed: int = 3, rows: int = 90, width: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Sparse rows with columns that are always zero, one that has nonzeros in the first
    16 rows only (the first batch, unshuffled: left behind for the steps after it), and
    an empty row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, width))
    x[rng.random(x.shape) >= 0.2] = 0
    x[:, :4] = 0
    x[16:, 4] = 0
    x[:16, 4] = 1.5
    x[7] = 0
    return x, rng.integers(0, 5, rows)


def trained(
    optimizer: Callable[[], optimizers.Optimizer],
    dtype: str = "float32",
    epochs: int = 3,
    then: Callable[[fastnn.Sequential], None] | None = None,
    **fit: Any,
) -> fastnn.Sequential:
    """A 30-40-5 network fitted on compressed rows (a partial last batch each epoch)."""
    x, y = data()
    net = fastnn.Sequential(
        [layers.Dense(40, "relu"), layers.Dense(5, "softmax")],
        seed=1, dtype=dtype, sparse_inputs=True,
    )  # fmt: skip
    net.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=epochs, batch_size=16, seed=4, verbose=0, **fit)
    if then is not None:
        then(net)
    return net


def both(
    monkeypatch: pytest.MonkeyPatch, name: str, **options: Any
) -> tuple[fastnn.Sequential, fastnn.Sequential]:
    """(fused, reference): the same training with and without the fused update."""
    with fastnn.use_backend(name):
        fused = trained(**options)
        unfused(monkeypatch)
        return fused, trained(**options)


def assert_same_state(got: fastnn.Sequential, want: fastnn.Sequential, dtype: str) -> None:
    """Weights, every optimizer state array and the step count agree."""
    tol = TOL[dtype]
    for g, w in zip(got.get_weights(), want.get_weights(), strict=True):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    assert got.optimizer is not None and want.optimizer is not None
    assert got.optimizer.iterations == want.optimizer.iterations
    got_state = got.optimizer.get_state(got.backend)
    want_state = want.optimizer.get_state(want.backend)
    assert len(got_state) == len(want_state)
    for g, w in zip(got_state, want_state, strict=True):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * 1e-3)


@pytest.mark.parametrize("blocks", [True, False], ids=["column blocks", "scipy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [optimizers.SGD, optimizers.RMSprop])
def test_fused_steps_match_the_whole_gradients_steps(
    name: str,
    dtype: str,
    optimizer: Any,
    blocks: bool,
    fused_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both of numpy's ways to the gradient rows: BLAS on the batch's columns written
    out dense, and scipy's products where that block would be too sparse."""
    if not blocks:
        monkeypatch.setattr(numpy_columns, "BLOCK_DENSITY", 2.0)  # no block is that dense
    fused, reference = both(monkeypatch, name, optimizer=optimizer, dtype=dtype)
    assert len(fused_calls) == 3 * 6  # every step of every epoch was fused
    assert_same_state(fused, reference, dtype)


@pytest.mark.parametrize("shuffle", [True, False])
def test_rows_left_behind_for_many_steps_catch_up(
    name: str, shuffle: bool, fused_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unshuffled, input column 4 has nonzeros in the first batch of each epoch only:
    its velocity row misses five steps an epoch, then is touched again."""
    fused, reference = both(monkeypatch, name, optimizer=optimizers.RMSprop, shuffle=shuffle)
    assert len(fused_calls) == 3 * 6
    assert_same_state(fused, reference, "float32")
    assert fused.optimizer is not None
    velocity = fused.optimizer.get_state(fused.backend)[0]
    np.testing.assert_array_equal(velocity[:4], 0)  # never a gradient
    assert np.any(velocity[4] > 0)


@pytest.mark.parametrize(
    "next_step",
    [
        pytest.param(
            lambda net: net.fit(*data(6), epochs=1, seed=9, verbose=0, sparse_inputs=False),
            id="dense step",
        ),
        pytest.param(lambda net: setattr(net.optimizer, "rho", 0.5), id="rho changed"),
        pytest.param(lambda net: setattr(net.optimizer, "iterations", 40), id="count reset"),
    ],
)
def test_the_lazy_velocity_settles_before_anything_changes_its_rules(
    name: str,
    next_step: Callable[[fastnn.Sequential], Any],
    fused_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fused epochs, then a step on dense rows (which reads every row), a new rho, or a
    new step count, then fused epochs again: as the whole-gradient steps have it."""

    def then(net: fastnn.Sequential) -> None:
        next_step(net)
        x, y = data(7)
        net.fit(x, y, epochs=2, batch_size=16, seed=8, verbose=0)

    fused, reference = both(monkeypatch, name, optimizer=optimizers.RMSprop, then=then)
    assert len(fused_calls) == 5 * 6
    assert_same_state(fused, reference, "float32")


def test_a_saved_model_holds_the_settled_state(
    name: str, fused_calls: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    fused, reference = both(monkeypatch, name, optimizer=optimizers.RMSprop)
    fused.save(tmp_path / "fused.keras")
    reference.save(tmp_path / "reference.keras")
    assert fused_calls
    assert_same_state(
        fastnn.load_model(tmp_path / "fused.keras"),
        fastnn.load_model(tmp_path / "reference.keras"),
        "float32",
    )


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(optimizers.Adam, id="adam"),
        pytest.param(lambda: optimizers.SGD(momentum=0.9), id="sgd momentum"),
        pytest.param(lambda: optimizers.RMSprop(momentum=0.5), id="rmsprop momentum"),
        pytest.param(lambda: optimizers.RMSprop(centered=True), id="centered"),
        pytest.param(lambda: optimizers.RMSprop(epsilon=0.0), id="epsilon 0"),
        pytest.param(lambda: optimizers.RMSprop(clipnorm=1.0), id="clipnorm"),
        pytest.param(lambda: optimizers.SGD(weight_decay=0.1), id="weight decay"),
    ],
)
def test_rules_that_move_zero_gradient_rows_write_the_whole_gradient(
    name: str, optimizer: Any, fused_calls: list[str]
) -> None:
    """Such rules (and epsilon 0, where a zero velocity makes NaN weights in the dense
    step) do not offer the fused step, and training does not take it."""
    assert not optimizer().fuses_sparse
    if getattr(optimizer(), "epsilon", 1.0) == 0:
        return  # its training diverges, as the dense step's does
    with fastnn.use_backend(name):
        trained(optimizer, epochs=1)
    assert fused_calls == []


@pytest.mark.parametrize("penalty", [True, False], ids=["kernel penalty", "frozen"])
def test_a_kernel_penalty_or_a_frozen_first_layer_is_not_fused(
    name: str, penalty: bool, fused_calls: list[str]
) -> None:
    first = layers.Dense(40, "relu", kernel_regularizer="l2" if penalty else None)
    first.trainable = penalty
    with fastnn.use_backend(name):
        net = fastnn.Sequential([first, layers.Dense(5, "softmax")], seed=1, sparse_inputs=True)
        net.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        net.fit(*data(), epochs=1, batch_size=16, verbose=0)
    assert fused_calls == []


def test_an_all_zero_batch_changes_nothing_but_the_velocity(
    name: str, fused_calls: list[str]
) -> None:
    x, y = data()
    with fastnn.use_backend(name):
        net = trained(optimizers.RMSprop, epochs=1)
        assert net.optimizer is not None
        kernel = net.get_weights()[0].copy()
        velocity = net.optimizer.get_state(net.backend)[0].copy()
        net.train_on_batch(np.zeros_like(x[:16]), y[:16])
        np.testing.assert_array_equal(net.get_weights()[0], kernel)
        np.testing.assert_allclose(
            net.optimizer.get_state(net.backend)[0], np.float32(0.9) * velocity, rtol=1e-6
        )
