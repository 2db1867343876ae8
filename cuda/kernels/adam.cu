// adam.cu: one Adam step (Keras form), elementwise, exactly as IBackend.AdamUpdate:
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   w = w - lr_t * m / (sqrt(v) + eps)
// lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) is computed once per step by the caller
// (in double, rounded to float: the CPU backend does the same), so the kernel does no pow.
// Evaluation order and roundings match the CPU backend operation by operation (no
// contraction, IEEE sqrt and division), so w, m and v are bit-identical to it.
#include "laperm/device.cuh"
#include "laperm/step.cuh"

static __device__ __forceinline__ void adam_element(float lr_t, float beta1, float beta2, float eps,
                                                    float* w, const float* g, float* m, float* v) {
    const float gi = *g;
    const float mi = beta1 * *m + (1.0f - beta1) * gi;
    const float vi = beta2 * *v + (1.0f - beta2) * gi * gi;
    *m = mi;
    *v = vi;
    *w = *w - lr_t * mi / (sqrtf(vi) + eps);
}

// v1: one tensor, grid-stride loop.
extern "C" __global__ void adam_v1(int n, float lr_t, float beta1, float beta2, float eps,
                                   float* __restrict__ w, const float* __restrict__ g,
                                   float* __restrict__ m, float* __restrict__ v) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        adam_element(lr_t, beta1, beta2, eps, w + i, g + i, m + i, v + i);
    }
}

// Multi-tensor form: one launch updates every parameter tensor of a model.
// A device-resident table holds, per tensor, its length and its four pointers; blockIdx.y
// selects the tensor, blockIdx.x/threadIdx.x stride over its elements.
struct AdamTensor {
    float* w;
    const float* g;
    float* m;
    float* v;
    long long length;
};

// v2 (multi-tensor): grid (X, tensor_count); `tensors` points to tensor_count AdamTensor records
// (40 bytes each, pointers first, then the length as a 64-bit integer).
extern "C" __global__ void adam_multi_v1(int tensor_count, float lr_t, float beta1, float beta2, float eps,
                                         const AdamTensor* __restrict__ tensors) {
    if ((int)blockIdx.y >= tensor_count) {
        return;
    }
    const AdamTensor t = tensors[blockIdx.y];
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < t.length;
         i += (long long)gridDim.x * blockDim.x) {
        adam_element(lr_t, beta1, beta2, eps, t.w + i, t.g + i, t.m + i, t.v + i);
    }
}

// beta^t by binary exponentiation in double: the same multiplications in the same order as
// LaPerm.Core.Backend.AdamParameters.Power, so the result is bit-identical on every backend
// (IEEE double multiply, no contraction, no libm pow).
static __device__ __forceinline__ double adam_power(double base, long long exponent) {
    double result = 1.0;
    while (exponent > 0) {
        if (exponent & 1) {
            result *= base;
        }
        base *= base;
        exponent >>= 1;
    }
    return result;
}

// lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) in double, rounded once to float
// (LaPerm.Core.Backend.AdamParameters.LearningRateAt).
static __device__ __forceinline__ float adam_learning_rate(float lr, float beta1, float beta2, long long t) {
    return (float)((double)lr * lp_sqrt_rn(1.0 - adam_power((double)beta2, t)) / (1.0 - adam_power((double)beta1, t)));
}

// v2 (multi-tensor, step block): as adam_multi_v1, but the learning rate and t come from the
// per-step block (laperm/step.cuh) instead of by-value arguments, so one captured launch is
// right at every step. Each thread computes lr_t itself (two short loops in double) before its
// grid-stride loop: cheaper than a second launch or a block-wide broadcast.
// A step the guard leaves out (lp_step_skipped, laperm/step.cuh) updates nothing, and the steps
// skipped since the host last looked do not count in t.
extern "C" __global__ void adam_multi_v2(int tensor_count, float beta1, float beta2, float eps,
                                         const StepScalars* __restrict__ scalars, const StepGuard* __restrict__ guard,
                                         const AdamTensor* __restrict__ tensors) {
    if ((int)blockIdx.y >= tensor_count || lp_step_skipped(guard)) {
        return;
    }
    const float lr_t = adam_learning_rate(scalars->learning_rate, beta1, beta2, scalars->adam_t - guard->skipped);
    const AdamTensor t = tensors[blockIdx.y];
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < t.length;
         i += (long long)gridDim.x * blockDim.x) {
        adam_element(lr_t, beta1, beta2, eps, t.w + i, t.g + i, t.m + i, t.v + i);
    }
}
