// bias.cu: per-channel bias over the [N, C, S] view of an activation (S = 1 for dense layers).
//
//   bias_add_v1              y[n,c,s] += bias[c]                    elementwise, bit-identical
//   bias_gradient_v1         dBias[c] = sum over n, s of dy[n,c,s]  one block per channel
//   bias_gradient_v2_sums    the same sum, wide: grid (C, chunks), each block sums one chunk of
//   bias_gradient_v2_total   a channel's N * S elements into partial[c * chunks + k] (double);
//                            then one block per channel adds its partials in a fixed order
//
// v2 exists because one block per channel leaves most of a GPU idle when there are few
// channels over many elements (16 channels of 128 x 32 x 32: 16 blocks for 132 SMs); the host
// picks the chunks from the shape alone (CudaBackend.ChannelChunks). Both versions sum in
// double (as the CPU backend) and round once to float; only the order of the double additions
// differs from the CPU's sequential loop, so results agree to well below one float ulp of the
// sum and almost always bit for bit. For a fixed shape the order is fixed: deterministic run
// to run (no atomics).
//
// `spatial` (and bias_add's `channels`) come as precomputed divisors (laperm/fast_divide.cuh;
// the value is .divisor): splitting a flat index costs a multiply-high and a shift, not a `/`.
#include "laperm/fast_divide.cuh"

#define BIAS_BLOCK 256

template <typename Index>
static __device__ __forceinline__ void bias_add_elements(long long n, lp_divisor channels, lp_divisor spatial, float* __restrict__ y,
                                                         const float* __restrict__ bias) {
    for (Index i = blockIdx.x * (Index)blockDim.x + threadIdx.x; i < (Index)n; i += (Index)gridDim.x * blockDim.x) {
        Index c;
        lp_divmod(lp_div(i, spatial), channels, &c);
        y[i] += bias[c];
    }
}

extern "C" __global__ void bias_add_v1(long long n, lp_divisor channels, lp_divisor spatial, float* __restrict__ y,
                                       const float* __restrict__ bias) {
    LP_FAST_INDEX_DISPATCH(n, bias_add_elements, n, channels, spatial, y, bias)
}

// v1: grid = channels, block = BIAS_BLOCK (exactly). Each thread sums a strided share of the
// channel's batch*spatial elements, then a shared-memory tree adds the 256 partial sums.
extern "C" __global__ void bias_gradient_v1(int batch, int channels, lp_divisor spatial, const float* __restrict__ dy,
                                            float* __restrict__ dBias) {
    __shared__ double partial[BIAS_BLOCK];
    const int c = blockIdx.x;
    const int count = batch * (int)spatial.divisor;
    double sum = 0.0;
    for (int j = threadIdx.x; j < count; j += BIAS_BLOCK) {
        unsigned s;
        const unsigned n = lp_divmod((unsigned)j, spatial, &s);
        sum += dy[((long long)n * channels + c) * spatial.divisor + s];
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

// Tree sum of one double per thread over a BIAS_BLOCK-thread block; thread 0 gets the total.
static __device__ double bias_block_sum(double value, double* partial) {
    partial[threadIdx.x] = value;
    __syncthreads();
    for (int half = BIAS_BLOCK / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    return partial[0];
}

// v2 stage 1: grid (channels, chunks), block = BIAS_BLOCK (exactly). Block (c, k) sums elements
// [k * chunk_length, min(M, (k + 1) * chunk_length)) of channel c, M = batch * spatial.
extern "C" __global__ void bias_gradient_v2_sums(int batch, int channels, lp_divisor spatial, int chunk_length,
                                                 const float* __restrict__ dy, double* __restrict__ partial_sum) {
    __shared__ double partial[BIAS_BLOCK];
    const int c = blockIdx.x;
    const int start = blockIdx.y * chunk_length;
    const int end = min(batch * (int)spatial.divisor, start + chunk_length);
    double sum = 0.0;
    for (int j = start + threadIdx.x; j < end; j += BIAS_BLOCK) {
        unsigned s;
        const unsigned n = lp_divmod((unsigned)j, spatial, &s);
        sum += dy[((long long)n * channels + c) * spatial.divisor + s];
    }
    sum = bias_block_sum(sum, partial);
    if (threadIdx.x == 0) {
        partial_sum[(long long)c * gridDim.y + blockIdx.y] = sum;
    }
}

// v2 stage 2: grid = channels, block = BIAS_BLOCK (exactly). dBias[c] = the channel's partials
// added in a fixed order (strided per thread, then the tree), rounded once to float.
extern "C" __global__ void bias_gradient_v2_total(int chunks, const double* __restrict__ partial_sum, float* __restrict__ dBias) {
    __shared__ double partial[BIAS_BLOCK];
    const int c = blockIdx.x;
    double sum = 0.0;
    for (int k = threadIdx.x; k < chunks; k += BIAS_BLOCK) {
        sum += partial_sum[(long long)c * chunks + k];
    }
    sum = bias_block_sum(sum, partial);
    if (threadIdx.x == 0) {
        dBias[c] = (float)sum;
    }
}
