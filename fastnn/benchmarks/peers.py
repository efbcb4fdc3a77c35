"""Peers: the ``keras`` recipe's network written the way users of other tools write it.

Each peer trains 784-512-10 (ReLU, then softmax with sparse categorical cross-entropy
computed from the logits) in float32 on batches of 128, with the mean loss over each
batch (the last, partial batch over its own rows) and RMSprop(learning_rate=1e-3,
rho=0.9, epsilon=1e-7). It starts from glorot-uniform kernels and zero biases drawn
from ``seed``, or from the ``weights`` given, and with ``shuffle`` visits the rows in
``np.random.default_rng(seed).permutation(n)`` order, one permutation per epoch from
one generator, as fastnn's ``fit(seed=seed)`` does: a peer started from a fastnn
model's weights sees fastnn's batches (Keras alone shuffles by its own means).

Frameworks are imported only when a peer is probed or built. ``build`` does the
one-off work (imports, moving the data to the device, building the model); the first
call also pays what the frameworks do lazily (JAX and Keras trace and compile the
step, CUDA starts up), so callers time a warm-up call apart. Each call returns the
seconds of its own epoch (``time.perf_counter``, device work finished).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Weights = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # w1, b1, w2, b2
SIZES = (784, 512, 10)
SHAPES = ((784, 512), (512,), (512, 10), (10,))
BATCH = 128
LEARNING_RATE, RHO, EPSILON = 1e-3, 0.9, 1e-7


class Epochs(Protocol):
    """Trains one more epoch per call; returns that epoch's seconds (set-up excluded)."""

    losses: list[float]  # mean training loss of each epoch run so far

    def __call__(self) -> float: ...

    def weights(self) -> Weights:
        """w1 (784, 512), b1 (512,), w2 (512, 10), b2 (10,) as float32 NumPy arrays."""
        ...


@dataclass(frozen=True)
class Peer:
    name: str
    description: str  # one line: what it is (framework + version when known)
    probe: Callable[[], str | None]  # why it cannot run here, or None
    build: Callable[..., Epochs]  # build(x, y, *, seed=0, weights=None, shuffle=True)
    #: brings thread pools of its own: `fastnn bench` times it in a process of its own
    isolated: bool = True


def glorot_weights(rng: np.random.Generator) -> Weights:
    """Glorot-uniform kernels (limit sqrt(6 / (fan_in + fan_out))) and zero biases."""

    def kernel(fan_in: int, fan_out: int) -> np.ndarray:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    n_in, n_hidden, n_out = SIZES
    return (
        kernel(n_in, n_hidden),
        np.zeros(n_hidden, np.float32),
        kernel(n_hidden, n_out),
        np.zeros(n_out, np.float32),
    )


def start_weights(seed: int, weights: Weights | None) -> Weights:
    """float32 copies of ``weights`` (shapes checked), or glorot ones drawn from ``seed``."""
    if weights is None:
        return glorot_weights(np.random.default_rng(seed))
    w1, b1, w2, b2 = (np.array(w, np.float32) for w in weights)  # copies: theirs stay as given
    shapes = (w1.shape, b1.shape, w2.shape, b2.shape)
    if shapes != SHAPES:
        raise ValueError(f"weights must be shaped {SHAPES}; received {shapes}")
    return w1, b1, w2, b2


class _Loop:
    """What the peers share: ``build``'s signature, start weights, batch order, the clock.

    Subclasses write ``_setup`` (one-off work on x (n, 784) float32, y (n,)), ``_epoch``
    (train once over the rows in ``order``; return the loss summed over rows, read back
    once), ``weights`` and, where their work runs asynchronously, ``_wait``.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int = 0,
        weights: Weights | None = None,
        shuffle: bool = True,
    ) -> None:
        self.n, self.shuffle, self.seed = len(x), shuffle, seed
        self.rng = np.random.default_rng(seed)  # one generator: a new order each epoch
        self.start = start_weights(seed, weights)
        self.losses: list[float] = []
        self._setup(np.asarray(x, np.float32), np.asarray(y))

    def __call__(self) -> float:
        self._wait()
        started = time.perf_counter()
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        total = self._epoch(order)
        self._wait()
        seconds = time.perf_counter() - started
        self.losses.append(total / self.n)
        return seconds

    def batches(self, order: Any) -> Iterator[Any]:
        """Consecutive slices of ``order`` (n,), BATCH long but the last."""
        for begin in range(0, self.n, BATCH):
            yield order[begin : begin + BATCH]

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _epoch(self, order: np.ndarray) -> float:
        raise NotImplementedError

    def weights(self) -> Weights:
        raise NotImplementedError

    def _wait(self) -> None:
        """Return once the work queued so far has run (a no-op where work is synchronous)."""


def _version(distribution: str) -> str:
    """The installed version of ``distribution``, read without importing it."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _import_failure(module: str, label: str) -> str | None:
    """Why ``module`` cannot be imported here, or None."""
    if importlib.util.find_spec(module) is None:
        return f"{label} is not installed (pip install {module})"
    try:
        importlib.import_module(module)
    except Exception as error:  # a broken install, a missing backend: say what failed
        return f"{label} failed to import: {type(error).__name__}: {error}"
    return None


