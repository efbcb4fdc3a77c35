// Optimizer updates: one launch updates every parameter of a model in place (a
// multi-tensor apply), with the same subnormal flushing of the state arrays as
// kernels/optimizers.py. The step count lives on the device beside the update: each launch
// reads it (Adam's bias correction needs it) and advances it, so a training step captured
// as a CUDA graph replays with the right step.
//
// table holds 6 numbers per parameter: its size, then the addresses of the parameter, its
// gradient and up to three state arrays (0 when unused), all of that size. state[0] is the
// number of steps taken before this one; state[1] counts finished blocks.
//
// Keras's gradient clipping and weight decay are fused into every update (see
// kernels/optimizers.py): each update takes an Adjust's arguments after the table, and
// for clipnorm and global_clipnorm, gradient_norms runs first and leaves the squared norm
// of each gradient in `squares`, which the update reads on the device, so that a step
// that clips still runs without the host and can be captured as a CUDA graph.
#include "common.cuh"

namespace {

constexpr int kTableRow = 6;

// Clipping codes, the numbers of fastnn/backends/cuda_kernels.py's CLIPPING_CODES.
enum Clipping { NO_CLIPPING = 0, CLIPVALUE = 1, CLIPNORM = 2, GLOBAL_CLIPNORM = 3 };

// What a step does before its update: clipping of each gradient entry (to +-limit, or by
// the factor from the norms), and decoupled weight decay, param -= param * decay * rate.
template <typename T>
struct Adjust {
    const double* squares;  // each gradient's squared L2 norm (the norm kinds of clipping)
    int clipping;
    T limit;
    T weight_decay;
    T rate;

    // The factor gradient k is multiplied by: Keras's limit / max(norm, limit) of its own
    // norm or of the joint norm; NaN when that norm is NaN (or, joint, infinite).
    __device__ T scale(int k, int tensors) const {
        if (clipping != CLIPNORM && clipping != GLOBAL_CLIPNORM) return T(1);
        double total = squares[k];
        if (clipping == GLOBAL_CLIPNORM) {
            total = 0.0;
            for (int j = 0; j < tensors; ++j) total += squares[j];
        }
        const double norm = sqrt(total);
        const double lim = static_cast<double>(limit);
        if (norm <= lim) return T(1);
        // an infinite joint norm gives NaN (inf - inf), as NumPy's formula does
        return static_cast<T>(clipping == GLOBAL_CLIPNORM ? lim / norm + (norm - norm)
                                                          : lim / norm);
    }

    // A gradient entry as the update uses it (clipvalue keeps a NaN, as np.clip does).
    __device__ T gradient(T g, T factor) const {
        if (clipping == CLIPVALUE) g = g > limit ? limit : (g < -limit ? -limit : g);
        return g * factor;
    }

    // The weight after its decay (itself without one: an infinite weight stays so).
    __device__ T decayed(T p) const {
        return weight_decay != T(0) ? p - p * weight_decay * rate : p;
    }
};

// The state arrays of one parameter (null where the update was not given one).
template <typename T>
struct State {
    T* a;
    T* b;
    T* c;
};

// param[i] = update(decayed param[i], adjusted gradient entry, state, i) for every entry
// i of every parameter, grid-stride.
template <typename T, typename Update>
__device__ void for_each_entry(const unsigned long long* table, int tensors, Adjust<T> adjust,
                               Update update) {
    for (int k = 0; k < tensors; ++k) {
        const unsigned long long* row = table + kTableRow * k;
        const long long n = static_cast<long long>(row[0]);
        T* param = reinterpret_cast<T*>(row[1]);
        const T* grad = reinterpret_cast<const T*>(row[2]);
        const State<T> state{reinterpret_cast<T*>(row[3]), reinterpret_cast<T*>(row[4]),
                             reinterpret_cast<T*>(row[5])};
        const T factor = adjust.scale(k, tensors);
        for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
            param[i] = update(adjust.decayed(param[i]), adjust.gradient(grad[i], factor), state, i);
        }
    }
}

// The update kernels' leading parameters: the table, then an Adjust's fields.
#define UPDATE_PARAMETERS                                                                 \
    const unsigned long long *table, int tensors, const double *squares, int clipping,    \
        T limit, T weight_decay, T rate
#define ADJUST Adjust<T>{squares, clipping, limit, weight_decay, rate}

// The launch's epilogue: one more step taken.
__device__ __forceinline__ void count_step(unsigned long long* state) {
    if (fastnn::last_block(state + 1) && threadIdx.x == 0) state[0] += 1;
}

}  // namespace

