using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Convolution as im2col + GEMM. Images are processed in groups whose size depends only on
// the geometry (never on the thread count): a group's columns form one [K, G*P] matrix
// (K = cin*kh*kw, P = outH*outW), so one GEMM covers G images even when P is tiny
// (the last conv7 layer has P = 1). im2col/col2im run in parallel over the images of a
// group; the GEMMs run in parallel over output tiles.
public sealed partial class CpuBackend
{
    /// <summary>
    /// Upper bound on one group's column matrix, in floats (default 4 Mi = 16 MiB). Group sizes
    /// follow from it and the geometry only; tests lower it to exercise multi-group batches.
    /// </summary>
    internal int ColumnBudget { get; set; } = 4 << 20;

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

    public void ConvForward(ConvGeometry g, Tensor<float> x, Tensor<float> w, Tensor<float> y)
    {
        CheckGeometry(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var yData = Data(y, nameof(y), g.OutputLength);
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        int group = GroupSize(g);
        var columns = _columns.Get(k * group * p);
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            int width = count * p;
            Im2ColGroup(g, xData, n0, count, columns);
            if (count == 1)
            {
                GemmParallel(false, false, g.OutChannels, width, k, 1f, wData, 0, columns, 0, 0f, yData, n0 * g.OutChannels * p);
                continue;
            }
            var product = _gathered.Get(g.OutChannels * width);
            GemmParallel(false, false, g.OutChannels, width, k, 1f, wData, 0, columns, 0, 0f, product, 0);
            // [cout, G*P] -> G images of [cout, P].
            for (int i = 0; i < count; i++)
                for (int co = 0; co < g.OutChannels; co++)
                    product.AsSpan(co * width + i * p, p).CopyTo(yData.AsSpan(((n0 + i) * g.OutChannels + co) * p, p));
        }
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

    public void ConvBackwardFilter(ConvGeometry g, Tensor<float> x, Tensor<float> dy, Tensor<float> dw)
    {
        CheckGeometry(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var dwData = Data(dw, nameof(dw), g.WeightLength);
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        int group = GroupSize(g);
        var columns = _columns.Get(k * group * p);
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            int width = count * p;
            Im2ColGroup(g, xData, n0, count, columns);
            float[] gradient = GatherOutputGroup(g, dyData, n0, count, out int gradientOffset);
            // dW[cout, K] (+)= dy[cout, G*P] * col[K, G*P]^T.
            GemmParallel(false, true, g.OutChannels, k, width, 1f, gradient, gradientOffset, columns, 0, n0 == 0 ? 0f : 1f, dwData, 0);
        }
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

    private void Im2ColGroup(ConvGeometry g, float[] xData, int n0, int count, float[] columns)
    {
        _partition.For(count, 1, (g, xData, n0, count, columns), static (s, _, start, end) =>
        {
            for (int i = start; i < end; i++) Im2Col(s.g, s.xData, s.n0 + i, s.columns, s.count, i);
        });
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

    /// <summary>Writes image n's columns into rows of the [K, groupCount*P] matrix at column offset slot*P.</summary>
    private static void Im2Col(ConvGeometry g, float[] xData, int n, float[] columns, int groupCount, int slot)
    {
        int p = g.OutHeight * g.OutWidth, rowStride = groupCount * p;
        int inPlane = g.InHeight * g.InWidth;
        var x = xData.AsSpan(n * g.InChannels * inPlane, g.InChannels * inPlane);
        int row = 0;
        for (int ci = 0; ci < g.InChannels; ci++)
        {
            var plane = x.Slice(ci * inPlane, inPlane);
            for (int ky = 0; ky < g.KernelHeight; ky++)
            {
                var (oyLo, oyHi) = ValidRange(g.OutHeight, g.InHeight, g.Stride, g.PadTop, ky);
                for (int kx = 0; kx < g.KernelWidth; kx++, row++)
                {
                    var (oxLo, oxHi) = ValidRange(g.OutWidth, g.InWidth, g.Stride, g.PadLeft, kx);
                    var dest = columns.AsSpan(row * rowStride + slot * p, p);
                    for (int oy = 0; oy < g.OutHeight; oy++)
                    {
                        var outRow = dest.Slice(oy * g.OutWidth, g.OutWidth);
                        if (oy < oyLo || oy >= oyHi || oxLo >= oxHi)
                        {
                            outRow.Clear();
                            continue;
                        }
                        int iy = oy * g.Stride - g.PadTop + ky;
                        var inRow = plane.Slice(iy * g.InWidth, g.InWidth);
                        outRow[..oxLo].Clear();
                        outRow[oxHi..].Clear();
                        int ix0 = oxLo * g.Stride - g.PadLeft + kx;
                        if (g.Stride == 1)
                        {
                            inRow.Slice(ix0, oxHi - oxLo).CopyTo(outRow[oxLo..oxHi]);
                        }
                        else
                        {
                            for (int ox = oxLo, ix = ix0; ox < oxHi; ox++, ix += g.Stride) outRow[ox] = inRow[ix];
                        }
                    }
                }
            }
        }
    }

    /// <summary>dx[n] = 0, then adds the columns of image slot back, kernel position by kernel position (fixed order).</summary>
    private static void Col2Im(ConvGeometry g, float[] columns, int groupCount, int slot, float[] dxData, int n)
    {
        int p = g.OutHeight * g.OutWidth, rowStride = groupCount * p;
        int inPlane = g.InHeight * g.InWidth;
        var dx = dxData.AsSpan(n * g.InChannels * inPlane, g.InChannels * inPlane);
        dx.Clear();
        int row = 0;
        for (int ci = 0; ci < g.InChannels; ci++)
        {
            var plane = dx.Slice(ci * inPlane, inPlane);
            for (int ky = 0; ky < g.KernelHeight; ky++)
            {
                var (oyLo, oyHi) = ValidRange(g.OutHeight, g.InHeight, g.Stride, g.PadTop, ky);
                for (int kx = 0; kx < g.KernelWidth; kx++, row++)
                {
                    var (oxLo, oxHi) = ValidRange(g.OutWidth, g.InWidth, g.Stride, g.PadLeft, kx);
                    if (oxLo >= oxHi) continue;
                    var src = columns.AsSpan(row * rowStride + slot * p, p);
                    for (int oy = oyLo; oy < oyHi; oy++)
                    {
                        int iy = oy * g.Stride - g.PadTop + ky;
                        var inRow = plane.Slice(iy * g.InWidth, g.InWidth);
                        var colRow = src.Slice(oy * g.OutWidth, g.OutWidth);
                        for (int ox = oxLo, ix = oxLo * g.Stride - g.PadLeft + kx; ox < oxHi; ox++, ix += g.Stride)
                            inRow[ix] += colRow[ox];
                    }
                }
            }
        }
    }
}
