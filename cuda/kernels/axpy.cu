// axpy.cu: y = a * x + y, elementwise. The smallest kernel: it proves the path
// (PTX build, emulator, launch from C#) more than it matters for speed.
//
// Numerics: a * x[i] is rounded, then added to y[i] (no fused multiply-add), the same
// two roundings as a plain C# loop, so results are bit-identical on every backend.
#include "laperm/device.cuh"

// v1: one thread per element. Launch: block 256, grid ceil(n / 256).
// Indices are 64-bit: with n near INT_MAX, 32-bit block * blockDim + thread wraps negative.
extern "C" __global__ void axpy_v1(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}

// v2: grid-stride loop, so a fixed grid (e.g. a few blocks per SM) covers any n.
extern "C" __global__ void axpy_v2(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = a * x[i] + y[i];
    }
}
