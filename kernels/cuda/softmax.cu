// Row-wise softmax and its backward pass (the counterpart of kernels/softmax.py). One warp
// per row: rows of a classifier's output are short, so a warp covers a row in one or a
// few strides. The fused softmax + loss kernels are in losses.cu.
#include "common.cuh"

// out = softmax(x) row by row; x, out (rows, cols); out may be x.
template <typename T>
__global__ void softmax(const T* x, T* out, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;  // whole warps leave together: a warp owns one row
    const int lane = threadIdx.x % 32;
    const T* row = x + r * cols;
    T* out_row = out + r * cols;
    const T top = fastnn::row_max(row, cols, lane);
    T total = T(0);
    for (int j = lane; j < cols; j += 32) {
        const T e = exp(row[j] - top);
        out_row[j] = e;
        total += e;
    }
    const T scale = T(1) / fastnn::warp_sum(total);
    for (int j = lane; j < cols; j += 32) out_row[j] *= scale;
}

// out = y * (dy - sum(dy * y)) row by row.
template <typename T>
__global__ void softmax_backward(const T* dy, const T* y, T* out, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;
    const int lane = threadIdx.x % 32;
    const long long base = r * cols;
    T dot = T(0);
    for (int j = lane; j < cols; j += 32) dot += dy[base + j] * y[base + j];
    dot = fastnn::warp_sum(dot);
    for (int j = lane; j < cols; j += 32) out[base + j] = y[base + j] * (dy[base + j] - dot);
}