# ------------------------------------------------------------------ NumPy
class _NumpyTutorial(_Loop):
    """Plain NumPy, forward and backward written out as the from-scratch tutorials do."""

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.params = list(self.start)
        self.velocity = [np.zeros_like(w) for w in self.params]

    def _epoch(self, order: np.ndarray) -> float:
        return sum(
            self.step(self.x[rows], self.y[rows]) * len(rows) for rows in self.batches(order)
        )

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One RMSprop step on x (B, 784), y (B,); returns the batch's mean loss."""
        w1, b1, w2, b2 = self.params
        m = len(y)
        z1 = x @ w1 + b1  # (B, 512)
        a1 = np.maximum(z1, 0)
        z2 = a1 @ w2 + b2  # (B, 10) logits
        shifted = z2 - z2.max(axis=1, keepdims=True)  # exp cannot overflow, log cannot see 0
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[np.arange(m), y].mean()

        dz2 = np.exp(log_probs)  # d(mean loss)/d(logits) = (softmax - onehot) / m
        dz2[np.arange(m), y] -= 1
        dz2 /= m
        dz1 = (dz2 @ w2.T) * (z1 > 0)  # (B, 512)
        grads = (x.T @ dz1, dz1.sum(axis=0), a1.T @ dz2, dz2.sum(axis=0))

        for i, (w, g) in enumerate(zip(self.params, grads, strict=True)):
            self.velocity[i] = RHO * self.velocity[i] + (1 - RHO) * g**2
            w -= LEARNING_RATE * g / np.sqrt(self.velocity[i] + EPSILON)
        return float(loss)

    def weights(self) -> Weights:
        w1, b1, w2, b2 = (w.copy() for w in self.params)
        return w1, b1, w2, b2


# ---------------------------------------------------------------- PyTorch
def _probe_torch(device: str) -> str | None:
    reason = _import_failure("torch", "PyTorch")
    if reason is not None or device == "cpu":
        return reason
    import torch

    if torch.cuda.is_available():  # asks the driver without starting a CUDA context
        return None
    try:
        torch.cuda.init()  # fails, saying why (a CPU-only build, no driver, no GPU)
    except Exception as error:
        return f"PyTorch has no CUDA device: {error}"
    return "PyTorch has no CUDA device: torch.cuda.is_available() is False"


