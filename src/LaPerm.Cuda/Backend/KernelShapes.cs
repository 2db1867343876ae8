using System.Runtime.InteropServices;
using LaPerm.Core.Backend;

namespace LaPerm.Cuda.Backend;

/// <summary>
/// Mirrors <c>struct lp_divisor</c> in cuda/include/laperm/fast_divide.cuh: division by a divisor
/// fixed for a launch as <c>(umulhi(n, Multiplier) + n) &gt;&gt; Shift</c>, exact for every
/// 0 &lt;= n &lt; 2^31 (Granlund and Montgomery). A GPU has no integer divider, so the index
/// arithmetic of our elementwise kernels divides by these instead of by plain ints.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct FastDivisor
{
    /// <summary>The largest divisor (and the bound on dividends) the identity holds for.</summary>
    public const long Limit = 1L << 31;

    public readonly uint Divisor, Multiplier, Shift;

    private FastDivisor(uint divisor, uint multiplier, uint shift) => (Divisor, Multiplier, Shift) = (divisor, multiplier, shift);

    public static FastDivisor Of(long divisor)
    {
        if (divisor < 1 || divisor > Limit)
            throw new ArgumentOutOfRangeException(nameof(divisor), divisor, $"a fast divisor must be 1 .. {Limit}");
        int shift = 0;
        while ((1L << shift) < divisor) shift++;
        // floor(2^32 (2^shift - d) / d) + 1 < 2^32, because 2^(shift - 1) < d.
        ulong multiplier = (ulong)((1L << shift) - divisor) * (1UL << 32) / (ulong)divisor + 1;
        return new((uint)divisor, (uint)multiplier, (uint)shift);
    }

    /// <summary>The device's arithmetic, step for step in 32 bits (for tests and host-side checks).</summary>
    public uint Divide(uint n) => unchecked((uint)(((ulong)n * Multiplier) >> 32) + n) >> (int)Shift;
}

/// <summary>Mirrors <c>struct PoolShape</c> in cuda/kernels/pool.cu (passed by value): 7 ints, then the divisors of the index arithmetic.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct PoolShape
{
    public readonly int Planes, InHeight, InWidth, Window, Stride, OutHeight, OutWidth;
    public readonly FastDivisor ByInWidth, ByInHeight, ByOutWidth, ByOutHeight, ByStride;

    private PoolShape(int planes, int inHeight, int inWidth, int window, int stride, int outHeight, int outWidth)
    {
        (Planes, InHeight, InWidth, Window, Stride, OutHeight, OutWidth) = (planes, inHeight, inWidth, window, stride, outHeight, outWidth);
        (ByInWidth, ByInHeight) = (FastDivisor.Of(inWidth), FastDivisor.Of(inHeight));
        (ByOutWidth, ByOutHeight, ByStride) = (FastDivisor.Of(outWidth), FastDivisor.Of(outHeight), FastDivisor.Of(stride));
    }

    public static PoolShape From(PoolGeometry g) => new(g.Batch * g.Channels, g.InHeight, g.InWidth, g.Window, g.Stride, g.OutHeight, g.OutWidth);
}

/// <summary>
/// Mirrors <c>struct ConvShape</c> in cuda/kernels/im2col.cu (passed by value): images
/// [First, First + Count) of a convolution, 12 ints, then the divisors of the index arithmetic.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct ConvShape
{
    public readonly int First, Count, Channels, Height, Width, KernelHeight, KernelWidth, Stride, PadTop, PadLeft, OutHeight, OutWidth;
    public readonly FastDivisor ByPlane, ByCount, ByKernelWidth, ByKernelHeight, ByOutWidth, ByWidth, ByHeight, ByChannels, ByStride;

    private ConvShape(ConvGeometry g, int first, int count)
    {
        (First, Count, Channels, Height, Width) = (first, count, g.InChannels, g.InHeight, g.InWidth);
        (KernelHeight, KernelWidth, Stride, PadTop, PadLeft) = (g.KernelHeight, g.KernelWidth, g.Stride, g.PadTop, g.PadLeft);
        (OutHeight, OutWidth) = (g.OutHeight, g.OutWidth);
        ByPlane = FastDivisor.Of((long)g.OutHeight * g.OutWidth);
        (ByCount, ByKernelWidth, ByKernelHeight, ByOutWidth) = (FastDivisor.Of(count), FastDivisor.Of(g.KernelWidth), FastDivisor.Of(g.KernelHeight), FastDivisor.Of(g.OutWidth));
        (ByWidth, ByHeight, ByChannels, ByStride) = (FastDivisor.Of(g.InWidth), FastDivisor.Of(g.InHeight), FastDivisor.Of(g.InChannels), FastDivisor.Of(g.Stride));
    }

    public static ConvShape From(ConvGeometry g, int first, int count) => new(g, first, count);
}
