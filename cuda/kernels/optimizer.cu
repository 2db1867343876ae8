// optimizer.cu: momentum SGD (Keras form, Nesterov off), elementwise (IBackend.SgdMomentumUpdate):
//   vel = momentum * vel - lr * g;   w = w + vel
// Same operations and roundings as the CPU backend (no contraction): bit-identical.
// lr is read from the per-step block (laperm/step.cuh), so a captured launch follows the schedule;
// a step the guard leaves out (lp_step_skipped, laperm/step.cuh) updates nothing.
// sgd_momentum_multi_v1 is the same update as one launch over every tensor of a step (the
// backend batches a step's updates); Adam lives in adam.cu (adam_v1, adam_multi_v1/v2).
#include "laperm/device.cuh"
#include "laperm/step.cuh"

extern "C" __global__ void sgd_momentum_v1(long long n, const StepScalars* __restrict__ scalars,
                                           const StepGuard* __restrict__ guard, float momentum, float* __restrict__ w,
                                           const float* __restrict__ g, float* __restrict__ velocity) {
    if (lp_step_skipped(guard)) {
        return;
    }
    const float lr = scalars->learning_rate;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = momentum * velocity[i] - lr * g[i];
        velocity[i] = v;
        w[i] = w[i] + v;
    }
}

// One momentum-SGD step's tensor: 32 bytes, pointers first, then the length as a 64-bit integer
// (SgdTensorRecord in LaPerm.Cuda).
struct SgdTensor {
    float* w;
    const float* g;
    float* velocity;
    long long length;
};

// multi-tensor: grid (X, tensor_count), one launch over every parameter tensor of a step, the
// same per-element arithmetic as sgd_momentum_v1 (bit-identical to it and to the CPU backend).
extern "C" __global__ void sgd_momentum_multi_v1(int tensor_count, float momentum, const StepScalars* __restrict__ scalars,
                                                 const StepGuard* __restrict__ guard, const SgdTensor* __restrict__ tensors) {
    if ((int)blockIdx.y >= tensor_count || lp_step_skipped(guard)) {
        return;
    }
    const float lr = scalars->learning_rate;
    const SgdTensor t = tensors[blockIdx.y];
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < t.length;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = momentum * t.velocity[i] - lr * t.g[i];
        t.velocity[i] = v;
        t.w[i] = t.w[i] + v;
    }
}
