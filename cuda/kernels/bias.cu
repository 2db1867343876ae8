// bias.cu: per-channel bias over the [N, C, S] view of an activation (S = 1 for dense layers).
//
//   bias_add_v1        y[n,c,s] += bias[c]                    elementwise, bit-identical
//   bias_gradient_v1   dBias[c] = sum over n, s of dy[n,c,s]  one block per channel
//
// The gradient sums in double (as the CPU backend) and rounds once to float; only the order of
// the double additions differs from the CPU's sequential loop, so results agree to well below
// one float ulp of the sum and almost always bit for bit. For a fixed shape the order is fixed:
// deterministic run to run.
#include "laperm/device.cuh"

#define BIAS_BLOCK 256

extern "C" __global__ void bias_add_v1(long long n, int channels, int spatial, float* __restrict__ y,
                                       const float* __restrict__ bias) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        y[i] += bias[(i / spatial) % channels];
    }
}

// v1: grid = channels, block = BIAS_BLOCK (exactly). Each thread sums a strided share of the
// channel's batch*spatial elements, then a shared-memory tree adds the 256 partial sums.
extern "C" __global__ void bias_gradient_v1(int batch, int channels, int spatial, const float* __restrict__ dy,
                                            float* __restrict__ dBias) {
    __shared__ double partial[BIAS_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * spatial;
    double sum = 0.0;
    for (int j = threadIdx.x; j < count; j += BIAS_BLOCK) {
        const int n = j / spatial, s = j - n * spatial;
        sum += dy[((long long)n * channels + c) * spatial + s];
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = BIAS_BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        dBias[c] = (float)partial[0];
    }
}
