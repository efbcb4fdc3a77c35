"""Property tests: every op of every backend against the NumPy reference.

Hypothesis draws the operands: shapes from empty (0 rows, 0 columns) through one
element to a few SIMD widths, float32 and float64, C-contiguous, Fortran-ordered,
strided and reversed (negative stride) views, and values from subnormal to the
largest finite float, exact ties, NaN and infinities. Each backend must

* agree with the reference to rounding, with NaN where the reference has NaN and
  the same infinities where it has infinities;
* refuse what the reference refuses, with the same exception type;
* return results of the right shape and dtype, return and fill ``out=`` buffers,
  update in place what the op updates in place, and leave every other input alone.

Rounding is judged against ``bound``, the float64 sum of the absolute values of the
terms an entry is computed from, not against the result alone: a cancelling sum
(or an FMA the compiler contracted) may differ by its terms' rounding. Where that
sum passes the dtype's largest value, the result depends on the order of the
arithmetic (inf in one order, finite in another), so the entry is not compared.
Non-finite inputs count 0 in ``bound``: NaN and inf propagate the same way in any
order, so their positions are always compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest

import fastnn
from fastnn.backends.base import ACTIVATIONS, Backend
from fastnn.backends.numpy_backend import NumpyBackend, adam_step_size

from . import kernel_calls
from .conftest import OTHER_BACKENDS, backend_params

# The float64 bounds may overflow to inf (and inf * 0 make NaN): that is what marks an entry
# as not comparable.
pytestmark = [
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
hnp = pytest.importorskip("hypothesis.extra.numpy")

REF = NumpyBackend()
BACKENDS = backend_params(OTHER_BACKENDS)
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
#: C order, a transposed view (Fortran order), every other column of a wider array,
#: and rows reversed (a negative stride)
LAYOUTS = ("C", "F", "strided", "reversed")
#: C order two times in three: the numba kernels take C-ordered operands only (the other
#: layouts go to NumPy code), and most examples must reach the kernels
LAYOUT_DRAWS = ("C",) * 6 + LAYOUTS[1:]
#: per op, [calls the reference accepted, calls that ran a kernel of the backend]
REACH: dict[str, list[int]] = {}
MAGNITUDES = ("moderate", "large", "tiny", "huge", "mixed", "nonfinite", "ties")
#: arguments an op writes into (the others must keep their values)
OUT_NAMES = ("out", "grad_out", "mean_out", "variance_out", "dgamma_out", "dbeta_out")

# Each test runs a few dozen cases: enough to reach every strategy branch in a few runs,
# few enough that the file stays fast once numba's cache holds every layout's signature.
SETTINGS = hypothesis.settings(max_examples=40, deadline=None)
PROFILE_VAR = "FASTNN_HYPOTHESIS_PROFILE"

ROWS = st.integers(0, 9)
#: up to a few vector widths, so the kernels' vector bodies and scalar tails both run
COLS = st.integers(0, 33)


# ---------------------------------------------------------------- strategies
def elements(dtype: np.dtype, magnitude: str) -> Any:
    """Values of ``dtype`` of one magnitude class."""

    def between(low: float, high: float) -> Any:
        """Values in [low, high] and [-high, -low] (bounds rounded to the dtype)."""
        low, high = float(dtype.type(low)), float(dtype.type(high))
        width = 8 * dtype.itemsize
        return st.floats(low, high, width=width) | st.floats(-high, -low, width=width)

    moderate = between(0, 10)
    large = between(100, 1e5)
    # subnormals included: hypothesis draws them when the range reaches below tiny
    tiny = between(0, 1e-30)
    huge = between(1e30, float(np.finfo(dtype).max))
    special = st.sampled_from([np.nan, np.inf, -np.inf])
    return {
        "moderate": moderate,
        "large": large,
        "tiny": tiny,
        "huge": huge,
        "mixed": moderate | large | tiny | huge,
        "nonfinite": moderate | special,
        "ties": st.sampled_from([-1.0, 0.0, 1.0]) | special,
    }[magnitude]


@dataclass(frozen=True, eq=False)
class Operand:
    """A drawn array: its values, and the memory layout the backend receives them in.

    Compared by identity, so passing one Operand twice (``out=x``) passes one array twice.
    """

    values: np.ndarray
    layout: str = "C"

    def for_reference(self) -> np.ndarray:
        """A fresh C-contiguous copy: the reference's results do not depend on layout."""
        return self.values.copy()

    def on(self, backend: Backend) -> Any:
        """A fresh array of ``backend`` with these values, in this layout."""
        values = self.values
        if self.layout == "C" or values.ndim == 0:
            return backend.asarray(values.copy())
        # copy() always copies, where ascontiguousarray would hand back ``values`` itself
        # for a view that is already contiguous (one row), and the op would write into it
        if self.layout == "F":  # the transpose of a C array of the reversed shape
            return backend.asarray(values.T.copy()).T
        if self.layout == "reversed":
            return backend.asarray(values[::-1].copy())[::-1]
        # strided: every other entry of the last axis; the gaps hold a value no kernel
        # should ever read (NaN, or an out-of-range index), so reading one shows
        pad = np.nan if values.dtype.kind == "f" else np.iinfo(values.dtype).min
        wide = np.full((*values.shape[:-1], 2 * values.shape[-1]), pad, values.dtype)
        wide[..., ::2] = values
        return backend.asarray(wide)[..., ::2]


@dataclass(frozen=True)
class Case:
    """What a test case draws once: the dtype, the layout of its arrays, their values' class."""

    dtype: np.dtype
    layout: str
    magnitude: str

    def array(self, data: Any, shape: tuple[int, ...], label: str) -> Operand:
        """An operand of ``shape`` in this case's dtype, layout and magnitude."""
        elems = elements(self.dtype, self.magnitude)
        return Operand(data.draw(hnp.arrays(self.dtype, shape, elements=elems), label), self.layout)

    def buffer(self, data: Any, shape: tuple[int, ...], label: str = "out") -> Operand:
        """An ``out=`` buffer, NaN-filled (an entry the op forgets stays NaN and shows)."""
        layout = data.draw(st.sampled_from(sorted({"C", self.layout})), label=f"{label} layout")
        return Operand(np.full(shape, np.nan, self.dtype), layout)

    def maybe_buffer(self, data: Any, shape: tuple[int, ...], label: str) -> Operand | None:
        """None (the op allocates its result) or an ``out=`` buffer."""
        return self.buffer(data, shape, label) if data.draw(st.booleans(), label) else None

    def target(self, data: Any, x: Operand, shape: tuple[int, ...]) -> Operand | None:
        """Where an op that may work in place writes: a new array, a buffer, or x itself."""
        where = data.draw(st.sampled_from(["new", "buffer", "in place"]), label="written to")
        return {"new": None, "buffer": self.buffer(data, shape), "in place": x}[where]

    def labels(self, data: Any, rows: int, classes: int, out_of_range: bool = False) -> Operand:
        """Class labels in [0, classes), of a drawn integer dtype; with ``out_of_range``,
        one draw in four may hold labels outside it too (the ops that index by label must
        refuse them, not read or write past an array)."""
        dtype = data.draw(st.sampled_from([np.int64, np.int32]), label="label dtype")
        values = st.integers(0, max(classes - 1, 0))
        if out_of_range and data.draw(st.integers(0, 3), label="labels out of range?") == 0:
            values = st.integers(-2, classes + 2)
        return Operand(data.draw(hnp.arrays(dtype, rows, elements=values), "labels"), self.layout)


