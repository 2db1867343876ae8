// step.cu: writes the per-step scalar block (laperm/step.cuh) from by-value arguments.
// Launched once per step with one thread, ahead of the step's ops on the same stream, so every
// later kernel of the step (captured in a graph or not) reads this step's values.
#include "laperm/device.cuh"
#include "laperm/step.cuh"

extern "C" __global__ void step_begin_v1(StepScalars* __restrict__ block, long long step, int epoch, int batch_start,
                                         int batch_size, float learning_rate, long long adam_t) {
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    block->step = step;
    block->epoch = epoch;
    block->batch_start = batch_start;
    block->batch_size = batch_size;
    block->learning_rate = learning_rate;
    block->adam_t = adam_t;
}

// The non-finite-loss guard (IBackend.GuardLoss): one thread. When the accumulated training loss
// totals[0] is NaN or infinite and no step has been recorded yet, records this step's number in
// *nonfinite_step. From then on the optimizer kernels (adam_multi_v2, sgd_momentum_v1) leave the
// weights and their state alone, so the host can find out at its next readback, name the first
// bad step and the first non-finite weight, and stop with the last checkpoint intact, without
// reading the loss back every step. Only the host clears the record.
extern "C" __global__ void step_guard_loss_v1(const float* __restrict__ totals, const StepScalars* __restrict__ block,
                                              long long* __restrict__ nonfinite_step) {
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    if (!isfinite(totals[0]) && *nonfinite_step == 0) {
        *nonfinite_step = block->step;
    }
}
