using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Convolution as GEMM. The forward pass and the filter gradient run one GEMM over the whole
// batch whose B panels are packed straight from the images (implicit im2col, see
// ConvPanels): the column matrix [K = cin*kh*kw, N*P] (P = outH*outW) is never written, and
// the only extra traffic is one [cout, N*P] <-> NCHW reshuffle. The data gradient computes
// column gradients with a GEMM and scatters them back (col2im) in groups of images small
// enough to stay in cache (measured: 16 MiB groups made these passes ~2x slower than 512 KiB
// groups). A flipped-kernel convolution for stride-1 data gradients was tried and measured
// slower than GEMM + cached col2im, so there is one path.
public sealed partial class CpuBackend
{
    /// <summary>
    /// Upper bound on one group's column-gradient matrix in the data gradient, in floats (default
    /// 128 Ki = 512 KiB, so it stays in L2 between the GEMM and col2im). Group sizes follow from
    /// it and the geometry only, never from the thread count.
    /// </summary>
    internal int ColumnBudget { get; set; } = 1 << 17;

    private static void CheckGeometry(ConvGeometry g)
    {
        ArgumentNullException.ThrowIfNull(g);
        if (g.Batch <= 0 || g.InChannels <= 0 || g.OutChannels <= 0 || g.KernelHeight <= 0 || g.KernelWidth <= 0 ||
            g.Stride <= 0 || g.OutHeight <= 0 || g.OutWidth <= 0 || g.PadTop < 0 || g.PadLeft < 0)
            throw new ArgumentException($"invalid convolution geometry {g}");
    }

    private int GroupSize(ConvGeometry g)
    {
        long perImage = (long)g.InChannels * g.KernelHeight * g.KernelWidth * g.OutHeight * g.OutWidth;
        return (int)Math.Clamp(ColumnBudget / Math.Max(perImage, 1), 1, g.Batch);
    }

    private static ConvShape ShapeOf(ConvGeometry g) =>
        new(g.InChannels, g.InHeight, g.InWidth, g.KernelHeight, g.KernelWidth, g.Stride, g.PadTop, g.PadLeft, g.OutHeight, g.OutWidth);

    public void ConvForward(ConvGeometry g, Tensor<float> x, Tensor<float> w, Tensor<float> y)
    {
        CheckGeometry(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var yData = Data(y, nameof(y), g.OutputLength);
        ConvForwardCore(g, xData, wData, yData);
    }

    private unsafe void ConvForwardCore(ConvGeometry g, float[] xData, float[] wData, float[] yData)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth, width = g.Batch * p;
        var panels = new Im2ColPanels(Address(xData), ShapeOf(g));
        if (g.Batch == 1)
        {
            GemmParallel(false, g.OutChannels, width, k, 1f, wData, 0, panels, 0f, yData, 0);
            return;
        }
        var product = _gathered.Get(g.OutChannels * width);
        GemmParallel(false, g.OutChannels, width, k, 1f, wData, 0, panels, 0f, product, 0);
        // [cout, N*P] -> N images of [cout, P].
        _partition.For(g.Batch, 8, (g, product, yData, width, p), static (s, _, start, end) =>
        {
            for (int n = start; n < end; n++)
                for (int co = 0; co < s.g.OutChannels; co++)
                    s.product.AsSpan(co * s.width + n * s.p, s.p).CopyTo(s.yData.AsSpan((n * s.g.OutChannels + co) * s.p, s.p));
        });
    }

