// laperm/device.cuh: the ONE intrinsic surface every kernel in cuda/kernels uses.
//
// Kernels are written in ordinary CUDA spelling and include this header (or the laperm/*.cuh
// headers built on it, e.g. fast_divide.cuh):
//
//     #include "laperm/device.cuh"
//     extern "C" __global__ void axpy_v1(int n, float a, const float* x, float* y) {
//         int i = blockIdx.x * blockDim.x + threadIdx.x;
//         if (i < n) y[i] = a * x[i] + y[i];
//     }
//
// The same source is compiled three ways, and this header maps the spelling for each:
//   1. nvcc                      (__NVCC__): CUDA provides everything; we add the few LP_ helpers.
//   2. clang CUDA, device only   (__clang__ && __CUDA__), with -nocudainc -nocudalib: no CUDA
//      headers and no libdevice, so every intrinsic below is declared here on top of clang's
//      __nvvm_* builtins. Only functions listed here exist on this path.
//   3. the host emulator         (anything else, LAPERM_EMU defined by CMake): plain C++20 run by
//      cuda/emu, which executes each CUDA thread as a fiber (see cuda/emu/README.md).
//
// What a kernel may use (the whole surface):
//   ids/dims      threadIdx, blockIdx, blockDim, gridDim (.x .y .z), warpSize, lp_lane_id(), lp_warp_id()
//   barriers      __syncthreads(), __syncthreads_count/and/or(pred), __syncwarp(mask), __threadfence()
//   warp          __shfl_sync, __shfl_up_sync, __shfl_down_sync, __shfl_xor_sync (int, unsigned,
//                 float, long long, unsigned long long, double; optional width),
//                 __ballot_sync, __any_sync, __all_sync. (__activemask is deliberately absent:
//                 the emulator does not model convergence, so name the lanes explicitly.)
//   atomics       atomicAdd (int, unsigned, unsigned long long, float), atomicMax/atomicMin (int,
//                 unsigned), atomicCAS (int, unsigned, unsigned long long), atomicExch (int,
//                 unsigned, float); return the old value.
//   async copy    lp_copy_async_4(shared_dst, global_src): 4 bytes from global to shared memory
//                 without a register (cp.async, sm_80+); lp_copy_async_wait_all() waits for this
//                 thread's copies. Others see them after a barrier that follows the wait. The
//                 emulator writes each copy only at the wait, and a thread that exits with a
//                 copy not waited for is an error.
//   shared        static: `__shared__ float tile[256];` (inside or outside a kernel)
//                 dynamic: `LP_DYNAMIC_SHARED(float, smem);` then smem[i] (16-byte aligned;
//                 every kernel's dynamic shared memory starts at the same address).
//   math          sqrtf (IEEE), lp_sqrt_rn (double, IEEE), rsqrtf, __expf, __logf, __exp2f, __log2f, __fdividef, __saturatef,
//                 fabsf, fminf, fmaxf, floorf, ceilf, truncf, rintf, fmaf, copysignf,
//                 isnan/isinf/isfinite (float), min/max (int, unsigned, long long, float)
//   bits          __float_as_uint, __uint_as_float, __float_as_int, __int_as_float,
//                 __clz, __popc, __brev, __ffs (int/unsigned), __clzll, __popcll,
//                 __umulhi (high 32 bits of the 64-bit product of two unsigned)
//   limits        FLT_MAX, FLT_MIN, INFINITY, NAN, INT_MAX, INT_MIN, UINT_MAX
//   qualifiers    __global__, __device__, __host__, __forceinline__, LP_NOINLINE,
//                 __launch_bounds__(...), __restrict__, __align__(n)
//
// Numerics: all three paths compile with floating-point contraction OFF (clang -ffp-contract=off,
// nvcc -fmad=false, g++ -ffp-contract=off), so +, -, *, / and sqrtf give bit-identical results
// on the GPU, the emulator and a straightforward C# reference. Write fmaf() where a fused
// multiply-add is wanted. The fast intrinsics (__expf, __logf, __exp2f, __log2f, rsqrtf,
// __fdividef) are hardware approximations on the GPU and exact libm calls in the emulator:
// compare them with a tolerance.
//
// Kernel rules: every launchable kernel is `extern "C" __global__ void name(...)` so PTX entry
// names and emulator names agree; arguments are plain values or pointers (device buffers);
// a kernel that uses __syncthreads must let every thread of the block reach it (no early
// `return` before a barrier), and the lanes of one warp must reach it at the same place in the
// source (it is the .aligned bar.sync: a lane-divergent __syncthreads hangs a real GPU); the
// emulator reports both as errors naming the kernel. Different warps may use different
// __syncthreads() call sites.
#pragma once