CASES = st.builds(
    Case,
    dtype=st.sampled_from(FLOATS),
    layout=st.sampled_from(LAYOUT_DRAWS),
    magnitude=st.sampled_from(MAGNITUDES),
)


def _kernel_op(method: str, args: Sequence[Any]) -> str | None:
    """The op a call computes, as ``inherited_ops`` names them (None: the identity)."""
    if method in ("activation", "activation_backward"):
        activation = args[1 if method == "activation" else 2]
        if activation == "linear":
            return None
        return activation if method == "activation" else f"{activation}_backward"
    return method


@pytest.fixture(autouse=True)
def _kernels_reached(request: pytest.FixtureRequest) -> Any:
    """After a property test, each op it called on a backend with kernels ran one of them
    in at least half the calls the reference accepted: the draws test the kernels, not the
    NumPy code the backend falls back to (see each backend's ``inherited_ops``).

    Checked where the draws are the same every run (the CI profile): elsewhere a run's
    share is a random number, and ``test_every_op_reaches_a_kernel`` checks each op once.
    """
    REACH.clear()
    yield
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name") if callspec else None
    if name not in ("numba", "cupy-emulated") or os.environ.get(PROFILE_VAR) != "ci":
        return
    inherited = fastnn.get_backend(name).inherited_ops | {"matmul"}  # BLAS / cuBLAS
    for op, (accepted, reached) in REACH.items():
        if op not in inherited and accepted >= 8:
            assert reached >= accepted / 2, (
                f"{op} on {name}: a kernel ran in {reached} of the {accepted} calls"
            )


# ---------------------------------------------------------------- comparing
def finite_abs(a: Any) -> np.ndarray:
    """``|a|`` in float64 with NaN and inf counted as 0: the terms a bound is made of."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def finite(a: Any) -> np.ndarray:
    """``a`` in float64 with NaN and inf replaced by 0."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def assert_close(
    actual: Any, expected: Any, dtype: np.dtype, bound: Any = 0.0, atol: Any = None, what: str = ""
) -> None:
    """``actual`` is ``expected`` up to rounding (see the module docstring).

    NaN must be where the reference has NaN, infinities must match in sign, and finite
    entries differ by at most ``rtol * (|expected| + bound) + atol``. ``atol`` defaults
    to two of the dtype's smallest normal number: the kernels return 0 where NumPy
    returns a subnormal (an exp() far below 1, a flushed optimizer state).
    """
    got = np.asarray(actual, dtype=np.float64)
    want = np.asarray(expected, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    info = np.finfo(dtype)
    atol = 2 * float(info.tiny) if atol is None else atol
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), want.shape)
    comparable = bound <= float(info.max)  # NaN bounds (inf * 0) are not comparable either
    nan_got, nan_want = np.isnan(got), np.isnan(want)
    tolerance = RTOL[dtype] * (np.abs(np.where(nan_want, 0.0, want)) + bound) + atol
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        error = np.abs(got - want)
    wrong = comparable & (
        (nan_got != nan_want)
        | ((np.isinf(got) | np.isinf(want)) & ~nan_got & ~nan_want & (got != want))
        | (np.isfinite(got) & np.isfinite(want) & (error > tolerance))
    )
    if wrong.any():
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        raise AssertionError(
            f"{what}: {int(wrong.sum())} of {wrong.size} entries differ; first at {first}: "
            f"got {got[first]!r}, expected {want[first]!r} (tolerance {tolerance[first]:.3g})"
        )


def assert_unchanged(after: Any, before: np.ndarray, what: str) -> None:
    """An input the op must not write still holds its values (NaN equal to NaN)."""
    after = np.asarray(after)
    assert after.shape == before.shape, f"{what}: shape changed to {after.shape}"
    assert np.array_equal(after, before, equal_nan=before.dtype.kind == "f"), f"{what} changed"


@dataclass
class Outcome:
    """The results of one op on the reference and on the backend under test."""

    backend: Backend
    expected: Any
    actual: Any
    ref: dict[Operand, np.ndarray]
    dev: dict[Operand, Any]

    def host(self, operand: Operand) -> np.ndarray:
        """The backend's array for ``operand`` after the call, on the host."""
        return np.asarray(self.backend.to_numpy(self.dev[operand]))

    def result(
        self, shape: tuple[int, ...], dtype: np.dtype, out: Operand | None = None
    ) -> np.ndarray:
        """The backend's array result after checking its shape, dtype and ``out`` identity."""
        for side, result, arrays in (
            ("reference", self.expected, self.ref),
            (self.backend.name, self.actual, self.dev),
        ):
            assert result.shape == shape, f"{side}: shape {result.shape}, expected {shape}"
            assert result.dtype == dtype, f"{side}: dtype {result.dtype}, expected {dtype}"
            if out is not None:
                assert result is arrays[out], f"{side}: the out= array is not what it returned"
        return np.asarray(self.backend.to_numpy(self.actual))


