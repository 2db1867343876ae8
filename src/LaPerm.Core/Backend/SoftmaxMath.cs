namespace LaPerm.Core.Backend;

/// <summary>
/// The exponential and logarithm of the softmax cross-entropy, written with IEEE +, -, *, /,
/// comparisons and integer conversions only, so that every backend computes them bit for bit
/// alike: the CPU here, the GPU and the emulator in cuda/include/laperm/softmax_math.cuh (the
/// same operations in the same order; the GPU has no correctly rounded exp or log without
/// libdevice, and its fast approximations err by up to several float ulps). Both are accurate
/// to a few double ulps, far below the float the results are rounded to.
/// </summary>
public static class SoftmaxMath
{
    // ln 2 split so that k * Ln2High is exact for |k| < 2^20 (its low 32 bits are zero).
    private const double Ln2High = 6.93147180369123816490e-01;
    private const double Ln2Low = 1.90821492927058770002e-10;
    private const double InverseLn2 = 1.44269504088896338700e+00;
    private const double Sqrt2 = 1.41421356237309504880;

    /// <summary>
    /// e^x for x &lt;= 0 (a logit minus the row's maximum): x = -k ln 2 + r with |r| &lt;= ln 2 / 2,
    /// e^r by its Taylor series to r^13 / 13! in nested form, then exact halvings by 2^-k.
    /// -inf gives 0, NaN itself; positive x is outside the domain (NaN).
    /// </summary>
    public static double ExpOfNonPositive(double x)
    {
        if (double.IsNaN(x)) return x;
        if (x > 0.0) return double.NaN;
        if (x < -745.5) return 0.0;   // below half the smallest subnormal
        long k = (long)(-x * InverseLn2 + 0.5);   // nearest integer to -x / ln 2 (x <= 0, so truncation floors)
        double r = (x + k * Ln2High) + k * Ln2Low;
        double series = 1.0;
        for (int n = 13; n >= 1; n--) series = 1.0 + r / n * series;
        // 2^-k by its binary digits, largest first: every factor is an exact power of two.
        for (int i = 0, bit = 1024; i < Halvings.Length; i++, bit >>= 1)
            if ((k & bit) != 0) series *= Halvings[i];
        return series;
    }

    /// <summary>2^-1024, 2^-512, ..., 2^-1 (exact).</summary>
    private static readonly double[] Halvings = [.. Enumerable.Range(0, 11).Select(i => Math.ScaleB(1.0, -(1024 >> i)))];

    /// <summary>
    /// ln x for x &gt; 0 (the sum of a row's exponentials, at least 1): x = m 2^e with m in
    /// [sqrt(1/2), sqrt(2)] by exact halvings or doublings, ln m = 2 atanh(s), s = (m - 1)/(m + 1),
    /// by its series to s^23 / 23. 0 gives -inf, infinity itself, negative x and NaN give NaN.
    /// </summary>
    public static double Log(double x)
    {
        if (double.IsNaN(x) || x < 0.0) return double.NaN;
        if (x == 0.0) return double.NegativeInfinity;
        if (x == double.PositiveInfinity) return x;
        double m = x;
        int e = 0;
        while (m >= 2.0) { m *= 0.5; e++; }
        while (m < 1.0) { m *= 2.0; e--; }
        if (m > Sqrt2) { m *= 0.5; e++; }
        double f = m - 1.0, s = f / (2.0 + f), s2 = s * s;
        double series = 1.0 / 23.0;
        for (int n = 10; n >= 0; n--) series = series * s2 + 1.0 / (2 * n + 1);
        return e * Ln2High + (e * Ln2Low + 2.0 * s * series);
    }
}
