using System.Runtime.InteropServices;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The constants of <see cref="FastDivisor"/> (the kernels' division by multiply-high and shift,
/// cuda/include/laperm/fast_divide.cuh) against plain division, over the whole range the kernels
/// use it in: divisors 1 .. 2^31, dividends 0 .. 2^31 - 1. The kernels that use them are checked
/// against the CPU backend by the backend op tests; these tests name a wrong constant directly.
/// </summary>
public sealed class FastDivisorTests
{
    private const uint MaxDividend = int.MaxValue;

    /// <summary>Dividends where a quotient changes or the range ends.</summary>
    private static IEnumerable<uint> EdgeDividends(uint d)
    {
        uint[] near = [0, 1, 2, d - 1, d, d + 1, 2 * d - 1, 2 * d, MaxDividend - 1, MaxDividend];
        foreach (uint n in near)
            if (n <= MaxDividend) yield return n;
        // The last multiples of d below 2^31 and their neighbours: the multiply-high's error is largest there.
        uint top = MaxDividend / d * d;
        for (uint k = 0; k < 3 && top >= k * d; k++)
        {
            uint m = top - k * d;
            yield return m;
            if (m > 0) yield return m - 1;
            if (m < MaxDividend) yield return m + 1;
        }
    }

    private static IEnumerable<uint> Divisors()
    {
        for (uint d = 1; d <= 4096; d++) yield return d;
        for (int k = 12; k <= 31; k++)
        {
            uint p = 1u << k;
            yield return p - 1;
            yield return p;
            if (k < 31) yield return p + 1;
        }
        yield return 641;          // a factor of 2^32 + 1: the classic trap for multiply-high constants
        yield return 6700417;      // the other one
        yield return 1u << 31;
        var random = new Random(31);
        for (int i = 0; i < 2000; i++) yield return (uint)random.NextInt64(1, 1L << 31);
    }

    [Fact]
    public void QuotientsEqualPlainDivisionOnEveryEdgeAndAtRandom()
    {
        var random = new Random(7);
        long checkedPairs = 0;
        foreach (uint d in Divisors())
        {
            var divisor = FastDivisor.Of(d);
            Assert.Equal(d, divisor.Divisor);
            foreach (uint n in EdgeDividends(d).Concat(Enumerable.Range(0, 64).Select(_ => (uint)random.NextInt64(0, MaxDividend + 1L))))
            {
                uint expected = n / d, actual = divisor.Divide(n);
                if (expected != actual)
                    Assert.Fail($"{n} / {d}: {actual}, expected {expected} (multiplier {divisor.Multiplier}, shift {divisor.Shift})");
                checkedPairs++;
            }
        }
        Assert.True(checkedPairs > 300_000, $"only {checkedPairs} pairs checked");
    }

    [Fact]
    public void EverySmallDividendDividesExactlyBySmallDivisors()
    {
        // Exhaustive where the layout kernels live: image planes, channels and widths up to 1024,
        // flat indices up to 2^16.
        for (uint d = 1; d <= 1024; d++)
        {
            var divisor = FastDivisor.Of(d);
            for (uint n = 0; n < 1u << 16; n++)
                if (divisor.Divide(n) != n / d)
                    Assert.Fail($"{n} / {d}: {divisor.Divide(n)}, expected {n / d}");
        }
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-3L)]
    [InlineData((1L << 31) + 1)]
    public void DivisorsOutsideTheRangeAreRefused(long d)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => FastDivisor.Of(d));
        Assert.Contains("1 .. 2147483648", e.Message);
    }

    [Fact]
    public void StructsHaveTheKernelsLayout()
    {
        // lp_divisor is three unsigned; ConvShape 12 ints and 9 divisors; PoolShape 7 ints and 5.
        Assert.Equal(12, Marshal.SizeOf<FastDivisor>());
        Assert.Equal(12 * 4 + 9 * 12, Marshal.SizeOf<ConvShape>());
        Assert.Equal(7 * 4 + 5 * 12, Marshal.SizeOf<PoolShape>());
        Assert.Equal(4, (int)Marshal.OffsetOf<FastDivisor>(nameof(FastDivisor.Multiplier)));
        Assert.Equal(48, (int)Marshal.OffsetOf<ConvShape>(nameof(ConvShape.ByPlane)));
        Assert.Equal(28, (int)Marshal.OffsetOf<PoolShape>(nameof(PoolShape.ByInWidth)));
    }
}
