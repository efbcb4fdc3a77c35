// What a CUDA source sees when the emulation compiles it for the CPU: the built-in
// indices, __syncthreads, warp shuffles, atomics and the device math functions, mapped
// onto the fiber scheduler of scheduler.h. The sources themselves are compiled
// unmodified (see kernels/emulator.py).
#pragma once

#include <cmath>
#include <cstdint>

#include "scheduler.h"

// Kernels and device functions are plain functions here.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
// Shared memory belongs to a block: blocks run one after another on a host thread, so
// one static variable per host thread is one per running block.
#define __shared__ static thread_local

using fastnn_emu::dim3;
using fastnn_emu::uint3;

#define threadIdx (::fastnn_emu::this_fiber().thread_idx)
#define blockIdx (::fastnn_emu::active->block_idx)
#define blockDim (::fastnn_emu::active->block_dim)
#define gridDim (::fastnn_emu::active->grid_dim)
#define warpSize 32

inline void __syncthreads() {
    fastnn_emu::sync_block();
}

// The fiber scheduler switches threads only at barriers, so nothing runs between a
// load and a store: a fence has nothing to order.
inline void __threadfence() {}
inline void __threadfence_block() {}

namespace fastnn_emu {
inline void require_full_mask(unsigned int mask) {
    if (mask != 0xffffffffu) fail("the emulation supports full-warp shuffles only");
}
}  // namespace fastnn_emu

template <typename T>
inline T __shfl_xor_sync(unsigned int mask, T value, int lane_mask, int width = 32) {
    fastnn_emu::require_full_mask(mask);
    if (width != 32) fastnn_emu::fail("the emulation supports shuffles of width 32 only");
    const unsigned int lane = fastnn_emu::this_fiber().linear % 32;
    return fastnn_emu::exchange(value, lane ^ static_cast<unsigned int>(lane_mask));
}

template <typename T>
inline T __shfl_sync(unsigned int mask, T value, int source, int width = 32) {
    fastnn_emu::require_full_mask(mask);
    if (width != 32) fastnn_emu::fail("the emulation supports shuffles of width 32 only");
    return fastnn_emu::exchange(value, static_cast<unsigned int>(source));
}

template <typename T>
inline T __shfl_down_sync(unsigned int mask, T value, unsigned int delta, int width = 32) {
    fastnn_emu::require_full_mask(mask);
    if (width != 32) fastnn_emu::fail("the emulation supports shuffles of width 32 only");
    const unsigned int lane = fastnn_emu::this_fiber().linear % 32;
    return fastnn_emu::exchange(value, lane + delta < 32 ? lane + delta : lane);
}

// Atomics: one host thread runs every fiber and switches only at barriers, so a plain
// read-modify-write cannot be interrupted.
template <typename T>
inline T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}

inline unsigned int atomicInc(unsigned int* address, unsigned int limit) {
    const unsigned int old = *address;
    *address = old >= limit ? 0u : old + 1u;
    return old;
}

template <typename T>
inline T atomicMax(T* address, T value) {
    const T old = *address;
    if (value > old) *address = value;
    return old;
}

// The device math library: the float overloads of <cmath>, as CUDA has them.
using std::exp;
using std::fabs;
using std::isfinite;
using std::fmax;
using std::fmin;
using std::log;
using std::log1p;
using std::nan;
using std::pow;
using std::sqrt;
using std::tanh;

// CUDA's reinterpreting casts between a float and an integer of its size.
template <typename To, typename From>
inline To fastnn_emu_bits(From value) {
    static_assert(sizeof(To) == sizeof(From), "a reinterpreting cast keeps the size");
    To result;
    std::memcpy(&result, &value, sizeof result);
    return result;
}
inline unsigned int __float_as_uint(float v) { return fastnn_emu_bits<unsigned int>(v); }
inline int __float_as_int(float v) { return fastnn_emu_bits<int>(v); }
inline float __int_as_float(int v) { return fastnn_emu_bits<float>(v); }
inline long long __double_as_longlong(double v) { return fastnn_emu_bits<long long>(v); }
inline double __longlong_as_double(long long v) { return fastnn_emu_bits<double>(v); }
