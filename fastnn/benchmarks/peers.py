"""Peers: the `keras` recipe's network written the way users of other tools write it.

Each peer trains 784-512-10 (ReLU, softmax + sparse cross-entropy from the logits)
in float32, batch 128, RMSprop(lr=1e-3, rho=0.9, epsilon=1e-7), from glorot-uniform
weights and zero biases or from given ones, shuffling each epoch with
``np.random.default_rng(seed).permutation`` as fastnn's ``fit(seed=...)`` does, so
a peer started from a fastnn model's weights sees the same batches in its first
epoch. Frameworks are imported only when a peer is built or probed.

Every built peer is a callable: each call trains one more epoch and returns that
epoch's seconds; set-up (moving the data, building the model) happens in
``build``, compilation in the first call, which the caller times apart.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Weights = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # w1, b1, w2, b2
BATCH, LEARNING_RATE, RHO, EPSILON = 128, 1e-3, 0.9, 1e-7
SIZES = (784, 512, 10)


class Epochs(Protocol):
    """Trains one more epoch per call; returns that epoch's seconds (set-up excluded)."""

    losses: list[float]  # mean training loss of each epoch run so far

    def __call__(self) -> float: ...

    def weights(self) -> Weights: ...


@dataclass(frozen=True)
class Peer:
    name: str
    description: str
    probe: Callable[[], str | None]  # why it cannot run here, or None
    build: Callable[..., Epochs]  # build(x, y, *, seed=0, weights=None, shuffle=True)
    #: brings thread pools of its own: time it in a process of its own
    isolated: bool = True


def glorot_weights(rng: np.random.Generator) -> Weights:
    """Glorot-uniform kernels and zero biases, as Keras's Dense starts."""
    n_in, n_hidden, n_out = SIZES

    def kernel(fan_in: int, fan_out: int) -> np.ndarray:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    return (
        kernel(n_in, n_hidden),
        np.zeros(n_hidden, np.float32),
        kernel(n_hidden, n_out),
        np.zeros(n_out, np.float32),
    )


class _Loop:
    """What every hand-written peer shares: weights, batch order, the epoch clock."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, seed: int, weights: Weights | None, shuffle: bool
    ) -> None:
        self.n = len(x)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        start = weights if weights is not None else glorot_weights(np.random.default_rng(seed))
        self.start: Weights = tuple(np.array(w, np.float32) for w in start)  # type: ignore[assignment]
        self.losses: list[float] = []

    def batches(self) -> Iterator[np.ndarray]:
        """Row indices of each mini-batch of one epoch, (B,) each."""
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for begin in range(0, self.n, BATCH):
            yield order[begin : begin + BATCH]


# ------------------------------------------------------------------ NumPy
class _NumpyTutorial(_Loop):
    """Plain NumPy, as the from-scratch tutorials write it."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int = 0,
        weights: Weights | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__(x, y, seed, weights, shuffle)
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y)
        self.params = [w.copy() for w in self.start]
        self.velocity = [np.zeros_like(w) for w in self.params]

    def __call__(self) -> float:
        started = time.perf_counter()
        total = 0.0
        for rows in self.batches():
            total += self.step(self.x[rows], self.y[rows]) * len(rows)
        self.losses.append(total / self.n)
        return time.perf_counter() - started

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        w1, b1, w2, b2 = self.params
        h = np.maximum(x @ w1 + b1, 0)  # (B, 512)
        logits = h @ w2 + b2  # (B, 10)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[np.arange(len(y)), y].mean()
        dlogits = np.exp(log_probs)
        dlogits[np.arange(len(y)), y] -= 1
        dlogits /= len(y)
        dh = (dlogits @ w2.T) * (h > 0)
        grads = [x.T @ dh, dh.sum(axis=0), h.T @ dlogits, dlogits.sum(axis=0)]
        for param, grad, velocity in zip(self.params, grads, self.velocity, strict=True):
            velocity *= RHO
            velocity += (1 - RHO) * grad**2
            param -= LEARNING_RATE * grad / np.sqrt(velocity + EPSILON)
        return float(loss)

    def weights(self) -> Weights:
        return tuple(w.copy() for w in self.params)  # type: ignore[return-value]


# ---------------------------------------------------------------- PyTorch
def _probe_torch(device: str) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (pip install torch)"
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return "PyTorch has no CUDA device here"
    return None


