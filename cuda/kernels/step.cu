// step.cu: writes the per-step scalar block (laperm/step.cuh) from by-value arguments.
// Launched once per step with one thread, ahead of the step's ops on the same stream, so every
// later kernel of the step (captured in a graph or not) reads this step's values.
#include "laperm/device.cuh"
#include "laperm/step.cuh"

// It also starts the step's record in the guard (laperm/step.cuh): not skipped, no tensor.
extern "C" __global__ void step_begin_v1(StepScalars* __restrict__ block, StepGuard* __restrict__ guard, long long step,
                                         int epoch, int batch_start, int batch_size, float learning_rate, long long adam_t) {
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    guard->skip = 0;
    guard->skip_tensor = INT_MAX;
    block->step = step;
    block->epoch = epoch;
    block->batch_start = batch_start;
    block->batch_size = batch_size;
    block->learning_rate = learning_rate;
    block->adam_t = adam_t;
}

// The loss guard (IBackend.GuardLoss): one thread. When the accumulated training loss totals[0]
// is NaN or infinite: with skip_step, marks this step skipped (reason 1, loss); otherwise (stop)
// records this step as the first non-finite one unless one is recorded already.
extern "C" __global__ void step_guard_loss_v1(const float* __restrict__ totals, const StepScalars* __restrict__ block,
                                              StepGuard* __restrict__ guard, int skip_step) {
    if (blockIdx.x != 0 || threadIdx.x != 0) {
        return;
    }
    if (isfinite(totals[0])) {
        return;
    }
    if (skip_step) {
        if (guard->skip == 0) {
            guard->skip = 1;
        }
    } else if (guard->first_nonfinite_step == 0) {
        guard->first_nonfinite_step = block->step;
    }
}

// The gradient guard (IBackend.GuardGradient), grid-stride over one gradient tensor: a NaN or
// infinite element marks the step skipped (reason 2, unless the loss already did) and lowers
// skip_tensor to this tensor's index, so the first such tensor in parameter order is named.
extern "C" __global__ void step_guard_gradient_v1(long long n, const float* __restrict__ x, int tensor,
                                                  StepGuard* __restrict__ guard) {
    bool bad = false;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        bad |= !isfinite(x[i]);
    }
    if (bad) {
        atomicCAS(&guard->skip, 0, 2);
        atomicMin(&guard->skip_tensor, tensor);
    }
}

// IBackend.RestoreIfSkipped: dst = backup when the step is marked skipped (grid-stride).
extern "C" __global__ void step_guard_restore_v1(long long n, const float* __restrict__ backup, float* __restrict__ dst,
                                                 const StepGuard* __restrict__ guard) {
    if (guard->skip == 0) {
        return;
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        dst[i] = backup[i];
    }
}

// IBackend.CommitStepGuard: one thread; appends a skipped step to the log (the count goes on past
// the log's capacity, so the host can say how many it lost).
extern "C" __global__ void step_guard_commit_v1(const StepScalars* __restrict__ block, StepGuard* __restrict__ guard) {
    if (blockIdx.x != 0 || threadIdx.x != 0 || guard->skip == 0) {
        return;
    }
    const int index = guard->skipped;
    guard->skipped = index + 1;
    if (index < LP_SKIP_LOG) {
        SkippedStep* entry = &guard->log[index];
        entry->step = block->step;
        entry->what = guard->skip;
        entry->tensor = guard->skip == 2 ? guard->skip_tensor : -1;
        entry->batch_size = block->batch_size;
        entry->padding = 0;
    }
}
