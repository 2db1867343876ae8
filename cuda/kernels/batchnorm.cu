// batchnorm.cu: batch normalisation over the [N, C, S] view (IBackend.BatchNorm*).
//
//   batchnorm_forward_training_v1   one block per channel: mean and biased variance of the
//                                   batch (two passes, double accumulators), y, the saved
//                                   mean / inverse deviation, and the Keras-style running update
//   batchnorm_forward_inference_v1  elementwise with the running statistics (float, as the CPU)
//   batchnorm_backward_v1           one block per channel: sum(dy), sum(dy * xhat) in double,
//                                   then dx, dGamma, dBeta
//
//   v2: the same results, computed wide. One block per channel leaves most of a GPU idle when
//   there are few channels over many elements (16 channels of 128 x 32 x 32 fill 16 of 132
//   SMs), so v2 splits each channel's M = N * S elements into `chunks` chunks of
//   `chunk_length` (chosen by the host from the shape alone, never from timing) and runs:
//     forward   batchnorm_forward_training_v2_sums        grid (C, chunks): partial sums of x
//               batchnorm_forward_training_v2_squares     grid (C, chunks): the mean from the
//                                                         partials, partial sums of (x - mean)^2
//               batchnorm_forward_training_v2_statistics  grid C: mean, variance, saved and
//                                                         running statistics
//               batchnorm_forward_training_v2_output      grid-stride over the tensor: y
//     backward  batchnorm_backward_v2_sums                grid (C, chunks): partial sum(dy),
//                                                         sum(dy * xhat)
//               batchnorm_backward_v2_totals              grid C: the totals (double, kept for
//                                                         dx), dGamma, dBeta
//               batchnorm_backward_v2_dx                  grid-stride over the tensor: dx
//   Partials are doubles in a scratch buffer, [C][chunks] per quantity; they are combined in
//   a fixed order (bn_combine, no atomics), so every block that needs a channel's mean gets
//   the same bits and results are deterministic for a fixed shape. 1/sqrt is 1 / lp_sqrt_rn
//   in double (correctly rounded sqrt, as the CPU's Math.Sqrt).
//
// Numerics follow the CPU backend operation by operation (double statistics, float output
// formula). What differs is only the order of the double additions (a fixed tree here, a
// sequential loop there); 1/sqrt is 1 / lp_sqrt_rn in v1 too (it once refined the GPU's
// approximate rsqrt by Newton steps, whose last double bit could differ from the emulator's).
// After the final rounding to float, results equal the CPU's almost always and differ by at
// most one float ulp of the saved statistics. Deterministic for a fixed shape.
//
// `spatial` (and, in the elementwise kernels, `channels`) come as precomputed divisors
// (laperm/fast_divide.cuh; the value is .divisor): splitting an index costs a multiply-high and
// a shift, not a `/`.
#include "laperm/fast_divide.cuh"

#define BN_BLOCK 256

// Tree sum of one double per thread over a BN_BLOCK-thread block; every thread gets the total.
static __device__ double bn_block_sum(double value, double* scratch) {
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (int half = BN_BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            scratch[threadIdx.x] += scratch[threadIdx.x + half];
        }
        __syncthreads();
    }
    const double total = scratch[0];
    __syncthreads();   // scratch is reused by the next sum
    return total;
}

// Channel of element i of the [N, C, S] tensor. 32-bit: the backend's tensors have an int
// length, so i < 2^31 (the fast divisors' range).
static __device__ __forceinline__ int bn_channel_of(long long i, lp_divisor channels, lp_divisor spatial) {
    unsigned c;
    lp_divmod(lp_div((unsigned)i, spatial), channels, &c);
    return (int)c;
}

// Offset of element j (= n * spatial + s) of channel c in the [N, C, S] tensor.
static __device__ __forceinline__ long long bn_offset(int j, int c, int channels, lp_divisor spatial) {
    unsigned s;
    const unsigned n = lp_divmod((unsigned)j, spatial, &s);
    return ((long long)n * channels + c) * spatial.divisor + s;
}

