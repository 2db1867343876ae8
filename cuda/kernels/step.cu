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