def call_both(
    backend: Backend, method: str, *args: Any, written: Sequence[Operand] = (), **kwargs: Any
) -> Outcome | None:
    """Call ``method`` on the reference and on ``backend`` with the same operand values.

    Operands become fresh arrays on each side (C order for the reference, their layout
    for the backend). When the reference refuses the input (ValueError, IndexError) the
    backend must raise the same type, and None is returned. Operands other than
    ``written`` and the ``*_out`` arguments must come back unchanged on both sides.
    """
    ref: dict[Operand, np.ndarray] = {}
    dev: dict[Operand, Any] = {}

    def bind(value: Any, arrays: dict[Operand, Any], make: Callable[[Operand], Any]) -> Any:
        if isinstance(value, Operand):
            if value not in arrays:
                arrays[value] = make(value)
            return arrays[value]
        return value

    def on_backend(operand: Operand) -> Any:
        return operand.on(backend)

    ref_args = [bind(a, ref, Operand.for_reference) for a in args]
    ref_kwargs = {k: bind(v, ref, Operand.for_reference) for k, v in kwargs.items()}
    dev_args = [bind(a, dev, on_backend) for a in args]
    dev_kwargs = {k: bind(v, dev, on_backend) for k, v in kwargs.items()}
    with np.errstate(all="ignore"):  # NaN and inf inputs make NumPy warn; they are the point
        try:
            expected = getattr(REF, method)(*ref_args, **ref_kwargs)
        except (ValueError, IndexError) as error:
            with pytest.raises(type(error)):
                getattr(backend, method)(*dev_args, **dev_kwargs)
            return None
        with kernel_calls.counting(backend) as kernels_run:
            actual = getattr(backend, method)(*dev_args, **dev_kwargs)
            op = _kernel_op(method, args)
            if op is not None:
                tally = REACH.setdefault(op, [0, 0])
                tally[0] += 1
                tally[1] += kernels_run() > 0
    mutable = {*written, *(v for k, v in kwargs.items() if k in OUT_NAMES)}
    for operand, array in ref.items():
        if operand not in mutable:
            assert_unchanged(array, operand.values, f"reference {method}: an input")
            after = backend.to_numpy(dev[operand])
            assert_unchanged(after, operand.values, f"{backend.name} {method}: an input")
    return Outcome(backend, expected, actual, ref, dev)


def matrix(data: Any) -> tuple[int, int]:
    """A (rows, columns) shape."""
    return data.draw(st.tuples(ROWS, COLS), label="shape")


def any_shape(data: Any) -> tuple[int, ...]:
    """A shape of 1 to 3 axes (elementwise ops and updates take any), two axes two times in
    three: the numba kernels take (rows, cols), and most examples must reach them."""
    if data.draw(st.integers(0, 2), label="a matrix?") < 2:
        return matrix(data)
    return data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12), "shape")


# ------------------------------------------------------------ linear algebra
@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES)
def test_matmul_matches_reference_for_transposes_layouts_and_out(
    name: str, data: Any, case: Case
) -> None:
    backend = fastnn.get_backend(name)
    m, k, n = data.draw(st.tuples(ROWS, COLS, ROWS), label="m, k, n")
    transpose_a, transpose_b = data.draw(st.tuples(st.booleans(), st.booleans()), "transposes")
    a = case.array(data, (k, m) if transpose_a else (m, k), label="a")
    b = case.array(data, (n, k) if transpose_b else (k, n), label="b")
    out = case.maybe_buffer(data, (m, n), "out")
    outcome = call_both(backend, "matmul", a, b, transpose_a, transpose_b, out=out)
    assert outcome is not None, "matmul takes every pair of shapes that fit, empty ones too"
    left, right = finite_abs(a.values), finite_abs(b.values)
    bound = (left.T if transpose_a else left) @ (right.T if transpose_b else right)
    result = outcome.result((m, n), case.dtype, out)
    assert_close(result, outcome.expected, case.dtype, bound, what="matmul")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES, activation=st.sampled_from((None, *ACTIVATIONS)))
def test_bias_add_and_bias_activation_match_reference(
    name: str, data: Any, case: Case, activation: str | None
) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    x = case.array(data, (rows, cols), label="x")
    bias = case.array(data, (cols,), label="bias")
    out = case.target(data, x, (rows, cols))
    if activation is None:
        outcome = call_both(backend, "bias_add", x, bias, out=out)
    else:
        outcome = call_both(backend, "bias_activation", x, bias, activation, out=out)
    if outcome is None:  # a softmax over rows of nothing: refused by both
        assert activation == "softmax" and cols == 0
        return
    result = outcome.result((rows, cols), case.dtype, out)
    assert_close(result, outcome.expected, case.dtype, what=f"bias then {activation}")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES)
def test_sum_rows_matches_reference(name: str, data: Any, case: Case) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    x = case.array(data, (rows, cols), label="x")
    out = case.maybe_buffer(data, (cols,), "out")
    outcome = call_both(backend, "sum_rows", x, out=out)
    assert outcome is not None, "sum_rows sums nothing to 0 and takes zero columns"
    result = outcome.result((cols,), case.dtype, out)
    bound = finite_abs(x.values).sum(axis=0)
    assert_close(result, outcome.expected, case.dtype, bound, what="sum_rows")
    if rows == 0:
        assert not result.any(), "the sum of no rows is 0"


# ---------------------------------------------------------------- activations
ELEMENTWISE = ("relu", "sigmoid", "tanh")
#: every activation, called by its own name or through ``activation(x, name)``
ACTIVATION_CASES = hypothesis.given(
    data=st.data(),
    case=CASES,
    op=st.sampled_from((*ELEMENTWISE, "softmax", "linear")),
    through_activation=st.booleans(),
)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@ACTIVATION_CASES
def test_activations_match_reference(
    name: str, data: Any, case: Case, op: str, through_activation: bool
) -> None:
    """relu/sigmoid/tanh/softmax, called directly or through ``activation(x, name)``."""
    backend = fastnn.get_backend(name)
    shape = matrix(data) if op == "softmax" else any_shape(data)
    x = case.array(data, shape, label="x")
    out = case.target(data, x, shape)
    if op == "linear" or through_activation:
        outcome = call_both(backend, "activation", x, op, out=out)
    else:
        outcome = call_both(backend, op, x, out=out)
    if outcome is None:  # softmax over rows of nothing: refused by both
        assert op == "softmax" and shape[1] == 0
        return
    result = outcome.result(shape, case.dtype, out)
    assert_close(result, outcome.expected, case.dtype, what=op)
    if op == "linear" and out is None:  # the identity hands back its input, no copy
        assert outcome.actual is outcome.dev[x]
    if op == "relu":  # NaN passes ReLU, as in np.maximum(nan, 0)
        nan = np.isnan(x.values)
        assert np.isnan(result[nan]).all()


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@ACTIVATION_CASES
def test_activation_backward_matches_reference(
    name: str, data: Any, case: Case, op: str, through_activation: bool
) -> None:
    """The backward passes from the activation's output y, for any values of dy and y."""
    backend = fastnn.get_backend(name)
    shape = matrix(data) if op == "softmax" else any_shape(data)
    dy = case.array(data, shape, label="dy")
    y = case.array(data, shape, label="y")
    out = case.target(data, dy, shape)
    if op == "linear" or through_activation:
        outcome = call_both(backend, "activation_backward", dy, y, op, out=out)
    else:
        outcome = call_both(backend, f"{op}_backward", dy, y, out=out)
    assert outcome is not None, "every backward pass takes empty arrays"
    result = outcome.result(shape, case.dtype, out)
    g, s = finite_abs(dy.values), finite_abs(y.values)
    bound: Any = 0.0  # relu and sigmoid: products, rounded the same way by everyone
    if op == "tanh":  # 1 - y*y may be one fused multiply-add
        bound = g * (1 + s * s)
    elif op == "softmax":  # y * (dy - sum(dy * y)): a sum, then a difference
        dot = (g * s).sum(axis=1, keepdims=True)
        # a row whose sum may overflow is not compared, not even where y = 0
        bound = np.where(dot > np.finfo(case.dtype).max, np.inf, s * (g + dot))
    assert_close(result, outcome.expected, case.dtype, bound, what=f"{op} backward")
    if op == "linear" and out is None:
        assert outcome.actual is outcome.dev[dy]


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES)
def test_multiply_matches_reference(name: str, data: Any, case: Case) -> None:
    backend = fastnn.get_backend(name)
    shape = any_shape(data)
    a = case.array(data, shape, label="a")
    b = case.array(data, shape, label="b")
    out = case.target(data, a, shape)
    outcome = call_both(backend, "multiply", a, b, out=out)
    assert outcome is not None
    result = outcome.result(shape, case.dtype, out)
    assert_close(result, outcome.expected, case.dtype, what="multiply")


