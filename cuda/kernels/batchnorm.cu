// batchnorm.cu: batch normalisation over the [N, C, S] view (IBackend.BatchNorm*).
//
//   batchnorm_forward_training_v1   one block per channel: mean and biased variance of the
//                                   batch (two passes, double accumulators), y, the saved
//                                   mean / inverse deviation, and the Keras-style running update
//   batchnorm_forward_inference_v1  elementwise with the running statistics (float, as the CPU)
//   batchnorm_backward_v1           one block per channel: sum(dy), sum(dy * xhat) in double,
//                                   then dx, dGamma, dBeta
//
// Numerics follow the CPU backend operation by operation (double statistics, float output
// formula). What differs is only the order of the double additions (a fixed tree here, a
// sequential loop there) and 1/sqrt in double: device.cuh has no double sqrt, so it is a
// float rsqrt refined by Newton steps in double (accurate to a few double ulps). After the
// final rounding to float, results equal the CPU's almost always and differ by at most one
// float ulp of the saved statistics. Deterministic for a fixed shape.
#include "laperm/device.cuh"

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

// 1 / sqrt(v) in double for v > 0: float estimate, then Newton y <- y (3 - v y^2) / 2.
static __device__ double bn_inverse_sqrt(double v) {
    double y = (double)rsqrtf((float)v);
    for (int step = 0; step < 3; ++step) {
        y = y * (1.5 - 0.5 * v * y * y);
    }
    return y;
}

// grid = channels, block = BN_BLOCK (exactly).
extern "C" __global__ void batchnorm_forward_training_v1(int batch, int channels, int spatial, float epsilon, float momentum,
                                                         const float* __restrict__ x, const float* __restrict__ gamma,
                                                         const float* __restrict__ beta, float* __restrict__ running_mean,
                                                         float* __restrict__ running_variance, float* __restrict__ saved_mean,
                                                         float* __restrict__ saved_inv_std, float* __restrict__ y) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * spatial;

    double sum = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        sum += x[((long long)n * channels + c) * spatial + s];
    }
    const double mean = bn_block_sum(sum, scratch) / count;

    double squares = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        const double d = x[((long long)n * channels + c) * spatial + s] - mean;
        squares += d * d;
    }
    const double variance = bn_block_sum(squares, scratch) / count;

    const float mean_f = (float)mean;
    const float inv_std = (float)bn_inverse_sqrt(variance + epsilon);
    const float gamma_c = gamma[c], beta_c = beta[c];
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        const long long i = ((long long)n * channels + c) * spatial + s;
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

extern "C" __global__ void batchnorm_forward_inference_v1(long long n, int channels, int spatial, float epsilon,
                                                          const float* __restrict__ x, const float* __restrict__ gamma,
                                                          const float* __restrict__ beta, const float* __restrict__ running_mean,
                                                          const float* __restrict__ running_variance, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)((i / spatial) % channels);
        const float deviation = sqrtf(running_variance[c] + epsilon);
        y[i] = gamma[c] * (x[i] - running_mean[c]) / deviation + beta[c];
    }
}

// grid = channels, block = BN_BLOCK (exactly).
// dx = gamma * invStd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)), M = batch * spatial.
extern "C" __global__ void batchnorm_backward_v1(int batch, int channels, int spatial, const float* __restrict__ x,
                                                 const float* __restrict__ dy, const float* __restrict__ gamma,
                                                 const float* __restrict__ saved_mean, const float* __restrict__ saved_inv_std,
                                                 float* __restrict__ dx, float* __restrict__ dGamma, float* __restrict__ dBeta) {
    __shared__ double scratch[BN_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * spatial;
    const double mean = saved_mean[c], inv_std = saved_inv_std[c];

    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        const long long i = ((long long)n * channels + c) * spatial + s;
        const double g = dy[i];
        sum_dy += g;
        sum_dy_xhat += g * (x[i] - mean) * inv_std;
    }
    sum_dy = bn_block_sum(sum_dy, scratch);
    sum_dy_xhat = bn_block_sum(sum_dy_xhat, scratch);

    const double scale = gamma[c] * inv_std / count;
    for (int j = threadIdx.x; j < count; j += BN_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        const long long i = ((long long)n * channels + c) * spatial + s;
        const double xhat = (x[i] - mean) * inv_std;
        dx[i] = (float)(scale * (count * (double)dy[i] - sum_dy - xhat * sum_dy_xhat));
    }
    if (threadIdx.x == 0) {
        dGamma[c] = (float)sum_dy_xhat;
        dBeta[c] = (float)sum_dy;
    }
}
