// elementwise.cu: the small elementwise ops of IBackend that are not activations.
//
//   scale_add_v1   y = x + alpha * y        (IBackend.ScaleAdd: residual add, L2 gradient)
//   scale_v1       y = alpha * y            (IBackend.Scale: the batch-summed loss's gradient)
//
// Numerics: alpha * y[i] is rounded, then added to x[i] (no fused multiply-add, device.cuh
// turns contraction off), the same two roundings as the CPU backend's loop, so the result is
// bit-identical on every backend.
#include "laperm/device.cuh"

// v1: grid-stride loop; any grid covers any n. Launch: block 256, grid ceil(n/256) capped.
extern "C" __global__ void scale_add_v1(long long n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        y[i] = x[i] + alpha * y[i];
    }
}

// v1: grid-stride loop, as scale_add_v1; one rounding, as the CPU backend's loop.
extern "C" __global__ void scale_v1(long long n, float alpha, float* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        y[i] = alpha * y[i];
    }
}
