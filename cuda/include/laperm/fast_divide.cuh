// laperm/fast_divide.cuh: integer division by a divisor fixed for a launch, as one multiply-high,
// one add and one shift.
//
// Why: a GPU has no integer divider. A 32-bit `/` or `%` by a runtime value compiles to a dozen
// or more instructions (a reciprocal on the special-function unit and corrections), a 64-bit one
// to a call of a longer routine (the compilers test at run time whether both operands fit in 32
// bits first). The index arithmetic of im2col/col2im, pooling, the convolution layout kernels, bias
// and batch-norm splits each element's flat index into (image, channel, row, column) with three to
// nine such divisions, several times the work of the one load and one store they serve.
//
// How: for a divisor 1 <= d <= 2^31, shift = ceil(log2 d) and multiplier = floor(2^32 (2^shift - d) / d) + 1
// (< 2^32); then for every 0 <= n < 2^31
//     n / d == (umulhi(n, multiplier) + n) >> shift
// (Granlund and Montgomery, "Division by invariant integers using multiplication", 1994; the form
// PyTorch's IntDivider uses). umulhi(n, multiplier) < n, so the sum stays below 2^32. The host
// computes the constants (LaPerm.Cuda.Backend.FastDivisor mirrors this struct, and its tests check
// the identity on the edges and on random pairs); the result is the exact quotient, so nothing a
// kernel computes changes, bit for bit.
//
// The 64-bit overloads divide plainly: kernels instantiate their index loop for `unsigned` when
// every index of the launch stays below 2^31 (lp_fits_fast_index) and for `unsigned long long`
// otherwise, so an unusually large tensor stays correct instead of overflowing.
#pragma once
#include "laperm/device.cuh"

struct lp_divisor {
    unsigned divisor;
    unsigned multiplier;
    unsigned shift;
};

__device__ __forceinline__ unsigned lp_div(unsigned n, lp_divisor d) {
    return (__umulhi(n, d.multiplier) + n) >> d.shift;
}

__device__ __forceinline__ unsigned long long lp_div(unsigned long long n, lp_divisor d) {
    return n / d.divisor;
}

// n = q * d + r, 0 <= r < d.
template <typename Index>
__device__ __forceinline__ Index lp_divmod(Index n, lp_divisor d, Index* remainder) {
    const Index q = lp_div(n, d);
    *remainder = n - q * (Index)d.divisor;
    return q;
}

// The bound on a launch's indices for the `unsigned` instantiation. A test (cuda/emu/tests/
// index_paths.cpp) compiles the kernels with 0 here, so every launch takes the 64-bit path,
// and compares them with the library's fast path bit for bit.
#ifndef LP_FAST_INDEX_LIMIT
#define LP_FAST_INDEX_LIMIT 0x80000000LL
#endif

// True when a grid-stride loop over [0, total) keeps every index it forms (the last one plus the
// grid's stride included) below 2^31: the condition for the `unsigned` instantiation. static:
// each translation unit keeps its own (the test's has another LP_FAST_INDEX_LIMIT).
static __device__ __forceinline__ bool lp_fits_fast_index(long long total) {
    return total + (long long)gridDim.x * blockDim.x <= LP_FAST_INDEX_LIMIT;
}

// Runs body<unsigned>(...) when every index of a grid-stride loop over [0, total) stays below
// 2^31 (the fast divisors' range), body<unsigned long long>(...) otherwise.
#define LP_FAST_INDEX_DISPATCH(total, body, ...)                 \
    if (lp_fits_fast_index(total)) {                             \
        body<unsigned>(__VA_ARGS__);                             \
    } else {                                                     \
        body<unsigned long long>(__VA_ARGS__);                   \
    }