# ------------------------------------------------------------- regularization
@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(
    data=st.data(),
    case=CASES,
    l1=st.just(0.0) | st.floats(0, 1),
    l2=st.just(0.0) | st.floats(0, 1),
    with_grad=st.booleans(),
)
def test_weight_penalty_matches_reference(
    name: str, data: Any, case: Case, l1: float, l2: float, with_grad: bool
) -> None:
    backend = fastnn.get_backend(name)
    shape = any_shape(data)
    param = case.array(data, shape, label="param")
    grad = case.array(data, shape, label="grad") if with_grad else None
    written = [grad] if grad is not None else []
    outcome = call_both(backend, "weight_penalty", param, l1, l2, grad, written=written)
    assert outcome is not None
    w = finite_abs(param.values)
    sums = (w.sum(), (w * w).sum())  # whether l1 or l2 is 0, the dtype's sums may overflow
    overflow = max(sums) > np.finfo(case.dtype).max
    bound = np.inf if overflow else l1 * sums[0] + l2 * sums[1]
    assert_close(float(outcome.actual), float(outcome.expected), case.dtype, bound, what="penalty")
    if grad is not None:  # the penalty's gradient, added in place
        grad_bound = finite_abs(grad.values) + l1 + 2 * l2 * w
        assert_close(outcome.host(grad), outcome.ref[grad], case.dtype, grad_bound, what="grad")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(
    dtype=st.sampled_from(FLOATS),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12),
    rate=st.floats(0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_dropout_mask_is_the_reference_mask(
    name: str, dtype: np.dtype, shape: tuple[int, ...], rate: float, seed: int
) -> None:
    """Drawn on the host from the seed, so every backend drops the very same units."""
    backend = fastnn.get_backend(name)
    mask = backend.dropout_mask(np.random.default_rng(seed), shape, rate, dtype)
    expected = REF.dropout_mask(np.random.default_rng(seed), shape, rate, dtype)
    assert mask.shape == shape and mask.dtype == dtype
    np.testing.assert_array_equal(backend.to_numpy(mask), expected)
    assert set(np.unique(expected)) <= {0, dtype.type(1 / (1 - rate))}


# -------------------------------------------------------------- normalization
EPSILONS = st.floats(1e-5, 0.1)


def _statistics_bounds(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float, variance: np.ndarray
) -> np.ndarray:
    """Rounding bound of ``gamma * (x - mean) / sqrt(variance + epsilon) + beta`` per entry,
    where the mean and ``variance`` may carry rounding of their own (first-order analysis:
    the mean's error scales with mean(|x|), a variance's with itself plus the mean's squared).
    """
    xf = finite(x)
    mean, mean_abs = xf.mean(axis=0), finite_abs(x).mean(axis=0)
    variance = finite_abs(variance)
    scale = finite_abs(gamma) / np.sqrt(variance + epsilon)
    centered = np.abs(xf - mean)
    variance_error = variance + RTOL[x.dtype] * mean_abs**2  # divided by rtol, like every bound
    bound = scale * (mean_abs + 3 * centered) + centered * scale * variance_error / (
        2 * (variance + epsilon)
    )
    return bound + finite_abs(beta)


def _overflowing_columns(x: np.ndarray) -> np.ndarray:
    """Columns whose sums (of x, of squared deviations) pass the dtype's range."""
    xf = finite(x)
    mean = xf.mean(axis=0)
    largest = float(np.finfo(x.dtype).max)
    return (finite_abs(x).sum(axis=0) > largest) | (((xf - mean) ** 2).sum(axis=0) > largest)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES, epsilon=EPSILONS)
def test_batch_norm_forward_matches_reference(
    name: str, data: Any, case: Case, epsilon: float
) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    x = case.array(data, (rows, cols), label="x")
    gamma = case.array(data, (cols,), label="gamma")
    beta = case.array(data, (cols,), label="beta")
    mean = case.buffer(data, (cols,), "mean_out")
    variance = case.buffer(data, (cols,), "variance_out")
    out = case.maybe_buffer(data, (rows, cols), "out")
    outcome = call_both(
        backend, "batch_norm_forward", x, gamma, beta, epsilon,
        mean_out=mean, variance_out=variance, out=out,
    )  # fmt: skip
    if outcome is None:  # statistics of an empty batch: refused by both
        assert rows == 0
        return
    result = outcome.result((rows, cols), case.dtype, out)
    skip = _overflowing_columns(x.values)
    xf = finite(x.values)
    mean_bound = np.where(skip, np.inf, finite_abs(x.values).mean(axis=0))
    variance_bound = np.where(skip, np.inf, ((np.abs(xf) + np.abs(xf.mean(axis=0))) ** 2).mean(0))
    assert_close(outcome.host(mean), outcome.ref[mean], case.dtype, mean_bound, what="mean")
    assert_close(
        outcome.host(variance), outcome.ref[variance], case.dtype, variance_bound, what="variance"
    )
    variance64 = xf.var(axis=0)
    bound = _statistics_bounds(x.values, gamma.values, beta.values, epsilon, variance64)
    bound = np.where(skip, np.inf, bound)
    assert_close(result, outcome.expected, case.dtype, bound, what="batch_norm_forward")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES, epsilon=EPSILONS)
