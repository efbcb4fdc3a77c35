"""The backend ops: the NumPy reference against the formulas, every other backend against it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.backends.numpy_backend import NumpyBackend

from .conftest import OTHER_BACKENDS, backend_params

REF = NumpyBackend()
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _softmax64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ reference
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_transposes_and_out(ta: bool, tb: bool) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3) if not ta else (3, 5))
    b = rng.standard_normal((3, 4) if not tb else (4, 3))
    expected = (a.T if ta else a) @ (b.T if tb else b)
    out = np.empty((5, 4))
    result = REF.matmul(a, b, transpose_a=ta, transpose_b=tb, out=out)
    assert result is out
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_softmax_is_stable_and_exact() -> None:
    x = np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0], [-np.inf, 0.0, 0.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = REF.softmax(x)
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], _softmax64(x[1:2])[0], rtol=1e-6)
    np.testing.assert_allclose(y[2], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    in_place = x.copy()
    assert REF.softmax(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, y)


def test_sigmoid_does_not_overflow() -> None:
    x = np.array([-1000.0, -20.0, 0.0, 3.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = REF.sigmoid(x)
    expected = [0.0, 1 / (1 + np.exp(20.0)), 0.5, 1 / (1 + np.exp(-3.0)), 1.0]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_backward_matches_finite_differences(activation: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)) + 0.05  # keep away from ReLU's kink at 0
    dy = rng.standard_normal((4, 5))
    y = REF.activation(x.copy(), activation)
    analytic = REF.activation_backward(dy.copy(), y, activation)
    numeric = np.zeros_like(x)
    step = 1e-6
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        f_plus = (REF.activation(plus, activation) * dy).sum()
        f_minus = (REF.activation(minus, activation) * dy).sum()
        numeric[index] = (f_plus - f_minus) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_bias_activation_is_bias_then_activation(activation: str) -> None:
    rng = np.random.default_rng(2)
    x, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    expected = REF.activation(x + b, activation)
    z = x.copy()
    assert REF.bias_activation(z, b, activation, out=z) is z
    np.testing.assert_allclose(z, expected, rtol=1e-14)


def _loss_fd(fn: Callable[[np.ndarray], Any], z: np.ndarray) -> np.ndarray:
    numeric = np.zeros_like(z)
    step = 1e-6
    for index in np.ndindex(z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (fn(plus)[0] - fn(minus)[0]) / (2 * step)
    return numeric


def test_sparse_softmax_cross_entropy_value_and_gradient() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    loss, grad = REF.sparse_softmax_cross_entropy(z, labels)
    expected = -np.log(_softmax64(z)[np.arange(6), labels]).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    numeric = _loss_fd(lambda v: REF.sparse_softmax_cross_entropy(v, labels), z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    # one-hot targets give the same loss and gradient through the dense form
    loss_dense, grad_dense = REF.softmax_cross_entropy(z, np.eye(4)[labels])
    assert loss_dense == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(grad_dense, grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_stays_finite_for_huge_logits() -> None:
    z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = REF.sparse_softmax_cross_entropy(z, np.array([0, 0]))
    assert loss == pytest.approx(1e4, rel=1e-6)  # one sample perfect, one off by 2e4
    np.testing.assert_allclose(grad, [[0.0, 0.0], [-0.5, 0.5]])


def test_soft_targets_gradient() -> None:
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 5))
    t = rng.random((3, 5))
    t /= t.sum(axis=1, keepdims=True)
    _, grad = REF.softmax_cross_entropy(z, t)
    np.testing.assert_allclose(
        grad, _loss_fd(lambda v: REF.softmax_cross_entropy(v, t), z), rtol=1e-6, atol=1e-9
    )


def test_sigmoid_binary_cross_entropy() -> None:
    z = np.array([[0.3], [-2.0], [1000.0], [-1000.0]])
    t = np.array([[1.0], [0.0], [1.0], [1.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = REF.sigmoid_binary_cross_entropy(z, t)
    p = 1 / (1 + np.exp(-z[:2, 0]))
    first_two = -(np.log(p[0]) + np.log(1 - p[1]))
    assert loss == pytest.approx((first_two + 0.0 + 1000.0) / 4, rel=1e-12)
    small = z[:2]
    numeric = _loss_fd(lambda v: REF.sigmoid_binary_cross_entropy(v, t[:2]), small)
    _, grad_small = REF.sigmoid_binary_cross_entropy(small, t[:2])
    np.testing.assert_allclose(grad_small, numeric, rtol=1e-6)
    np.testing.assert_allclose(grad[2:, 0], [0.0, -0.25])


def test_mean_squared_error() -> None:
    p = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[1.0, 0.0], [0.0, 5.0]])
    loss, grad = REF.mean_squared_error(p, t)
    assert loss == pytest.approx((0 + 4 + 9 + 0) / 4)
    np.testing.assert_allclose(grad, 2 * (p - t) / 4)


def test_metrics_counts() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert REF.count_argmax_matches(scores, np.array([1, 1, 1])) == 2
    np.testing.assert_array_equal(REF.argmax_rows(scores), [1, 0, 1])
    assert REF.count_threshold_matches(scores, np.array([[0, 1], [1, 1], [0, 0]]), 0.5) == 4


def test_take_rows_and_sums() -> None:
    x = np.arange(12.0).reshape(4, 3)
    out = np.empty((3, 3))
    assert REF.take_rows(x, np.array([3, 0, 3]), out=out) is out
    np.testing.assert_array_equal(out, x[[3, 0, 3]])
    np.testing.assert_array_equal(REF.sum_rows(x), x.sum(axis=0))
    np.testing.assert_array_equal(
        REF.bias_add(x, np.array([1.0, 0.0, -1.0])), x + np.array([1.0, 0.0, -1.0])
    )


def test_optimizer_updates_by_hand() -> None:
    g = np.array([1.0, -2.0])
    p = np.array([0.5, 0.5])
    REF.sgd_update(p, g, 0.1)
    np.testing.assert_allclose(p, [0.4, 0.7])

    p, v = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    REF.momentum_update(p, g, v, 0.1, 0.9, nesterov=False)
    np.testing.assert_allclose(v, [0.8, 0.2])  # 0.9 * v - 0.1 * g
    np.testing.assert_allclose(p, [1.3, 0.7])
    p, v = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    REF.momentum_update(p, g, v, 0.1, 0.9, nesterov=True)
    np.testing.assert_allclose(p, [0.5 + 0.72 - 0.1, 0.5 + 0.18 + 0.2])

    # Keras's documented RMSprop example: w = 10, grad = w, lr = 0.1 -> 9.683772
    w, ms = np.array([10.0]), np.zeros(1)
    REF.rmsprop_update(w, w.copy(), ms, 0.1, 0.9, 1e-7)
    assert w[0] == pytest.approx(9.683772, abs=1e-6)

    # Adam, two steps by hand
    w, m, v = np.array([1.0]), np.zeros(1), np.zeros(1)
    for step, grad in ((1, 0.5), (2, -0.25)):
        REF.adam_update(w, np.array([grad]), m, v, 0.01, 0.9, 0.999, 1e-7, step)
    m1, v1 = 0.1 * 0.5, 0.001 * 0.25
    w1 = 1.0 - 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9) * m1 / (np.sqrt(v1) + 1e-7)
    m2, v2 = 0.9 * m1 + 0.1 * -0.25, 0.999 * v1 + 0.001 * 0.0625
    w2 = w1 - 0.01 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2) * m2 / (np.sqrt(v2) + 1e-7)
    assert w[0] == pytest.approx(w2, rel=1e-12)


# -------------------------------------------------------- public fastnn.ops
@pytest.mark.parametrize("name", backend_params())
def test_public_ops_dispatch_to_the_active_backend(name: str) -> None:
    with fastnn.use_backend(name) as backend:
        a = [[1, 2], [3, 4]]  # integers compute in the default float dtype
        product = backend.to_numpy(fastnn.ops.matmul(a, [[1], [1]]))
        np.testing.assert_allclose(product, [[3.0], [7.0]])
        assert product.dtype == np.float32
        relu = backend.to_numpy(fastnn.ops.relu(np.array([-1.0, 2.0])))
        np.testing.assert_array_equal(relu, [0.0, 2.0])
        soft = backend.to_numpy(fastnn.ops.softmax(np.array([0.0, np.log(3.0)])))
        np.testing.assert_allclose(soft, [0.25, 0.75])


def test_public_ops_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(2, 3\)"):
        fastnn.ops.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="must hold numbers"):
        fastnn.ops.relu(np.array(["a"]))


# ------------------------------------------------- every backend vs numpy
SHAPES = [(1, 1), (1, 7), (7, 1), (13, 17), (128, 512)]


def _cases(rng: np.random.Generator, shape: tuple[int, int], dtype: type) -> dict[str, Any]:
    """Inputs for each op; the ``args`` are copied afresh for each backend."""
    rows, cols = shape

    def r(*s: int) -> np.ndarray:
        return rng.standard_normal(s).astype(dtype)

    x = r(rows, cols)
    x[0, 0] = 1e4 if x.size > 1 else x[0, 0]
    labels = rng.integers(0, cols, rows)
    onehot = np.eye(cols, dtype=dtype)[labels]
    variance = rng.random(cols).astype(dtype) + x.var(axis=0).astype(dtype)
    return {
        "matmul": (r(rows, 5), r(5, cols)),
        "matmul_tt": (r(5, rows), r(cols, 5), True, True),
        "bias_add": (x, r(cols)),
        "sum_rows": (x,),
        "relu": (x,),
        "relu_backward": (r(rows, cols), x),
        "sigmoid": (x,),
        "sigmoid_backward": (r(rows, cols), rng.random((rows, cols)).astype(dtype)),
        "tanh": (x,),
        "tanh_backward": (r(rows, cols), np.tanh(x)),
        "softmax": (np.where(rng.random((rows, cols)) < 0.1, -np.inf, x).astype(dtype),),
        "softmax_backward": (r(rows, cols), _softmax64(x).astype(dtype)),
        "bias_activation": (x, r(cols), "relu"),
        "sparse_softmax_cross_entropy": (x, labels),
        "softmax_cross_entropy": (x, onehot),
        "sigmoid_binary_cross_entropy": (x, (rng.random((rows, cols)) < 0.5).astype(dtype)),
        "mean_squared_error": (x, r(rows, cols)),
        "argmax_rows": (x,),
        "count_argmax_matches": (x, labels),
        "take_rows": (x, rng.integers(0, rows, 2 * rows)),
        "rmsprop_update": (x, r(rows, cols), rng.random((rows, cols)).astype(dtype),
                           1e-3, 0.9, 1e-7),
        "adam_update": (x, r(rows, cols), r(rows, cols), rng.random((rows, cols)).astype(dtype),
                        1e-3, 0.9, 0.999, 1e-7, 3),
        "momentum_update": (x, r(rows, cols), r(rows, cols), 0.1, 0.9, True),
        "sgd_update": (x, r(rows, cols), 0.1),
        "weight_penalty": (x, 0.01, 0.001, r(rows, cols)),
        "weight_penalty_value": (x, 0.0, 0.5),
        "multiply": (x, r(rows, cols)),
        "batch_norm_forward": (x, r(cols), r(cols), 1e-3, np.zeros(cols, dtype),
                               np.zeros(cols, dtype)),
        "batch_norm_inference": (x, r(cols), variance, r(cols), r(cols), 1e-3),
        "batch_norm_backward": (r(rows, cols), x, x.mean(axis=0), variance, r(cols), 1e-3,
                                np.zeros(cols, dtype), np.zeros(cols, dtype)),
        "moving_average_update": (r(cols), r(cols), 0.99),
        "update_confusion": (np.zeros((cols, cols), np.int64), x, labels),
        "update_confusion_threshold": (np.zeros((2, 2), np.int64), x,
                                       (rng.random((rows, cols)) < 0.5).astype(dtype), 0.0),
    }  # fmt: skip


def _host_values(backend: Any, result: Any) -> list[np.ndarray]:
    """An op's result (array, scalar or tuple of them) as float64 host arrays."""
    items = result if isinstance(result, tuple) else (result,)
    return [
        np.asarray(backend.to_numpy(v) if getattr(v, "ndim", 0) > 0 else float(v), np.float64)
        for v in items
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_every_op_matches_numpy(name: str, shape: tuple[int, int], dtype: type) -> None:
    backend = fastnn.get_backend(name)
    cases = _cases(np.random.default_rng(sum(shape)), shape, dtype)
    for op, args in cases.items():
        method = op.removesuffix("_tt").removesuffix("_threshold").removesuffix("_value")
        ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        dev_args = [backend.asarray(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
        expected = getattr(REF, method)(*ref_args)
        actual = getattr(backend, method)(*dev_args)
        rtol = TOLERANCE[dtype]
        # every array argument, for the ops that write into one (in-place updates, outputs)
        for ref_arr, dev_arr in zip(ref_args, dev_args, strict=True):
            if isinstance(ref_arr, np.ndarray):
                np.testing.assert_allclose(
                    backend.to_numpy(dev_arr), ref_arr, rtol=rtol, atol=rtol, err_msg=op
                )
        if expected is None:
            continue
        for got, want in zip(
            _host_values(backend, actual), _host_values(REF, expected), strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=op)
