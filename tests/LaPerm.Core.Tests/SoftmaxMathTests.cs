using LaPerm.Core.Backend;

namespace LaPerm.Core.Tests;

/// <summary>
/// SoftmaxMath against the runtime's exp and log (correctly rounded or within an ulp): its
/// answers must be within a few double ulps over the whole domain the softmax uses, exact where
/// the answer is exact, and total on the edges.
/// </summary>
public sealed class SoftmaxMathTests
{
    private const double Ulp = 2.220446049250313e-16;

    private static void Near(double expected, double actual, double ulps, string what)
    {
        double bound = ulps * Ulp * Math.Abs(expected) + double.Epsilon;
        Assert.True(Math.Abs(expected - actual) <= bound, $"{what}: expected {expected:R}, got {actual:R} (off by {Math.Abs(expected - actual) / (Ulp * Math.Abs(expected)):F1} ulps)");
    }

    [Fact]
    public void ExpIsWithinFourUlpsFromZeroDownToTheSubnormals()
    {
        var rng = new Random(5);
        for (int i = 0; i < 200_000; i++)
        {
            // Logit differences: mostly small, some down to the underflow limit.
            double x = i % 4 == 0 ? -rng.NextDouble() * 708 : -rng.NextDouble() * 30;
            Near(Math.Exp(x), SoftmaxMath.ExpOfNonPositive(x), 4, $"exp({x:R})");
        }
        foreach (double x in new[] { -1e-300, -1e-17, -0.5 * Math.Log(2), -Math.Log(2), -1, -20, -87.3, -103.9, -700 })
            Near(Math.Exp(x), SoftmaxMath.ExpOfNonPositive(x), 4, $"exp({x:R})");
    }

    [Fact]
    public void ExpIsExactOrTotalOnTheEdges()
    {
        Assert.Equal(1.0, SoftmaxMath.ExpOfNonPositive(0.0));
        Assert.Equal(1.0, SoftmaxMath.ExpOfNonPositive(-0.0));
        Assert.Equal(0.0, SoftmaxMath.ExpOfNonPositive(double.NegativeInfinity));
        Assert.Equal(0.0, SoftmaxMath.ExpOfNonPositive(-800));
        Assert.True(SoftmaxMath.ExpOfNonPositive(-740) > 0);   // subnormal, not flushed
        Assert.True(double.IsNaN(SoftmaxMath.ExpOfNonPositive(double.NaN)));
        Assert.True(double.IsNaN(SoftmaxMath.ExpOfNonPositive(0.5)));
    }

    [Fact]
    public void LogIsWithinFourUlpsEverywhere()
    {
        var rng = new Random(6);
        for (int i = 0; i < 200_000; i++)
        {
            // Sums of a row's exponentials (1 to a few thousand), then the whole positive range.
            double x = i % 2 == 0 ? 1 + rng.NextDouble() * 2000 : Math.Pow(2, (rng.NextDouble() - 0.5) * 2000);
            double expected = Math.Log(x);
            if (Math.Abs(expected) < 1e-300) continue;
            Near(expected, SoftmaxMath.Log(x), 4, $"log({x:R})");
        }
        foreach (double x in new[] { 1 + 1e-15, 1 + 1e-9, Math.Sqrt(2), Math.Sqrt(2) * (1 + 1e-16), 2, 3, 10, 1e-310, double.MaxValue })
            Near(Math.Log(x), SoftmaxMath.Log(x), 4, $"log({x:R})");
    }

    [Fact]
    public void LogIsExactOrTotalOnTheEdges()
    {
        Assert.Equal(0.0, SoftmaxMath.Log(1.0));
        Assert.Equal(double.NegativeInfinity, SoftmaxMath.Log(0.0));
        Assert.Equal(double.PositiveInfinity, SoftmaxMath.Log(double.PositiveInfinity));
        Assert.True(double.IsNaN(SoftmaxMath.Log(-1.0)));
        Assert.True(double.IsNaN(SoftmaxMath.Log(double.NaN)));
    }
}
