using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// A pooling as cuDNN describes it: NCHW input, a window and stride per dimension, no padding.
/// Window pools come from a <see cref="PoolGeometry"/>; the global average pool over S spatial
/// positions is a 1 x S window over a 1 x S image.
/// </summary>
public sealed record PoolingWindow(CudnnPoolingMode Mode, int Batch, int Channels, int InHeight, int InWidth,
    int WindowHeight, int WindowWidth, int StrideHeight, int StrideWidth, int OutHeight, int OutWidth)
{
    public static PoolingWindow From(PoolGeometry g, CudnnPoolingMode mode)
    {
        ArgumentNullException.ThrowIfNull(g);
        return new(mode, g.Batch, g.Channels, g.InHeight, g.InWidth, g.Window, g.Window, g.Stride, g.Stride, g.OutHeight, g.OutWidth);
    }

    public static PoolingWindow Global(int batch, int channels, int spatial) =>
        new(CudnnPoolingMode.Average, batch, channels, 1, spatial, 1, spatial, 1, spatial, 1, 1);

    public bool IsGlobal => Mode == CudnnPoolingMode.Average && InHeight == 1 && WindowHeight == 1 && WindowWidth == InWidth && OutHeight == 1 && OutWidth == 1;

    /// <summary>The square window pool this is (throws for a global pool or a non-square window).</summary>
    public PoolGeometry ToGeometry() =>
        WindowHeight == WindowWidth && StrideHeight == StrideWidth
            ? new PoolGeometry(Batch, Channels, InHeight, InWidth, WindowHeight, StrideHeight, OutHeight, OutWidth)
            : throw new NotSupportedException($"{this} is not a square window pool");

    public long InputLength => (long)Batch * Channels * InHeight * InWidth;
    public long OutputLength => (long)Batch * Channels * OutHeight * OutWidth;
}

/// <summary>The [N, C, S] view of a batch-norm's input (statistics per channel over N and S).</summary>
public readonly record struct BatchNormShape(int Batch, int Channels, int Spatial)
{
    public long Length => (long)Batch * Channels * Spatial;
}
