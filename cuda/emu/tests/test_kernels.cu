// test_kernels.cu: kernels that exercise every part of laperm/device.cuh. They are run by
// emu_selftest.cpp on the emulator and compiled to PTX by CMake (checked, not embedded).
#include "laperm/device.cuh"

// Barrier with divergent warps: even and odd warps reach __syncthreads at different call
// sites (allowed: each warp is uniform), and later warps do more work before it. Every thread
// then reads a value another thread, usually of another warp, wrote before the barrier.
extern "C" __global__ void test_divergent_barrier(int seed, int* out) {
    __shared__ int values[256];
    const int t = threadIdx.x;
    const int n = blockDim.x;
    int work = 0;
    for (int k = 0; k < (t / 32) * 3; ++k) work += k;  // warps arrive after different amounts of work
    values[t] = seed * 1000 + t + blockIdx.x * 7 + (work < 0 ? 1 : 0);
    if ((t / 32) % 2 == 0) {
        __syncthreads();
        out[blockIdx.x * n + t] = values[n - 1 - t];
    } else {
        __syncthreads();
        out[blockIdx.x * n + t] = values[(t + 1) % n];
    }
}

// Several barriers in a loop: tree sum of 1..n in shared memory.
extern "C" __global__ void test_barrier_loop(int* out) {
    __shared__ int buffer[1024];
    const unsigned t = threadIdx.x;
    buffer[t] = (int)t + 1;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) buffer[t] += buffer[t + half];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = buffer[0];
}

// One row per shuffle flavour: out[row * 32 + lane].
extern "C" __global__ void test_shuffles(const int* in, int* out) {
    const unsigned lane = lp_lane_id();
    const int v = in[lane];
    out[0 * 32 + lane] = __shfl_sync(LP_FULL_MASK, v, (lane * 7) % 32);
    out[1 * 32 + lane] = __shfl_up_sync(LP_FULL_MASK, v, 3);
    out[2 * 32 + lane] = __shfl_down_sync(LP_FULL_MASK, v, 5);
    out[3 * 32 + lane] = __shfl_xor_sync(LP_FULL_MASK, v, 9);
    out[4 * 32 + lane] = __shfl_sync(LP_FULL_MASK, v, 3, 8);       // width 8: lane 3 of each segment
    out[5 * 32 + lane] = __shfl_up_sync(LP_FULL_MASK, v, 2, 8);
    out[6 * 32 + lane] = __shfl_down_sync(LP_FULL_MASK, v, 2, 8);
    out[7 * 32 + lane] = __shfl_xor_sync(LP_FULL_MASK, v, 4, 8);
    out[8 * 32 + lane] = (int)__ballot_sync(LP_FULL_MASK, v % 3 == 0);
    out[9 * 32 + lane] = __any_sync(LP_FULL_MASK, v == in[17]);
    out[10 * 32 + lane] = __all_sync(LP_FULL_MASK, v > 0);
    float f = __shfl_down_sync(LP_FULL_MASK, (float)v * 0.5f, 1);
    out[11 * 32 + lane] = (int)(f * 2.0f);
    long long wide = ((long long)v << 33) | lane;
    wide = __shfl_xor_sync(LP_FULL_MASK, wide, 1);
    out[12 * 32 + lane] = (int)(wide >> 33) + (int)(wide & 31) * 1000000;
    // Divergent halves with their own masks: lanes 0-15 and 16-31 each rotate by one.
    if (lane < 16) {
        out[13 * 32 + lane] = __shfl_sync(0x0000ffffu, v, (lane + 1) % 16);
    } else {
        out[13 * 32 + lane] = __shfl_sync(0xffff0000u, v, 16 + (lane + 1) % 16);
    }
    __syncwarp();
}

// Full-warp sum with shuffles in a 2-D block (warps are formed from the linear thread id).
extern "C" __global__ void test_warp_sum_2d(const float* in, float* out) {
    const unsigned linear = threadIdx.x + blockDim.x * threadIdx.y;
    float v = in[linear];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(LP_FULL_MASK, v, offset);
    if (lp_lane_id() == 0) out[lp_warp_id()] = v;
}

