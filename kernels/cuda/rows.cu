// Accuracy counts, kept on the device (the counterpart of kernels/rows.py): training
// reads them back once per epoch, not once per step.
#include "common.cuh"

namespace {

// Whether (value, index) beats (best, best_index) for a first-occurrence argmax in which,
// as in np.argmax, the first NaN wins over any number.
template <typename T>
__device__ __forceinline__ bool beats(T value, long long index, T best, long long best_index) {
    if (fastnn::is_nan(best)) return fastnn::is_nan(value) && index < best_index;
    if (fastnn::is_nan(value)) return true;
    return value > best || (value == best && index < best_index);
}

}  // namespace

// *count += number of rows whose first largest entry is at labels[row]; one warp per row.
template <typename T, typename Label>
__global__ void count_argmax_matches(const T* scores, const Label* labels,
                                     unsigned long long* count, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;
    const int lane = threadIdx.x % 32;
    const T* row = scores + r * cols;
    T best = row[0];
    long long best_index = 0;
    for (int j = lane; j < cols; j += 32) {
        if (beats(row[j], static_cast<long long>(j), best, best_index)) {
            best = row[j];
            best_index = j;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T other = __shfl_xor_sync(0xffffffffu, best, offset);
        const long long other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
        if (beats(other, other_index, best, best_index)) {
            best = other;
            best_index = other_index;
        }
    }
    if (lane == 0 && best_index == static_cast<long long>(labels[r])) atomicAdd(count, 1ULL);
}

// *count += number of entries with (scores > threshold) == targets.
template <typename T>
__global__ void count_threshold_matches(const T* scores, const T* targets, T threshold,
                                        unsigned long long* count, long long n) {
    unsigned long long matches = 0;
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T predicted = scores[i] > threshold ? T(1) : T(0);
        matches += predicted == targets[i] ? 1ULL : 0ULL;
    }
    fastnn::block_sum_into(matches, count);
}
