// Shared device helpers of fastnn's CUDA kernels (the counterpart of kernels/jit.py and
// kernels/exp.py for the Numba backend). Every kernel is a template over the float type,
// compiled for float and double by CuPy's RawModule (see fastnn/backends/cupy_backend.py),
// which pastes this header into each source so that its compile cache sees edits here.
//
// Two rules hold in every kernel:
// * Decisions never depend on flushing. CuPy compiles with -ftz=true, which makes float32
//   arithmetic and comparisons read a subnormal input as 0. Kernels compare floats through
//   the order of their bit patterns (greater, same_value), so 1e-40 > 0 holds as in NumPy;
//   only results below the smallest normal number may come out 0, as the interface allows.
// * Sums are deterministic: no float atomics. A sum over a block combines its warps in a
//   fixed order, and a sum over a grid is left to one block, so a loss, a count or a column
//   sum is the same bit for bit from run to run on one device.
#pragma once

namespace fastnn {

// Activation codes, the same numbers as kernels/elementwise.py.
enum Activation { LINEAR = 0, RELU = 1, SIGMOID = 2, TANH = 3 };

// Grid-stride loop bounds: kernels are launched with a capped grid and each thread
// walks the index space in steps of the whole grid.
__device__ __forceinline__ long long first_index() {
    return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
    return static_cast<long long>(gridDim.x) * blockDim.x;
}

// Kernels that give each row to one warp: the warp's row. Blocks are whole warps, so the
// 32 lanes of a warp share a row and leave together when past the last one.
__device__ __forceinline__ long long warp_index() {
    return first_index() / 32;
}

template <typename T>
__device__ __forceinline__ bool is_nan(T v) {
    return v != v;
}

// An integer that orders non-NaN floats as their values do, read from their bits, with
// -0 and +0 the same. Comparing keys needs no floating-point compare, so no flushing.
__device__ __forceinline__ long long order_key(float v) {
    const int bits = __float_as_int(v);
    return bits >= 0 ? static_cast<long long>(bits) : -static_cast<long long>(bits & 0x7fffffff);
}
__device__ __forceinline__ long long order_key(double v) {
    const long long bits = __double_as_longlong(v);
    return bits >= 0 ? bits : -(bits & 0x7fffffffffffffffLL);
}

// a > b, false when either is NaN, exact for subnormals.
template <typename T>
__device__ __forceinline__ bool greater(T a, T b) {
    return !is_nan(a) && !is_nan(b) && order_key(a) > order_key(b);
}

// a == b, false when either is NaN, exact for subnormals.
template <typename T>
__device__ __forceinline__ bool same_value(T a, T b) {
    return !is_nan(a) && !is_nan(b) && order_key(a) == order_key(b);
}

// max(x, 0) that lets NaN through, as np.maximum does.
template <typename T>
__device__ __forceinline__ T relu(T z) {
    return (greater(z, T(0)) || is_nan(z)) ? z : T(0);
}

// 1 / (1 + exp(-z)) with a denominator >= 1 for either sign of z.
template <typename T>
__device__ __forceinline__ T sigmoid(T z) {
    const T e = exp(-fabs(z));
    return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <typename T>
__device__ __forceinline__ T activate(T z, int activation) {
    switch (activation) {
        case RELU: return relu(z);
        case SIGMOID: return sigmoid(z);
        case TANH: return tanh(z);
        default: return z;
    }
}

// The slope of an activation at the point whose output is y: relu (y > 0), sigmoid
// y (1 - y), tanh 1 - y^2, linear 1.
template <typename T>
__device__ __forceinline__ T activation_slope(T y, int activation) {
    switch (activation) {
        case RELU: return greater(y, T(0)) ? T(1) : T(0);
        case SIGMOID: return y * (T(1) - y);
        case TANH: return T(1) - y * y;
        default: return T(1);
    }
}

// Optimizer state below the smallest normal number is set to 0 (see kernels/optimizers.py).
template <typename T>
__device__ __forceinline__ T flush_subnormal(T v, T tiny) {
    return (v > -tiny && v < tiny) ? T(0) : v;
}

// Warp-wide reductions over the 32 lanes; every lane gets the result, and every lane
// combines the same values in the same order.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Maximum that keeps a NaN once it has seen one, as np.max does.
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) {
    return (greater(b, a) || is_nan(b)) && !is_nan(a) ? b : a;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

// -inf, from its bits: NVRTC has no <math.h> and so no INFINITY.
__device__ __forceinline__ float negative_infinity(float) {
    return __int_as_float(static_cast<int>(0xff800000u));
}
__device__ __forceinline__ double negative_infinity(double) {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull));
}

// The maximum of a row (NaN if it holds one), over the lanes of a warp: each lane reads
// only its own columns (j = lane, lane + 32, ...), so the row may be written by its lanes
// just before without a race.
template <typename T>
__device__ __forceinline__ T row_max(const T* row, int cols, int lane) {
    T top = negative_infinity(T(0));
    for (int j = lane; j < cols; j += 32) top = nan_max(top, row[j]);
    return warp_max(top);
}

// Whether (value, index) beats (best, best_index) for a first-occurrence argmax in which,
// as in np.argmax, the first NaN wins over any number.
template <typename T>
__device__ __forceinline__ bool beats(T value, long long index, T best, long long best_index) {
    if (is_nan(best)) return is_nan(value) && index < best_index;
    if (is_nan(value)) return true;
    return greater(value, best) || (same_value(value, best) && index < best_index);
}

// The first largest entry of a row, over the lanes of a warp (every lane gets it). Each
// lane reads only its own columns; a lane with none holds index -1, which never wins.
template <typename T>
__device__ __forceinline__ long long warp_argmax(const T* row, int cols, int lane) {
    T best = T(0);
    long long best_index = -1;
    for (int j = lane; j < cols; j += 32) {
        if (best_index < 0 || beats(row[j], static_cast<long long>(j), best, best_index)) {
            best = row[j];
            best_index = j;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T other = __shfl_xor_sync(0xffffffffu, best, offset);
        const long long other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
        if (other_index >= 0 &&
            (best_index < 0 || beats(other, other_index, best, best_index))) {
            best = other;
            best_index = other_index;
        }
    }
    return best_index;
}

// Sum of v over the block, in a fixed order; the result reaches thread 0 only. Blocks must
// be a whole number of warps, at most 1024 threads, and every thread must call it.
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T partial[32];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    T total = T(0);
    if (threadIdx.x == 0) {
        for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += partial[w];
    }
    __syncthreads();  // partial may be reused by the next call
    return total;
}

// True in every thread of the last block of the grid to get here, once all the others
// have: a grid's epilogue (advancing a step counter) without a second launch. ``done``
// counts finished blocks and is left at 0 for the next launch. Every thread of every
// block must call it.
__device__ __forceinline__ bool last_block(unsigned long long* done) {
    __shared__ bool last;
    __syncthreads();  // the whole block is past its work
    if (threadIdx.x == 0) {
        __threadfence();  // its writes are visible before it counts itself done
        const unsigned long long blocks = static_cast<unsigned long long>(gridDim.x) *
                                          gridDim.y * gridDim.z;
        last = atomicAdd(done, 1ULL) == blocks - 1;
        if (last) *done = 0;
    }
    __syncthreads();
    return last;
}

}  // namespace fastnn