// squares[k] = sum of gradient k's squared entries, in double, for every parameter of the
// table. Each block sums its share of each gradient into partial[k * gridDim.x + block];
// the last block to finish adds the shares up in block order (no float atomics, so the
// same bits every run). partial holds tensors x gridDim.x; done counts finished blocks.
template <typename T>
__global__ void gradient_norms(const unsigned long long* table, int tensors, double* partial,
                               double* squares, unsigned long long* done) {
    for (int k = 0; k < tensors; ++k) {
        const unsigned long long* row = table + kTableRow * k;
        const long long n = static_cast<long long>(row[0]);
        const T* grad = reinterpret_cast<const T*>(row[2]);
        double sum = 0.0;
        for (long long i = fastnn::first_index(); i < n; i += fastnn::grid_stride()) {
            const double g = static_cast<double>(grad[i]);
            sum += g * g;
        }
        sum = fastnn::block_sum(sum);
        if (threadIdx.x == 0) partial[static_cast<long long>(k) * gridDim.x + blockIdx.x] = sum;
    }
    if (fastnn::last_block(done)) {
        for (int k = threadIdx.x; k < tensors; k += blockDim.x) {
            double total = 0.0;
            for (unsigned int b = 0; b < gridDim.x; ++b) {
                total += partial[static_cast<long long>(k) * gridDim.x + b];
            }
            squares[k] = total;
        }
    }
}

// param -= lr g.
template <typename T>
__global__ void sgd(UPDATE_PARAMETERS, T learning_rate, unsigned long long* state) {
    for_each_entry<T>(table, tensors, ADJUST, [=](T p, T g, State<T>, long long) {
        return p - learning_rate * g;
    });
    count_step(state);
}

// v = momentum v - lr g; param += v (Nesterov: param += momentum v - lr g). a = v.
template <typename T>
__global__ void momentum(UPDATE_PARAMETERS, T learning_rate, T momentum, int nesterov, T tiny,
                         unsigned long long* state) {
    for_each_entry<T>(table, tensors, ADJUST, [=](T p, T g, State<T> s, long long i) {
        const T step = learning_rate * g;
        const T v = fastnn::flush_subnormal(momentum * s.a[i] - step, tiny);
        s.a[i] = v;
        return p + (nesterov ? momentum * v - step : v);
    });
    count_step(state);
}

// v = rho v + (1 - rho) g^2; step = lr g / sqrt(v + epsilon). Centered (c given):
// avg = rho avg + (1 - rho) g and the root is of v - avg^2 + epsilon. With momentum (b
// given): b = momentum b + step; param -= b. Else param -= step. a = v, b, c = avg.
template <typename T>
__global__ void rmsprop(UPDATE_PARAMETERS, T learning_rate, T rho, T one_minus_rho, T epsilon,
                        T momentum, T tiny, unsigned long long* state) {
    for_each_entry<T>(table, tensors, ADJUST, [=](T p, T g, State<T> s, long long i) {
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
        return p - step;
    });
    count_step(state);
}

// m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v); param -= alpha m / (sqrt(v) + epsilon),
// alpha = lr sqrt(1 - b2^t) / (1 - b1^t) for the 1-based step t (in double, as the host
// computes it for the other backends). AMSGrad (c given): v_hat = max(v_hat, v) divides
// instead of v, a NaN in v kept as NumPy's maximum keeps it. a = m, b = v, c = v_hat.
template <typename T>
__global__ void adam(UPDATE_PARAMETERS, double learning_rate, double beta_1, double beta_2,
                     T one_minus_beta_1, T one_minus_beta_2, T epsilon, T tiny,
                     unsigned long long* state) {
    const double t = static_cast<double>(state[0] + 1);
    const T alpha = static_cast<T>(learning_rate * sqrt(1.0 - pow(beta_2, t)) /
                                   (1.0 - pow(beta_1, t)));
    for_each_entry<T>(table, tensors, ADJUST, [=](T p, T g, State<T> s, long long i) {
        const T m = fastnn::flush_subnormal(s.a[i] + one_minus_beta_1 * (g - s.a[i]), tiny);
        T v = fastnn::flush_subnormal(s.b[i] + one_minus_beta_2 * (g * g - s.b[i]), tiny);
        s.a[i] = m;
        s.b[i] = v;
        if (s.c != nullptr) {
            v = s.c[i] >= v ? s.c[i] : v;
            s.c[i] = v;
        }
        return p - alpha * m / (sqrt(v) + epsilon);
    });
    count_step(state);
}