#define LP_WARP_SIZE 32
#define LP_FULL_MASK 0xffffffffu

// cp.async for nvcc and clang (sm_80+): the copy's destination is a shared-window address, the source a global one.
#define LP_COPY_ASYNC_4_ASM(dst, src)                                                              \
    asm volatile("{\n\t.reg .u64 lp_dst;\n\tcvta.to.shared.u64 lp_dst, %0;\n\t"                      \
                 "cp.async.ca.shared.global [lp_dst], [%1], 4;\n\t}" ::"l"(dst), "l"(src) : "memory")
#define LP_COPY_ASYNC_WAIT_ALL_ASM() asm volatile("cp.async.wait_all;" ::: "memory")

// =====================================================================================
// 1. nvcc
// =====================================================================================
#if defined(__NVCC__)

#include <cfloat>
#include <climits>
#include <math_constants.h>
#ifndef INFINITY
#define INFINITY CUDART_INF_F
#endif
#ifndef NAN
#define NAN CUDART_NAN_F
#endif

#define LP_DYNAMIC_SHARED(type, name)                                   \
    extern __shared__ __align__(16) unsigned char lp_dynamic_shared_bytes[]; \
    type* const name = reinterpret_cast<type*>(lp_dynamic_shared_bytes)
#define LP_NOINLINE __noinline__

__device__ __forceinline__ unsigned lp_lane_id() { unsigned r; asm volatile("mov.u32 %0, %%laneid;" : "=r"(r)); return r; }
__device__ __forceinline__ unsigned lp_warp_id() {
    return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) / 32u;
}
__device__ __forceinline__ double lp_sqrt_rn(double x) { return __dsqrt_rn(x); }
__device__ __forceinline__ void lp_copy_async_4(void* shared_dst, const void* global_src) { LP_COPY_ASYNC_4_ASM(shared_dst, global_src); }
__device__ __forceinline__ void lp_copy_async_wait_all() { LP_COPY_ASYNC_WAIT_ALL_ASM(); }

// =====================================================================================
// 2. clang CUDA (device only, -nocudainc -nocudalib)
// =====================================================================================
#elif defined(__clang__) && defined(__CUDA__)

#define __host__ __attribute__((host))
#define __device__ __attribute__((device))
#define __global__ __attribute__((global))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define LP_NOINLINE __attribute__((noinline))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __align__(n) __attribute__((aligned(n)))

// threadIdx, blockIdx, blockDim, gridDim and warpSize: clang's own definitions read the PTX
// special registers; this header ships with clang (its resource directory), not with CUDA.
#include <__clang_cuda_builtin_vars.h>

#define FLT_MAX 3.402823466e+38F
#define FLT_MIN 1.175494351e-38F
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define INT_MAX 2147483647
#define INT_MIN (-2147483647 - 1)
#define UINT_MAX 4294967295u

#define LP_DYNAMIC_SHARED(type, name)                                   \
    extern __shared__ __align__(16) unsigned char lp_dynamic_shared_bytes[]; \
    type* const name = reinterpret_cast<type*>(lp_dynamic_shared_bytes)

#define LP_D static __device__ __forceinline__

LP_D unsigned lp_lane_id() { return __nvvm_read_ptx_sreg_laneid(); }
LP_D unsigned lp_warp_id() {
    return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) / 32u;
}

