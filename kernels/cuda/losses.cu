// The fused losses (the counterpart of the losses of kernels/softmax.py): in one kernel,
// the last layer's bias added to its outputs, the activation, the loss and its gradient,
// and, when asked, the bias gradient, the accuracy count and the totals of a pass over
// data (fastnn/training.py reads those once per epoch). A training step of a classifier
// thus ends its forward pass and starts its backward pass in a single launch.
//
// One block does it all: a batch's outputs are small next to the products around them,
// and a single block sums the loss, the count and the bias gradient in a fixed order,
// with no atomics and no second launch. Each warp takes rows in turn; a row's lanes
// stride over its columns.
#include "common.cuh"

namespace fastnn {

// Fields of the totals array (float64) a pass over data accumulates (fastnn/backends/base.py;
// its LAST_LOSS field is what the kernels' ``mean`` points to).
enum Total { LOSS_SUM = 0, CORRECT = 1, STEPS = 2, FIRST_BAD_STEP = 3, FIRST_BAD_LOSS = 4 };

// What the accuracy metric counts: nothing, rows whose first largest output is at their
// label, or outputs whose side of the threshold matches their 0/1 target.
enum Count { NO_COUNT = 0, ARGMAX = 1, THRESHOLD = 2 };

}  // namespace fastnn

namespace {

// Each loss writes one row's gradient and returns the row's loss (every lane the same).
// ``scale`` is the gradient's factor for this batch (1 / rows for a mean over rows).

template <typename T, typename Label>
struct SparseCrossEntropy {
    const Label* labels;

    // -log softmax(z)[label]; gradient (softmax(z) - onehot(label)) * scale.
    __device__ double row(const T* z, T* grad, long long r, int cols, int lane, T scale) const {
        const long long label = static_cast<long long>(labels[r]);
        const T top = fastnn::row_max(z, cols, lane);
        T sum_exp = T(0);
        T picked = T(0);  // z[label] - top, from the lane that holds it
        for (int j = lane; j < cols; j += 32) {
            const T e = exp(z[j] - top);
            grad[j] = e;
            sum_exp += e;
            if (j == label) picked = z[j] - top;
        }
        sum_exp = fastnn::warp_sum(sum_exp);
        picked = fastnn::warp_sum(picked);
        const T factor = scale / sum_exp;
        for (int j = lane; j < cols; j += 32) grad[j] = grad[j] * factor - (j == label ? scale : T(0));
        const bool valid = label >= 0 && label < cols;  // a kernel cannot raise: NaN shows it
        return valid ? log(static_cast<double>(sum_exp)) - static_cast<double>(picked) : nan("");
    }
};

template <typename T>
struct CrossEntropy {
    const T* targets;

    // -sum(t * log softmax(z)); gradient (softmax(z) * sum(t) - t) * scale.
    __device__ double row(const T* z, T* grad, long long r, int cols, int lane, T scale) const {
        const T* t = targets + r * cols;
        const T top = fastnn::row_max(z, cols, lane);
        T mass = T(0);
        T sum_exp = T(0);
        for (int j = lane; j < cols; j += 32) {
            mass += t[j];
            const T e = exp(z[j] - top);
            grad[j] = e;
            sum_exp += e;
        }
        mass = fastnn::warp_sum(mass);
        sum_exp = fastnn::warp_sum(sum_exp);
        const T factor = mass / sum_exp;
        // sum_j t_j (lse - (z_j - top)), entry by entry as the reference sums t * -log p:
        // split into mass * lse - sum_j t_j (z_j - top), an infinite target times the
        // row's top logit (z_j - top = 0) made NaN where the reference gives inf
        const double lse = log(static_cast<double>(sum_exp));
        double total = 0.0;
        for (int j = lane; j < cols; j += 32) {
            total += static_cast<double>(t[j]) * (lse - static_cast<double>(z[j] - top));
            grad[j] = (grad[j] * factor - t[j]) * scale;
        }
        return fastnn::warp_sum(total);
    }
};

template <typename T>
struct SigmoidBinaryCrossEntropy {
    const T* targets;

    // sum over the row of max(z, 0) - z t + log(1 + exp(-|z|)) (finite for any logit);
    // gradient (sigmoid(z) - t) * scale.
    __device__ double row(const T* z, T* grad, long long r, int cols, int lane, T scale) const {
        const T* t = targets + r * cols;
        double total = 0.0;
        for (int j = lane; j < cols; j += 32) {
            const T e = exp(-fabs(z[j]));
            total += static_cast<double>(fmax(z[j], T(0)) - z[j] * t[j] + log1p(e));
            const T p = z[j] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
            grad[j] = (p - t[j]) * scale;
        }
        return fastnn::warp_sum(total);
    }
};

template <typename T>
struct MeanSquaredError {
    const T* targets;