def test_batch_norm_inference_matches_reference(
    name: str, data: Any, case: Case, epsilon: float
) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    x = case.array(data, (rows, cols), label="x")
    mean, gamma, beta = (case.array(data, (cols,), label=n) for n in ("mean", "gamma", "beta"))
    variance = Operand(np.abs(case.array(data, (cols,), label="variance").values), case.layout)
    out = case.maybe_buffer(data, (rows, cols), "out")
    outcome = call_both(
        backend, "batch_norm_inference", x, mean, variance, gamma, beta, epsilon, out=out
    )
    assert outcome is not None, "normalizing with given statistics takes an empty batch"
    result = outcome.result((rows, cols), case.dtype, out)
    scale = finite_abs(gamma.values) / np.sqrt(finite_abs(variance.values) + epsilon)
    bound = scale * (finite_abs(x.values) + finite_abs(mean.values)) + finite_abs(beta.values)
    assert_close(result, outcome.expected, case.dtype, bound, what="batch_norm_inference")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES, epsilon=EPSILONS)
def test_batch_norm_backward_matches_reference(
    name: str, data: Any, case: Case, epsilon: float
) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    dy = case.array(data, (rows, cols), label="dy")
    x = case.array(data, (rows, cols), label="x")
    mean, gamma = (case.array(data, (cols,), label=n) for n in ("mean", "gamma"))
    variance = Operand(np.abs(case.array(data, (cols,), label="variance").values), case.layout)
    dgamma = case.buffer(data, (cols,), "dgamma_out")
    dbeta = case.buffer(data, (cols,), "dbeta_out")
    out = case.target(data, dy, (rows, cols))
    outcome = call_both(
        backend, "batch_norm_backward", dy, x, mean, variance, gamma, epsilon,
        dgamma_out=dgamma, dbeta_out=dbeta, out=out,
    )  # fmt: skip
    assert outcome is not None, "the sums over an empty batch are 0"
    result = outcome.result((rows, cols), case.dtype, out)
    inv_std = 1 / np.sqrt(finite_abs(variance.values) + epsilon)
    g = finite_abs(dy.values)
    xhat = (finite_abs(x.values) + finite_abs(mean.values)) * inv_std
    dbeta_bound, dgamma_bound = g.sum(axis=0), (g * xhat).sum(axis=0)
    assert_close(outcome.host(dbeta), outcome.ref[dbeta], case.dtype, dbeta_bound, what="dbeta")
    assert_close(outcome.host(dgamma), outcome.ref[dgamma], case.dtype, dgamma_bound, what="dgamma")
    batch = max(rows, 1)
    inner = g + (dbeta_bound + xhat * dgamma_bound) / batch
    # an overflowing sum or product is not compared, not even where gamma = 0 multiplies it
    overflow = np.maximum(np.maximum(dbeta_bound, dgamma_bound), xhat * dgamma_bound)
    overflow = np.maximum(overflow, inner) > np.finfo(case.dtype).max
    bound = np.where(overflow, np.inf, finite_abs(gamma.values) * inv_std * inner)
    assert_close(result, outcome.expected, case.dtype, bound, what="batch_norm_backward")


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(
    data=st.data(),
    case=CASES,
    momentum=st.sampled_from([0.0, 0.9999, 1 - 2**-20]) | st.floats(0, 1, exclude_max=True),
)
def test_moving_average_update_matches_reference(
    name: str, data: Any, case: Case, momentum: float
) -> None:
    backend = fastnn.get_backend(name)
    size = data.draw(COLS, label="size")
    average = case.array(data, (size,), label="average")
    value = case.array(data, (size,), label="value")
    outcome = call_both(backend, "moving_average_update", average, value, momentum,
                        written=[average])  # fmt: skip
    assert outcome is not None
    assert outcome.actual is None, "an in-place update returns nothing"
    bound = momentum * finite_abs(average.values) + (1 - momentum) * finite_abs(value.values)
    assert_close(outcome.host(average), outcome.ref[average], case.dtype, bound, what="average")


# --------------------------------------------------------------------- losses
LOSSES = (
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "mean_squared_error",
)


def _mean_bound(terms: np.ndarray, dtype: np.dtype) -> float:
    """Bound of a mean of terms bounded by ``terms``: inf where their sum may overflow the
    dtype (NumPy sums in the dtype, the kernels in float64)."""
    total = float(terms.sum())
    return np.inf if total > np.finfo(dtype).max else total / terms.size


def _loss_bounds(loss: str, outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Rounding bounds of a loss's value and of its gradient (see the module docstring)."""
    z, t = finite_abs(outputs), finite_abs(targets)
    rows, cols = outputs.shape
    dtype = outputs.dtype
    if loss == "sparse_softmax_cross_entropy":
        labels = targets.astype(np.intp)
        picked = z[np.arange(rows), labels]
        # log(sum(exp(z - top))) is in [0, log K]; z - top rounds with |z| + |top|
        value = _mean_bound(np.log(cols) + 1 + picked + z.max(axis=1), dtype)
        onehot = np.zeros_like(z)
        onehot[np.arange(rows), labels] = 1
        return value, 2 * onehot / rows
    if loss == "softmax_cross_entropy":
        per_row = t * (np.log(cols) + 1 + z + z.max(axis=1, keepdims=True))
        # (p * sum(t) - t) / B: where sum(t) may overflow, before the division, not compared
        terms = t.sum(axis=1, keepdims=True) + t
        grad = np.where(terms > np.finfo(dtype).max, np.inf, terms / rows)
        return _mean_bound(per_row.sum(axis=1), dtype), grad
    if loss == "sigmoid_binary_cross_entropy":
        return _mean_bound(z + z * t + 1, dtype), (1 + t) / outputs.size
    return _mean_bound((z + t) ** 2, dtype), np.zeros_like(z)  # mean_squared_error


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES, loss=st.sampled_from(LOSSES))
def test_losses_match_reference(name: str, data: Any, case: Case, loss: str) -> None:
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    outputs = case.array(data, (rows, cols), label="outputs")
    if loss == "sparse_softmax_cross_entropy":
        targets = case.labels(data, rows, cols)
    else:
        targets = case.array(data, (rows, cols), label="targets")
    grad_out = case.maybe_buffer(data, (rows, cols), "grad_out")
    outcome = call_both(backend, loss, outputs, targets, grad_out=grad_out)
    if outcome is None:  # a mean over an empty batch, or classes of nothing: refused by both
        assert rows * cols == 0
        return
    value, grad = outcome.actual
    ref_value, ref_grad = outcome.expected
    assert isinstance(ref_value, float)
    if backend.synchronous:
        assert isinstance(value, float), "CPU backends return the loss as a Python float"
    value_bound, grad_bound = _loss_bounds(loss, outputs.values, targets.values)
    assert_close(float(value), ref_value, case.dtype, value_bound, what=f"{loss} value")
    for side, result, arrays in (("reference", ref_grad, outcome.ref), (name, grad, outcome.dev)):
        assert result.shape == (rows, cols) and result.dtype == case.dtype, side
        if grad_out is not None:
            assert result is arrays[grad_out], f"{side}: grad_out is not what it returned"
    grad_host = backend.to_numpy(grad)
    assert_close(grad_host, ref_grad, case.dtype, grad_bound, what=f"{loss} gradient")


