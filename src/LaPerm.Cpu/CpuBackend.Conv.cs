using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Convolution as GEMM over the whole batch. The column matrix [K = cin*kh*kw, N*P]
// (P = outH*outW) is never materialised for the forward pass and the filter gradient: the
// GEMM packs its B panels straight from the images (implicit im2col, see ConvPanels), so
// the only memory traffic besides the GEMM is one [cout, N*P] -> NCHW reshuffle.
// The data gradient of a stride-1 convolution is itself a stride-1 convolution of dy with
// the flipped, transposed kernel and goes the same way; strided convolutions use
// GEMM + col2im over groups of images whose size depends on the geometry only.
public sealed partial class CpuBackend
{
    /// <summary>
    /// Upper bound on one group's column matrix in the strided data gradient, in floats (default
    /// 4 Mi = 16 MiB). Group sizes follow from it and the geometry only; tests lower it to
    /// exercise multi-group batches.
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

    /// <summary>
    /// The flipped-kernel convolution does IH*IW / (OH*OW) times the multiply-adds of GEMM + col2im
    /// (it also multiplies the zero padding): worth it only while that ratio is small.
    /// </summary>
    internal double FlippedConvolutionMaxGrowth { get; set; } = 1.3;

    public void ConvBackwardData(ConvGeometry g, Tensor<float> dy, Tensor<float> w, Tensor<float> dx)
    {
        CheckGeometry(g);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var dxData = Data(dx, nameof(dx), g.InputLength);
        if (g.Stride == 1 && g.InHeight * g.InWidth <= FlippedConvolutionMaxGrowth * g.OutHeight * g.OutWidth)
        {
            // dx[ci, iy, ix] = sum dy[co, iy + padTop - ky, ix + padLeft - kx] w[co, ci, ky, kx]: a stride-1
            // convolution of dy (cout channels) with w'[ci, co, ky', kx'] = w[co, ci, kh-1-ky', kw-1-kx'] and
            // padding kh-1-padTop / kw-1-padLeft (out-of-range taps read 0, so any bottom/right padding is implied).
            var flipped = _flipped.Get(g.WeightLength);
            int area = g.KernelHeight * g.KernelWidth;
            for (int co = 0; co < g.OutChannels; co++)
                for (int ci = 0; ci < g.InChannels; ci++)
                {
                    var source = wData.AsSpan((co * g.InChannels + ci) * area, area);
                    var target = flipped.AsSpan((ci * g.OutChannels + co) * area, area);
                    for (int t = 0; t < area; t++) target[area - 1 - t] = source[t];
                }
            var transposed = new ConvGeometry(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth, g.InChannels, g.KernelHeight, g.KernelWidth,
                1, g.KernelHeight - 1 - g.PadTop, g.KernelWidth - 1 - g.PadLeft, g.InHeight, g.InWidth);
            ConvForwardCore(transposed, dyData, flipped, dxData);
            return;
        }
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