// grid = channels, block = BN_BLOCK (exactly).
extern "C" __global__ void batchnorm_forward_training_v1(int batch, int channels, lp_divisor spatial, float epsilon, float momentum,
                                                         const float* __restrict__ x, const float* __restrict__ gamma,
                                                         const float* __restrict__ beta, float* __restrict__ running_mean,
                                                         float* __restrict__ running_variance, float* __restrict__ saved_mean,
                                                         float* __restrict__ saved_inv_std, float* __restrict__ y) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * (int)spatial.divisor;

    double sum = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        sum += x[bn_offset(j, c, channels, spatial)];
    }
    const double mean = bn_block_sum(sum, scratch) / count;

    double squares = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const double d = x[bn_offset(j, c, channels, spatial)] - mean;
        squares += d * d;
    }
    const double variance = bn_block_sum(squares, scratch) / count;

    const float mean_f = (float)mean;
    const float inv_std = (float)(1.0 / lp_sqrt_rn(variance + epsilon));
    const float gamma_c = gamma[c], beta_c = beta[c];
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const long long i = bn_offset(j, c, channels, spatial);
        y[i] = gamma_c * (x[i] - mean_f) * inv_std + beta_c;
    }
    if (threadIdx.x == 0) {
        saved_mean[c] = mean_f;
        saved_inv_std[c] = inv_std;
        const float unbiased = (float)(count > 1 ? variance * count / (count - 1) : variance);
        running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean_f;
        running_variance[c] = momentum * running_variance[c] + (1.0f - momentum) * unbiased;
    }
}

extern "C" __global__ void batchnorm_forward_inference_v1(long long n, lp_divisor channels, lp_divisor spatial, float epsilon,
                                                          const float* __restrict__ x, const float* __restrict__ gamma,
                                                          const float* __restrict__ beta, const float* __restrict__ running_mean,
                                                          const float* __restrict__ running_variance, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = bn_channel_of(i, channels, spatial);
        const float deviation = sqrtf(running_variance[c] + epsilon);
        y[i] = gamma[c] * (x[i] - running_mean[c]) / deviation + beta[c];
    }
}

// grid = channels, block = BN_BLOCK (exactly).
// dx = gamma * invStd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)), M = batch * spatial.
extern "C" __global__ void batchnorm_backward_v1(int batch, int channels, lp_divisor spatial, const float* __restrict__ x,
                                                 const float* __restrict__ dy, const float* __restrict__ gamma,
                                                 const float* __restrict__ saved_mean, const float* __restrict__ saved_inv_std,
                                                 float* __restrict__ dx, float* __restrict__ dGamma, float* __restrict__ dBeta) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * (int)spatial.divisor;
    const double mean = saved_mean[c], inv_std = saved_inv_std[c];

    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const long long i = bn_offset(j, c, channels, spatial);
        const double g = dy[i];
        sum_dy += g;
        sum_dy_xhat += g * (x[i] - mean) * inv_std;
    }
    sum_dy = bn_block_sum(sum_dy, scratch);
    sum_dy_xhat = bn_block_sum(sum_dy_xhat, scratch);

    const double scale = gamma[c] * inv_std / count;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const long long i = bn_offset(j, c, channels, spatial);
        const double xhat = (x[i] - mean) * inv_std;
        dx[i] = (float)(scale * (count * (double)dy[i] - sum_dy - xhat * sum_dy_xhat));
    }
    if (threadIdx.x == 0) {
        dGamma[c] = (float)sum_dy_xhat;
        dBeta[c] = (float)sum_dy;
    }
}

// ---- v2: chunked reductions -------------------------------------------------------------

