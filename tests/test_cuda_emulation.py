"""The CPU emulation of CUDA kernels (fastnn.kernels.emulator) and the CuPy stand-in
around it (fastnn.backends.cuda_emulation): that they run kernels as a GPU would, refuse
what a GPU leaves undefined, and vary what a GPU may vary (block and thread order), so
that the cupy backend's tests on them mean something."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastnn.kernels import emulator

pytestmark = pytest.mark.skipif(emulator.compiler() is None, reason="no C++ compiler")

# Small kernels, each showing one thing a GPU does or forbids.
SOURCE = r"""
// out[i] = the stride (0, 1, ...) in which a grid-stride loop reached entry i.
__global__ void strides(int* out, long long n) {
    const long long step = (long long)gridDim.x * blockDim.x;
    int k = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        out[i] = k++;
    }
}

// A sum of per-block partials added with a float atomic: its last bits follow the order
// in which blocks finish.
__global__ void atomic_sum(const double* x, double* total, long long n) {
    __shared__ double partial[32];
    double v = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        v += x[i];
    }
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (unsigned w = 0; w < blockDim.x / 32; ++w) s += partial[w];
        atomicAdd(total, s);
    }
}

// Each block writes its index at the position of a shared arrival counter.
__global__ void arrival(unsigned long long* counter, int* order) {
    if (threadIdx.x == 0) order[atomicAdd(counter, 1ULL)] = (int)blockIdx.x;
}

// Shared memory is the block's: thread t reads what thread (t + 1) % n wrote.
__global__ void rotate(const float* x, float* out) {
    __shared__ float tile[256];
    const unsigned t = threadIdx.x;
    tile[t] = x[blockIdx.x * blockDim.x + t];
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = tile[(t + 1) % blockDim.x];
}

