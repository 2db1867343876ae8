// laperm/step.cuh: the per-step scalar block, the device side of LaPerm.Core.Backend.StepScalars.
//
// Once per training step, before the step's ops (and outside any captured graph), the backend's
// BeginStep enqueues step_begin_v1 (step.cu), a one-thread kernel that receives these values BY
// VALUE and writes them into one small device-resident block. Every kernel whose result depends
// on the step (dropout's random stream, Adam's learning rate and t, SGD's learning rate) takes a
// `const StepScalars*` and reads the values there, so a graph captured once replays correctly at
// every later step: its nodes keep the block's address, and the block holds the current values.
// Because the block is written by a kernel in stream order (not by a host copy), it is race-free
// and BeginStep never waits for the host.
//
// Layout (C# LaPerm.Core.Backend.StepScalars has the same fields in the same order; a test
// checks the size and every offset):
//
//   offset  size  field
//        0     8  step           global training step, counting from 1 (dropout stream)
//        8     4  epoch          epoch, counting from 0
//       12     4  batch_start    index of the step's first example in the epoch order
//       16     4  batch_size     examples in this step's batch
//       20     4  learning_rate  the epoch's learning rate (Adam, SGD)
//       24     8  adam_t         Adam's t for this step (optimizer steps applied so far + 1)
//   total 32 bytes, 8-byte aligned.
#pragma once

struct StepScalars {
    long long step;
    int epoch;
    int batch_start;
    int batch_size;
    float learning_rate;
    long long adam_t;
};

static_assert(sizeof(StepScalars) == 32, "StepScalars must be 32 bytes (see the layout above)");

// ---- the non-finite guard (IBackend.GuardLoss, GuardGradient, RestoreIfSkipped, CommitStepGuard) ----
//
// A second device record, separate from the step block, that lets the NaN/Inf policies work
// without reading anything back per step (step.cu has the kernels):
//   stop       the first step whose accumulated loss was not finite; from then on the optimizers
//              update nothing, until the host takes the record at a readback point and stops.
//   skip-step  per step: whether this step is left out (loss or gradient not finite); the
//              optimizers skip it, the running loss and batch-norm statistics are restored from
//              copies made before the step, and the step is appended to a log the host reads
//              (and clears) at its readback points. Adam's t of a step is adam_t - skipped: the
//              steps skipped since the host last looked do not count.
//
// Layout (C# LaPerm.Cuda.Backend.CudaBackend reads it; 24 + 24 * LP_SKIP_LOG bytes):
//   offset  size  field
//        0     8  first_nonfinite_step  stop: 0 = none
//        8     4  skip                  this step: 0 applied, 1 loss not finite, 2 gradient not finite (reset by step_begin_v1)
//       12     4  skip_tensor           first parameter with a non-finite gradient (INT_MAX = none; reset by step_begin_v1)
//       16     4  skipped               steps appended to `log` since the host took it (may exceed LP_SKIP_LOG)
//       20     4  (padding)
//       24    24  log[i]                { step (8), what (4: 1 loss, 2 gradient), tensor (4: -1 none), batch_size (4), padding (4) }
#define LP_SKIP_LOG 256

struct SkippedStep {
    long long step;
    int what;
    int tensor;
    int batch_size;
    int padding;
};

struct StepGuard {
    long long first_nonfinite_step;
    int skip;
    int skip_tensor;
    int skipped;
    int padding;
    SkippedStep log[LP_SKIP_LOG];
};

static_assert(sizeof(SkippedStep) == 24, "SkippedStep must be 24 bytes (see the layout above)");
static_assert(sizeof(StepGuard) == 24 + 24 * LP_SKIP_LOG, "StepGuard layout (see above)");

// True when the optimizers must leave this step's update out.
static __device__ __forceinline__ bool lp_step_skipped(const StepGuard* guard) {
    return guard->skip != 0 || guard->first_nonfinite_step != 0;
}