class _Torch(_Loop):
    """An eager PyTorch loop: nn.Linear layers, cross_entropy, torch.optim.RMSprop.

    PyTorch's RMSprop adds epsilon outside the square root (``g / (sqrt(v) + eps)``)
    where Keras and fastnn add it inside; with eps = 1e-7 the two differ only for
    gradients below about 1e-7, so the losses agree to a few parts in 10,000.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int = 0,
        weights: Weights | None = None,
        shuffle: bool = True,
        device: str = "cpu",
    ) -> None:
        import torch

        super().__init__(x, y, seed, weights, shuffle)
        self.torch, self.device = torch, torch.device(device)
        self.x = torch.as_tensor(np.asarray(x, np.float32), device=self.device)
        self.y = torch.as_tensor(np.asarray(y, np.int64), device=self.device)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
        ).to(self.device)
        with torch.no_grad():
            w1, b1, w2, b2 = self.start  # nn.Linear keeps kernels as (out, in)
            for layer, kernel, bias in ((self.model[0], w1, b1), (self.model[2], w2, b2)):
                layer.weight.copy_(torch.as_tensor(kernel.T))
                layer.bias.copy_(torch.as_tensor(bias))
        self.optimizer = torch.optim.RMSprop(
            self.model.parameters(), lr=LEARNING_RATE, alpha=RHO, eps=EPSILON
        )

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def __call__(self) -> float:
        torch = self.torch
        self._sync()
        started = time.perf_counter()
        total = torch.zeros((), device=self.device)  # summed on the device: no per-step wait
        for rows in self.batches():
            index = torch.as_tensor(rows, device=self.device)
            xb, yb = self.x[index], self.y[index]
            loss = torch.nn.functional.cross_entropy(self.model(xb), yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * len(rows)
        self.losses.append(float(total) / self.n)
        self._sync()
        return time.perf_counter() - started

    def weights(self) -> Weights:
        first, second = self.model[0], self.model[2]
        arrays = (first.weight.T, first.bias, second.weight.T, second.bias)
        return tuple(a.detach().cpu().numpy().copy() for a in arrays)


# -------------------------------------------------------------------- JAX
def _probe_jax() -> str | None:
    if importlib.util.find_spec("jax") is None:
        return "JAX is not installed (pip install jax)"
    return None


class _Jax(_Loop):
    """A ``jax.jit``-compiled step (forward, ``jax.grad``, RMSprop) called per batch."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int = 0,
        weights: Weights | None = None,
        shuffle: bool = True,
    ) -> None:
        import jax
        import jax.numpy as jnp

        super().__init__(x, y, seed, weights, shuffle)
        self.jax = jax
        self.x = jax.device_put(np.asarray(x, np.float32))
        self.y = jax.device_put(np.asarray(y, np.int32))
        self.params = tuple(jax.device_put(w) for w in self.start)
        self.velocity = tuple(jnp.zeros_like(w) for w in self.params)

        def loss_fn(params: Any, xb: Any, yb: Any) -> Any:
            w1, b1, w2, b2 = params
            logits = jnp.maximum(xb @ w1 + b1, 0) @ w2 + b2  # (B, 10)
            log_probs = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(log_probs, yb[:, None], axis=1))

        def step(params: Any, velocity: Any, rows: Any) -> Any:
            loss, grads = jax.value_and_grad(loss_fn)(params, self.x[rows], self.y[rows])
            velocity = tuple(
                RHO * v + (1 - RHO) * g**2 for v, g in zip(velocity, grads, strict=True)
            )
            params = tuple(
                p - LEARNING_RATE * g / jnp.sqrt(v + EPSILON)
                for p, g, v in zip(params, grads, velocity, strict=True)
            )
            return params, velocity, loss

        # The weights and velocities are replaced every step: donate their buffers.
        self.step = jax.jit(step, donate_argnums=(0, 1))

    def __call__(self) -> float:
        started = time.perf_counter()
        losses = []
        for rows in self.batches():
            self.params, self.velocity, loss = self.step(self.params, self.velocity, rows)
            losses.append((loss, len(rows)))  # device scalars: read once, below
        self.losses.append(sum(float(loss) * count for loss, count in losses) / self.n)
        self.jax.block_until_ready(self.params)
        return time.perf_counter() - started

    def weights(self) -> Weights:
        return tuple(np.array(w) for w in self.params)  # type: ignore[return-value]


# ---------------------------------------------------------------- Keras 3
def _probe_keras() -> str | None:
    if importlib.util.find_spec("keras") is None:
        return "Keras 3 is not installed (pip install keras, with jax, torch or tensorflow)"
    os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 needs one; jax runs here
    try:
        import keras
    except Exception as error:  # e.g. the backend it was told to use is missing
        return f"Keras failed to import: {type(error).__name__}: {error}"
    if not keras.__version__.startswith("3"):
        return f"Keras {keras.__version__} is not Keras 3"
    return None