class _Torch(_Loop):
    """An eager PyTorch loop: nn.Linear layers, F.cross_entropy, torch.optim.RMSprop.

    ``torch.optim.RMSprop`` divides by ``sqrt(v) + eps`` where fastnn and Keras divide
    by ``sqrt(v + eps)``. The peer keeps PyTorch's rule, being what its users write.
    The two part where ``v`` is near ``eps``: gradients under about 1e-3 in the first
    steps, which PyTorch moves by nearly ``lr * sqrt(1 / (1 - rho))`` whatever their size.
    """

    device_type = "cpu"

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        import torch

        self.torch, self.device = torch, torch.device(self.device_type)
        # The data goes to the device once; each epoch's batches are gathered there.
        self.x = torch.as_tensor(x, device=self.device)
        self.y = torch.as_tensor(y, dtype=torch.int64, device=self.device)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)
        ).to(self.device)
        with torch.no_grad():
            w1, b1, w2, b2 = self.start
            for layer, kernel, bias in ((self.model[0], w1, b1), (self.model[2], w2, b2)):
                layer.weight.copy_(torch.as_tensor(kernel.T))  # nn.Linear keeps (out, in)
                layer.bias.copy_(torch.as_tensor(bias))
        self.optimizer = torch.optim.RMSprop(
            self.model.parameters(), lr=LEARNING_RATE, alpha=RHO, eps=EPSILON
        )

    def _epoch(self, order: np.ndarray) -> float:
        torch = self.torch
        total = torch.zeros((), device=self.device)  # summed there: no wait per step
        for rows in self.batches(torch.as_tensor(order, device=self.device)):
            loss = torch.nn.functional.cross_entropy(self.model(self.x[rows]), self.y[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * len(rows)
        return float(total)

    def _wait(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def weights(self) -> Weights:
        first, second = self.model[0], self.model[2]
        w1, b1, w2, b2 = (
            t.detach().cpu().numpy().copy()  # copy: on the CPU, .numpy() shares the memory
            for t in (first.weight.T, first.bias, second.weight.T, second.bias)
        )
        return w1, b1, w2, b2


class _TorchCuda(_Torch):
    device_type = "cuda"


# -------------------------------------------------------------------- JAX
@functools.cache
def _jax_step() -> Any:
    """The jitted train step, made once per process so every build shares its compilations.

    ``step(params, velocity, total, x, y, order, begin, size)`` trains on the rows
    ``order[begin:begin + size]`` and returns the new params, velocity and
    ``total + size * loss``; the first three arguments are donated, being replaced.
    """
    import jax
    import jax.numpy as jnp

    def mean_loss(params: Any, xb: Any, yb: Any) -> Any:
        w1, b1, w2, b2 = params
        logits = jnp.maximum(xb @ w1 + b1, 0) @ w2 + b2  # (B, 10)
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, yb[:, None], axis=1))

    def step(
        params: Any, velocity: Any, total: Any, x: Any, y: Any, order: Any, begin: Any, size: int
    ) -> Any:
        rows = jax.lax.dynamic_slice_in_dim(order, begin, size)  # indexed on the device
        loss, grads = jax.value_and_grad(mean_loss)(params, x[rows], y[rows])
        velocity = tuple(RHO * v + (1 - RHO) * g**2 for v, g in zip(velocity, grads, strict=True))
        params = tuple(
            p - LEARNING_RATE * g / jnp.sqrt(v + EPSILON)
            for p, g, v in zip(params, grads, velocity, strict=True)
        )
        return params, velocity, total + size * loss

    # size is static: one compilation for full batches, one for a shorter last batch.
    return jax.jit(step, static_argnames="size", donate_argnums=(0, 1, 2))


class _Jax(_Loop):
    """A ``jax.jit``-compiled step (forward, ``jax.grad``, RMSprop) called per batch."""

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        import jax

        self.jax, self.step = jax, _jax_step()
        # float32 and int32 throughout, even where jax_enable_x64 is on.
        self.x = jax.device_put(x)
        self.y = jax.device_put(y.astype(np.int32))
        self.params = tuple(jax.device_put(w) for w in self.start)
        self.velocity = tuple(jax.device_put(np.zeros_like(w)) for w in self.start)

    def _epoch(self, order: np.ndarray) -> float:
        order_there = self.jax.device_put(order.astype(np.int32))
        total = self.jax.device_put(np.float32(0))  # device scalar: read once, at the end
        for begin in range(0, self.n, BATCH):
            size = min(BATCH, self.n - begin)
            self.params, self.velocity, total = self.step(
                self.params, self.velocity, total, self.x, self.y, order_there, begin, size=size
            )
        return float(total)

    def _wait(self) -> None:
        self.jax.block_until_ready(self.params)

    def weights(self) -> Weights:
        w1, b1, w2, b2 = (np.array(w, np.float32) for w in self.params)
        return w1, b1, w2, b2


# ---------------------------------------------------------------- Keras 3
def _probe_keras() -> str | None:
    os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 needs one; tensorflow often absent
    reason = _import_failure("keras", "Keras 3")
    if reason is not None:
        return reason
    import keras

    if not keras.__version__.startswith("3."):
        return f"Keras {keras.__version__} is installed, not Keras 3"
    return None


class _Keras(_Loop):
    """``keras.Sequential`` trained by ``model.fit``, one epoch a call; Keras shuffles.

    Keras's RMSprop has fastnn's rule (epsilon inside the square root).
    """

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        keras.utils.set_random_seed(self.seed)  # Keras's shuffling, reproducible, as users do
        self.x, self.y = x, y
        self.model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        self.model.set_weights(list(self.start))
        self.model.compile(
            optimizer=keras.optimizers.RMSprop(
                learning_rate=LEARNING_RATE, rho=RHO, epsilon=EPSILON
            ),
            loss="sparse_categorical_crossentropy",
        )

    def __call__(self) -> float:  # fit draws its own batch order
        started = time.perf_counter()
        history = self.model.fit(
            self.x, self.y, epochs=1, batch_size=BATCH, shuffle=self.shuffle, verbose=0
        )
        seconds = time.perf_counter() - started  # fit returns with its logs read back
        self.losses.append(float(history.history["loss"][-1]))
        return seconds

    def weights(self) -> Weights:
        w1, b1, w2, b2 = (np.array(w, np.float32) for w in self.model.get_weights())
        return w1, b1, w2, b2


class _Sklearn(_Loop):
    """scikit-learn's ``MLPClassifier``, one ``partial_fit`` (one epoch) a call.

    It has no RMSprop: it trains with its default solver, Adam (learning rate 1e-3),
    on batches of 128 that it shuffles itself, with its default L2 penalty
    (alpha=1e-4). The work per batch is the same products as the others'; the weights
    it reaches are not meant to match theirs.
    """

    def _setup(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.neural_network import MLPClassifier

        self.x, self.y = x, y
        self.classes = np.arange(SIZES[-1])
        self.model = MLPClassifier(
            hidden_layer_sizes=(SIZES[1],),
            solver="adam",
            learning_rate_init=LEARNING_RATE,
            batch_size=BATCH,
            shuffle=self.shuffle,
            random_state=self.seed,
        )
        # One short call builds its parameters; then they start from the common weights,
        # written in place (its solver holds these arrays) with a fresh solver state.
        self.model.partial_fit(x[:BATCH], y[:BATCH], classes=self.classes)
        w1, b1, w2, b2 = self.start
        for param, start in zip(
            [*self.model.coefs_, *self.model.intercepts_], (w1, w2, b1, b2), strict=True
        ):
            param[...] = start
        del self.model._optimizer

    def __call__(self) -> float:  # partial_fit draws its own batch order
        started = time.perf_counter()
        self.model.partial_fit(self.x, self.y, classes=self.classes)
        seconds = time.perf_counter() - started
        self.losses.append(float(self.model.loss_))
        return seconds

    def weights(self) -> Weights:
        (w1, w2), (b1, b2) = self.model.coefs_, self.model.intercepts_
        return w1, b1, w2, b2


PEERS: tuple[Peer, ...] = (
    Peer(
        "numpy (tutorial style)",
        f"NumPy {np.__version__}, forward and backward by hand, as tutorials write them",
        lambda: None,
        _NumpyTutorial,
        isolated=False,
    ),
    Peer(
        "pytorch cpu",
        f"PyTorch {_version('torch')}, eager loop on the CPU, torch.optim.RMSprop",
        lambda: _probe_torch("cpu"),
        _Torch,
    ),
    Peer(
        "pytorch cuda",
        f"PyTorch {_version('torch')}, eager loop on the GPU, torch.optim.RMSprop",
        lambda: _probe_torch("cuda"),
        _TorchCuda,
    ),
    Peer(
        "jax (jit)",
        f"JAX {_version('jax')}, a jax.jit-compiled train step per batch",
        lambda: _import_failure("jax", "JAX"),
        _Jax,
    ),
    Peer(
        "keras 3",
        f"Keras {_version('keras')} on its {os.environ.get('KERAS_BACKEND', 'jax')} backend, fit",
        _probe_keras,
        _Keras,
    ),
    Peer(
        "scikit-learn mlp",
        f"scikit-learn {_version('scikit-learn')} MLPClassifier, partial_fit (Adam: no RMSprop)",
        lambda: _import_failure("sklearn", "scikit-learn"),
        _Sklearn,
    ),
)


def runnable() -> tuple[list[Peer], dict[str, str]]:
    """The peers that can run here, in PEERS order, and why each of the others cannot."""
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
    BLAS and numba's pool they slowed each other down here. A process of its
    own, with the user's environment, gives each peer the machine as its users
    have it. Returns ``{"first": s,
    "runs": [s, ...], "losses": [...]}``: the warm-up epoch, then ``rounds`` timed ones.
    """
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = _save(folder, x, y, weights)
        command = [sys.executable, "-m", __spec__.name, peer.name, data, f"{rounds}", f"{seed}"]
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, env=_users_environment()
        )
    if done.returncode != 0:
        raise RuntimeError(f"peer {peer.name!r} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class ServedPeer:
    """A peer's epochs on demand from a process of its own (see :func:`time_in_subprocess`
    for why a process of its own): built and warmed up (one epoch, ``first``) when made,
    then each call trains one more epoch there and returns its seconds.

    So a peer takes turns with fastnn's workloads in interleaved rounds
    (:func:`fastnn.benchmarks.timing.interleaved`), and a slow spell of a shared machine
    touches both alike, where timing each in a block of its own compared different
    spells. Close it (or use it as a context manager) to end the process.
    """

    def __init__(
        self, peer: Peer, x: np.ndarray, y: np.ndarray, weights: Weights, seed: int = 0
    ) -> None:
        import subprocess
        import sys
        import tempfile

        self.name = peer.name
        self.losses: list[float] = []
        self._folder = tempfile.TemporaryDirectory()
        data = _save(self._folder.name, x, y, weights)
        # stderr to a file: a framework's warnings could fill a pipe nobody reads
        self._errors = open(os.path.join(self._folder.name, "stderr"), "w+")  # noqa: SIM115
        command = [sys.executable, "-m", __spec__.name, "serve", peer.name, data, f"{seed}"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
            text=True, env=_users_environment(),
        )  # fmt: skip
        self.first = self._reply()["seconds"]

    def _reply(self) -> dict[str, Any]:
        import json

        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            self._errors.seek(0)
            why = self._errors.read().strip()[-2000:]
            raise RuntimeError(f"peer {self.name!r} stopped: {why}")
        reply: dict[str, Any] = json.loads(line)
        self.losses.append(reply["loss"])
        return reply

    def __call__(self) -> float:
        assert self._process.stdin is not None
        self._process.stdin.write("epoch\n")
        self._process.stdin.flush()
        seconds: float = self._reply()["seconds"]
        return seconds

    def close(self) -> None:
        """End the peer's process (it stops at the end of its input) and its files."""
        import subprocess

        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # inside an epoch that does not end
            self._process.kill()
            self._process.wait()
        self._errors.close()
        self._folder.cleanup()

    def __enter__(self) -> ServedPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _users_environment() -> dict[str, str]:
    """This process's environment without the threading defaults fastnn set itself.

    fastnn asks OpenMP to wait passively (right for numba beside BLAS); PyTorch's
    OpenMP loop took twice as long per epoch with it, and its users do not set it.
    """
    import sys

    threads = sys.modules.get("fastnn.kernels.threads")
    ours = threads.SET_BY_FASTNN if threads is not None else set()
    return {key: value for key, value in os.environ.items() if key not in ours}


def _save(folder: str, x: np.ndarray, y: np.ndarray, weights: Weights) -> str:
    """The data and start weights a peer's process builds on, as ``folder``/data.npz
    (read back by :func:`_build`); returns the file's path."""
    data = os.path.join(folder, "data.npz")
    np.savez(data, x=x, y=y, w1=weights[0], b1=weights[1], w2=weights[2], b2=weights[3])
    return data


def _build(name: str, data: str, seed: str) -> Epochs:
    """Peer ``name`` built on the data and start weights saved in ``data`` (.npz)."""
    peer = next(p for p in PEERS if p.name == name)
    with np.load(data) as arrays:
        x, y = arrays["x"], arrays["y"]
        weights = (arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"])
    return peer.build(x, y, seed=int(seed), weights=weights)


def _main(argv: list[str]) -> None:
    """``python -m fastnn.benchmarks.peers NAME DATA.npz ROUNDS SEED``: one JSON line;
    ``... serve NAME DATA.npz SEED``: a JSON line for the warm-up epoch, then one more
    epoch and its line for each line read, until the input ends (:class:`ServedPeer`)."""
    import json
    import sys

    if argv[0] == "serve":
        epochs = _build(*argv[1:])
        while True:  # the warm-up epoch, then one a line
            seconds = epochs()
            print(json.dumps({"seconds": seconds, "loss": epochs.losses[-1]}), flush=True)
            if not sys.stdin.readline():  # the input ended
                return
    name, data, rounds, seed = argv
    epochs = _build(name, data, seed)
    first = epochs()
    runs = [epochs() for _ in range(int(rounds))]
    print(json.dumps({"first": first, "runs": runs, "losses": epochs.losses}))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
