// Row-wise softmax and the fused losses: activation + loss + gradient in one kernel
// (the counterpart of kernels/softmax.py). One warp per row: rows of a classifier's
// output are short, so a warp covers a row in one or a few strides. Loss values are
// accumulated in double, already divided by the number of averaged entries, so the
// accumulator holds the mean. Labels out of range give a NaN loss (checked on the host
// at fit's boundary; a kernel cannot raise).
#include "common.cuh"

namespace {

// Row maximum (NaN-keeping), over the lanes of the warp.
template <typename T>
__device__ __forceinline__ T row_max(const T* row, int cols, int lane) {
    T top = row[0];
    for (int j = lane; j < cols; j += 32) top = fastnn::nan_max(top, row[j]);
    return fastnn::warp_max(top);
}

// out = exp(row - top), returns the row sum (every lane).
template <typename T>
__device__ __forceinline__ T exp_shifted(const T* row, T* out, T top, int cols, int lane) {
    T total = T(0);
    for (int j = lane; j < cols; j += 32) {
        const T e = exp(row[j] - top);
        out[j] = e;
        total += e;
    }
    return fastnn::warp_sum(total);
}

}  // namespace

// out = softmax(x) row by row; x, out (rows, cols); out may be x.
template <typename T>
__global__ void softmax(const T* x, T* out, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;  // whole warps leave together: a warp owns one row
    const int lane = threadIdx.x % 32;
    const T* row = x + r * cols;
    T* out_row = out + r * cols;
    const T scale = T(1) / exp_shifted(row, out_row, row_max(row, cols, lane), cols, lane);
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

// Mean of -log softmax(logits)[label] into *loss (zeroed by the caller) and its gradient
// (p - onehot) / rows into grad; grad must not alias logits.
template <typename T, typename Label>
__global__ void sparse_softmax_cross_entropy(const T* logits, const Label* labels, T* grad,
                                             double* loss, long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;
    const int lane = threadIdx.x % 32;
    const T* row = logits + r * cols;
    T* grad_row = grad + r * cols;
    const long long label = static_cast<long long>(labels[r]);
    const bool valid = label >= 0 && label < cols;
    const T top = row_max(row, cols, lane);
    const T sum_exp = exp_shifted(row, grad_row, top, cols, lane);
    const T inv_rows = T(1) / static_cast<T>(rows);
    const T scale = inv_rows / sum_exp;
    for (int j = lane; j < cols; j += 32) {
        grad_row[j] = grad_row[j] * scale - (j == label ? inv_rows : T(0));
    }
    if (lane == 0) {
        const double picked = valid ? static_cast<double>(row[label] - top) : nan("");
        atomicAdd(loss, (log(static_cast<double>(sum_exp)) - picked) / static_cast<double>(rows));
    }
}

// Mean of -sum(t * log softmax(z)) into *loss and its gradient (p * sum(t) - t) / rows.
template <typename T>
__global__ void softmax_cross_entropy(const T* logits, const T* targets, T* grad, double* loss,
                                      long long rows, int cols) {
    const long long r = fastnn::warp_index();
    if (r >= rows) return;
    const int lane = threadIdx.x % 32;
    const long long base = r * cols;
    const T* row = logits + base;
    const T top = row_max(row, cols, lane);
    T mass = T(0);
    T weighted = T(0);  // sum_j t_j (z_j - top), read before grad is written
    for (int j = lane; j < cols; j += 32) {
        mass += targets[base + j];
        weighted += targets[base + j] * (row[j] - top);
    }
    mass = fastnn::warp_sum(mass);
    weighted = fastnn::warp_sum(weighted);
    const T sum_exp = exp_shifted(row, grad + base, top, cols, lane);
    const T inv_rows = T(1) / static_cast<T>(rows);
    const T scale = mass / sum_exp;
    for (int j = lane; j < cols; j += 32) {
        grad[base + j] = (grad[base + j] * scale - targets[base + j]) * inv_rows;
    }
    if (lane == 0) {
        const double row_loss = static_cast<double>(mass) * log(static_cast<double>(sum_exp)) -
                                static_cast<double>(weighted);
        atomicAdd(loss, row_loss / static_cast<double>(rows));
    }
}

// Mean over all n entries of binary cross-entropy of sigmoid(z), and its gradient;
// max(z, 0) - z t + log(1 + exp(-|z|)) stays finite for any logit.
template <typename T>
__global__ void sigmoid_binary_cross_entropy(const T* logits, const T* targets, T* grad,
                                             double* loss, long long n) {
    const T inv_n = T(1) / static_cast<T>(n);
    double total = 0.0;
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T z = logits[i];
        const T t = targets[i];
        const T e = exp(-fabs(z));
        total += static_cast<double>(fmax(z, T(0)) - z * t + log1p(e));
        const T p = z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
        grad[i] = (p - t) * inv_n;
    }
    fastnn::block_sum_into(total / static_cast<double>(n), loss);
}

// Mean over all n entries of (p - t)^2, and its gradient 2 (p - t) / n.
template <typename T>
__global__ void mean_squared_error(const T* predictions, const T* targets, T* grad,
                                   double* loss, long long n) {
    const T scale = T(2) / static_cast<T>(n);
    double total = 0.0;
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T d = predictions[i] - targets[i];
        total += static_cast<double>(d) * static_cast<double>(d);
        grad[i] = d * scale;
    }
    fastnn::block_sum_into(total / static_cast<double>(n), loss);
}
