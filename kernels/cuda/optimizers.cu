// Optimizer updates: one fused, in-place pass over each parameter (the counterpart of
// kernels/optimizers.py, with the same subnormal flushing of the state arrays).
#include "common.cuh"

template <typename T>
__global__ void sgd(T* param, const T* grad, long long n, T learning_rate) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        param[i] -= learning_rate * grad[i];
    }
}

// v = momentum v - lr g; param += v (Nesterov: param += momentum v - lr g).
template <typename T>
__global__ void momentum(T* param, const T* grad, T* velocity, long long n, T learning_rate,
                         T momentum, int nesterov, T tiny) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T step = learning_rate * grad[i];
        const T v = fastnn::flush_subnormal(momentum * velocity[i] - step, tiny);
        velocity[i] = v;
        param[i] += nesterov ? momentum * v - step : v;
    }
}

// v = rho v + (1 - rho) g^2; param -= lr g / sqrt(v + epsilon).
template <typename T>
__global__ void rmsprop(T* param, const T* grad, T* velocity, long long n, T learning_rate,
                        T rho, T one_minus_rho, T epsilon, T tiny) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T g = grad[i];
        const T v = fastnn::flush_subnormal(rho * velocity[i] + one_minus_rho * g * g, tiny);
        velocity[i] = v;
        param[i] -= learning_rate * g / sqrt(v + epsilon);
    }
}

// m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v); param -= alpha m / (sqrt(v) + epsilon),
// alpha being Adam's bias-corrected step size for this step.
template <typename T>
__global__ void adam(T* param, const T* grad, T* m, T* v, long long n, T step_size,
                     T one_minus_beta_1, T one_minus_beta_2, T epsilon, T tiny) {
    for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
        const T g = grad[i];
        const T mi = fastnn::flush_subnormal(m[i] + one_minus_beta_1 * (g - m[i]), tiny);
        const T vi = fastnn::flush_subnormal(v[i] + one_minus_beta_2 * (g * g - v[i]), tiny);
        m[i] = mi;
        v[i] = vi;
        param[i] -= step_size * mi / (sqrt(vi) + epsilon);
    }
}
