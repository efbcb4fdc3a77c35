"""The peers compute what fastnn computes, from the same weights and batches."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.benchmarks import peers

ROWS = 512


def _peer_params() -> list[Any]:
    params = []
    for peer in peers.PEERS:
        reason = peer.probe()
        marks = [pytest.mark.skip(reason=f"{peer.name}: {reason}")] if reason else []
        params.append(pytest.param(peer, marks=marks, id=peer.name))
    return params


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """A learnable problem: the label is the block of pixels with the largest sum."""
    rng = np.random.default_rng(3)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = x[:, :780].reshape(ROWS, 10, 78).sum(axis=2).argmax(axis=1)
    return x, y


def _fastnn_epoch(x: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """(initial weights, weights after one unshuffled epoch, its loss) on the numpy backend."""
    with fastnn.use_backend("numpy"):
        model = fastnn.Sequential(
            [
                fastnn.layers.Dense(512, activation="relu", input_dim=784),
                fastnn.layers.Dense(10, activation="softmax"),
            ],
            seed=0,
        )
        model.compile(optimizer=fastnn.optimizers.RMSprop(), loss="sparse_categorical_crossentropy")
        start = model.get_weights()
        history = model.fit(x, y, epochs=1, batch_size=128, shuffle=False, verbose=0)
        return start, model.get_weights(), history.history["loss"][0]


#: peers whose epoch is compared by its loss only, and loosely. PyTorch's RMSprop
#: divides by sqrt(v) + eps where fastnn and Keras divide by sqrt(v + eps): the first
#: steps, when v is still small, differ (a 10% higher loss after these 4 steps).
TOLERANCE = {"pytorch cpu": None, "pytorch cuda": None}


@pytest.mark.parametrize("peer", _peer_params())
def test_peer_trains_as_fastnn_does(peer: peers.Peer, data: tuple[np.ndarray, np.ndarray]) -> None:
    start, after, loss = _fastnn_epoch(*data)
    epochs = peer.build(*data, seed=0, weights=tuple(start), shuffle=False)
    seconds = epochs()
    assert seconds > 0
    assert len(epochs.losses) == 1
    if peer.name in TOLERANCE:
        assert epochs.losses[0] == pytest.approx(loss, rel=0.15)
        return
    assert epochs.losses[0] == pytest.approx(loss, rel=1e-4)
    for got, want in zip(epochs.weights(), after, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("peer", _peer_params())
def test_peer_loss_falls_over_epochs(peer: peers.Peer, data: tuple[np.ndarray, np.ndarray]) -> None:
    epochs = peer.build(*data, seed=1)
    epochs()
    epochs()
    assert epochs.losses[1] < epochs.losses[0]
    assert all(np.isfinite(w).all() for w in epochs.weights())


def test_runnable_partitions_the_peers_by_probe() -> None:
    ready, reasons = peers.runnable()
    assert [p.name for p in ready] + list(reasons) != []
    assert {p.name for p in ready} | set(reasons) == {p.name for p in peers.PEERS}
    assert not {p.name for p in ready} & set(reasons)
    assert "numpy (tutorial style)" in {p.name for p in ready}  # needs nothing installed


@pytest.mark.parametrize(
    ("module", "peer_name", "message"),
    [
        ("torch", "pytorch cpu", "PyTorch is not installed"),
        ("jax", "jax (jit)", "JAX is not installed"),
        ("keras", "keras 3", "Keras 3 is not installed"),
    ],
)
def test_a_missing_framework_is_named(
    monkeypatch: pytest.MonkeyPatch, module: str, peer_name: str, message: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name)
    )
    peer = next(p for p in peers.PEERS if p.name == peer_name)
    assert message in (peer.probe() or "")
    _, reasons = peers.runnable()
    assert message in reasons[peer_name]


def test_a_peer_times_in_a_process_of_its_own(data: tuple[np.ndarray, np.ndarray]) -> None:
    numpy_peer = peers.PEERS[0]
    start, _, _ = _fastnn_epoch(*data)
    measured = peers.time_in_subprocess(numpy_peer, *data, tuple(start), rounds=2)
    assert len(measured["runs"]) == 2 and all(t > 0 for t in measured["runs"])
    assert len(measured["losses"]) == 3  # the first epoch and the two timed ones
    in_process = numpy_peer.build(*data, seed=0, weights=tuple(start))
    in_process()
    assert measured["losses"][0] == pytest.approx(in_process.losses[0], rel=1e-6)


def test_peer_processes_get_the_users_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = pytest.importorskip("fastnn.kernels.threads")
    monkeypatch.setattr(threads, "SET_BY_FASTNN", set())
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.configure()  # fastnn's own default: not the user's, so not passed on
    assert os.environ["OMP_WAIT_POLICY"] == threads.WAIT_POLICY
    assert "OMP_WAIT_POLICY" not in peers._users_environment()
    monkeypatch.setattr(threads, "SET_BY_FASTNN", set())
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice travels
    threads.configure()
    assert peers._users_environment()["OMP_WAIT_POLICY"] == "ACTIVE"