    public void ConvBackwardData(ConvGeometry g, Tensor<float> dy, Tensor<float> w, Tensor<float> dx)
    {
        CheckGeometry(g);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var dxData = Data(dx, nameof(dx), g.InputLength);
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        int group = GroupSize(g);
        var columns = _columns.Get(k * group * p);
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            int width = count * p;
            float[] gradient = GatherOutputGroup(g, dyData, n0, count, out int gradientOffset);
            // dcol[K, G*P] = W^T[K, cout] * dy[cout, G*P]; W is stored [cout, K].
            GemmParallel(true, false, k, width, g.OutChannels, 1f, wData, 0, gradient, gradientOffset, 0f, columns, 0);
            Col2ImGroup(g, columns, n0, count, dxData);
        }
    }

    public unsafe void ConvBackwardFilter(ConvGeometry g, Tensor<float> x, Tensor<float> dy, Tensor<float> dw)
    {
        CheckGeometry(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var dwData = Data(dw, nameof(dw), g.WeightLength);
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        float[] gradient = GatherOutputGroup(g, dyData, 0, g.Batch, out int gradientOffset);
        // dW[cout, K] = dy[cout, N*P] * columns[K, N*P]^T, the columns generated on the fly.
        GemmParallel(false, g.OutChannels, k, g.Batch * p, 1f, gradient, gradientOffset,
            new Im2ColTransposedPanels(Address(xData), ShapeOf(g)), 0f, dwData, 0);
    }

    /// <summary>dy of images [n0, n0+count) as one [cout, count*P] matrix (a view of dy itself for one image).</summary>
    private float[] GatherOutputGroup(ConvGeometry g, float[] dyData, int n0, int count, out int offset)
    {
        int p = g.OutHeight * g.OutWidth;
        if (count == 1)
        {
            offset = n0 * g.OutChannels * p;
            return dyData;
        }
        int width = count * p;
        var gathered = _gathered.Get(g.OutChannels * width);
        for (int i = 0; i < count; i++)
            for (int co = 0; co < g.OutChannels; co++)
                dyData.AsSpan(((n0 + i) * g.OutChannels + co) * p, p).CopyTo(gathered.AsSpan(co * width + i * p, p));
        offset = 0;
        return gathered;
    }

    private void Col2ImGroup(ConvGeometry g, float[] columns, int n0, int count, float[] dxData)
    {
        _partition.For(count, 1, (g, columns, n0, count, dxData), static (s, _, start, end) =>
        {
            for (int i = start; i < end; i++) Col2Im(s.g, s.columns, s.count, i, s.dxData, s.n0 + i);
        });
    }

    /// <summary>
    /// Valid output columns [lo, hi) for kernel column kx: those whose input column
    /// ox*stride - padLeft + kx lies inside [0, inWidth).
    /// </summary>
    private static (int Lo, int Hi) ValidRange(int outSize, int inSize, int stride, int pad, int kernelOffset)
    {
        int shift = kernelOffset - pad;                       // input = o*stride + shift
        int lo = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
        int hi = inSize - shift <= 0 ? 0 : Math.Min(outSize, (inSize - shift + stride - 1) / stride);
        return (lo, Math.Max(lo, hi));
    }

    /// <summary>dx[n] = 0, then adds the columns of image slot back, kernel position by kernel position (fixed order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Col2Im(ConvGeometry g, float[] columns, int groupCount, int slot, float[] dxData, int n)
    {
        int p = g.OutHeight * g.OutWidth, rowStride = groupCount * p;
        int inPlane = g.InHeight * g.InWidth;
        dxData.AsSpan(n * g.InChannels * inPlane, g.InChannels * inPlane).Clear();
        float* dx = Address(dxData) + (long)n * g.InChannels * inPlane;
        float* image = Address(columns) + (long)slot * p;
        int row = 0;
        for (int ci = 0; ci < g.InChannels; ci++)
        {
            float* plane = dx + (long)ci * inPlane;
            for (int ky = 0; ky < g.KernelHeight; ky++)
            {
                var (oyLo, oyHi) = ValidRange(g.OutHeight, g.InHeight, g.Stride, g.PadTop, ky);
                for (int kx = 0; kx < g.KernelWidth; kx++, row++)
                {
                    var (oxLo, oxHi) = ValidRange(g.OutWidth, g.InWidth, g.Stride, g.PadLeft, kx);
                    int count = oxHi - oxLo;
                    if (count <= 0) continue;
                    float* source = image + (long)row * rowStride;
                    for (int oy = oyLo; oy < oyHi; oy++)
                    {
                        float* target = plane + (oy * g.Stride - g.PadTop + ky) * g.InWidth + oxLo * g.Stride - g.PadLeft + kx;
                        float* values = source + oy * g.OutWidth + oxLo;
                        if (g.Stride == 1)
                        {
                            // Each dx element still receives its contributions in (ci, ky, kx, oy) order.
                            int t = 0;
                            for (; t <= count - 8; t += 8) Vector256.Store(Vector256.Load(target + t) + Vector256.Load(values + t), target + t);
                            for (; t < count; t++) target[t] += values[t];
                        }
                        else
                        {
                            for (int t = 0; t < count; t++) target[t * g.Stride] += values[t];
                        }
                    }
                }
            }
        }
    }
}
