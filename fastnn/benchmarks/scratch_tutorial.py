"""The "MNIST neural network from scratch in NumPy" tutorial's training loop, as a peer.

Written in that tutorial's own style so its time and accuracy are a fair yardstick
for the ``scratch`` recipe: float64, samples as *columns* (features x samples),
784-10-10, ReLU then softmax, weights and biases uniform in [-0.5, 0.5), plain
gradient descent. Like the tutorial, each bias gradient is the mean of the whole
dZ matrix (one scalar per layer), which is what its code computes.
"""

from __future__ import annotations

import numpy as np


def init_params(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    w1 = rng.random((10, 784)) - 0.5
    b1 = rng.random((10, 1)) - 0.5
    w2 = rng.random((10, 10)) - 0.5
    b2 = rng.random((10, 1)) - 0.5
    return w1, b1, w2, b2


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z)
    return e / sum(e)  # column sums: one distribution per sample


def one_hot(y: np.ndarray) -> np.ndarray:
    encoded = np.zeros((y.size, y.max() + 1))
    encoded[np.arange(y.size), y] = 1
    return encoded.T


def forward(
    w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, ...]:
    z1 = w1.dot(x) + b1
    a1 = relu(z1)
    z2 = w2.dot(a1) + b2
    a2 = softmax(z2)
    return z1, a1, z2, a2


def backward(
    z1: np.ndarray, a1: np.ndarray, a2: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, ...]:
    m = y.size
    dz2 = a2 - one_hot(y)
    dw2 = 1 / m * dz2.dot(a1.T)
    db2 = 1 / m * np.sum(dz2)
    dz1 = w2.T.dot(dz2) * (z1 > 0)
    dw1 = 1 / m * dz1.dot(x.T)
    db1 = 1 / m * np.sum(dz1)
    return dw1, db1, dw2, db2


def accuracy(a2: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(a2, 0) == y))


def gradient_descent(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    iterations: int,
    rng: np.random.Generator,
    log_every: int = 0,
) -> tuple[np.ndarray, ...]:
    """Train on x (784, m) and labels y (m,); returns (w1, b1, w2, b2)."""
    w1, b1, w2, b2 = init_params(rng)
    for i in range(iterations):
        z1, a1, _, a2 = forward(w1, b1, w2, b2, x)
        dw1, db1, dw2, db2 = backward(z1, a1, a2, w2, x, y)
        w1 = w1 - alpha * dw1
        b1 = b1 - alpha * db1
        w2 = w2 - alpha * dw2
        b2 = b2 - alpha * db2
        if log_every and i % log_every == 0:
            print(f"iteration {i}: accuracy {accuracy(a2, y):.4f}")
    return w1, b1, w2, b2


def train_and_test(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    iterations: int = 500,
    seed: int = 0,
) -> float:
    """The tutorial's recipe on (n, 784) pixel arrays in [0, 1]: returns test accuracy.

    The first 1000 shuffled rows are the dev set, as in the tutorial.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))
    # A fresh (784, m) array, as the tutorial gets from slicing and dividing its table.
    x = np.ascontiguousarray(np.asarray(x_train[order][1000:], dtype=np.float64).T)
    y = np.asarray(y_train[order][1000:])
    w1, b1, w2, b2 = gradient_descent(x, y, 0.10, iterations, rng)
    *_, a2 = forward(w1, b1, w2, b2, np.asarray(x_test, dtype=np.float64).T)
    return accuracy(a2, np.asarray(y_test))