// Thread 0 leaves before the barrier the others wait at.
__global__ void early_exit_barrier(float* out) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Half a warp leaves before a full-warp shuffle.
__global__ void early_exit_shuffle(float* out) {
    if (threadIdx.x % 32 < 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// A full-warp shuffle in a block of 48 threads (a warp and a half).
__global__ void shuffle(float* out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

// x > 0 as the compiled float compare sees it.
__global__ void positive(const float* x, int* out, long long n) {
    for (long long i = threadIdx.x; i < n; i += blockDim.x) out[i] = x[i] > 0.0f;
}
"""
NAMES = [
    "strides", "atomic_sum", "arrival", "rotate", "early_exit_barrier",
    "early_exit_shuffle", "shuffle", "positive",
]  # fmt: skip


@pytest.fixture(scope="module")
def module() -> emulator.Module:
    return emulator.Module(SOURCE, NAMES)


def _launch(module: emulator.Module, name: str, grid: int, block: int, *args: Any,
            seed: int = 0, **kwargs: Any) -> None:  # fmt: skip
    module.get_function(name).launch((grid,), (block,), list(args), seed=seed, **kwargs)


def test_grid_stride_loops_take_every_stride(module: emulator.Module) -> None:
    out = np.full(1000, -1, dtype=np.int32)
    _launch(module, "strides", 2, 64, out, np.int64(1000))
    # 128 threads over 1000 entries: strides 0 to 7, each entry visited once
    np.testing.assert_array_equal(out, np.arange(1000) // 128)


def test_blocks_run_in_an_order_that_changes_from_launch_to_launch(
    module: emulator.Module,
) -> None:
    orders = set()
    for seed in range(5):
        counter, order = np.zeros(1, np.uint64), np.full(16, -1, np.int32)
        _launch(module, "arrival", 16, 32, counter, order, seed=seed)
        assert sorted(order) == list(range(16))
        orders.add(tuple(order))
    assert len(orders) > 1


def test_a_float_atomic_sum_changes_its_last_bits_with_the_block_order(
    module: emulator.Module,
) -> None:
    """What made evaluate() irreproducible on the GPU: the emulation shows it too."""
    x = np.random.default_rng(0).standard_normal(100_000) * 1e6
    sums = set()
    for seed in range(8):
        total = np.zeros(1)
        _launch(module, "atomic_sum", 32, 64, x, total, np.int64(len(x)), seed=seed)
        assert total[0] == pytest.approx(x.sum(), rel=1e-9)
        sums.add(float(total[0]))
    assert len(sums) > 1


def test_shared_memory_belongs_to_the_block(module: emulator.Module) -> None:
    x = np.arange(4 * 64, dtype=np.float32)
    out = np.zeros_like(x)
    _launch(module, "rotate", 4, 64, x, out)
    np.testing.assert_array_equal(out.reshape(4, 64), np.roll(x.reshape(4, 64), -1, axis=1))


@pytest.mark.parametrize(
    ("kernel", "block", "message"),
    [
        ("early_exit_barrier", 64, "every thread of a block must reach each barrier"),
        ("early_exit_shuffle", 32, "a full-warp shuffle by thread"),
        ("shuffle", 48, "blocks must be a whole number of warps"),
    ],
)
def test_what_cuda_leaves_undefined_is_an_error(
    module: emulator.Module, kernel: str, block: int, message: str
) -> None:
    with pytest.raises(emulator.EmulatorError, match=message):
        _launch(module, kernel, 1, block, np.zeros(block, dtype=np.float32))


def test_arguments_must_have_the_kernels_types(module: emulator.Module) -> None:
    out = np.zeros(8, dtype=np.int32)
    with pytest.raises(emulator.EmulatorError, match=r"argument 0 is a pointer to int32; "
                       "received an array of int64"):  # fmt: skip
        _launch(module, "strides", 1, 32, out.astype(np.int64), np.int64(8))
    with pytest.raises(emulator.EmulatorError, match="argument 1 is int64; received int32"):
        _launch(module, "strides", 1, 32, out, np.int32(8))
    with pytest.raises(emulator.EmulatorError, match="takes 2 arguments; received 1"):
        _launch(module, "strides", 1, 32, out)
    _launch(module, "strides", 1, 32, out, 8)  # a Python int passes as int64, as in CuPy


def test_float_compares_flush_subnormal_inputs_as_cupy_compiles_them(
    module: emulator.Module,
) -> None:
    """CuPy compiles with -ftz=true: a float32 compare reads 1e-40 as 0. The emulation
    does the same by default, so a kernel that decides on a subnormal shows it."""
    x = np.array([1e-40, 1.0, -1e-40], dtype=np.float32)
    out = np.zeros(3, dtype=np.int32)
    _launch(module, "positive", 1, 32, x, out, np.int64(3))
    np.testing.assert_array_equal(out, [0, 1, 0])
    _launch(module, "positive", 1, 32, x, out, np.int64(3), flush_subnormals=False)
    np.testing.assert_array_equal(out, [1, 1, 0])


def test_libraries_are_cached_by_what_they_are_built_from() -> None:
    code = "__global__ void k(float* x) { x[threadIdx.x] = 1.0f; }"
    first = emulator.build(code, ["k"])
    assert emulator.build(code, ["k"]) == first
    assert emulator.build(code + "\n// edited\n", ["k"]) != first


# ------------------------------------------------------------- the CuPy stand-in
def _stand_in() -> Any:
    from fastnn.backends import cuda_emulation

    return cuda_emulation


def test_host_arrays_are_refused_where_cupy_refuses_them() -> None:
    ce = _stand_in()
    device = ce.asarray(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match=r"host numpy\.ndarray"):
        np.add(device, np.ones(3, dtype=np.float32))
    module = ce.RawModule(code=SOURCE, name_expressions=NAMES)
    with pytest.raises(TypeError, match="kernels take device arrays"):
        module.get_function("strides")((1,), (32,), (np.zeros(8, np.int32), np.int64(8)))


def test_every_launch_is_counted_by_kind() -> None:
    ce = _stand_in()
    module = ce.RawModule(code=SOURCE, name_expressions=NAMES)
    out = ce.zeros(8, dtype=np.int32)
    a = ce.asarray(np.ones((2, 2), dtype=np.float32))
    with ce.counting() as counts:
        module.get_function("strides")((1,), (32,), (out, np.int64(8)))
        np.matmul(a, a, out=ce.empty((2, 2), np.float32))
        np.add(a, 1, out=a)
        a.fill(0)
        ce.asnumpy(a)
    assert counts == {"kernel": 1, "gemm": 1, "elementwise": 1, "memset": 1, "copy": 1}


def test_a_capture_records_work_and_the_graph_replays_it() -> None:
    ce = _stand_in()
    module = ce.RawModule(code=SOURCE, name_expressions=NAMES)
    # the arrival kernel writes order[counter]: room for the counts two replays reach
    counter, order = ce.zeros(1, dtype=np.uint64), ce.zeros(32, dtype=np.int32)
    stream = ce.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        module.get_function("arrival")((1,), (32,), (counter, order))
        np.add(counter, np.uint64(10), out=counter)
        graph = stream.end_capture()
        assert int(counter[0]) == 0  # nothing ran while capturing
        graph.launch(stream)
        graph.launch(stream)
    assert int(counter[0]) == 22  # two replays of: one arrival, then + 10


@pytest.mark.parametrize(
    "inside",
    [
        lambda ce, a: ce.zeros(3),  # an allocation
        lambda ce, a: float(a[0]),  # a read back to the host
        lambda ce, a: ce.asnumpy(a),
        lambda ce, a: a + 1,  # an operation that allocates its result
        lambda ce, a: ce.cuda.get_current_stream().synchronize(),
    ],
    ids=["allocation", "host-read", "asnumpy", "allocating-op", "synchronize"],
)
def test_what_a_capture_cannot_hold_is_refused(inside: Any) -> None:
    ce = _stand_in()
    a = ce.asarray(np.ones(3))
    stream = ce.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(ce.CaptureError, match="inside a CUDA stream capture"):
                inside(ce, a)
        finally:
            stream.end_capture()


def test_the_default_stream_cannot_capture() -> None:
    ce = _stand_in()
    with pytest.raises(RuntimeError, match="cannot capture on the default"):
        ce.cuda.get_current_stream().begin_capture()