# -------------------------------------------------------------------- metrics
@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(
    data=st.data(),
    case=CASES,
    op=st.sampled_from(["argmax_rows", "count_argmax_matches", "update_confusion"]),
)
def test_argmax_ops_match_reference_exactly(name: str, data: Any, case: Case, op: str) -> None:
    """First largest entry per row, ties to the first, the first NaN beating every number."""
    backend = fastnn.get_backend(name)
    rows, cols = matrix(data)
    scores = case.array(data, (rows, cols), label="scores")
    labels = case.labels(data, rows, cols, out_of_range=True)
    if op == "argmax_rows":
        outcome = call_both(backend, op, scores)
    elif op == "count_argmax_matches":
        outcome = call_both(backend, op, scores, labels)
    else:
        counts = hnp.arrays(np.int64, (cols, cols), elements=st.integers(0, 1000))
        matrix_operand = Operand(data.draw(counts, label="matrix"))
        outcome = call_both(backend, op, matrix_operand, scores, labels, written=[matrix_operand])
    if outcome is None:  # refused by both: the argmax of a row of nothing, or a label that
        outside = labels.values.size > 0 and (
            labels.values.min() < 0 or labels.values.max() >= cols
        )
        assert cols == 0 or (op == "update_confusion" and outside)  # names no matrix row
        return
    if op == "argmax_rows":
        actual = backend.to_numpy(outcome.actual)
        assert actual.shape == (rows,) and actual.dtype.kind == "i"
        np.testing.assert_array_equal(actual, outcome.expected)
    elif op == "count_argmax_matches":
        assert int(outcome.actual) == outcome.expected
    else:
        assert outcome.actual is None, "an in-place update returns nothing"
        np.testing.assert_array_equal(outcome.host(matrix_operand), outcome.ref[matrix_operand])


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(
    data=st.data(),
    case=CASES,
    threshold=st.sampled_from([0.0, 0.5]) | st.floats(-2, 2),
    confusion=st.booleans(),
)
def test_threshold_counts_match_reference_exactly(
    name: str, data: Any, case: Case, threshold: float, confusion: bool
) -> None:
    """``scores > threshold`` against 0/1 targets (and odd ones: 0.5, NaN never match)."""
    backend = fastnn.get_backend(name)
    shape = matrix(data)
    scores = case.array(data, shape, label="scores")
    target_values = st.sampled_from([0.0, 1.0]) | elements(case.dtype, case.magnitude)
    targets = Operand(
        data.draw(hnp.arrays(case.dtype, shape, elements=target_values), "targets"), case.layout
    )
    if confusion:
        counts = Operand(data.draw(hnp.arrays(np.int64, (2, 2), elements=st.integers(0, 1000))))
        outcome = call_both(backend, "update_confusion", counts, scores, targets, threshold,
                            written=[counts])  # fmt: skip
        assert outcome is not None and outcome.actual is None
        np.testing.assert_array_equal(outcome.host(counts), outcome.ref[counts])
    else:
        outcome = call_both(backend, "count_threshold_matches", scores, targets, threshold)
        assert outcome is not None
        assert int(outcome.actual) == outcome.expected


# ----------------------------------------------------------------- optimizers
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")


@pytest.mark.parametrize("name", BACKENDS)
@hypothesis.settings(SETTINGS, max_examples=100)  # five update rules share the examples
@hypothesis.given(
    data=st.data(),
    case=CASES,
    optimizer=st.sampled_from(OPTIMIZERS),
    learning_rate=st.floats(1e-4, 1),
    decay=st.sampled_from([0.9, 0.999]) | st.floats(0, 1, exclude_max=True),
    epsilon=st.floats(1e-8, 1e-3),
    step=st.integers(1, 100),
)
def test_optimizer_updates_match_reference_in_place(
    name: str,
    data: Any,
    case: Case,
    optimizer: str,
    learning_rate: float,
    decay: float,
    epsilon: float,
    step: int,
) -> None:
    """Every state array is updated in place as the reference updates it, NaN gradients
    giving the same NaN parameters. ``decay`` is the momentum, rho or beta_2."""
    backend = fastnn.get_backend(name)
    shape = any_shape(data)
    param = case.array(data, shape, label="param")
    grad = case.array(data, shape, label="grad")
    first = case.array(data, shape, label="velocity or m")
    # second moments are never negative
    second = Operand(np.abs(case.array(data, shape, label="v").values), case.layout)
    p, g, s1, s2 = (finite_abs(o.values) for o in (param, grad, first, second))
    tiny = float(np.finfo(case.dtype).tiny)
    flush = 2 * tiny  # kernels flush state below tiny to 0 (see kernels/optimizers.py)
    if optimizer == "sgd":
        states: list[Operand] = []
        args: tuple[Any, ...] = (learning_rate,)
        bounds = [p + learning_rate * g]
    elif optimizer in ("momentum", "nesterov"):
        states = [first]
        args = (learning_rate, decay, optimizer == "nesterov")
        velocity = decay * s1 + learning_rate * g
        bounds = [p + decay * velocity + learning_rate * g + velocity, velocity]
    elif optimizer == "rmsprop":
        states = [second]
        args = (learning_rate, decay, epsilon)
        velocity = decay * s2 + (1 - decay) * g * g
        bounds = [p + learning_rate * g / np.sqrt(velocity + epsilon), velocity]
    else:
        states = [first, second]
        beta_1 = data.draw(st.sampled_from([0.9]) | st.floats(0, 1, exclude_max=True), "beta_1")
        args = (learning_rate, beta_1, decay, epsilon, step)
        m = s1 + (1 - beta_1) * (g + s1)
        v = s2 + (1 - decay) * (g * g + s2)
        alpha = adam_step_size(learning_rate, beta_1, decay, step)
        # alpha * m / (sqrt(v) + eps) with v's own rounding (rtol * v, v cancels when beta_2
        # is small): first order in it, at the smallest v that rounding allows; a v that may
        # round to 0 makes the step not comparable
        g_signed, m_signed = finite(grad.values), finite(first.values)
        new_m = np.abs(m_signed + (1 - beta_1) * (g_signed - m_signed)) + RTOL[case.dtype] * m
        new_v = finite(second.values) + (1 - decay) * (g_signed**2 - finite(second.values))
        root = np.sqrt(np.maximum(new_v - RTOL[case.dtype] * v, 0))
        with np.errstate(divide="ignore"):
            sensitivity = np.where(v > 0, new_m * v / (2 * root * (root + epsilon) ** 2), 0)
        bounds = [p + alpha * (m / (root + epsilon) + sensitivity), m, v]
        flush += alpha * tiny / epsilon  # a flushed m moves the step by up to this
    # Flush-to-zero backends (CUDA's -ftz, and so cupy-emulated) read a subnormal gradient
    # as 0: the step it would have made, up to a scaled tiny, is then missing.
    if optimizer == "rmsprop":
        flush += learning_rate * tiny / np.sqrt(epsilon)
    elif optimizer != "adam":
        flush += learning_rate * tiny * (2 + decay if states else 1)
    method = "momentum_update" if optimizer == "nesterov" else f"{optimizer}_update"
    written = [param, *states]
    outcome = call_both(backend, method, param, grad, *states, *args, written=written)
    assert outcome is not None
    assert outcome.actual is None, "an in-place update returns nothing"
    for operand, bound, what in zip(written, bounds, ("param", "state 1", "state 2"), strict=False):
        assert_close(
            outcome.host(operand), outcome.ref[operand], case.dtype, bound, flush, what=what
        )
    nan_grad = np.isnan(grad.values)
    assert np.isnan(outcome.host(param)[nan_grad]).all(), "a NaN gradient makes a NaN weight"