// Ids and dims in all three dimensions.
extern "C" __global__ void test_ids(unsigned* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    out[block * per_block + thread] = (threadIdx.x) | (threadIdx.y << 4) | (threadIdx.z << 8) |
                                      (blockIdx.x << 12) | (blockIdx.y << 16) | (blockIdx.z << 20);
}

// Atomics across the whole grid.
extern "C" __global__ void test_atomics(const int* in, int n, int* counters, float* fsum, unsigned* umax) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&counters[0], 1);
        atomicAdd(&counters[1], in[i]);
        atomicMax(&counters[2], in[i]);
        atomicMin(&counters[3], in[i]);
        atomicAdd(fsum, (float)(in[i] % 100));
        atomicMax(umax, (unsigned)in[i] * 3u);
        int old = atomicCAS(&counters[4], 0, i + 1);  // exactly one thread wins
        if (old == 0) atomicExch(&counters[5], i + 1);
    }
}

// __syncthreads_count / and / or.
extern "C" __global__ void test_syncthreads_reductions(const int* in, int* out) {
    const int v = in[threadIdx.x];
    int c = __syncthreads_count(v > 10);
    int a = __syncthreads_and(v > -1000);
    int o = __syncthreads_or(v == 12345);
    if (threadIdx.x == 0) {
        out[0] = c;
        out[1] = a;
        out[2] = o;
    }
}

