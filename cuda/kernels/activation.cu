// activation.cu: ReLU forward and backward, elementwise (IBackend.ReluForward/ReluBackward).
//
//   relu_forward_v1    y  = x <= 0 ? 0 : x      (-0.0 gives +0.0, NaN stays NaN, as the CPU backend and TensorFlow)
//   relu_backward_v1   dx = y > 0 ? dy : 0      (y is the forward output)
//
// x and y (dy and dx) may be the same buffer, so no __restrict__ on the pair that may alias.
// Pure selects: bit-identical on every backend.
#include "laperm/device.cuh"

extern "C" __global__ void relu_forward_v1(long long n, const float* x, float* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = x[i];
        y[i] = v <= 0.0f ? 0.0f : v;
    }
}

extern "C" __global__ void relu_backward_v1(long long n, const float* __restrict__ y, const float* dy, float* dx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}