// ---- barriers ----
// clang's optimiser moves shared-memory loads across its barrier builtins: its GlobalsAA takes
// it that an intrinsic cannot write an internal global whose address is never taken, which is
// what every kernel-scope __shared__ variable is, so GVN forwards or hoists a load of one above
// the barrier. gather_batch_v1 was compiled so (clang 14): every thread but 0 read s_record
// BEFORE the bar.sync, i.e. whatever an earlier kernel left in shared memory, and on an H200 read
// image bytes 781 GB past the data set. The emulator and nvcc never showed it. An empty asm with
// a memory clobber is an opaque call that may write any memory, so one on each side of every
// barrier keeps each shared access on its own side. (PtxBarrierTests checks every kernel's PTX for it.)
#define LP_COMPILER_FENCE() asm volatile("" ::: "memory")
LP_D void lp_syncthreads() { LP_COMPILER_FENCE(); __syncthreads(); LP_COMPILER_FENCE(); }
#define __syncthreads() lp_syncthreads()
LP_D int __syncthreads_count(int p) { LP_COMPILER_FENCE(); int r = __nvvm_bar0_popc(p); LP_COMPILER_FENCE(); return r; }
LP_D int __syncthreads_and(int p) { LP_COMPILER_FENCE(); int r = __nvvm_bar0_and(p); LP_COMPILER_FENCE(); return r; }
LP_D int __syncthreads_or(int p) { LP_COMPILER_FENCE(); int r = __nvvm_bar0_or(p); LP_COMPILER_FENCE(); return r; }
LP_D void __syncwarp(unsigned mask = LP_FULL_MASK) { LP_COMPILER_FENCE(); __nvvm_bar_warp_sync(mask); LP_COMPILER_FENCE(); }
LP_D void __threadfence() { __nvvm_membar_gl(); }
LP_D void __threadfence_block() { __nvvm_membar_cta(); }
LP_D void lp_copy_async_4(void* shared_dst, const void* global_src) { LP_COPY_ASYNC_4_ASM(shared_dst, global_src); }
LP_D void lp_copy_async_wait_all() { LP_COPY_ASYNC_WAIT_ALL_ASM(); }

// ---- bit casts ----
LP_D unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
LP_D float __uint_as_float(unsigned x) { return __builtin_bit_cast(float, x); }
LP_D int __float_as_int(float x) { return __builtin_bit_cast(int, x); }
LP_D float __int_as_float(int x) { return __builtin_bit_cast(float, x); }

// ---- warp shuffles: c = ((32 - width) << 8) | clamp, as in PTX shfl.sync ----
#define LP_SHFL_32(NAME, OP, BTYPE, CLAMP)                                                  \
    LP_D int NAME(unsigned m, int v, BTYPE b, int w = 32) {                                 \
        return __nvvm_shfl_sync_##OP##_i32(m, v, b, ((32 - w) << 8) | CLAMP);              \
    }                                                                                       \
    LP_D unsigned NAME(unsigned m, unsigned v, BTYPE b, int w = 32) {                       \
        return (unsigned)__nvvm_shfl_sync_##OP##_i32(m, (int)v, b, ((32 - w) << 8) | CLAMP); \
    }                                                                                       \
    LP_D float NAME(unsigned m, float v, BTYPE b, int w = 32) {                             \
        return __nvvm_shfl_sync_##OP##_f32(m, v, b, ((32 - w) << 8) | CLAMP);              \
    }                                                                                       \
    LP_D unsigned long long NAME(unsigned m, unsigned long long v, BTYPE b, int w = 32) {   \
        unsigned lo = (unsigned)v, hi = (unsigned)(v >> 32);                                \
        lo = (unsigned)__nvvm_shfl_sync_##OP##_i32(m, (int)lo, b, ((32 - w) << 8) | CLAMP); \
        hi = (unsigned)__nvvm_shfl_sync_##OP##_i32(m, (int)hi, b, ((32 - w) << 8) | CLAMP); \
        return ((unsigned long long)hi << 32) | lo;                                         \
    }                                                                                       \
    LP_D long long NAME(unsigned m, long long v, BTYPE b, int w = 32) {                     \
        return (long long)NAME(m, (unsigned long long)v, b, w);                             \
    }                                                                                       \
    LP_D double NAME(unsigned m, double v, BTYPE b, int w = 32) {                           \
        return __builtin_bit_cast(double, NAME(m, __builtin_bit_cast(unsigned long long, v), b, w)); \
    }
LP_SHFL_32(__shfl_sync, idx, int, 0x1f)
LP_SHFL_32(__shfl_up_sync, up, unsigned, 0)
LP_SHFL_32(__shfl_down_sync, down, unsigned, 0x1f)
LP_SHFL_32(__shfl_xor_sync, bfly, int, 0x1f)
#undef LP_SHFL_32

