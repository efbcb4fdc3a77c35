// Shared device helpers of fastnn's CUDA kernels (the counterpart of kernels/jit.py and
// kernels/exp.py for the Numba backend). Every kernel is a template over the float type,
// compiled for float and double by CuPy's RawModule (see fastnn/backends/cupy_backend.py).
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

// max(x, 0) that lets NaN through, as np.maximum does.
template <typename T>
__device__ __forceinline__ T relu(T z) {
    return (z > T(0) || is_nan(z)) ? z : T(0);
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

// Optimizer state below the smallest normal number is set to 0 (see kernels/optimizers.py).
template <typename T>
__device__ __forceinline__ T flush_subnormal(T v, T tiny) {
    return (v > -tiny && v < tiny) ? T(0) : v;
}

// Warp-wide reductions over the 32 lanes; every lane gets the result.
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
    return (b > a || is_nan(b)) && !is_nan(a) ? b : a;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

// Sum of v over the block, added once into *total (one atomic per block, not per thread).
// Blocks must be a whole number of warps, at most 1024 threads.
template <typename T>
__device__ void block_sum_into(T v, T* total) {
    __shared__ T partial[32];
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x + 31) / 32 ? partial[lane] : T(0);
        v = warp_sum(v);
        if (lane == 0) atomicAdd(total, v);
    }
}

}  // namespace fastnn