    // sum over the row of (p - t)^2; gradient (p - t) * scale (scale = 2 / entries).
    __device__ double row(const T* z, T* grad, long long r, int cols, int lane, T scale) const {
        const T* t = targets + r * cols;
        double total = 0.0;
        for (int j = lane; j < cols; j += 32) {
            const T d = z[j] - t[j];
            total += static_cast<double>(d) * static_cast<double>(d);
            grad[j] = d * scale;
        }
        return fastnn::warp_sum(total);
    }
};

// The shared body of the loss kernels: z (rows, cols) gets the bias (cols,) added in place
// when bias is not null; grad (rows, cols) must not alias z. *mean_out is the loss summed
// over rows and divided by ``denominator``; weights (rows,), Keras's sample weights, scale
// each row's loss and gradient. weights, totals, bias_grad, count_labels and
// count_targets may be null when not wanted.
template <typename T, typename Loss>
__device__ void loss_head(const Loss& loss, T* z, const T* bias, const T* weights, T* grad,
                          T* bias_grad,
                          double* mean_out, double* totals, int count,
                          const long long* count_labels, const T* count_targets, T threshold,
                          long long rows, int cols, double denominator, T scale) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int warps = static_cast<int>(blockDim.x / 32);
    double loss_sum = 0.0;
    unsigned long long correct = 0;
    for (long long r = warp; r < rows; r += warps) {
        T* row = z + r * cols;
        if (bias != nullptr) {
            for (int j = lane; j < cols; j += 32) row[j] += bias[j];
        }
        const T weight = weights != nullptr ? weights[r] : T(1);
        loss_sum += static_cast<double>(weight) *
                    loss.row(row, grad + r * cols, r, cols, lane, scale * weight);
        if (count == fastnn::ARGMAX) {
            correct += fastnn::warp_argmax(row, cols, lane) == count_labels[r] ? 1ULL : 0ULL;
        } else if (count == fastnn::THRESHOLD) {
            unsigned long long matches = 0;
            for (int j = lane; j < cols; j += 32) {
                const T predicted = fastnn::greater(row[j], threshold) ? T(1) : T(0);
                const T target = count_targets[r * cols + j];  // by value bits, as in rows.cu
                matches += fastnn::same_value(predicted, target) ? 1ULL : 0ULL;
            }
            correct += fastnn::warp_sum(matches);
        }
    }
    __shared__ double loss_by_warp[32];
    __shared__ unsigned long long correct_by_warp[32];
    if (lane == 0) {
        loss_by_warp[warp] = loss_sum;
        correct_by_warp[warp] = correct;
    }
    __syncthreads();  // every row done: the gradient is complete, the partial sums are in
    if (threadIdx.x == 0) {
        double total = 0.0;
        unsigned long long matches = 0;
        for (int w = 0; w < warps; ++w) {
            total += loss_by_warp[w];
            matches += correct_by_warp[w];
        }
        const double mean = total / denominator;
        *mean_out = mean;
        if (totals != nullptr) {
            if (!isfinite(mean) && totals[fastnn::FIRST_BAD_STEP] < 0.0) {
                totals[fastnn::FIRST_BAD_STEP] = totals[fastnn::STEPS];
                totals[fastnn::FIRST_BAD_LOSS] = mean;
            }
            totals[fastnn::LOSS_SUM] += mean * static_cast<double>(rows);
            totals[fastnn::CORRECT] += static_cast<double>(matches);
            totals[fastnn::STEPS] += 1.0;
        }
    }
    if (bias_grad != nullptr) {
        for (int j = static_cast<int>(threadIdx.x); j < cols; j += static_cast<int>(blockDim.x)) {
            T sum = T(0);
            for (long long r = 0; r < rows; ++r) sum += grad[r * cols + j];
            bias_grad[j] = sum;
        }
    }
}

}  // namespace

// Mean over rows of -log softmax(z)[label], labels (rows,) in [0, cols).
template <typename T, typename Label>
__global__ void sparse_softmax_cross_entropy(T* z, const T* bias, const Label* labels,
                                             const T* weights, T* grad, T* bias_grad,
                                             double* mean, double* totals, int count,
                                             const long long* count_labels,
                                             const T* count_targets, T threshold,
                                             long long rows, int cols) {
    loss_head(SparseCrossEntropy<T, Label>{labels}, z, bias, weights, grad, bias_grad, mean,
              totals, count, count_labels, count_targets, threshold, rows, cols,
              static_cast<double>(rows), T(1) / static_cast<T>(rows));
}

// Mean over rows of -sum(t * log softmax(z)), targets (rows, cols).
template <typename T>
__global__ void softmax_cross_entropy(T* z, const T* bias, const T* targets,
                                      const T* weights, T* grad, T* bias_grad, double* mean,
                                      double* totals, int count, const long long* count_labels,
                                      const T* count_targets, T threshold, long long rows,
                                      int cols) {
    loss_head(CrossEntropy<T>{targets}, z, bias, weights, grad, bias_grad, mean, totals, count,
              count_labels, count_targets, threshold, rows, cols, static_cast<double>(rows),
              T(1) / static_cast<T>(rows));
}

// Mean over every entry of the binary cross-entropy of sigmoid(z), targets in [0, 1].
template <typename T>
__global__ void sigmoid_binary_cross_entropy(T* z, const T* bias, const T* targets,
                                             const T* weights, T* grad, T* bias_grad,
                                             double* mean, double* totals, int count,
                                             const long long* count_labels,
                                             const T* count_targets, T threshold,
                                             long long rows, int cols) {
    const double entries = static_cast<double>(rows) * cols;
    loss_head(SigmoidBinaryCrossEntropy<T>{targets}, z, bias, weights, grad, bias_grad, mean,
              totals, count, count_labels, count_targets, threshold, rows, cols, entries,
              T(1) / static_cast<T>(entries));
}

// Mean over every entry of (z - t)^2.
template <typename T>
__global__ void mean_squared_error(T* z, const T* bias, const T* targets, const T* weights,
                                   T* grad, T* bias_grad, double* mean, double* totals,
                                   int count, const long long* count_labels,
                                   const T* count_targets, T threshold, long long rows,
                                   int cols) {
    const double entries = static_cast<double>(rows) * cols;
    loss_head(MeanSquaredError<T>{targets}, z, bias, weights, grad, bias_grad, mean, totals,
              count, count_labels, count_targets, threshold, rows, cols, entries,
              T(2) / static_cast<T>(entries));
}