// ---- warp votes ----
LP_D unsigned __ballot_sync(unsigned m, int p) { return __nvvm_vote_ballot_sync(m, p != 0); }
LP_D int __any_sync(unsigned m, int p) { return __nvvm_vote_any_sync(m, p != 0); }
LP_D int __all_sync(unsigned m, int p) { return __nvvm_vote_all_sync(m, p != 0); }

// ---- atomics (generic address space: global or shared) ----
LP_D int atomicAdd(int* p, int v) { return __nvvm_atom_add_gen_i(p, v); }
LP_D unsigned atomicAdd(unsigned* p, unsigned v) { return (unsigned)__nvvm_atom_add_gen_i((int*)p, (int)v); }
LP_D unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return (unsigned long long)__nvvm_atom_add_gen_ll((long long*)p, (long long)v);
}
LP_D float atomicAdd(float* p, float v) { return __nvvm_atom_add_gen_f(p, v); }
LP_D int atomicMax(int* p, int v) { return __nvvm_atom_max_gen_i(p, v); }
LP_D unsigned atomicMax(unsigned* p, unsigned v) { return __nvvm_atom_max_gen_ui(p, v); }
LP_D int atomicMin(int* p, int v) { return __nvvm_atom_min_gen_i(p, v); }
LP_D unsigned atomicMin(unsigned* p, unsigned v) { return __nvvm_atom_min_gen_ui(p, v); }
LP_D int atomicCAS(int* p, int c, int v) { return __nvvm_atom_cas_gen_i(p, c, v); }
LP_D unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) {
    return (unsigned)__nvvm_atom_cas_gen_i((int*)p, (int)c, (int)v);
}
LP_D unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
    return (unsigned long long)__nvvm_atom_cas_gen_ll((long long*)p, (long long)c, (long long)v);
}
LP_D int atomicExch(int* p, int v) { return __nvvm_atom_xchg_gen_i(p, v); }
LP_D unsigned atomicExch(unsigned* p, unsigned v) { return (unsigned)__nvvm_atom_xchg_gen_i((int*)p, (int)v); }
LP_D float atomicExch(float* p, float v) {
    return __int_as_float(__nvvm_atom_xchg_gen_i((int*)p, __float_as_int(v)));
}

// ---- math (no libdevice: only what maps to a PTX instruction) ----
LP_D float sqrtf(float x) { return __nvvm_sqrt_rn_f(x); }
LP_D double lp_sqrt_rn(double x) { return __nvvm_sqrt_rn_d(x); }
LP_D float rsqrtf(float x) { return __nvvm_rsqrt_approx_f(x); }
LP_D float __expf(float x) { return __nvvm_ex2_approx_f(x * 1.4426950408889634f); }
LP_D float __exp2f(float x) { return __nvvm_ex2_approx_f(x); }
LP_D float __logf(float x) { return __nvvm_lg2_approx_f(x) * 0.6931471805599453f; }
LP_D float __log2f(float x) { return __nvvm_lg2_approx_f(x); }
LP_D float __fdividef(float a, float b) { return __nvvm_div_approx_f(a, b); }
LP_D float __saturatef(float x) { return __nvvm_saturate_f(x); }
LP_D float fabsf(float x) { return __nvvm_fabs_f(x); }
LP_D float fminf(float a, float b) { return __nvvm_fmin_f(a, b); }
LP_D float fmaxf(float a, float b) { return __nvvm_fmax_f(a, b); }
LP_D float floorf(float x) { return __nvvm_floor_f(x); }
LP_D float ceilf(float x) { return __nvvm_ceil_f(x); }
LP_D float truncf(float x) { return __nvvm_trunc_f(x); }
// __builtin_rintf is llvm.rint: cvt.rni (halves to even). __nvvm_round_f is not: LLVM turns it into
// llvm.round, halves away from zero (rintf(2.5f) was 3 on this path, 2 under nvcc and the emulator).
LP_D float rintf(float x) { return __builtin_rintf(x); }
LP_D float fmaf(float a, float b, float c) { return __nvvm_fma_rn_f(a, b, c); }
LP_D float copysignf(float a, float b) { return __builtin_copysignf(a, b); }
LP_D bool isnan(float x) { return __builtin_isnan(x); }
LP_D bool isinf(float x) { return __builtin_isinf(x); }
LP_D bool isfinite(float x) { return __builtin_isfinite(x); }