// Elements [start, end) of channel blockIdx.x's M = batch * spatial that block (c, blockIdx.y)
// reduces. The host picks chunk_length so that no chunk is empty.
static __device__ void bn_chunk(int count, int chunk_length, int* start, int* end) {
    *start = blockIdx.y * chunk_length;
    *end = min(count, *start + chunk_length);
}

// Sum of a channel's `chunks` partials, in a fixed order (strided per thread, then the tree):
// every block that combines the same partials gets the same bits. All threads get the total.
static __device__ double bn_combine(const double* __restrict__ partials, int chunks, double* scratch) {
    double sum = 0.0;
    for (int k = threadIdx.x; k < chunks; k += BN_BLOCK) {
        sum += partials[k];
    }
    return bn_block_sum(sum, scratch);
}

// grid (channels, chunks), block = BN_BLOCK. partial_sum[c * chunks + k] = sum of chunk k of channel c.
extern "C" __global__ void batchnorm_forward_training_v2_sums(int batch, int channels, lp_divisor spatial, int chunk_length,
                                                              const float* __restrict__ x, double* __restrict__ partial_sum) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    int start, end;
    bn_chunk(batch * (int)spatial.divisor, chunk_length, &start, &end);
    double sum = 0.0;
    for (int j = start + threadIdx.x; j < end; j += BN_BLOCK) {
        sum += x[bn_offset(j, c, channels, spatial)];
    }
    sum = bn_block_sum(sum, scratch);
    if (threadIdx.x == 0) {
        partial_sum[(long long)c * gridDim.y + blockIdx.y] = sum;
    }
}

// grid (channels, chunks), block = BN_BLOCK. Each block combines its channel's partial sums to
// the double mean, then partial_squares[c * chunks + k] = sum of (x - mean)^2 over chunk k.
extern "C" __global__ void batchnorm_forward_training_v2_squares(int batch, int channels, lp_divisor spatial, int chunk_length,
                                                                 const float* __restrict__ x, const double* __restrict__ partial_sum,
                                                                 double* __restrict__ partial_squares) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x, chunks = gridDim.y;
    const int count = batch * (int)spatial.divisor;
    const double mean = bn_combine(partial_sum + (long long)c * chunks, chunks, scratch) / count;
    int start, end;
    bn_chunk(count, chunk_length, &start, &end);
    double squares = 0.0;
    for (int j = start + threadIdx.x; j < end; j += BN_BLOCK) {
        const double d = x[bn_offset(j, c, channels, spatial)] - mean;
        squares += d * d;
    }
    squares = bn_block_sum(squares, scratch);
    if (threadIdx.x == 0) {
        partial_squares[(long long)c * chunks + blockIdx.y] = squares;
    }
}

// grid = channels, block = BN_BLOCK. The channel's mean and biased variance from the partials,
// then the saved statistics and the running update exactly as v1.
extern "C" __global__ void batchnorm_forward_training_v2_statistics(int batch, int spatial, int chunks, float epsilon, float momentum,
                                                                    const double* __restrict__ partial_sum,
                                                                    const double* __restrict__ partial_squares,
                                                                    float* __restrict__ running_mean, float* __restrict__ running_variance,
                                                                    float* __restrict__ saved_mean, float* __restrict__ saved_inv_std) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * spatial;
    const double mean = bn_combine(partial_sum + (long long)c * chunks, chunks, scratch) / count;
    const double variance = bn_combine(partial_squares + (long long)c * chunks, chunks, scratch) / count;
    if (threadIdx.x == 0) {
        const float mean_f = (float)mean;
        saved_mean[c] = mean_f;
        saved_inv_std[c] = (float)(1.0 / lp_sqrt_rn(variance + epsilon));
        const float unbiased = (float)(count > 1 ? variance * count / (count - 1) : variance);
        running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean_f;
        running_variance[c] = momentum * running_variance[c] + (1.0f - momentum) * unbiased;
    }
}


