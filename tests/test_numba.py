"""The Numba backend's own concerns: kernels against the reference on awkward inputs,
property tests, the matmul paths, caching, threading defaults, and allocations."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn.backends.numpy_backend import NumpyBackend

from .conftest import backend_params

pytestmark = pytest.mark.parametrize("name", backend_params(("numba",)))
REF = NumpyBackend()
TOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-12}

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")


def _close(actual: Any, expected: Any, dtype: np.dtype) -> None:
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype])


# ----------------------------------------------------- awkward array layouts
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_inputs_match_reference(name: str, dtype: str) -> None:
    """Views with strides (a column slice, a transpose) go through the kernels correctly."""
    backend = fastnn.get_backend(name)
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((9, 14)).astype(dt)
    x = wide[:, ::2]  # (9, 7), strided rows
    xt = rng.standard_normal((7, 9)).astype(dt).T  # (9, 7), column-major
    bias = rng.standard_normal(14).astype(dt)[::2]
    labels = rng.integers(0, 7, 9)
    for a in (x, xt):
        _close(backend.relu(a), REF.relu(a), dt)
        _close(backend.sigmoid(a), REF.sigmoid(a), dt)
        _close(backend.softmax(a), REF.softmax(a), dt)
        _close(backend.bias_activation(a, bias, "relu"), REF.bias_activation(a, bias, "relu"), dt)
        _close(backend.relu_backward(a, xt), REF.relu_backward(a, xt), dt)
        _close(backend.sum_rows(a), REF.sum_rows(a), dt)
        loss, grad = backend.sparse_softmax_cross_entropy(a, labels)
        ref_loss, ref_grad = REF.sparse_softmax_cross_entropy(a, labels)
        assert loss == pytest.approx(ref_loss, rel=TOL[dt])
        _close(grad, ref_grad, dt)
        _close(
            backend.take_rows(a, np.array([8, 0, -1])), REF.take_rows(a, np.array([8, 0, -1])), dt
        )
    # an out= that is itself a strided view is written in place
    out = np.zeros((9, 14), dt)[:, ::2]
    backend.softmax(x, out=out)
    _close(out, REF.softmax(x), dt)
    # optimizer updates on non-contiguous parameters fall back and still update in place
    param = wide.copy()[:, ::2]
    ref_param = param.copy()
    velocity, ref_velocity = np.zeros_like(param), np.zeros_like(param)
    backend.rmsprop_update(param, x, velocity, 0.01, 0.9, 1e-7)
    REF.rmsprop_update(ref_param, x, ref_velocity, 0.01, 0.9, 1e-7)
    _close(param, ref_param, dt)


def test_kernels_check_what_they_index(name: str) -> None:
    backend = fastnn.get_backend(name)
    x = np.ones((4, 3), np.float32)
    with pytest.raises(IndexError):
        backend.take_rows(x, np.array([0, 4]))
    with pytest.raises(IndexError):
        backend.sparse_softmax_cross_entropy(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="shapes differ"):
        backend.relu_backward(x, np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="labels must have shape"):
        backend.sparse_softmax_cross_entropy(x, np.array([0, 1]))


# ------------------------------------------------------------ property tests
def _matrices(dtype: np.dtype) -> Any:
    shape = st.tuples(st.integers(1, 9), st.integers(1, 12))
    values = st.floats(-1e4, 1e4, width=dtype.itemsize * 8, allow_nan=False)
    return hnp.arrays(dtype, shape, elements=values)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_elementwise_and_softmax_properties(name: str, data: Any, dtype: type) -> None:
    backend = fastnn.get_backend(name)
    dt = np.dtype(dtype)
    x = data.draw(_matrices(dt))
    dy = data.draw(hnp.arrays(dt, x.shape, elements=st.floats(-10, 10, width=dt.itemsize * 8)))
    bias = data.draw(
        hnp.arrays(dt, x.shape[1:], elements=st.floats(-10, 10, width=dt.itemsize * 8))
    )
    for op, args in (
        ("relu", (x,)),
        ("sigmoid", (x,)),
        ("softmax", (x,)),
        ("relu_backward", (dy, x)),
        ("softmax_backward", (dy, REF.softmax(x))),
        ("sum_rows", (dy,)),
    ):
        _close(getattr(backend, op)(*args), getattr(REF, op)(*args), dt)
    for activation in ("linear", "relu", "sigmoid", "softmax"):
        _close(
            backend.bias_activation(x.copy(), bias, activation),
            REF.bias_activation(x.copy(), bias, activation),
            dt,
        )
    # in place, as layers call them (written through a scratch): the same numbers
    for activation in ("linear", "relu", "sigmoid"):
        in_place = x.copy()
        backend.bias_activation(in_place, bias, activation, out=in_place)
        np.testing.assert_array_equal(in_place, backend.bias_activation(x, bias, activation))
    for op in ("relu_backward", "sigmoid_backward"):
        in_place = dy.copy()
        getattr(backend, op)(in_place, x, out=in_place)
        np.testing.assert_array_equal(in_place, getattr(backend, op)(dy, x))
    for activation in ("relu", "sigmoid"):  # relu's is one pass: the gradient and its sums
        sums, ref_sums = np.empty(x.shape[1], dt), np.empty(x.shape[1], dt)
        got = backend.bias_activation_backward(dy.copy(), x, activation, sums)
        want = REF.bias_activation_backward(dy.copy(), x, activation, ref_sums)
        _close(got, want, dt)
        _close(sums, ref_sums, dt)
    # in place, as a Dense layer calls it, and not: the unfused ops' very numbers
    in_place, apart = dy.copy(), np.empty_like(dy)
    fused_sums, apart_sums = np.empty(x.shape[1], dt), np.empty(x.shape[1], dt)
    backend.bias_activation_backward(in_place, x, "relu", fused_sums, out=in_place)
    unfused = backend.relu_backward(dy, x)
    np.testing.assert_array_equal(in_place, unfused)
    np.testing.assert_array_equal(fused_sums, backend.sum_rows(unfused))
    backend.bias_activation_backward(dy, x, "relu", apart_sums, out=apart)
    np.testing.assert_array_equal(apart, unfused)
    np.testing.assert_array_equal(apart_sums, fused_sums)
    labels = data.draw(hnp.arrays(np.int64, x.shape[:1], elements=st.integers(0, x.shape[1] - 1)))
    loss, grad = backend.sparse_softmax_cross_entropy(x, labels)
    ref_loss, ref_grad = REF.sparse_softmax_cross_entropy(x, labels)
    assert loss == pytest.approx(ref_loss, rel=TOL[dt], abs=TOL[dt])
    _close(grad, ref_grad, dt)
    assert backend.count_argmax_matches(x, labels) == REF.count_argmax_matches(x, labels)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    optimizer=st.sampled_from(["sgd", "momentum", "nesterov", "rmsprop", "adam"]),
)
def test_optimizer_update_properties(name: str, data: Any, dtype: type, optimizer: str) -> None:
    backend = fastnn.get_backend(name)
    dt = np.dtype(dtype)
    size = data.draw(st.integers(1, 300))
    floats = st.floats(-3, 3, width=dt.itemsize * 8)
    param, grad = (data.draw(hnp.arrays(dt, size, elements=floats)) for _ in range(2))
    slot_a = data.draw(hnp.arrays(dt, size, elements=floats))
    slot_b = np.abs(data.draw(hnp.arrays(dt, size, elements=floats)))
    lr = data.draw(st.floats(1e-4, 0.5))
    args = {
        "sgd": ("sgd_update", (lr,), 0),
        "momentum": ("momentum_update", (lr, 0.9, False), 1),
        "nesterov": ("momentum_update", (lr, 0.9, True), 1),
        "rmsprop": ("rmsprop_update", (lr, 0.9, 1e-7), 1),
        "adam": ("adam_update", (lr, 0.9, 0.999, 1e-7, data.draw(st.integers(1, 50))), 2),
    }[optimizer]
    method, scalars, n_slots = args
    slots = [np.abs(slot_b) if optimizer in ("rmsprop",) else slot_a, slot_b][:n_slots]
    mine = [param.copy(), grad, *(s.copy() for s in slots)]
    ref = [param.copy(), grad, *(s.copy() for s in slots)]
    getattr(backend, method)(*mine, *scalars)
    getattr(REF, method)(*ref, *scalars)
    for got, want in zip(mine, ref, strict=True):
        _close(got, want, dt)


# ------------------------------------------------------------------- matmul
@pytest.mark.parametrize("path", ["blas", "own"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (1, 7, 3), (5, 3, 1), (7, 13, 9), (10, 27, 10), (65, 300, 33)]
)
def test_matmul_paths_agree(name: str, path: str, dtype: str, shape: tuple[int, int, int]) -> None:
    from fastnn.kernels import matmul

    dt = np.dtype(dtype)
    rows, depth, cols = shape
    rng = np.random.default_rng(sum(shape))
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((depth, rows) if ta else (rows, depth)).astype(dt)
            b = rng.standard_normal((cols, depth) if tb else (depth, cols)).astype(dt)
            left = (a.T if ta else a).astype(np.float64)
            right = (b.T if tb else b).astype(np.float64)
            out = np.empty((rows, cols), dt)
            result = matmul.matmul(a, b, ta, tb, out, path=path)
            assert result is out
            # the classic bound for a computed dot product: depth * eps * sum |a_k b_k|
            bound = 2 * depth * np.finfo(dt).eps * (np.abs(left) @ np.abs(right))
            assert np.all(np.abs(out - left @ right) <= bound), (ta, tb)


def test_matmul_choice_follows_the_measured_rules(name: str) -> None:
    from fastnn.kernels.matmul import choose

    assert choose(128, 784, 512, False, False) == "blas"  # wide: BLAS
    assert choose(128, 512, 10, False, False) == "blas"  # thin but small: BLAS
    assert choose(59000, 784, 10, False, False) == "own"  # thin and big: our kernels
    assert choose(784, 59000, 10, True, False) == "own"  # the matching weight gradient
    assert choose(784, 59000, 10, False, False) == "blas"  # a long dot product: BLAS


# ---------------------------------------------------------------- exp kernel
def test_exp_of_non_positive_numbers(name: str) -> None:
    from fastnn.kernels.exp import exp_nonpositive_array

    for dt in (np.float32, np.float64):
        x = -np.abs(np.random.default_rng(1).standard_normal(20000) * 40).astype(dt)
        x[:5] = [0.0, -1e-30, -87.0, -np.inf, np.nan]
        out = np.empty_like(x)
        exp_nonpositive_array(x, out)
        reference = np.exp(x.astype(np.float64))
        normal = reference > np.finfo(dt).tiny
        eps = np.finfo(dt).eps
        relative = np.abs(out[normal] - reference[normal]) / reference[normal]
        assert relative.max() < 64 * eps
        assert np.all(out[~normal & ~np.isnan(x)] <= np.finfo(dt).tiny)
        assert out[3] == 0.0 and np.isnan(out[4])


# ----------------------------------------------------- subnormal flushing
def test_optimizer_state_never_goes_subnormal(name: str) -> None:
    """A weight whose gradient stays 0 ends with state exactly 0, not a subnormal."""
    backend = fastnn.get_backend(name)
    param = np.ones(4, np.float32)
    grad = np.zeros(4, np.float32)
    m = np.full(4, 1e-30, np.float32)
    v = np.full(4, 1e-30, np.float32)
    for step in range(1, 400):
        backend.adam_update(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-7, step)
        backend.rmsprop_update(param, grad, v, 1e-3, 0.9, 1e-7)
    tiny = np.finfo(np.float32).tiny
    for state in (m, v):
        assert np.all((state == 0) | (np.abs(state) >= tiny))
    assert np.all(m == 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epsilon", [1e-7, 0.0])
def test_rmsprop_skips_only_what_the_reference_leaves_alone(
    name: str, dtype: str, epsilon: float
) -> None:
    """Blocks of zero gradient (whole rows, as MNIST's border pixels give) keep their
    weights bit for bit, and their velocity decays; where 0 / sqrt(v + epsilon) is NaN
    (v NaN, or v and epsilon 0) the weights become NaN, as in the reference."""
    from fastnn.kernels.optimizers import ZERO_BLOCK

    backend = fastnn.get_backend(name)
    dt = np.dtype(dtype)
    rng = np.random.default_rng(3)
    rows, cols = 7, ZERO_BLOCK + 5  # blocks straddle rows: a zero row alone is no block
    param = rng.standard_normal((rows, cols)).astype(dt)
    velocity = np.abs(rng.standard_normal((rows, cols))).astype(dt)
    grad = rng.standard_normal((rows, cols)).astype(dt)
    grad[1:4] = 0.0  # rows 1-3: whole blocks of zeros inside
    grad[2, 40] = -0.0
    grad[5, 7] = 1e-45 if dt == np.float32 else 5e-324  # one subnormal moves its block
    velocity[3, 30] = np.nan  # a zero-gradient block with a NaN velocity
    velocity[2, 60:70] = 0.0  # one with zero velocities: NaN only when epsilon is 0
    start = param.copy()
    expected = [a.copy() for a in (param, velocity)]
    REF.rmsprop_update(expected[0], grad, expected[1], 1e-3, 0.9, epsilon)
    backend.rmsprop_update(param, grad, velocity, 1e-3, 0.9, epsilon)
    for got, want in zip((param, velocity), expected, strict=True):
        assert np.array_equal(np.isnan(got), np.isnan(want))
        _close(np.nan_to_num(got), np.nan_to_num(want), dt)
    assert np.isnan(param[3, 30]) and np.isnan(param[2, 65]) == (epsilon == 0.0)
    still = (grad == 0) & ~np.isnan(param)
    assert still.sum() > 2 * ZERO_BLOCK
    assert np.array_equal(param[still], start[still])  # bit for bit, not within rounding


# ------------------------------------------------------------ infrastructure
def test_every_kernel_is_cached(name: str) -> None:
    """cache=True on every kernel, so a second process loads machine code, not LLVM IR.
    (Each module's own kernels: an inline helper it imports, such as ``jit.unsigned``, is
    compiled into its callers and has no cache of its own.)"""
    dispatchers = []
    for module_name in ("elementwise", "softmax", "rows", "optimizers", "matmul", "exp",
                        "loss_steps"):  # fmt: skip
        module = importlib.import_module(f"fastnn.kernels.{module_name}")
        own = [v for v in vars(module).values() if hasattr(v, "py_func")]
        dispatchers += [v for v in own if v.py_func.__module__ == module.__name__]
    assert len(dispatchers) >= 25
    for dispatcher in dispatchers:
        assert type(dispatcher._cache).__name__ == "FunctionCache", dispatcher.py_func.__name__


def test_probe_reports_a_missing_numba(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastnn.backends import numba_backend

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *a: None if module == "numba" else real_find_spec(module, *a),
    )
    assert numba_backend.probe() == (
        'numba is not installed (pip install -e ".[numba]" in the fastnn folder, '
        "or pip install numba)"
    )


def test_kernels_count_as_compiled_only_where_numba_keeps_them(name: str, tmp_path: Any) -> None:
    """In this process the kernels have run and sit in Numba's cache; a process whose cache
    is an empty folder has none, and ``fastnn train`` then says it is compiling."""
    import os

    assert fastnn.get_backend("numba").kernels_cached()  # type: ignore[attr-defined]
    code = "import fastnn; print(fastnn.get_backend('numba').kernels_cached())"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "False"


def _threading_settings(**env: str) -> list[str]:
    code = (
        "import os, fastnn, numba; fastnn.get_backend('numba'); "
        "print(os.environ.get('OMP_WAIT_POLICY')); print(numba.config.THREADING_LAYER); "
        "print(numba.config.THREADING_LAYER_PRIORITY[0]); print(os.environ.get('GOMP_SPINCOUNT'))"
    )
    import os

    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    clean = {k: v for k, v in clean.items() if not k.startswith("NUMBA_THREADING")}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_threading_defaults_and_user_overrides(name: str) -> None:
    from fastnn.kernels import threads

    assert _threading_settings() == ["PASSIVE", "default", "omp", threads.SPIN_COUNT]
    overridden = _threading_settings(OMP_WAIT_POLICY="ACTIVE", NUMBA_THREADING_LAYER="workqueue")
    assert overridden[:2] == ["ACTIVE", "workqueue"]
    assert overridden[3] == "None"  # the user's own policy: no spin count added to it
    assert _threading_settings(GOMP_SPINCOUNT="7")[-1] == "7"


def test_training_steps_allocate_no_arrays(name: str) -> None:
    """After the first steps, a training step allocates no array buffers at all (from
    the sixth on: the second to fourth make the buffers and are recorded for replay)."""
    from fastnn.callbacks import Callback

    rng = np.random.default_rng(0)
    x = rng.random((1100, 784)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    peaks: list[int] = []

    class Watch(Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 5:
                tracemalloc.start()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 7:
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()

    with fastnn.use_backend(name):
        for optimizer in ("rmsprop", "adam", "sgd"):
            model = fastnn.Sequential(
                [fastnn.layers.Dense(512, "relu"), fastnn.layers.Dense(10, "softmax")], seed=0
            )
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])  # fmt: skip
            model.fit(x, y, epochs=1, batch_size=128, verbose=0, callbacks=[Watch()])
    # a single 128x512 float32 temporary would be 262,144 bytes
    assert max(peaks) < 16_384, peaks


@pytest.mark.parametrize("loss", ["sparse_softmax_cross_entropy", "softmax_cross_entropy"])
@pytest.mark.parametrize("count", [None, "argmax", "threshold"])
@pytest.mark.parametrize("extras", ["bias", "bias and weights", "none"])
def test_the_one_launch_loss_step_is_the_ops_one_by_one(
    name: str, loss: str, count: str | None, extras: str
) -> None:
    """``loss_and_gradient`` as one kernel (``kernels/loss_steps.py``) against the ops it
    replaces, called one by one on the same backend: the same bits in the loss, the
    gradient, the outputs (the bias added in place), the bias gradient and the totals;
    a row of NaN and a second step (the totals add up, the first bad step is kept)."""
    from fastnn.backends.base import TOTALS_START, Count

    backend = fastnn.get_backend(name)
    rng = np.random.default_rng(11)
    outputs = rng.standard_normal((19, 7)).astype(np.float32)
    outputs[3] = np.nan
    if loss == "sparse_softmax_cross_entropy":
        targets: np.ndarray = rng.integers(0, 7, 19)
    else:
        targets = (rng.random((19, 7)) < 0.3).astype(np.float32)
    counted = None
    if count == "argmax":
        counted = Count("argmax", rng.integers(0, 7, 19))
    elif count == "threshold":
        counted = Count("threshold", (rng.random((19, 7)) < 0.5).astype(np.float32), 0.25)
    around: dict[str, Any] = {}
    if extras != "none":
        around["bias"] = rng.standard_normal(7).astype(np.float32)
    if extras == "bias and weights":
        around["weights"] = rng.random(19).astype(np.float32) * 2

    def steps(fused: bool) -> list[Any]:
        composed = super(type(backend), backend).loss_and_gradient
        call = backend.loss_and_gradient if fused else composed
        totals, made = TOTALS_START.copy(), []
        for _ in range(2):
            z, grad, bias_grad = outputs.copy(), np.empty_like(outputs), np.empty(7, np.float32)
            value, _ = call(loss, z, targets, grad, bias_grad=bias_grad, totals=totals,
                            count=counted, **around)  # fmt: skip
            made += [np.float64(value), z, grad, bias_grad]
        return [*made, totals]

    assert backend._loss_step(loss, outputs, targets, None, None, None, TOTALS_START.copy(),
                              counted, around.get("weights")) is not None  # fmt: skip
    for got, want in zip(steps(True), steps(False), strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_loss_kernels_lay_out_the_totals_as_the_backends_do(name: str) -> None:
    from fastnn.backends import base
    from fastnn.kernels import loss_steps

    for field in ("LOSS_SUM", "CORRECT", "STEPS", "FIRST_BAD_STEP", "FIRST_BAD_LOSS", "LAST_LOSS"):
        assert getattr(loss_steps, field) == getattr(base, field)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape", [(128, 512, 10), (1, 3, 1), (7, 33, 16), (64, 100, 5), (130, 17, 2)]
)
def test_the_last_layer_with_its_loss_matches_the_ops_one_by_one(
    name: str, dtype: str, shape: tuple[int, int, int]
) -> None:
    """``dense_loss_step`` on ``kernels/heads.py`` (a thin layer on a mini-batch) against
    the same step composed of the backend's products and fused loss: the loss, the
    logits (bias added), dz, the kernel's and bias's gradients, the input's gradient and
    the totals, within the dtype's tolerance (the products sum in another order); and
    without the input's gradient, which is then left alone."""
    from fastnn.backends.base import TOTALS_START, Backend, Count
    from fastnn.threads import pass_threads

    backend = fastnn.get_backend(name)
    dt = np.dtype(dtype)
    rows, width, units = shape
    rng = np.random.default_rng(rows + width)
    x = np.maximum(rng.standard_normal((rows, width)), 0).astype(dt)
    kernel = rng.standard_normal((width, units)).astype(dt)
    bias = rng.standard_normal(units).astype(dt)
    labels = rng.integers(0, units, rows)
    arrays = tuple(np.empty(s, dt) for s in ((rows, units), (rows, units), (width, units)))
    assert not backend._head_fits(x, kernel, *arrays, None)  # BLAS not held to one thread
    with pass_threads(own_products=True):  # as a pass on compressed rows holds it
        assert backend._head_fits(x, kernel, *arrays, None)

    def step(composed: bool, input_grad: bool) -> list[Any]:
        run = Backend.dense_loss_step if composed else type(backend).dense_loss_step
        made = [np.empty((rows, units), dt), np.empty((rows, units), dt),
                np.empty((width, units), dt), np.empty(units, dt), TOTALS_START.copy()]  # fmt: skip
        dx = np.full((rows, width), 7.0, dt)
        value, _, got = run(
            backend, "sparse_softmax_cross_entropy", x, kernel, labels, made[0], made[1],
            made[2], dx if input_grad else None, bias=bias, bias_grad=made[3],
            totals=made[4], count=Count("argmax", labels),
        )  # fmt: skip
        assert (got is dx) if input_grad else got is None
        return [np.float64(value), *made, dx]

    with pass_threads(own_products=True):
        for input_grad in (True, False):
            got, want = step(False, input_grad), step(True, input_grad)
            for a, b in zip(got, want, strict=True):
                _close(a, b, dt)
        np.testing.assert_array_equal(step(False, False)[-1], 7.0)
