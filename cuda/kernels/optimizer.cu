// optimizer.cu: momentum SGD (Keras form, Nesterov off), elementwise (IBackend.SgdMomentumUpdate):
//   vel = momentum * vel - lr * g;   w = w + vel
// Same operations and roundings as the CPU backend (no contraction): bit-identical.
// lr is read from the per-step block (laperm/step.cuh), so a captured launch follows the schedule;
// a step the guard leaves out (lp_step_skipped, laperm/step.cuh) updates nothing.
// Adam lives in adam.cu (adam_v1, and adam_multi_v1 for one launch over every tensor).
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
