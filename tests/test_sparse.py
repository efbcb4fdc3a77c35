"""Sparse inputs: compressed rows give the dense path's numbers on every backend, and
scipy.sparse matrices are accepted wherever a dense x is."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import layers, sparse

from .conftest import backend_params

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

scipy_sparse = pytest.importorskip("scipy.sparse")

TOL = {"float32": 2e-5, "float64": 1e-12}


def sparse_data(rng: np.random.Generator, shape: tuple[int, int], share: float) -> np.ndarray:
    """Normal values with about ``share`` of them nonzero."""
    x = rng.standard_normal(shape)
    x[rng.random(shape) >= share] = 0
    return x


def model(seed: int = 1, optimizer: str = "rmsprop", **options: object) -> fastnn.Sequential:
    net = fastnn.Sequential(
        [layers.Dense(16, "relu"), layers.Dense(5, "softmax")], seed=seed, **options
    )
    net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net


#: first layers for the numba backend's narrow kernels (up to 16 units) and its wide ones
UNITS = [pytest.param(16, id="narrow"), pytest.param(40, id="wide")]


def gradients(
    x: object, y: np.ndarray, setting: object, dtype: str, units: int = 16
) -> tuple[float, list]:
    net = fastnn.Sequential(
        [layers.Dense(units, "relu"), layers.Dense(5, "softmax")], seed=1, dtype=dtype
    )
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return net.compute_gradients(x, y, sparse_inputs=setting)


def assert_same(got: list[np.ndarray], want: list[np.ndarray], dtype: str) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=TOL[dtype], atol=TOL[dtype])


# ------------------------------------------------------------------ the format
def test_compress_round_trips_and_keeps_nan_and_inf() -> None:
    rng = np.random.default_rng(0)
    x = sparse_data(rng, (300, 70), 0.2).astype(np.float32)
    x[3, 4], x[5, 0] = np.nan, -np.inf
    x[7] = 0  # an empty row
    rows = sparse.compress(x)
    assert rows.indices.dtype == np.uint16 and rows.indptr.dtype == np.int64
    np.testing.assert_array_equal(rows.to_dense(), x)
    np.testing.assert_array_equal(rows[5:9].to_dense(), x[5:9])  # a view, indptr not at 0
    assert rows[5:9].indices is rows.indices
    assert rows.most_per_row() == np.count_nonzero(x, axis=1).max()


def test_compress_works_through_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse, "CHUNK_ROWS", 7)
    x = sparse_data(np.random.default_rng(1), (50, 9), 0.3)
    np.testing.assert_array_equal(sparse.compress(x).to_dense(), x)


def test_wide_rows_get_wider_indices() -> None:
    assert sparse.index_dtype(65536) == np.uint16
    assert sparse.index_dtype(65537) == np.int32


def test_mnist_fits_in_a_third_of_its_dense_size(mnist: tuple) -> None:
    (x, _), _ = mnist
    dense = x.reshape(len(x), -1).astype(np.float32)
    rows = sparse.compress(dense)
    size = rows.indptr.nbytes + rows.indices.nbytes + rows.values.nbytes
    assert size <= 0.35 * dense.nbytes  # measured: 0.29


# ---------------------------------------------------- the same numbers as dense
@pytest.mark.parametrize("rows", [0, 5, sparse.SAMPLE_ROWS, 10_000])
def test_density_is_exact_when_small_and_close_when_sampled(rows: int) -> None:
    rng = np.random.default_rng(rows)
    x = sparse_data(rng, (rows, 50), 0.2).astype(np.float32)
    exact = np.count_nonzero(x) / max(x.size, 1)
    if rows <= sparse.SAMPLE_ROWS:
        assert sparse.density(x) == exact
    else:  # 2048 of 10,000 rows in 32 blocks: the estimate of 0.2 is within 0.01
        assert abs(sparse.density(x) - exact) < 0.01
        x[: rows // 2] = 0  # the blocks span the rows: half of them empty halves the share
        assert abs(sparse.density(x) - exact / 2) < 0.01


@pytest.mark.parametrize("units", UNITS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", backend_params())
def test_gradients_match_the_dense_path(name: str, dtype: str, units: int) -> None:
    rng = np.random.default_rng(2)
    x = sparse_data(rng, (40, 30), 0.15).astype(dtype)
    x[:3] = 0  # empty rows
    y = rng.integers(0, 5, 40)
    with fastnn.use_backend(name):
        dense_loss, dense = gradients(x, y, False, dtype, units)
        loss, grads = gradients(x, y, True, dtype, units)
        csr_loss, from_csr = gradients(scipy_sparse.csr_matrix(x), y, "auto", dtype, units)
    assert loss == pytest.approx(dense_loss, rel=TOL[dtype])
    assert csr_loss == pytest.approx(dense_loss, rel=TOL[dtype])
    assert_same(grads, dense, dtype)
    assert_same(from_csr, dense, dtype)


@settings(max_examples=40, deadline=None)
@given(
    share=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0),
    rows=st.integers(1, 20),
    columns=st.integers(1, 40),
    units=st.sampled_from([1, 10, 16, 17, 40]),
    seed=st.integers(0, 2**16),
)
@pytest.mark.parametrize("name", backend_params())
def test_any_density_matches_the_dense_path(
    name: str, share: float, rows: int, columns: int, units: int, seed: int
) -> None:
    """Densities 0..1, all-zero batches, single nonzeros, rows of one column; first layers
    on either side of the narrow kernels' 16 units."""
    rng = np.random.default_rng(seed)
    x = sparse_data(rng, (rows, columns), share).astype(np.float32)
    y = rng.integers(0, 5, rows)
    with fastnn.use_backend(name):
        dense_loss, dense = gradients(x, y, False, "float32", units)
        loss, grads = gradients(x, y, True, "float32", units)
    assert loss == pytest.approx(dense_loss, rel=1e-5)
    assert_same(grads, dense, "float32")