// Dynamic shared memory: reverse a tile.
extern "C" __global__ void test_dynamic_shared(const float* in, float* out) {
    LP_DYNAMIC_SHARED(float, tile);
    const unsigned t = threadIdx.x;
    tile[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = tile[blockDim.x - 1 - t];
}

// Asynchronous copies: each thread poisons its slot, copies in[t] over it with cp.async, reads
// its slot before waiting (the emulator lands a copy only at the wait, the latest a GPU may), then
// waits (when wait != 0) and after a barrier reads its mirror thread's slot.
extern "C" __global__ void test_copy_async(const float* in, float* out, int wait) {
    LP_DYNAMIC_SHARED(float, tile);
    const unsigned t = threadIdx.x;
    tile[t] = -1.0f;
    lp_copy_async_4(tile + t, in + t);
    out[2 * t] = tile[t];
    if (wait != 0) lp_copy_async_wait_all();
    __syncthreads();
    out[2 * t + 1] = tile[blockDim.x - 1 - t];
}

// Bits and math.
extern "C" __global__ void test_bits_math(const float* x, unsigned* bits, float* math) {
    const unsigned t = threadIdx.x;
    const float v = x[t];
    const unsigned u = __float_as_uint(v);
    bits[t * 6 + 0] = u;
    bits[t * 6 + 1] = (unsigned)__clz((int)u);
    bits[t * 6 + 2] = (unsigned)__popc(u);
    bits[t * 6 + 3] = __brev(u);
    bits[t * 6 + 4] = (unsigned)__ffs((int)u);
    bits[t * 6 + 5] = __float_as_uint(__uint_as_float(u));
    math[t * 8 + 0] = sqrtf(fabsf(v));
    math[t * 8 + 1] = fminf(v, 0.5f) + fmaxf(v, -0.5f);
    math[t * 8 + 2] = floorf(v) + ceilf(v) + truncf(v) + rintf(v);
    math[t * 8 + 3] = fmaf(v, 3.0f, 1.0f);
    math[t * 8 + 4] = __expf(fminf(v, 10.0f));
    math[t * 8 + 5] = __logf(fabsf(v) + 1.0f);
    math[t * 8 + 6] = rsqrtf(fabsf(v) + 1.0f);
    math[t * 8 + 7] = (float)(min((int)t, 5) + max((int)t, 5)) + (isnan(v) ? 1.0f : 0.0f) + (v < FLT_MAX ? 0.0f : 1.0f) +
                      (v < INFINITY ? 0.0f : 1.0f);
}

// ---- kernels that must fail, with a message naming them ----

// Early exit before a barrier: the classic bug.
extern "C" __global__ void test_bad_early_exit(int n, int* out) {
    if ((int)threadIdx.x >= n) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

// A lane named by the mask exits before the shuffle.
extern "C" __global__ void test_bad_shuffle_exit(int* out) {
    const unsigned lane = lp_lane_id();
    if (lane == 5) return;
    out[lane] = __shfl_down_sync(LP_FULL_MASK, (int)lane, 1);
}

// A warp operation whose mask does not include the calling lane.
extern "C" __global__ void test_bad_mask(int* out) {
    out[threadIdx.x] = __shfl_sync(0x1u, (int)threadIdx.x, 0);
}

// Lanes of one warp at two different __syncthreads (hangs a real GPU: never run it there).
extern "C" __global__ void test_bad_lane_divergent_barrier(int* out) {
    if (threadIdx.x % 2 == 0) {
        __syncthreads();
        out[threadIdx.x] = 0;
    } else {
        __syncthreads();
        out[threadIdx.x] = 1;
    }
}

// 96 KiB of locals: more than an emulator fiber stack (64 KiB by default).
// Only the block's last thread overflows: the error must name it, not a thread that ran
// before it on the same fiber.
extern "C" __global__ void test_bad_stack_overflow(int n, int* out) {
    if (threadIdx.x + 1 != blockDim.x) {
        out[threadIdx.x] = 0;
        return;
    }
    volatile int big[24 * 1024];
    for (int i = 0; i < n; ++i) big[i] = i;
    out[threadIdx.x] = big[n - 1];
}

// Half of the block at __syncthreads, the other half in a full-warp shuffle with it.
extern "C" __global__ void test_bad_barrier_vs_warp(int* out) {
    const unsigned lane = lp_lane_id();
    if (lane < 16) {
        __syncthreads();
        out[lane] = 0;
    } else {
        out[lane] = __shfl_sync(LP_FULL_MASK, (int)lane, 0);
    }
}

// Thread 0 writes one int just below its dynamic shared memory (the emulator's front guard).
extern "C" __global__ void test_bad_shared_underflow(int* out) {
    LP_DYNAMIC_SHARED(int, s);
    if (threadIdx.x == 0) s[-1] = 1;
    out[threadIdx.x] = 0;
}

// Thread t copies in[t]: launched with more threads than `in` has elements, the last ones
// read past its end (only the AddressSanitizer build of the emulator sees that).
extern "C" __global__ void test_read_past_end(const int* in, int* out) {
    out[threadIdx.x] = in[threadIdx.x];
}

// 32 ints of static shared memory, one per thread: launched with more than 32 threads, the
// last ones write past the array (only the AddressSanitizer build sees that; elsewhere it
// would overwrite the emulator's other thread-local data, so the test launches it there only).
extern "C" __global__ void test_bad_static_shared_overrun(int* out) {
    __shared__ int slots[32];
    slots[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = slots[threadIdx.x];
}

// ---- races the default schedule hides (LAPERM_EMU_SCHEDULE exposes them) ----

// Thread t reads what thread t-1 wrote, with no barrier in between: right only when t-1 runs
// first. The dynamic shared memory is poisoned (-1) at the start of every block.
extern "C" __global__ void test_racy_neighbour(int* out) {
    LP_DYNAMIC_SHARED(int, s);
    const unsigned t = threadIdx.x;
    s[t] = (int)t + 1;
    out[blockIdx.x * blockDim.x + t] = t > 0 ? s[t - 1] : 0;
}

// Each lane clears its slot, votes with its warp, then adds one to the slot of the same lane in
// the next warp, with no barrier between clearing and adding: right only when every warp has
// cleared before any adds. A thread-by-thread order nearly gives that (each thread clears before
// its first warp operation yields; only the lane completing a vote runs on); a warp running
// ahead of the others (warps) does not.
extern "C" __global__ void test_racy_warps(int* out) {
    LP_DYNAMIC_SHARED(int, s);
    const unsigned t = threadIdx.x;
    s[t] = 0;
    const unsigned voted = __ballot_sync(0xffffffffu, 1);
    atomicAdd(&s[(t + 32) % blockDim.x], (int)(voted & 1u));
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = s[t];
}

// Block b reads what block b-1 wrote in the same launch: right only when blocks run in order.
extern "C" __global__ void test_racy_blocks(int* data, int* out) {
    if (threadIdx.x != 0) return;
    const unsigned b = blockIdx.x;
    out[b] = b > 0 ? data[b - 1] : 0;
    data[b] = (int)b + 1;
}
