"""Every backend method, given what does not fit: wrong shapes and dtypes, an ``out`` that
overlaps an input, indices and labels out of range. No call may reach a kernel that could
touch memory it was not given; each must do what the NumPy backend does (the same built-in
exception class, or the same values in the same dtypes).

Labels outside ``[0, K)`` given to the losses and counts are outside the interface's
contract (fit and evaluate check them first); only the confusion matrix, which indexes by
label, is held to refusing them here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from .conftest import backend_params
from .reference import REF, same_as_numpy

RNG = np.random.default_rng(0)
X = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)  # (3, 4)
WIDE = RNG.standard_normal((4, 1000)).astype(np.float32)
THIN = RNG.standard_normal((3000, 10)).astype(np.float32)  # a product our kernels take
SQUARE = RNG.standard_normal((10, 10)).astype(np.float32)
LABELS = np.array([0, 3, 1])
SCORES = RNG.standard_normal((5, 100)).astype(np.float32)
VECTOR = np.ones(4, np.float32)
ADAM = (1e-3, 0.9, 0.999, 1e-7, 1)  # learning rate, beta_1, beta_2, epsilon, step

Call = Callable[[Any], Any]


def on(b: Any, *arrays: np.ndarray) -> list[Any]:
    """Fresh copies of ``arrays`` on backend ``b``."""
    return [b.asarray(a.copy()) for a in arrays]


def overlapping_matmul(b: Any) -> Any:
    """``matmul(a, w, out=a)``: the product written over its own left operand."""
    a, w = on(b, THIN, SQUARE)
    return b.matmul(a, w, out=a)


def confusion(b: Any, shape: tuple[int, int], scores: np.ndarray, targets: np.ndarray,
              threshold: float | None = None) -> Any:  # fmt: skip
    matrix = b.zeros(shape, np.int64)
    b.update_confusion(matrix, *on(b, scores, targets), threshold)
    return matrix


CASES: dict[str, Call] = {
    # out= of the wrong shape, dtype or place
    "sum_rows-out-too-small": lambda b: b.sum_rows(*on(b, WIDE), out=b.zeros(1, np.float32)),
    "sum_rows-out-int": lambda b: b.sum_rows(*on(b, X), out=b.zeros(4, np.int64)),
    "sum_rows-out-float64": lambda b: b.sum_rows(*on(b, X), out=b.zeros(4, np.float64)),
    "relu-out-shape": lambda b: b.relu(*on(b, X), out=b.zeros((4, 3), np.float32)),
    "relu-out-int": lambda b: b.relu(*on(b, X), out=b.zeros((3, 4), np.int64)),
    "relu-out-float64": lambda b: b.relu(*on(b, X), out=b.zeros((3, 4), np.float64)),
    "softmax-out-int": lambda b: b.softmax(*on(b, X), out=b.zeros((3, 4), np.int64)),
    "softmax-out-shape": lambda b: b.softmax(*on(b, X), out=b.zeros((3, 5), np.float32)),
    "matmul-out-overlaps-a": overlapping_matmul,
    "matmul-out-shape": lambda b: b.matmul(*on(b, THIN, SQUARE), out=b.zeros((3000, 9))),
    "matmul-out-int": lambda b: b.matmul(*on(b, THIN, SQUARE), out=b.zeros((3000, 10), np.int64)),
    "loss-grad-out-int": lambda b: b.softmax_cross_entropy(
        *on(b, X, np.eye(4, dtype=np.float32)[LABELS]), grad_out=b.zeros((3, 4), np.int64)
    ),
    "loss-grad-out-shape": lambda b: b.sparse_softmax_cross_entropy(
        *on(b, X, LABELS), grad_out=b.zeros((3, 5), np.float32)
    ),
    # operands of the wrong dtype or shape
    "relu_backward-y-float64": lambda b: b.relu_backward(*on(b, X, X.astype(np.float64))),
    "relu_backward-y-shape": lambda b: b.relu_backward(*on(b, X, X[:, :3])),
    "bias-float64": lambda b: b.bias_activation(*on(b, X, VECTOR.astype(np.float64)), "relu"),
    "bias-shape": lambda b: b.bias_activation(*on(b, X, VECTOR[:3]), "relu"),
    "targets-float64": lambda b: b.softmax_cross_entropy(
        *on(b, X, np.eye(4)[LABELS].astype(np.float64))
    ),
    "mse-targets-int": lambda b: b.mean_squared_error(*on(b, X, np.ones((3, 4), int))),
    "labels-float": lambda b: b.sparse_softmax_cross_entropy(*on(b, X, LABELS.astype(float))),
    "labels-shape": lambda b: b.count_argmax_matches(*on(b, X, LABELS[:2])),
    "softmax_backward-shapes": lambda b: b.softmax_backward(*on(b, X, X[:, :3])),
    "activation-unknown": lambda b: b.bias_activation(*on(b, X, VECTOR), "gelu"),
    "penalty-grad-shape": lambda b: b.weight_penalty(*on(b, X), 0.1, 0.1, grad=b.zeros(4)),
    "batch-norm-mean-shape": lambda b: b.batch_norm_forward(
        *on(b, X, VECTOR, VECTOR), 1e-3, b.zeros(3, np.float32), b.zeros(4, np.float32)
    ),
    "batch-norm-mean-int": lambda b: b.batch_norm_forward(
        *on(b, X, VECTOR, VECTOR), 1e-3, b.zeros(4, np.int64), b.zeros(4, np.float32)
    ),
    "moving-average-shape": lambda b: b.moving_average_update(*on(b, VECTOR, X), 0.9),
    # optimizer state that does not fit its parameter
    "state-int64": lambda b: b.rmsprop_update(
        *on(b, X, X, np.zeros((3, 4), np.int64)), 0.1, 0.9, 1e-7
    ),
    "state-shape": lambda b: b.adam_update(
        *on(b, X, X, np.zeros((4, 3), np.float32), np.zeros((3, 4), np.float32)),
        *ADAM,
    ),
    "grad-float64": lambda b: b.sgd_update(*on(b, X, X.astype(np.float64)), 0.1),
    # indices, labels and matrices out of range
    "take_rows-index-past-end": lambda b: b.take_rows(*on(b, X, np.array([0, 3]))),
    "take_rows-negative-index": lambda b: b.take_rows(*on(b, X, np.array([-1, 0]))),
    "take_rows-float-indices": lambda b: b.take_rows(*on(b, X, np.array([0.0, 1.0]))),
    "take_rows-out-shape": lambda b: b.take_rows(*on(b, X, LABELS[:2]), out=b.zeros((3, 4))),
    "confusion-matrix-too-small": lambda b: confusion(b, (3, 3), SCORES, np.arange(5) % 3),
    "confusion-label-out-of-range": lambda b: confusion(
        b, (100, 100), SCORES, np.array([0, 1, 2, 3, 100])
    ),
    "confusion-threshold-1x1": lambda b: confusion(b, (1, 1), X, (X > 0).astype(np.float32), 0.0),
    "confusion-float-matrix": lambda b: b.update_confusion(
        b.zeros((4, 4), np.float32), *on(b, X, LABELS)
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", backend_params())
def test_what_does_not_fit_is_done_or_refused_as_numpy_does(name: str, case: str) -> None:
    same_as_numpy(name, CASES[case])


def test_the_reference_refuses_what_would_corrupt_memory() -> None:
    """The cases the kernels once got wrong, with NumPy's answer spelled out."""
    with pytest.raises(ValueError, match=r"must be integers of shape \(100, 100\)"):
        confusion(REF, (3, 3), SCORES, np.arange(5) % 3)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        confusion(REF, (1, 1), X, (X > 0).astype(np.float32), 0.0)
    with pytest.raises(IndexError, match="label 100 is outside"):
        confusion(REF, (100, 100), SCORES, np.array([0, 1, 2, 3, 100]))
    with pytest.raises(ValueError):
        REF.sum_rows(REF.asarray(WIDE), out=REF.zeros(1, np.float32))
    product = overlapping_matmul(REF)
    np.testing.assert_allclose(product, THIN @ SQUARE, rtol=1e-5)