@settings(max_examples=30, deadline=None)
@given(
    share=st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0),
    rows=st.integers(1, 40),
    columns=st.integers(1, 30),
    units=st.integers(1, 24),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
@pytest.mark.parametrize(
    ("lanes", "scatter_bytes"),
    [(0, 0), (0, 1 << 30), (16, 0)],
    ids=["by column", "by rows", "narrow (up to 16 units)"],
)
def test_every_numba_sparse_product_matches_numpy(
    lanes: int,
    scatter_bytes: int,
    share: float,
    rows: int,
    columns: int,
    units: int,
    threads: int,
    seed: int,
) -> None:
    """The numba backend's three weight gradients (a sort by column, rows summed into a
    copy per thread, the narrow kernels' 16 lanes) and its two forward products (wide,
    narrow), each on one thread and on two, against X^T @ dz and X @ w; and a Dense
    layer's forward (bias and ReLU in the product where it is wide) against the product
    followed by the separate bias and ReLU."""
    pytest.importorskip("numba")
    import numba

    from fastnn.backends import numba_backend

    rng = np.random.default_rng(seed)
    x = sparse_data(rng, (rows, columns), share).astype(np.float32)
    dz = rng.standard_normal((rows, units)).astype(np.float32)
    w = rng.standard_normal((columns, units)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    backend = fastnn.get_backend("numba")
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(numba_backend, "SCATTER_BYTES", scatter_bytes)
            patch.setattr(backend._narrow, "LANES", lanes)
            compressed = backend.compress_rows(x)
            got = backend.sparse_weight_gradient(compressed, dz)
            product = backend.sparse_matmul(compressed, w)
            layer = backend.sparse_dense(compressed, w, bias, "relu")
            unfused = backend.bias_activation(product.copy(), bias, "relu")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(got, x.T @ dz, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(product, x @ w, rtol=2e-5, atol=2e-5)
    # the bias and ReLU made inside the product give the separate pass's very numbers
    np.testing.assert_array_equal(layer, unfused)
    np.testing.assert_allclose(layer, np.maximum(x @ w + bias, 0), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
@pytest.mark.parametrize("name", backend_params())
def test_training_matches_the_dense_path(name: str, optimizer: str) -> None:
    """Shuffled epochs with a partial last batch, validation and predict."""
    rng = np.random.default_rng(3)
    x = sparse_data(rng, (90, 25), 0.2).astype(np.float32)
    x[10:20] = 0
    y = rng.integers(0, 5, 90)
    results = {}
    with fastnn.use_backend(name):
        for setting in (False, True):
            net = model(optimizer=optimizer)
            history = net.fit(
                x, y, epochs=3, batch_size=16, seed=4, verbose=0, sparse_inputs=setting,
                validation_split=0.2,
            )  # fmt: skip
            results[setting] = (
                history.history,
                net.get_weights(),
                net.predict(x, sparse_inputs=setting),
                net.evaluate(x, y, sparse_inputs=setting),
            )
    (h0, w0, p0, e0), (h1, w1, p1, e1) = results[False], results[True]
    for key in h0:
        assert h1[key] == pytest.approx(h0[key], rel=1e-4, abs=1e-6)
    assert_same(w1, w0, "float32")
    np.testing.assert_allclose(p1, p0, rtol=1e-4, atol=1e-6)
    assert e1 == pytest.approx(e0, rel=1e-4)


# ------------------------------------------------------------------ scipy input
@pytest.mark.parametrize(
    "kind", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array", "lil_matrix"]
)
def test_every_scipy_format_is_accepted(kind: str) -> None:
    rng = np.random.default_rng(5)
    x = sparse_data(rng, (60, 12), 0.3).astype(np.float32)
    y = rng.integers(0, 5, 60)
    weights = []
    for given_x in (x, getattr(scipy_sparse, kind)(x)):
        net = model()
        net.fit(given_x, y, epochs=2, batch_size=8, seed=0, verbose=0)
        weights.append(net.get_weights())
        assert net.predict(given_x).shape == (60, 5)
    assert_same(weights[1], weights[0], "float32")


def test_scipy_input_with_duplicates_and_explicit_zeros() -> None:
    rows, cols = np.array([0, 0, 1, 2]), np.array([1, 1, 0, 2])
    coo = scipy_sparse.coo_matrix((np.array([1.0, 2.0, 0.0, 4.0]), (rows, cols)), shape=(3, 3))
    kept = sparse.from_scipy("x", coo, None, np.dtype(np.float32))
    np.testing.assert_array_equal(kept.to_dense(), coo.toarray())
    assert len(kept.values) == 2  # duplicates summed, the zero dropped


@pytest.mark.parametrize("name", backend_params())
def test_a_scipy_input_on_any_backend_and_first_layer(name: str) -> None:
    """Backends without sparse kernels, and models whose first layer is not Dense,
    get the matrix expanded: the same numbers either way."""
    rng = np.random.default_rng(6)
    x = sparse_data(rng, (40, 10), 0.3).astype(np.float32)
    y = rng.integers(0, 5, 40)
    with fastnn.use_backend(name):
        for first in (lambda: layers.Dense(8, "relu"), lambda: layers.Dropout(0.0)):
            out = []
            for given_x in (x, scipy_sparse.csr_matrix(x)):
                net = fastnn.Sequential([first(), layers.Dense(5, "softmax")], seed=3)
                net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
                net.fit(given_x, y, epochs=1, batch_size=8, seed=0, verbose=0)
                out.append(net.predict(given_x))
            np.testing.assert_allclose(out[1], out[0], rtol=1e-5, atol=1e-6)


def test_scipy_input_is_refused_as_dense_input_is() -> None:
    net = model()
    bad = scipy_sparse.csr_matrix(np.array([[0.0, np.nan, 1.0]] * 4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"^x contains 4 NaN or infinite"):
        net.fit(bad, np.zeros(4, int), verbose=0)
    net.fit(np.ones((4, 3), np.float32), np.zeros(4, int), verbose=0)
    with pytest.raises(ValueError, match=r"model expects \(3,\)"):
        net.predict(scipy_sparse.csr_matrix(np.ones((2, 4))))
    with pytest.raises(ValueError, match="non-empty"):
        net.predict(scipy_sparse.csr_matrix((0, 3)))


# ---------------------------------------------------------------- the setting
@pytest.mark.parametrize("given", [True, False, "auto", "ON", "off"])
def test_settings_parse(given: object) -> None:
    assert sparse.check_sparse_inputs(given) in sparse.SETTINGS


@pytest.mark.parametrize("given", [1, "yes", None, 0.5])
def test_bad_settings_are_refused_in_one_line(given: object) -> None:
    with pytest.raises(ValueError, match=r"^sparse_inputs must be 'auto', True or False"):
        sparse.check_sparse_inputs(given)
    with pytest.raises(ValueError, match="sparse_inputs"):
        model().fit(np.ones((4, 3)), np.zeros(4, int), verbose=0, sparse_inputs=given or "x")


def test_the_environment_and_the_model_set_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sparse.ENV_VAR, raising=False)
    assert sparse.resolve_sparse() == "auto"
    monkeypatch.setenv(sparse.ENV_VAR, "off")
    assert sparse.resolve_sparse() == "off"
    assert sparse.resolve_sparse(True) == "on"
    monkeypatch.setenv(sparse.ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=r"FASTNN_SPARSE=.*'maybe'"):
        sparse.resolve_sparse()
    with pytest.raises(ValueError, match="sparse_inputs"):
        fastnn.Sequential([layers.Dense(2)], sparse_inputs="always")


def test_auto_compresses_only_below_the_backends_crossover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spied on: which inputs the first layer receives compressed."""
    seen: list[bool] = []
    forward = layers.Dense.forward

    def spy(self: layers.Dense, x: object, *args: object, **kwargs: object) -> object:
        seen.append(isinstance(x, sparse.SparseRows))
        return forward(self, x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(layers.Dense, "forward", spy)
    rng = np.random.default_rng(7)
    thin = sparse_data(rng, (64, 20), 0.05).astype(np.float32)
    full = sparse_data(rng, (64, 20), 1.0).astype(np.float32)
    y = rng.integers(0, 5, 64)
    with fastnn.use_backend("numba" if "numba" in fastnn.available_backends() else "numpy"):
        backend = fastnn.get_backend()
        monkeypatch.setattr(type(backend), "sparse_crossover", 0.5)
        monkeypatch.setattr(type(backend), "sparse_min_units", 16)
        for x, expected in ((thin, True), (full, False)):
            seen.clear()
            model().fit(x, y, epochs=1, batch_size=32, verbose=0)
            assert seen[0] is expected
        seen.clear()
        model(sparse_inputs=False).fit(thin, y, epochs=1, batch_size=32, verbose=0)
        assert seen[0] is False
        monkeypatch.setattr(type(backend), "sparse_crossover", 0.0)
        seen.clear()
        model().fit(thin, y, epochs=1, batch_size=32, verbose=0)
        assert seen[0] is False
        monkeypatch.setattr(type(backend), "sparse_crossover", 0.5)
        monkeypatch.setattr(type(backend), "sparse_min_units", 17)  # the layer has 16
        seen.clear()
        model().fit(thin, y, epochs=1, batch_size=32, verbose=0)
        assert seen[0] is False


@settings(max_examples=60, deadline=None)
@given(
    share=st.floats(0, 1),
    rows=st.integers(0, 40),
    columns=st.integers(1, 30),
    parts=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_the_numba_column_sort_and_its_runs(
    share: float, rows: int, columns: int, parts: int, seed: int
) -> None:
    """``kernels/sparse.by_column`` split into any number of runs is the stable sort of the
    entries by column; ``run_start`` cuts the rows into runs in order, each holding no
    more than its share of the entries plus one row."""
    pytest.importorskip("numba")
    from fastnn.kernels import sparse as kernels

    x = sparse_data(np.random.default_rng(seed), (rows, columns), share).astype(np.float32)
    compressed = fastnn.get_backend("numba").compress_rows(x)
    nonzeros = len(compressed.values)
    starts = np.empty(columns + 1, np.int64)
    rows_of, values_of = np.empty(nonzeros, np.int64), np.empty(nonzeros, np.float32)
    counts = np.empty((parts, columns), np.int64)
    kernels.by_column(compressed.indptr, compressed.indices, compressed.values,
                      starts, rows_of, values_of, counts)  # fmt: skip
    row_numbers = np.repeat(np.arange(rows), np.diff(compressed.indptr))
    order = np.argsort(compressed.indices, kind="stable")
    np.testing.assert_array_equal(
        starts,
        np.r_[0, np.cumsum(np.bincount(compressed.indices.astype(np.int64), minlength=columns))],
    )
    np.testing.assert_array_equal(rows_of, row_numbers[order])
    np.testing.assert_array_equal(values_of, compressed.values[order])

    bounds = [kernels.run_start(compressed.indptr, part, parts) for part in range(parts + 1)]
    assert bounds[0] == 0 and bounds[-1] == rows and bounds == sorted(bounds)
    widest = int(np.diff(compressed.indptr).max(initial=0))
    for start, stop in itertools.pairwise(bounds):
        held = compressed.indptr[stop] - compressed.indptr[start]
        assert held <= -(-nonzeros // parts) + widest
