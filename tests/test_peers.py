"""The peers train what fastnn trains, from the same weights and on the same batches.

Peers whose framework is not installed (in CI: all but the NumPy one) are skipped
with their probe's reason.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.benchmarks import peers

ROWS = 500  # three batches of 128 and a last one of 116: the partial batch is trained too
STEPS = math.ceil(ROWS / peers.BATCH)
#: float32 noise between identical computations: measured differences are below 1e-7
#: in the loss and 2e-7 in any weight, whose epoch moves it by up to 1e-2.
RTOL, ATOL = 1e-4, 1e-5
#: torch.optim.RMSprop divides by sqrt(v) + eps where fastnn (and Keras) divide by
#: sqrt(v + eps). With eps = 1e-7 the rules part for gradients below about 1e-3,
#: which PyTorch moves by nearly lr / sqrt(1 - rho) in the first steps: measured, a
#: first-epoch loss 10% above fastnn's and weights up to 1.4e-2 apart.
#: scikit-learn has no RMSprop: it trains with Adam, whose steps are also at most about lr.
RULE_DIFFERS = {"pytorch cpu", "pytorch cuda", "scikit-learn mlp"}
#: an epsilon too small to matter in either rule (gradients that are exactly 0 move
#: nothing in both): with it PyTorch's RMSprop is fastnn's.
NEGLIGIBLE_EPSILON = 1e-30
#: how far the second epoch's loss falls below the first's, at least, where not 0.9
FALLS_TO = {"scikit-learn mlp": 0.95}


def _peer_params(names: set[str] | None = None) -> list[Any]:
    """PEERS (those in ``names``), each skipped with its probe's reason where it cannot run."""
    params = []
    for peer in peers.PEERS:
        if names is not None and peer.name not in names:
            continue
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


Run = tuple[peers.Weights, peers.Weights, list[float]]


def _fastnn_fit(
    x: np.ndarray, y: np.ndarray, epochs: int, shuffle: bool, epsilon: float = peers.EPSILON
) -> Run:
    """(start weights, weights after ``epochs`` epochs, their losses) on the numpy backend."""
    with fastnn.use_backend("numpy"):
        model = fastnn.Sequential(
            [
                fastnn.layers.Dense(512, activation="relu", input_dim=784),
                fastnn.layers.Dense(10, activation="softmax"),
            ],
            seed=0,
        )
        model.compile(
            optimizer=fastnn.optimizers.RMSprop(epsilon=epsilon),
            loss="sparse_categorical_crossentropy",
        )
        w1, b1, w2, b2 = model.get_weights()
        history = model.fit(x, y, epochs=epochs, batch_size=128, shuffle=shuffle, seed=0, verbose=0)
        a1, c1, a2, c2 = model.get_weights()
    return (w1, b1, w2, b2), (a1, c1, a2, c2), history.history["loss"]


@pytest.fixture(scope="module")
def fastnn_fit(data: tuple[np.ndarray, np.ndarray]) -> Callable[..., Run]:
    """``_fastnn_fit`` on ``data``, each setting trained once per module."""
    return functools.cache(functools.partial(_fastnn_fit, *data))


@pytest.fixture(scope="module")
def one_epoch(fastnn_fit: Callable[..., Run]) -> Run:
    return fastnn_fit(1, False)


