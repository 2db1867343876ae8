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