# ---------------------------------------------------------------- mini-batches
@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@hypothesis.given(data=st.data(), case=CASES)
def test_take_rows_matches_reference_exactly(name: str, data: Any, case: Case) -> None:
    """Gathered rows are copies, bit for bit; negative indices count from the end."""
    backend = fastnn.get_backend(name)
    shape = any_shape(data)
    x = case.array(data, shape, label="x")
    n = shape[0]
    count = data.draw(st.integers(0, 12) if n else st.just(0), label="number of indices")
    index_dtype = data.draw(st.sampled_from([np.intp, np.int32]), label="index dtype")
    # one draw in four may index past either end: every backend must refuse it
    reach = n + 2 if data.draw(st.integers(0, 3), label="indices out of range?") == 0 else n
    index_values = st.integers(-reach, reach - 1) if reach else st.nothing()
    indices = Operand(data.draw(hnp.arrays(index_dtype, count, elements=index_values), "indices"))
    result_shape = (count, *shape[1:])
    out = case.maybe_buffer(data, result_shape, "out")
    outcome = call_both(backend, "take_rows", x, indices, out=out)
    if outcome is None:  # refused by both: an index past an end
        assert count and (indices.values.min() < -n or indices.values.max() >= n)
        return
    result = outcome.result(result_shape, case.dtype, out)
    np.testing.assert_array_equal(result, outcome.expected)


# --------------------------------------------------- numba's own matmul kernels
@pytest.mark.parametrize("name", backend_params(("numba",)))
@SETTINGS
@hypothesis.given(
    data=st.data(),
    case=CASES,
    transposes=st.tuples(st.booleans(), st.booleans()),
)
def test_numba_own_matmul_kernels_match_reference(
    name: str, data: Any, case: Case, transposes: tuple[bool, bool]
) -> None:
    """The kernels the backend picks for thin products of many rows, forced on small ones."""
    from fastnn.kernels import matmul as matmul_kernels

    m, k, n = data.draw(st.tuples(st.integers(1, 9), COLS, st.integers(1, 9)), label="m, k, n")
    transpose_a, transpose_b = transposes
    a = case.array(data, (k, m) if transpose_a else (m, k), label="a")
    b = case.array(data, (n, k) if transpose_b else (k, n), label="b")
    backend = fastnn.get_backend(name)
    left, right = a.on(backend), b.on(backend)
    with np.errstate(all="ignore"):
        result = matmul_kernels.matmul(left, right, transpose_a, transpose_b, path="own")
        expected = REF.matmul(a.values, b.values, transpose_a, transpose_b)
    assert result.shape == (m, n) and result.dtype == case.dtype
    la, rb = finite_abs(a.values), finite_abs(b.values)
    bound = (la.T if transpose_a else la) @ (rb.T if transpose_b else rb)
    assert_close(result, expected, case.dtype, bound, what="own matmul")
    assert_unchanged(left, a.values, "a")
    assert_unchanged(right, b.values, "b")


# ------------------------------------------- the minimal examples found so far
class Found(NamedTuple):
    """A minimal example hypothesis shrank a discrepancy to, kept so every run checks it."""

    method: str
    args: tuple[Any, ...]
    written: tuple[int, ...] = ()  # positions of the operands the op writes
    refused: bool = False  # both sides raise the same error


def _op(values: Any, dtype: Any = np.float32) -> Operand:
    return Operand(np.array(values, dtype=dtype))


def _f64(values: Any) -> Operand:
    return _op(values, np.float64)


NOTHING = np.empty((0, 0))
FOUND = {
    "take_rows from no rows": Found("take_rows", (_op(NOTHING), _op([], np.intp))),
    "softmax of rows of nothing": Found("softmax", (_op(NOTHING),), refused=True),
    "argmax of rows of nothing": Found("argmax_rows", (_op(NOTHING),), refused=True),
    "cross-entropy over no classes": Found(
        "sparse_softmax_cross_entropy", (_op(np.empty((1, 0))), _op([0], np.int64)), refused=True
    ),
    "mean squared error of nothing": Found(
        "mean_squared_error", (_op(NOTHING), _op(NOTHING)), refused=True
    ),
    "statistics of no samples": Found(
        "batch_norm_forward",
        (_op(np.empty((0, 1))), _op([1]), _op([0]), 0.1, _op([np.nan]), _op([np.nan])),
        written=(4, 5),
        refused=True,
    ),
    "moving average, momentum 0.9999": Found(
        "moving_average_update", (_op([0]), _op([-1]), 0.9999), written=(0,)
    ),
    "penalty of zero coefficients, a square past float32": Found(
        "weight_penalty", (_op([1e30]), 0.0, 0.0)
    ),
    "penalty coefficient that is 0 in float32": Found(
        "weight_penalty", (_op([np.nan]), 0.0, 5.322785383714476e-86)
    ),
    "L1-only penalty gradient of an infinite weight": Found(
        "weight_penalty", (_op([np.inf, 1]), 0.1, 0.0, _op([0, 0])), written=(3,)
    ),
    "batch-norm backward, infinite x, subnormal dy": Found(
        "batch_norm_backward",
        (
            *map(_f64, ([[-5e-324]], [[np.inf]], [0], [4], [0])),
            0.0625,
            _f64([np.nan]),
            _f64([np.nan]),
        ),
        written=(6, 7),
    ),
    "cross-entropy with infinite targets at the row's top logit": Found(
        "softmax_cross_entropy", (_op([[0, 0]]), _op([[np.inf, np.inf]]))
    ),
    "threshold that is -0 in float32": Found(
        "count_threshold_matches", (_op([[0]]), _op([[0]]), -5.481261281391721e-289)
    ),
}


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("example", list(FOUND))
def test_minimal_examples_found_by_the_properties(name: str, example: str) -> None:
    backend = fastnn.get_backend(name)
    found = FOUND[example]
    written = [found.args[i] for i in found.written]
    outcome = call_both(backend, found.method, *found.args, written=written)
    assert (outcome is None) == found.refused, "refused by both, or by neither"
    if outcome is None:
        return
    dtype = next(a.values.dtype for a in found.args if isinstance(a, Operand))
    results = outcome.actual if isinstance(outcome.actual, tuple) else (outcome.actual,)
    expected = outcome.expected if isinstance(outcome.expected, tuple) else (outcome.expected,)
    for got, want in zip(results, expected, strict=True):
        if want is not None:  # in-place ops return None
            host = backend.to_numpy(got) if hasattr(got, "shape") else got
            assert_close(host, want, dtype, what=found.method)
    for operand in written:
        assert_close(outcome.host(operand), outcome.ref[operand], dtype, what="written")