def _assert_same_training(
    epochs: peers.Epochs, weights: peers.Weights, losses: list[float]
) -> None:
    assert epochs.losses == pytest.approx(losses, rel=RTOL)
    for got, want in zip(epochs.weights(), weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("peer", _peer_params())
def test_one_epoch_matches_fastnn(
    peer: peers.Peer, data: tuple[np.ndarray, np.ndarray], one_epoch: Run
) -> None:
    start, after, losses = one_epoch
    epochs = peer.build(*data, seed=0, weights=start, shuffle=False)
    seconds = epochs()
    assert isinstance(seconds, float) and seconds > 0
    got = epochs.weights()
    assert [(w.shape, w.dtype) for w in got] == [(s, np.float32) for s in peers.SHAPES]
    if peer.name not in RULE_DIFFERS:
        _assert_same_training(epochs, after, losses)
        return
    if peer.name != "scikit-learn mlp":  # Adam's smaller first steps: 2.62 against 3.89
        assert epochs.losses[0] == pytest.approx(losses[0], rel=0.2)
    # Under either rule v >= (1 - rho) g**2 after a step, so a step moves a weight by at
    # most lr / sqrt(1 - rho): runs from the same start drift at most twice that a step.
    # Weights that started elsewhere, or a wrong learning rate, land outside.
    drift = 2 * STEPS * peers.LEARNING_RATE / math.sqrt(1 - peers.RHO)
    for got_w, want_w in zip(got, after, strict=True):
        assert np.abs(got_w - want_w).max() < drift


@pytest.mark.parametrize(
    "peer", _peer_params({p.name for p in peers.PEERS} - {"keras 3", "scikit-learn mlp"})
)
def test_shuffled_epochs_see_fastnns_batches(
    peer: peers.Peer,
    data: tuple[np.ndarray, np.ndarray],
    one_epoch: Run,
    fastnn_fit: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fit(seed=0) draws a permutation per epoch from one generator; so do the peers.

    PyTorch runs with an epsilon that neither rule notices, which makes this its tight
    check against fastnn (Keras and scikit-learn shuffle by their own means).
    """
    epsilon = NEGLIGIBLE_EPSILON if peer.name in RULE_DIFFERS else peers.EPSILON
    monkeypatch.setattr(peers, "EPSILON", epsilon)
    start, after, losses = fastnn_fit(2, True, epsilon)
    epochs = peer.build(*data, seed=0, weights=start, shuffle=True)
    epochs()
    epochs()
    _assert_same_training(epochs, after, losses)
    assert epochs.losses[0] != pytest.approx(one_epoch[2][0], rel=1e-3)  # it did shuffle


@pytest.mark.parametrize("peer", _peer_params())
def test_glorot_start_and_falling_loss(
    peer: peers.Peer, data: tuple[np.ndarray, np.ndarray]
) -> None:
    epochs = peer.build(*data, seed=1)
    for got, want in zip(
        epochs.weights(), peers.glorot_weights(np.random.default_rng(1)), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    epochs()
    epochs()
    assert len(epochs.losses) == 2
    # measured: 4.24, then 3.03; with scikit-learn's Adam 2.72, then 2.49
    assert epochs.losses[1] < FALLS_TO.get(peer.name, 0.9) * epochs.losses[0]
    assert all(np.isfinite(w).all() for w in epochs.weights())


def test_glorot_weights() -> None:
    w1, b1, w2, b2 = peers.glorot_weights(np.random.default_rng(0))
    assert [w.shape for w in (w1, b1, w2, b2)] == list(peers.SHAPES)
    assert all(w.dtype == np.float32 for w in (w1, b1, w2, b2))
    assert not b1.any() and not b2.any()
    for kernel in (w1, w2):
        limit = math.sqrt(6 / sum(kernel.shape))
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.99 * limit  # uniform over the whole range
        assert abs(kernel.mean()) < 0.01 * limit


def test_given_weights_are_copied_and_checked(data: tuple[np.ndarray, np.ndarray]) -> None:
    given = peers.glorot_weights(np.random.default_rng(5))
    kept = tuple(w.copy() for w in given)
    epochs = peers.PEERS[0].build(*data, seed=0, weights=given)
    epochs()
    for before, now in zip(kept, given, strict=True):
        np.testing.assert_array_equal(before, now)  # the caller's arrays are not trained
    with pytest.raises(ValueError, match="shaped"):
        peers.PEERS[0].build(*data, weights=(given[2], given[3], given[0], given[1]))


def test_runnable_partitions_the_peers_by_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    ready, reasons = peers.runnable()
    assert ready == [p for p in peers.PEERS if p.probe() is None]
    assert reasons == {p.name: p.probe() for p in peers.PEERS if p.probe() is not None}
    assert "numpy (tutorial style)" in [p.name for p in ready]  # it needs nothing installed

    def fake(name: str, reason: str | None) -> peers.Peer:
        return peers.Peer(name, name, lambda: reason, peers.PEERS[0].build)

    monkeypatch.setattr(peers, "PEERS", (fake("a", None), fake("b", "no b here"), fake("c", None)))
    ready, reasons = peers.runnable()
    assert [p.name for p in ready] == ["a", "c"]
    assert reasons == {"b": "no b here"}


MISSING = [
    ("torch", "pytorch cpu", "PyTorch"),
    ("torch", "pytorch cuda", "PyTorch"),
    ("jax", "jax (jit)", "JAX"),
    ("keras", "keras 3", "Keras 3"),
    ("sklearn", "scikit-learn mlp", "scikit-learn"),
]


def _peer(name: str) -> peers.Peer:
    return next(p for p in peers.PEERS if p.name == name)


@pytest.mark.parametrize(("module", "peer_name", "label"), MISSING)
def test_a_missing_framework_is_named(
    monkeypatch: pytest.MonkeyPatch, module: str, peer_name: str, label: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    assert _peer(peer_name).probe() == f"{label} is not installed (pip install {module})"
    _, reasons = peers.runnable()
    assert reasons[peer_name] == f"{label} is not installed (pip install {module})"


@pytest.mark.parametrize(("module", "peer_name", "label"), MISSING)
def test_a_framework_that_fails_to_import_says_how(
    monkeypatch: pytest.MonkeyPatch, module: str, peer_name: str, label: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == module else real(name)
    )
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise
    reason = _peer(peer_name).probe() or ""
    assert reason.startswith(f"{label} failed to import: ModuleNotFoundError: ")
    assert f"import of {module} halted" in reason


def test_the_cuda_probe_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed")
    import torch

    def no_driver() -> None:
        raise RuntimeError("Found no NVIDIA driver on your system")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", no_driver)
    cuda = _peer("pytorch cuda")
    assert cuda.probe() == "PyTorch has no CUDA device: Found no NVIDIA driver on your system"
    assert _peer("pytorch cpu").probe() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cuda.probe() is None


def test_descriptions_are_one_line_with_versions() -> None:
    assert [p.name for p in peers.PEERS] == [
        "numpy (tutorial style)",
        "pytorch cpu",
        "pytorch cuda",
        "jax (jit)",
        "keras 3",
        "scikit-learn mlp",
    ]
    assert f"NumPy {np.__version__}" in peers.PEERS[0].description
    for peer, distribution in zip(
        peers.PEERS[1:], ("torch", "torch", "jax", "keras", "scikit-learn"), strict=True
    ):
        assert "\n" not in peer.description
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "(not installed)"
        assert version in peer.description


def test_importing_the_peers_imports_no_framework() -> None:
    code = (
        "import sys, fastnn.benchmarks.peers; "
        "print(sorted({'torch', 'jax', 'keras'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_peer_times_in_a_process_of_its_own(
    data: tuple[np.ndarray, np.ndarray], one_epoch: Run
) -> None:
    numpy_peer, start = peers.PEERS[0], one_epoch[0]
    measured = peers.time_in_subprocess(numpy_peer, *data, start, rounds=2)
    assert len(measured["runs"]) == 2 and all(t > 0 for t in measured["runs"])
    assert len(measured["losses"]) == 3  # the warm-up epoch and the two timed ones
    in_process = numpy_peer.build(*data, seed=0, weights=start)
    in_process()
    assert measured["losses"][0] == pytest.approx(in_process.losses[0], rel=1e-6)


def test_a_served_peer_takes_turns_epoch_by_epoch(
    data: tuple[np.ndarray, np.ndarray], one_epoch: Run
) -> None:
    numpy_peer, start = peers.PEERS[0], one_epoch[0]
    in_process = numpy_peer.build(*data, seed=0, weights=start)
    with peers.ServedPeer(numpy_peer, *data, start) as served:
        assert served.first > 0 and len(served.losses) == 1  # warmed up when made
        timed = [served(), served()]
        assert all(t > 0 for t in timed)
        process = served._process
    for _ in range(3):
        in_process()
    assert served.losses == pytest.approx(in_process.losses, rel=1e-6)  # epoch after epoch
    assert process.returncode == 0  # closed: the input ended, so did the process


def test_a_served_peer_that_fails_says_why(
    data: tuple[np.ndarray, np.ndarray], one_epoch: Run
) -> None:
    bad = (one_epoch[0][0][:5], *one_epoch[0][1:])  # a w1 of the wrong shape
    with pytest.raises(RuntimeError, match=r"(?s)peer .numpy.*. stopped:.*weights must be shaped"):
        peers.ServedPeer(peers.PEERS[0], *data, bad)  # type: ignore[arg-type]


def test_peer_processes_get_the_users_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = pytest.importorskip("fastnn.kernels.threads")
    monkeypatch.setattr(threads, "SET_BY_FASTNN", set())
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.configure()  # fastnn's own default: not the user's, so not passed on
    assert os.environ["OMP_WAIT_POLICY"] == threads.WAIT_POLICY
    assert "OMP_WAIT_POLICY" not in peers._users_environment()
    if "GOMP_SPINCOUNT" in threads.SET_BY_FASTNN:  # set with the policy, kept from peers too
        assert "GOMP_SPINCOUNT" not in peers._users_environment()
    monkeypatch.setattr(threads, "SET_BY_FASTNN", set())
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice travels
    threads.configure()
    assert peers._users_environment()["OMP_WAIT_POLICY"] == "ACTIVE"