// ---- integer bits ----
LP_D int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
LP_D int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
LP_D int __popc(unsigned x) { return __builtin_popcount(x); }
LP_D int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
LP_D unsigned __brev(unsigned x) { return __builtin_bitreverse32(x); }
LP_D int __ffs(int x) { return __builtin_ffs(x); }
LP_D unsigned __umulhi(unsigned a, unsigned b) { return __nvvm_mulhi_ui(a, b); }

// ---- min / max ----
LP_D int min(int a, int b) { return a < b ? a : b; }
LP_D int max(int a, int b) { return a > b ? a : b; }
LP_D unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
LP_D unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
LP_D long long min(long long a, long long b) { return a < b ? a : b; }
LP_D long long max(long long a, long long b) { return a > b ? a : b; }
LP_D float min(float a, float b) { return fminf(a, b); }
LP_D float max(float a, float b) { return fmaxf(a, b); }

#undef LP_D

// =====================================================================================
// 3. host emulator (plain C++20; see cuda/emu/README.md)
// =====================================================================================
#else

#ifndef LAPERM_EMU
#define LAPERM_EMU 1
#endif

#include <atomic>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __host__
#define __device__
#define __global__
#define __constant__ static_assert(false, "__constant__ memory is not part of laperm/device.cuh");
// A static __shared__ variable is one per block. The emulator runs all threads (fibers) of a
// block on one OS thread, and one block at a time per OS thread, so a `static thread_local`
// is exactly shared by the block's threads and never seen by a block running concurrently.
// Like real shared memory it is NOT cleared between blocks: initialise it before reading.
// In the emulator's AddressSanitizer build (LAPERM_EMU_SANITIZE) it is a plain `static`:
// thread-local storage has no redzones and globals do, so an overrun of a static shared
// array is reported there. That build runs one launch at a time and its blocks one after
// another on one OS thread (emu_runtime.cpp), so the one copy still serves one block at a time.
#if defined(__SANITIZE_ADDRESS__)
#define LP_SHARED_PLAIN_STATIC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LP_SHARED_PLAIN_STATIC 1
#endif
#endif
#if defined(LP_SHARED_PLAIN_STATIC)
#define __shared__ static
#else
#define __shared__ static thread_local
#endif
#define __forceinline__ inline __attribute__((always_inline))
// (not __noinline__: the C++ standard library spells __attribute__((__noinline__)).)
#define LP_NOINLINE __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };

#if defined(__GNUC__) || defined(__clang__)
#define LP_EMU_API __attribute__((visibility("default")))
#else
#define LP_EMU_API
#endif

namespace lp_emu {
// What a running emulated thread can see about itself (set by the scheduler before it resumes a fiber).
struct ThreadView {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned linear;  // x + y*bx + z*bx*by
};
// The running emulated thread's view. Declared `const` (a pure function of nothing): within one
// kernel call it always gives the same pointer (a fiber keeps its view for its whole life and
// the scheduler points the slot at it before resuming the fiber), so the compiler reads the
// thread-local slot once per kernel call, not at every threadIdx or blockDim of a loop.
LP_EMU_API __attribute__((const)) const ThreadView* current_thread();

enum class WarpOp : int { Sync, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All };
enum class BarrierOp : int { Plain, Count, And, Or };

// Implemented in cuda/emu (never inlined: each may switch fibers).
LP_EMU_API int barrier(BarrierOp op, int predicate, const char* file, int line);
LP_EMU_API std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int b, int c);
LP_EMU_API unsigned char* dynamic_shared();
LP_EMU_API void copy_async(void* dst, const void* src, int bytes);
LP_EMU_API void copy_async_wait_all();

template <class T>
inline T shuffle(WarpOp op, unsigned mask, T value, int b, int width, int clamp) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = warp_op(op, mask, bits, b, ((32 - width) << 8) | clamp);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}
}  // namespace lp_emu

#define threadIdx (::lp_emu::current_thread()->thread_idx)
#define blockIdx (::lp_emu::current_thread()->block_idx)
#define blockDim (::lp_emu::current_thread()->block_dim)
#define gridDim (::lp_emu::current_thread()->grid_dim)
constexpr int warpSize = 32;

#define LP_DYNAMIC_SHARED(type, name) \
    type* const name = reinterpret_cast<type*>(::lp_emu::dynamic_shared())

