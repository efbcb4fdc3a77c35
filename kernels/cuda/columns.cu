// Column sums, the bias gradient of a dense layer, fused with the activation's backward
// pass that produces what they sum (the counterpart of NumPy's x.sum(axis=0)).
//
// Blocks are (32, R) threads: 32 consecutive columns, so each warp reads a row segment
// in one transaction, and R threads per column splitting the rows. Each thread sums its
// rows in order and the R partial sums are combined in order, so the result does not
// depend on timing.
#include "common.cuh"

// dz = dy * act'(y) (written when dz is not null), sums[j] = sum over rows of dz[:, j];
// dy, y, dz (rows, cols), sums (cols,). y may be null for LINEAR; dz may be dy.
template <typename T>
__global__ void column_sums(const T* dy, const T* y, T* dz, T* sums, long long rows,
                            long long cols, int activation) {
    __shared__ T partial[32][33];  // [row lane][column], padded against bank conflicts
    const long long j = static_cast<long long>(blockIdx.x) * 32 + threadIdx.x;
    T total = T(0);
    if (j < cols) {
        for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
            const long long i = r * cols + j;
            T v = dy[i];
            if (activation != fastnn::LINEAR) v *= fastnn::activation_slope(y[i], activation);
            if (dz != nullptr) dz[i] = v;
            total += v;
        }
    }
    partial[threadIdx.y][threadIdx.x] = total;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        T sum = T(0);
        for (unsigned int lane = 0; lane < blockDim.y; ++lane) sum += partial[lane][threadIdx.x];
        sums[j] = sum;
    }
}