@pytest.mark.parametrize("name", backend_params(("numpy", "numba")))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(1, 3), (3, 1), (1, 1), (2, 3)])
def test_operands_reach_the_backend_as_copies(
    name: str, layout: str, shape: tuple[int, int]
) -> None:
    # CI once caught the F layout of a one-row array handing the drawn values themselves
    # to an in-place op, so the bound was computed from the op's own result
    operand = Operand(np.arange(np.prod(shape), dtype=np.float64).reshape(shape), layout)
    array = operand.on(fastnn.get_backend(name))
    assert not np.shares_memory(array, operand.values)
    assert np.array_equal(array, operand.values)


# ----------------------------------------------------- every op reaches a kernel
def _canonical_calls(b: Backend) -> dict[str, Callable[[], Any]]:
    """One call of each op with C-ordered float32 operands, the layout kernels take."""
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> Any:
        return b.asarray(rng.standard_normal(shape).astype(np.float32))

    def ones(*shape: int) -> Any:
        return b.asarray(np.ones(shape, np.float32))

    x, y, v, w = arr(6, 5), arr(6, 5), arr(5), arr(5)
    labels = b.asarray(np.array([0, 1, 2, 3, 4, 0]))
    onehot = b.asarray(np.eye(5, dtype=np.float32)[[0, 1, 2, 3, 4, 0]])
    stats = (b.zeros(5, np.float32), ones(5))
    return {
        "relu": lambda: b.relu(x),
        "sigmoid": lambda: b.sigmoid(x),
        "tanh": lambda: b.tanh(x),
        "softmax": lambda: b.softmax(x),
        "relu_backward": lambda: b.relu_backward(x, y),
        "sigmoid_backward": lambda: b.sigmoid_backward(x, y),
        "tanh_backward": lambda: b.tanh_backward(x, y),
        "softmax_backward": lambda: b.softmax_backward(x, y),
        "bias_add": lambda: b.bias_add(x, v),
        "bias_activation": lambda: b.bias_activation(x, v, "relu"),
        "sum_rows": lambda: b.sum_rows(x),
        "multiply": lambda: b.multiply(x, y),
        "dropout_mask": lambda: b.dropout_mask(rng, (6, 5), 0.5, np.float32),
        "weight_penalty": lambda: b.weight_penalty(x, 0.1, 0.1, arr(6, 5)),
        "batch_norm_forward": lambda: b.batch_norm_forward(
            x, v, w, 1e-3, b.zeros(5, np.float32), b.zeros(5, np.float32)
        ),
        "batch_norm_inference": lambda: b.batch_norm_inference(x, *stats, v, w, 1e-3),
        "batch_norm_backward": lambda: b.batch_norm_backward(
            y, x, *stats, v, 1e-3, b.zeros(5, np.float32), b.zeros(5, np.float32)
        ),
        "moving_average_update": lambda: b.moving_average_update(arr(5), v, 0.9),
        "sparse_softmax_cross_entropy": lambda: b.sparse_softmax_cross_entropy(x, labels),
        "softmax_cross_entropy": lambda: b.softmax_cross_entropy(x, onehot),
        "sigmoid_binary_cross_entropy": lambda: b.sigmoid_binary_cross_entropy(x, onehot),
        "mean_squared_error": lambda: b.mean_squared_error(x, y),
        "argmax_rows": lambda: b.argmax_rows(x),
        "count_argmax_matches": lambda: b.count_argmax_matches(x, labels),
        "count_threshold_matches": lambda: b.count_threshold_matches(x, onehot, 0.0),
        "update_confusion": lambda: b.update_confusion(b.zeros((5, 5), np.int64), x, labels),
        "take_rows": lambda: b.take_rows(x, b.asarray(np.array([3, 1]))),
        "sgd_update": lambda: b.sgd_update(arr(6, 5), x, 0.1),
        "momentum_update": lambda: b.momentum_update(arr(6, 5), x, arr(6, 5), 0.1, 0.9, True),
        "rmsprop_update": lambda: b.rmsprop_update(arr(6, 5), x, ones(6, 5), 0.1, 0.9, 1e-7),
        "adam_update": lambda: b.adam_update(
            arr(6, 5), x, arr(6, 5), ones(6, 5), 1e-3, 0.9, 0.999, 1e-7, 3
        ),
    }


@pytest.mark.parametrize("name", backend_params(("numba", "cupy-emulated")))
def test_every_op_reaches_a_kernel_or_is_declared_inherited(name: str) -> None:
    """Each op runs a kernel of the backend's own on the operands kernels take, unless the
    backend declares it NumPy code (``inherited_ops``, which the README lists)."""
    backend = fastnn.get_backend(name)
    calls = _canonical_calls(backend)
    interface = {n for n in dir(Backend) if not n.startswith("_")}
    assert set(calls) <= interface
    for op, call in calls.items():
        with kernel_calls.counting(backend) as kernels_run:
            call()
            ran = kernels_run()
        if op in backend.inherited_ops:
            assert ran == 0, f"{op} on {name} is declared NumPy code but ran {ran} kernel(s)"
        else:
            assert ran > 0, f"{op} on {name} ran no kernel of the backend's own"
