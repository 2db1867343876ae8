// Stand-in for the project's cuda/include/laperm/device.cuh, used only to build the
// standalone harness before that header exists. With nvcc the CUDA headers provide
// everything; with clang -nocudainc (syntax checks) the few intrinsics are declared here.
#pragma once
#if defined(__clang__) && !defined(__CUDA_ARCH_LIST__) && !defined(__NVCC__) && !defined(__CLANG_CUDA_RUNTIME_WRAPPER_H__)
#include <__clang_cuda_builtin_vars.h>
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define __forceinline__ __inline__ __attribute__((always_inline))
static __device__ __forceinline__ unsigned __float_as_uint(float x) { return __builtin_bit_cast(unsigned, x); }
static __device__ __forceinline__ void __syncwarp(unsigned m) { __nvvm_bar_warp_sync(m); }
static __device__ __forceinline__ unsigned __shfl_xor_sync(unsigned m, unsigned v, int l) { return __nvvm_shfl_sync_bfly_i32(m, v, l, 0x1f); }
static __device__ __forceinline__ unsigned __shfl_up_sync(unsigned m, unsigned v, int d) { return __nvvm_shfl_sync_up_i32(m, v, d, 0); }
static __device__ __forceinline__ unsigned __ballot_sync(unsigned m, bool p) { return __nvvm_vote_ballot_sync(m, p); }
static __device__ __forceinline__ int __popc(unsigned x) { return __builtin_popcount(x); }
static __device__ __forceinline__ int min(int a, int b) { return a < b ? a : b; }
#endif
#define LP_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