// Grid-stride over all n = batch * channels * spatial elements: y with the saved statistics
// (the float formula of v1 and the CPU).
extern "C" __global__ void batchnorm_forward_training_v2_output(long long n, lp_divisor channels, lp_divisor spatial,
                                                                const float* __restrict__ x, const float* __restrict__ gamma,
                                                                const float* __restrict__ beta, const float* __restrict__ saved_mean,
                                                                const float* __restrict__ saved_inv_std, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = bn_channel_of(i, channels, spatial);
        y[i] = gamma[c] * (x[i] - saved_mean[c]) * saved_inv_std[c] + beta[c];
    }
}

// grid (channels, chunks), block = BN_BLOCK. Partial sum(dy) and sum(dy * xhat) of chunk k of
// channel c, at [c * chunks + k] of partial_dy and partial_dy_xhat.
extern "C" __global__ void batchnorm_backward_v2_sums(int batch, int channels, lp_divisor spatial, int chunk_length,
                                                      const float* __restrict__ x, const float* __restrict__ dy,
                                                      const float* __restrict__ saved_mean, const float* __restrict__ saved_inv_std,
                                                      double* __restrict__ partial_dy, double* __restrict__ partial_dy_xhat) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const double mean = saved_mean[c], inv_std = saved_inv_std[c];
    int start, end;
    bn_chunk(batch * (int)spatial.divisor, chunk_length, &start, &end);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int j = start + threadIdx.x; j < end; j += BN_BLOCK) {
        const long long i = bn_offset(j, c, channels, spatial);
        const double g = dy[i];
        sum_dy += g;
        sum_dy_xhat += g * (x[i] - mean) * inv_std;
    }
    sum_dy = bn_block_sum(sum_dy, scratch);
    sum_dy_xhat = bn_block_sum(sum_dy_xhat, scratch);
    if (threadIdx.x == 0) {
        const long long slot = (long long)c * gridDim.y + blockIdx.y;
        partial_dy[slot] = sum_dy;
        partial_dy_xhat[slot] = sum_dy_xhat;
    }
}

// grid = channels, block = BN_BLOCK. totals[c] = sum(dy), totals[channels + c] = sum(dy * xhat)
// in double (dx needs them unrounded), dBeta and dGamma their float roundings.
extern "C" __global__ void batchnorm_backward_v2_totals(int channels, int chunks, const double* __restrict__ partial_dy,
                                                        const double* __restrict__ partial_dy_xhat, double* __restrict__ totals,
                                                        float* __restrict__ dGamma, float* __restrict__ dBeta) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const double sum_dy = bn_combine(partial_dy + (long long)c * chunks, chunks, scratch);
    const double sum_dy_xhat = bn_combine(partial_dy_xhat + (long long)c * chunks, chunks, scratch);
    if (threadIdx.x == 0) {
        totals[c] = sum_dy;
        totals[channels + c] = sum_dy_xhat;
        dGamma[c] = (float)sum_dy_xhat;
        dBeta[c] = (float)sum_dy;
    }
}

// Grid-stride over all n elements, count = batch * spatial:
// dx = gamma * invStd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)), in double as v1.
extern "C" __global__ void batchnorm_backward_v2_dx(long long n, lp_divisor channels, lp_divisor spatial, int count,
                                                    const float* __restrict__ x, const float* __restrict__ dy,
                                                    const float* __restrict__ gamma, const float* __restrict__ saved_mean,
                                                    const float* __restrict__ saved_inv_std, const double* __restrict__ totals,
                                                    float* __restrict__ dx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = bn_channel_of(i, channels, spatial);
        const double mean = saved_mean[c], inv_std = saved_inv_std[c];
        const double scale = gamma[c] * inv_std / count;
        const double xhat = (x[i] - mean) * inv_std;
        dx[i] = (float)(scale * (count * (double)dy[i] - totals[c] - xhat * totals[channels.divisor + c]));
    }
}
