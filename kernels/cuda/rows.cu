// Row work (the counterpart of kernels/rows.py): the accuracy counts, kept on the device,
// and the gather of a training step's mini-batch.
#include "common.cuh"

// *count += number of rows whose first largest entry is at labels[row]; one warp per row.
// An integer sum: its order does not matter, so an atomic add keeps it deterministic.
template <typename T, typename Label>
__global__ void count_argmax_matches(const T* scores, const Label* labels,
                                     unsigned long long* count, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;
    const int lane = threadIdx.x % 32;
    const long long best = fastnn::warp_argmax(scores + r * cols, cols, lane);
    if (lane == 0 && best == static_cast<long long>(labels[r])) atomicAdd(count, 1ULL);
}

// *count += number of entries with (scores > threshold) == targets, compared by value bits:
// under -ftz a subnormal target would read as 0 and match a 0 prediction.
template <typename T>
__global__ void count_threshold_matches(const T* scores, const T* targets, T threshold,
                                        unsigned long long* count, long long n) {
    unsigned long long matches = 0;
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T predicted = fastnn::greater(scores[i], threshold) ? T(1) : T(0);
        matches += fastnn::same_value(predicted, targets[i]) ? 1ULL : 0ULL;
    }
    matches = fastnn::block_sum(matches);
    if (threadIdx.x == 0) atomicAdd(count, matches);
}

// One mini-batch of a shuffled epoch, for several arrays at once: with start =
// cursor[0] * batch, dst_k[r] = src_k[order[start + r]] for r < rows, then cursor[0] += 1
// (by the last block, after every block has read it), so that a training step replayed as
// a CUDA graph gathers the next batch each time. cursor[1] counts finished blocks.
//
// table holds 3 numbers per array: the source and destination addresses and the row
// length in 4-byte words (rows of float, double or int64 are whole words).
__global__ void gather_rows(const unsigned long long* table, int arrays, const long long* order,
                            unsigned long long* cursor, long long batch, long long rows) {
    const long long start = static_cast<long long>(cursor[0]) * batch;
    for (int k = 0; k < arrays; ++k) {
        const unsigned int* src = reinterpret_cast<const unsigned int*>(table[3 * k]);
        unsigned int* dst = reinterpret_cast<unsigned int*>(table[3 * k + 1]);
        const long long words = static_cast<long long>(table[3 * k + 2]);
        const long long n = rows * words;
        for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
            const long long r = i / words;
            dst[i] = src[order[start + r] * words + i % words];
        }
    }
    if (fastnn::last_block(cursor + 1) && threadIdx.x == 0) cursor[0] += 1;
}
