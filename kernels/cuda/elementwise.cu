// Elementwise kernels: bias + activation fused, and the activations' backward passes
// (the counterpart of kernels/elementwise.py). Arrays are C-contiguous; ``out`` may be
// the same array as an input, since every entry is read before it is written.
#include "common.cuh"

// out = act(x + bias); x, out (rows, cols), bias (cols,).
template <typename T>
__global__ void bias_activation(const T* x, const T* bias, T* out, long long rows,
                                long long cols, int activation) {
    const long long n = rows * cols;
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        out[i] = fastnn::activate(x[i] + bias[i % cols], activation);
    }
}

// out = act(x) over n entries.
template <typename T>
__global__ void activation(const T* x, T* out, long long n, int activation) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        out[i] = fastnn::activate(x[i], activation);
    }
}

// out = dy * act'(.) from the activation's output y (see fastnn::activation_slope).
template <typename T>
__global__ void activation_backward(const T* dy, const T* y, T* out, long long n,
                                    int activation) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        out[i] = dy[i] * fastnn::activation_slope(y[i], activation);
    }
}
