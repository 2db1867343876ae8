// laperm/softmax_math.cuh: the softmax cross-entropy's exponential and logarithm, bit for bit the
// CPU backend's (LaPerm.Core.Backend.SoftmaxMath): the same IEEE +, -, *, /, comparisons and
// integer conversions in the same order, no contraction (the build turns it off), so the GPU,
// the emulator and .NET round alike. Without libdevice the GPU has no correctly rounded exp or
// log, and __expf/__logf err by several float ulps; these are accurate to a few double ulps.
#pragma once
#include "laperm/device.cuh"

// ln 2 split so that k * LP_LN2_HIGH is exact for |k| < 2^20 (its low 32 bits are zero).
#define LP_LN2_HIGH 6.93147180369123816490e-01
#define LP_LN2_LOW 1.90821492927058770002e-10
#define LP_INVERSE_LN2 1.44269504088896338700e+00
#define LP_SQRT2 1.41421356237309504880

// e^x for x <= 0 (a logit minus the row's maximum): x = -k ln 2 + r with |r| <= ln 2 / 2, e^r by
// its Taylor series to r^13 / 13! in nested form, then exact halvings by 2^-k, largest first.
// -inf gives 0, NaN itself; positive x is outside the domain (NaN).
static __device__ __forceinline__ double lp_exp_nonpositive(double x) {
    if (x != x) return x;
    if (x > 0.0) return (double)NAN;
    if (x < -745.5) return 0.0;   // below half the smallest subnormal
    const long long k = (long long)(-x * LP_INVERSE_LN2 + 0.5);   // x <= 0, so truncation floors
    const double r = (x + (double)k * LP_LN2_HIGH) + (double)k * LP_LN2_LOW;
    double series = 1.0;
    for (int n = 13; n >= 1; n--) series = 1.0 + r / (double)n * series;
    const double halvings[11] = {0x1p-1024, 0x1p-512, 0x1p-256, 0x1p-128, 0x1p-64, 0x1p-32,
                                 0x1p-16, 0x1p-8, 0x1p-4, 0x1p-2, 0x1p-1};
    for (int i = 0, bit = 1024; i < 11; i++, bit >>= 1)
        if ((k & bit) != 0) series *= halvings[i];
    return series;
}

// ln x for x > 0 (the sum of a row's exponentials, at least 1): x = m 2^e with m in
// [sqrt(1/2), sqrt(2)] by exact halvings or doublings, ln m = 2 atanh(s), s = (m - 1)/(m + 1), by
// its series to s^23 / 23. 0 gives -inf, infinity itself, negative x and NaN give NaN.
static __device__ __forceinline__ double lp_log(double x) {
    if (x != x || x < 0.0) return (double)NAN;
    if (x == 0.0) return -(double)INFINITY;
    if (x == (double)INFINITY) return x;
    double m = x;
    int e = 0;
    while (m >= 2.0) { m *= 0.5; e++; }
    while (m < 1.0) { m *= 2.0; e--; }
    if (m > LP_SQRT2) { m *= 0.5; e++; }
    const double f = m - 1.0, s = f / (2.0 + f), s2 = s * s;
    double series = 1.0 / 23.0;
    for (int n = 10; n >= 0; n--) series = series * s2 + 1.0 / (double)(2 * n + 1);
    return (double)e * LP_LN2_HIGH + ((double)e * LP_LN2_LOW + 2.0 * s * series);
}