inline unsigned lp_lane_id() { return ::lp_emu::current_thread()->linear & 31u; }
inline unsigned lp_warp_id() { return ::lp_emu::current_thread()->linear / 32u; }

// ---- barriers ----
// Macros, so the emulator knows each barrier's place in the source: on the GPU __syncthreads is
// `bar.sync` (.aligned), which all lanes of a warp must reach together at the same instruction.
#define __syncthreads() ::lp_emu::barrier(::lp_emu::BarrierOp::Plain, 0, __FILE__, __LINE__)
#define __syncthreads_count(p) ::lp_emu::barrier(::lp_emu::BarrierOp::Count, (p), __FILE__, __LINE__)
#define __syncthreads_and(p) ::lp_emu::barrier(::lp_emu::BarrierOp::And, (p), __FILE__, __LINE__)
#define __syncthreads_or(p) ::lp_emu::barrier(::lp_emu::BarrierOp::Or, (p), __FILE__, __LINE__)
inline void __syncwarp(unsigned mask = LP_FULL_MASK) { ::lp_emu::warp_op(::lp_emu::WarpOp::Sync, mask, 0, 0, 0); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void lp_copy_async_4(void* shared_dst, const void* global_src) { ::lp_emu::copy_async(shared_dst, global_src, 4); }
inline void lp_copy_async_wait_all() { ::lp_emu::copy_async_wait_all(); }

// ---- warp shuffles and votes ----
template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
    return ::lp_emu::shuffle(::lp_emu::WarpOp::ShflIdx, m, v, src, w, 0x1f);
}
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
    return ::lp_emu::shuffle(::lp_emu::WarpOp::ShflUp, m, v, (int)d, w, 0);
}
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    return ::lp_emu::shuffle(::lp_emu::WarpOp::ShflDown, m, v, (int)d, w, 0x1f);
}
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32) {
    return ::lp_emu::shuffle(::lp_emu::WarpOp::ShflXor, m, v, lm, w, 0x1f);
}
inline unsigned __ballot_sync(unsigned m, int p) { return (unsigned)::lp_emu::warp_op(::lp_emu::WarpOp::Ballot, m, p != 0, 0, 0); }
inline int __any_sync(unsigned m, int p) { return (int)::lp_emu::warp_op(::lp_emu::WarpOp::Any, m, p != 0, 0, 0); }
inline int __all_sync(unsigned m, int p) { return (int)::lp_emu::warp_op(::lp_emu::WarpOp::All, m, p != 0, 0, 0); }

// ---- atomics (real atomics: blocks may run on several OS threads) ----
template <class T> inline T lp_emu_atomic_add(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed); }
inline int atomicAdd(int* p, int v) { return lp_emu_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return lp_emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return lp_emu_atomic_add(p, v); }
inline float atomicAdd(float* p, float v) { return lp_emu_atomic_add(p, v); }
template <class T> inline T lp_emu_atomic_max(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load(std::memory_order_relaxed);
    while (old < v && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {}
    return old;
}
template <class T> inline T lp_emu_atomic_min(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load(std::memory_order_relaxed);
    while (old > v && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {}
    return old;
}
inline int atomicMax(int* p, int v) { return lp_emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return lp_emu_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return lp_emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return lp_emu_atomic_min(p, v); }
template <class T> inline T lp_emu_atomic_cas(T* p, T c, T v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(c, v, std::memory_order_relaxed);
    return c;  // holds the old value either way
}
inline int atomicCAS(int* p, int c, int v) { return lp_emu_atomic_cas(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return lp_emu_atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
    return lp_emu_atomic_cas(p, c, v);
}
template <class T> inline T lp_emu_atomic_exch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v, std::memory_order_relaxed); }
inline int atomicExch(int* p, int v) { return lp_emu_atomic_exch(p, v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return lp_emu_atomic_exch(p, v); }
inline float atomicExch(float* p, float v) { return lp_emu_atomic_exch(p, v); }

// ---- bit casts ----
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }

// ---- math: sqrtf, fabsf, fminf, fmaxf, floorf, ceilf, truncf, rintf, fmaf, copysignf come
//      from <cmath>; the GPU's fast approximations become exact libm calls here ----
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double lp_sqrt_rn(double x) { return std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp2f(float x) { return std::exp2(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
using std::isfinite;
using std::isinf;
using std::isnan;

// ---- integer bits ----
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }

// ---- min / max ----
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

#endif