class _Keras(_Loop):
    """``keras.Sequential`` + ``model.fit``, one epoch a call (Keras shuffles itself)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int = 0,
        weights: Weights | None = None,
        shuffle: bool = True,
    ) -> None:
        import keras

        super().__init__(x, y, seed, weights, shuffle)
        keras.utils.set_random_seed(seed)
        self.x, self.y = np.asarray(x, np.float32), np.asarray(y)
        self.model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        self.model.set_weights(list(self.start))
        self.model.compile(
            optimizer=keras.optimizers.RMSprop(LEARNING_RATE, rho=RHO, epsilon=EPSILON),
            loss="sparse_categorical_crossentropy",
        )

    def __call__(self) -> float:
        started = time.perf_counter()
        history = self.model.fit(
            self.x, self.y, epochs=1, batch_size=BATCH, shuffle=self.shuffle, verbose=0
        )
        self.losses.append(float(history.history["loss"][-1]))
        return time.perf_counter() - started

    def weights(self) -> Weights:
        return tuple(np.asarray(w) for w in self.model.get_weights())  # type: ignore[return-value]


PEERS: tuple[Peer, ...] = (
    Peer(
        "numpy (tutorial style)",
        "plain NumPy, forward and backward by hand",
        lambda: None,
        _NumpyTutorial,
        isolated=False,
    ),
    Peer(
        "pytorch cpu",
        "PyTorch eager loop on the CPU",
        lambda: _probe_torch("cpu"),
        lambda *a, **k: _Torch(*a, **k, device="cpu"),
    ),
    Peer(
        "pytorch cuda",
        "PyTorch eager loop on the GPU",
        lambda: _probe_torch("cuda"),
        lambda *a, **k: _Torch(*a, **k, device="cuda"),
    ),
    Peer("jax (jit)", "a jax.jit-compiled train step", _probe_jax, _Jax),
    Peer("keras 3", "Keras 3 (KERAS_BACKEND, default jax here)", _probe_keras, _Keras),
)


def runnable() -> tuple[list[Peer], dict[str, str]]:
    """The peers that can run here, and why each of the others cannot."""
    ready, reasons = [], {}
    for peer in PEERS:
        reason = peer.probe()
        if reason is None:
            ready.append(peer)
        else:
            reasons[peer.name] = reason
    return ready, reasons


def time_in_subprocess(
    peer: Peer, x: np.ndarray, y: np.ndarray, weights: Weights, rounds: int, seed: int = 0
) -> dict[str, Any]:
    """Build ``peer`` in a fresh Python process and time its epochs there.

    Each framework brings its own thread pools (PyTorch's OpenMP, XLA's), which
    keep spinning or sleeping on their own schedules; in one process with NumPy's
    BLAS and numba's pool they slowed each other by 1.5-4x here. A process of its
    own, with the user's environment, gives each peer the machine as its users
    have it. Returns ``{"first": s,
    "runs": [s, ...], "losses": [...]}``: one untimed-in-median first epoch, then
    ``rounds`` timed ones.
    """
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "data.npz")
        np.savez(data, x=x, y=y, w1=weights[0], b1=weights[1], w2=weights[2], b2=weights[3])
        command = [
            sys.executable,
            "-m",
            "fastnn.benchmarks.peers",
            peer.name,
            data,
            str(rounds),
            str(seed),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, env=_users_environment()
        )
    if done.returncode != 0:
        raise RuntimeError(f"peer {peer.name!r} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _users_environment() -> dict[str, str]:
    """This process's environment without the threading defaults fastnn set itself.

    fastnn asks OpenMP to wait passively (right for numba beside BLAS); PyTorch's
    OpenMP loop took twice as long per epoch with it, and its users do not set it.
    """
    import sys

    threads = sys.modules.get("fastnn.kernels.threads")
    ours = threads.SET_BY_FASTNN if threads is not None else set()
    return {key: value for key, value in os.environ.items() if key not in ours}


def _main(argv: list[str]) -> None:
    """``python -m fastnn.benchmarks.peers NAME DATA.npz ROUNDS SEED``: one JSON line."""
    import json

    name, data, rounds, seed = argv
    peer = next(p for p in PEERS if p.name == name)
    with np.load(data) as arrays:
        x, y = arrays["x"], arrays["y"]
        weights = (arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"])
    epochs = peer.build(x, y, seed=int(seed), weights=weights)
    first = epochs()
    runs = [epochs() for _ in range(int(rounds))]
    print(json.dumps({"first": first, "runs": runs, "losses": epochs.losses}))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
