// reduce.cu: sum of n floats, in two stages:
//   stage 1: grid of B blocks, each writes the sum of its share to partial[blockIdx.x];
//   stage 2: the same kernel with one block over the B partials writes the total.
// Each block first accumulates a grid-stride slice per thread, then reduces the block.
// The order of additions is fixed by (n, grid, block), so results are deterministic for
// a given launch shape (but differ from a sequential sum by rounding).
#include "laperm/device.cuh"

// v1: classic shared-memory tree. blockDim.x must be a power of two, at most 1024.
extern "C" __global__ void reduce_sum_v1(int n, const float* __restrict__ x, float* __restrict__ partial) {
    __shared__ float buffer[1024];
    const unsigned tid = threadIdx.x;

    float sum = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + tid; i < n; i += (long long)gridDim.x * blockDim.x) {
        sum += x[i];
    }
    buffer[tid] = sum;
    __syncthreads();

    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (tid < half) {
            buffer[tid] += buffer[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) {
        partial[blockIdx.x] = buffer[0];
    }
}

// Sum of `value` over the 32 lanes of a full warp; every lane gets the total.
static __device__ __forceinline__ float warp_sum(float value) {
    for (int offset = 16; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(LP_FULL_MASK, value, offset);
    }
    return value;
}

// v2: warp shuffles. Each warp reduces in registers, warp totals meet in shared memory,
// the first warp reduces those. blockDim.x must be a multiple of 32, at most 1024.
extern "C" __global__ void reduce_sum_v2(int n, const float* __restrict__ x, float* __restrict__ partial) {
    __shared__ float warp_totals[32];
    const unsigned lane = threadIdx.x % 32;
    const unsigned warp = threadIdx.x / 32;
    const unsigned warps = blockDim.x / 32;

    float sum = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        sum += x[i];
    }
    sum = warp_sum(sum);
    if (lane == 0) {
        warp_totals[warp] = sum;
    }
    __syncthreads();

    if (warp == 0) {
        float total = lane < warps ? warp_totals[lane] : 0.0f;
        total = warp_sum(total);
        if (lane == 0) {
            partial[blockIdx.x] = total;
        }
    }
}
