// Optimizer updates: one launch updates every parameter of a model in place (a
// multi-tensor apply), with the same subnormal flushing of the state arrays as
// kernels/optimizers.py. The step count lives on the device beside the update: each launch
// reads it (Adam's bias correction needs it) and advances it, so a training step captured
// as a CUDA graph replays with the right step.
//
// table holds 6 numbers per parameter: its size, then the addresses of the parameter, its
// gradient and up to three state arrays (0 when unused), all of that size. state[0] is the
// number of steps taken before this one; state[1] counts finished blocks.
#include "common.cuh"

namespace {

constexpr int kTableRow = 6;

// The state arrays of one parameter (null where the update was not given one).
template <typename T>
struct State {
    T* a;
    T* b;
    T* c;
};

// update(param, grad, state, i) for every entry i of every parameter, grid-stride.
template <typename T, typename Update>
__device__ void for_each_entry(const unsigned long long* table, int tensors, Update update) {
    for (int k = 0; k < tensors; ++k) {
        const unsigned long long* row = table + kTableRow * k;
        const long long n = static_cast<long long>(row[0]);
        T* param = reinterpret_cast<T*>(row[1]);
        const T* grad = reinterpret_cast<const T*>(row[2]);
        const State<T> state{reinterpret_cast<T*>(row[3]), reinterpret_cast<T*>(row[4]),
                             reinterpret_cast<T*>(row[5])};
        for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
            update(param, grad, state, i);
        }
    }
}

// The launch's epilogue: one more step taken.
__device__ __forceinline__ void count_step(unsigned long long* state) {
    if (fastnn::last_block(state + 1) && threadIdx.x == 0) state[0] += 1;
}

}  // namespace

// param -= lr g.
template <typename T>
__global__ void sgd(const unsigned long long* table, int tensors, T learning_rate,
                    unsigned long long* state) {
    for_each_entry<T>(table, tensors, [=](T* param, const T* grad, State<T>, long long i) {
        param[i] -= learning_rate * grad[i];
    });
    count_step(state);
}

// v = momentum v - lr g; param += v (Nesterov: param += momentum v - lr g). a = v.
template <typename T>
__global__ void momentum(const unsigned long long* table, int tensors, T learning_rate,
                         T momentum, int nesterov, T tiny, unsigned long long* state) {
    for_each_entry<T>(table, tensors, [=](T* param, const T* grad, State<T> s, long long i) {
        const T step = learning_rate * grad[i];
        const T v = fastnn::flush_subnormal(momentum * s.a[i] - step, tiny);
        s.a[i] = v;
        param[i] += nesterov ? momentum * v - step : v;
    });
    count_step(state);
}

// v = rho v + (1 - rho) g^2; step = lr g / sqrt(v + epsilon). Centered (c given):
// avg = rho avg + (1 - rho) g and the root is of v - avg^2 + epsilon. With momentum (b
// given): b = momentum b + step; param -= b. Else param -= step. a = v, b, c = avg.
template <typename T>
__global__ void rmsprop(const unsigned long long* table, int tensors, T learning_rate, T rho,
                        T one_minus_rho, T epsilon, T momentum, T tiny,
                        unsigned long long* state) {
    for_each_entry<T>(table, tensors, [=](T* param, const T* grad, State<T> s, long long i) {
        const T g = grad[i];
        const T v = fastnn::flush_subnormal(rho * s.a[i] + one_minus_rho * g * g, tiny);
        s.a[i] = v;
        T denominator = v + epsilon;
        if (s.c != nullptr) {
            const T average = fastnn::flush_subnormal(rho * s.c[i] + one_minus_rho * g, tiny);
            s.c[i] = average;
            denominator = v - average * average + epsilon;
        }
        T step = learning_rate * g / sqrt(denominator);
        if (s.b != nullptr) {
            step = fastnn::flush_subnormal(momentum * s.b[i] + step, tiny);
            s.b[i] = step;
        }
        param[i] -= step;
    });
    count_step(state);
}

// m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v); param -= alpha m / (sqrt(v) + epsilon),
// alpha = lr sqrt(1 - b2^t) / (1 - b1^t) for the 1-based step t (in double, as the host
// computes it for the other backends). AMSGrad (c given): v_hat = max(v_hat, v) divides
// instead of v, a NaN in v kept as NumPy's maximum keeps it. a = m, b = v, c = v_hat.
template <typename T>
__global__ void adam(const unsigned long long* table, int tensors, double learning_rate,
                     double beta_1, double beta_2, T one_minus_beta_1, T one_minus_beta_2,
                     T epsilon, T tiny, unsigned long long* state) {
    const double t = static_cast<double>(state[0] + 1);
    const T alpha = static_cast<T>(learning_rate * sqrt(1.0 - pow(beta_2, t)) /
                                   (1.0 - pow(beta_1, t)));
    for_each_entry<T>(table, tensors, [=](T* param, const T* grad, State<T> s, long long i) {
        const T g = grad[i];
        const T m = fastnn::flush_subnormal(s.a[i] + one_minus_beta_1 * (g - s.a[i]), tiny);
        T v = fastnn::flush_subnormal(s.b[i] + one_minus_beta_2 * (g * g - s.b[i]), tiny);
        s.a[i] = m;
        s.b[i] = v;
        if (s.c != nullptr) {
            v = s.c[i] >= v ? s.c[i] : v;
            s.c[i] = v;
        }
        param[i] -= alpha * m / (sqrt(v) + epsilon);
    });
    count_step(state);
}
