using System.Runtime.InteropServices;
using LaPerm.Core.Backend;

namespace LaPerm.Cuda.Backend;

/// <summary>Mirrors <c>struct PoolShape</c> in cuda/kernels/pool.cu (passed by value).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct PoolShape(int Planes, int InHeight, int InWidth, int Window, int Stride, int OutHeight, int OutWidth)
{
    public static PoolShape From(PoolGeometry g) => new(g.Batch * g.Channels, g.InHeight, g.InWidth, g.Window, g.Stride, g.OutHeight, g.OutWidth);
}

/// <summary>Mirrors <c>struct ConvShape</c> in cuda/kernels/im2col.cu: images [First, First + Count) of a convolution.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct ConvShape(int First, int Count, int Channels, int Height, int Width,
    int KernelHeight, int KernelWidth, int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth)
{
    public static ConvShape From(ConvGeometry g, int first, int count) =>
        new(first, count, g.InChannels, g.InHeight, g.InWidth, g.KernelHeight, g.KernelWidth, g.Stride, g.PadTop, g.PadLeft, g.OutHeight, g.OutWidth);
}
