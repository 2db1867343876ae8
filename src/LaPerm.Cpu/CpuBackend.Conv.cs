using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Convolution as GEMM. The forward pass uses DirectConv where output rows hold enough 8-pixel
// segments (the micro-kernel reads the image, or a zero-padded phase-split copy of it, in place
// and writes NCHW output); otherwise the tap-broadcast kernel (y^T = col^T W^T, inputs broadcast
// from the image, see ConvForwardTapBroadcast); the GEMM whose B panels are packed straight
// from the images (implicit im2col, see ConvPanels) plus one [cout, N*P] -> NCHW reshuffle is
// the fallback (no FMA, or int offsets that would overflow). The filter gradient uses
// DirectFilterGradient (taps broadcast from the image, dy transposed once). All of them give
// exactly the GEMM formulation's results (ConvPathTests).
// The data gradient computes column gradients with a GEMM (W^T packed once per call) and
// scatters them back (col2im) in groups of images small enough to stay in cache (measured:
// 16 MiB groups made these passes ~2x slower than 512 KiB groups); each thread runs whole
// groups. Stride-2 col2im adds 8 values at a time into the even lanes of two vectors (blend),
// which took conv7's 5x5 stride-2 data gradient from 22 to 18 ms of CPU time per batch of 128.
// Tried and measured no faster, so not kept: a flipped-kernel convolution for stride-1 data
// gradients, a direct kernel adding column-gradient tiles straight into dx, a phase-split
// vectorised col2im for strided layers, and larger groups.
public sealed partial class CpuBackend
{
    /// <summary>
    /// Upper bound on one group's column-gradient matrix in the data gradient, in floats (default
    /// 128 Ki = 512 KiB, so it stays in L2 between the GEMM and col2im; each thread has its own).
    /// Group sizes follow from it and the geometry only, never from the thread count.
    /// </summary>
    internal int ColumnBudget { get; set; } = 1 << 17;

    /// <summary>
    /// Images per data-gradient group: as many as <see cref="ColumnBudget"/> allows, but at most an
    /// eighth of the batch, so that the threads have groups to share (the grouping never shows in
    /// the results).
    /// </summary>
    private int GroupSize(ConvGeometry g)
    {
        long perImage = (long)g.InChannels * g.KernelHeight * g.KernelWidth * g.OutHeight * g.OutWidth;
        return (int)Math.Clamp(ColumnBudget / Math.Max(perImage, 1), 1, Math.Max(1, (g.Batch + 7) / 8));
    }

    private static ConvShape ShapeOf(ConvGeometry g) =>
        new(g.InChannels, g.InHeight, g.InWidth, g.KernelHeight, g.KernelWidth, g.Stride, g.PadTop, g.PadLeft, g.OutHeight, g.OutWidth);

    public void ConvForward(ConvGeometry g, Tensor<float> x, Tensor<float> w, Tensor<float> y)
    {
        ConvGeometry.Validate(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var yData = Data(y, nameof(y), g.OutputLength);
        ConvForwardCore(g, xData, wData, yData);
    }

    private unsafe void ConvForwardCore(ConvGeometry g, float[] xData, float[] wData, float[] yData)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth, width = g.Batch * p;
        if (DirectConv.Applies(g) && (long)g.Batch * g.InChannels * DirectConv.PhaseSplit.Of(g).Plane < int.MaxValue)
        {
            ConvForwardDirect(g, xData, wData, yData);
            return;
        }
        if (DirectFilterGradient.Applies && ConvForwardTapBroadcast(g, xData, wData, yData)) return;
        var panels = new Im2ColPanels(Address(xData), ShapeOf(g));
        if (g.Batch == 1)
        {
            GemmParallel(false, g.OutChannels, width, k, 1f, wData, 0, panels, 0f, yData, 0);
            GC.KeepAlive(xData);
            return;
        }
        var product = _gathered.Get(g.OutChannels * width);
        GemmParallel(false, g.OutChannels, width, k, 1f, wData, 0, panels, 0f, product, 0);
        // The panels hold x's address only: x must stay reachable until the GEMM is done, or the GC
        // may free its pinned array when the caller holds no other reference.
        GC.KeepAlive(xData);
        // [cout, N*P] -> N images of [cout, P].
        _partition.For(g.Batch, 8, (g, product, yData, width, p), static (s, _, start, end) =>
        {
            for (int n = start; n < end; n++)
                for (int co = 0; co < s.g.OutChannels; co++)
                    s.product.AsSpan(co * s.width + n * s.p, s.p).CopyTo(s.yData.AsSpan((n * s.g.OutChannels + co) * s.p, s.p));
        });
    }

    private unsafe void ConvForwardDirect(ConvGeometry g, float[] xData, float[] wData, float[] yData)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth;
        var packed = _packedWeights.Get(DirectConv.PackedWeightsLength(g.OutChannels, k));
        DirectConv.PackWeights(Address(wData), g.OutChannels, k, Address(packed));
        GC.KeepAlive(wData);   // read through its address only
        var split = DirectConv.PhaseSplit.Of(g);
        var (taps, segmentInput, segmentOutput) = DirectConv.Layout(g, split);
        // Images are independent: the threads share them. An image the kernel cannot read in place is
        // phase-split into the thread's own buffer right before its convolution, while it is in cache.
        _partition.For(g.Batch, 1, (backend: this, g, split, xData, packed, yData, k, taps, segmentInput, segmentOutput),
            static (s, slot, start, end) =>
            {
                var g = s.g;
                int outPixels = g.OutHeight * g.OutWidth, inImage = g.InChannels * g.InHeight * g.InWidth;
                if (DirectConv.ReadsInPlace(g))
                {
                    DirectConv.Forward(Address(s.xData), Address(s.packed), Address(s.yData), g.OutChannels, s.k,
                        inImage, outPixels, s.taps, s.segmentInput, s.segmentOutput, start, end);
                    return;
                }
                var image = s.backend._threadScratch[slot].Image.Get((int)(g.InChannels * s.split.Plane));   // < int.MaxValue: checked by the caller
                for (int n = start; n < end; n++)
                {
                    DirectConv.Split(g, s.split, Address(s.xData) + (long)n * inImage, Address(image), 0, 1);
                    DirectConv.Forward(Address(image), Address(s.packed), Address(s.yData) + (long)n * g.OutChannels * outPixels,
                        g.OutChannels, s.k, 0, outPixels, s.taps, s.segmentInput, s.segmentOutput, 0, 1);
                }
            });
    }

    public unsafe void ConvBackwardData(ConvGeometry g, Tensor<float> dy, Tensor<float> w, Tensor<float> dx)
    {
        ConvGeometry.Validate(g);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var wData = Data(w, nameof(w), g.WeightLength);
        var dxData = Data(dx, nameof(dx), g.InputLength);
        int k = g.InChannels * g.KernelHeight * g.KernelWidth;
        // One image's column gradients are one array (K x P floats): refuse what cannot be one.
        long perImage = (long)k * g.OutHeight * g.OutWidth;
        if (perImage > Array.MaxLength)
            throw new NotSupportedException($"the data gradient of {g} needs {perImage:N0} column floats per image, more than one array holds ({Array.MaxLength:N0})");
        int group = GroupSize(g), groups = (g.Batch + group - 1) / group;
        // W^T is the A of every group's GEMM: packed once (for conv3 packing it per image cost ~30 % of the GEMM).
        long prepackedLength = Sgemm.PrepackedALength(k, g.OutChannels);
        float[]? prepacked = null;
        if (groups > 1 && prepackedLength < int.MaxValue)
        {
            prepacked = _packedWeights.Get((int)prepackedLength);
            Sgemm.PrepackA(true, Address(wData), k, g.OutChannels, Address(prepacked));
        }
        // A group's column gradients and dx images are its own, so the threads share whole groups,
        // each with its own column buffer (sized to stay in that core's L2 between GEMM and col2im).
        _partition.For(groups, 1, (backend: this, g, dyData, wData, dxData, prepacked, group, k), static (s, slot, start, end) =>
        {
            var scratch = s.backend._threadScratch[slot];
            int p = s.g.OutHeight * s.g.OutWidth;
            var columns = scratch.Columns.Get(checked(s.k * s.group * p));
            for (int index = start; index < end; index++)
            {
                int n0 = index * s.group, count = Math.Min(s.group, s.g.Batch - n0), width = count * p;
                float[] gradient = GatherOutputGroup(s.g, s.dyData, n0, count, scratch.Gathered, out int gradientOffset);
                // dcol[K, G*P] = W^T[K, cout] * dy[cout, G*P]; W is stored [cout, K].
                Sgemm.ComputeBlock(true, s.k, width, s.g.OutChannels, 1f, Address(s.wData),
                    new DensePanels(false, Address(gradient) + gradientOffset, width, s.g.OutChannels), 0f, Address(columns),
                    0, s.k, 0, width, scratch.Gemm, s.prepacked is null ? null : Address(s.prepacked));
                for (int i = 0; i < count; i++) Col2Im(s.g, columns, count, i, s.dxData, n0 + i);
            }
        });
    }

    public unsafe void ConvBackwardFilter(ConvGeometry g, Tensor<float> x, Tensor<float> dy, Tensor<float> dw)
    {
        ConvGeometry.Validate(g);
        var xData = Data(x, nameof(x), g.InputLength);
        var dyData = Data(dy, nameof(dy), g.OutputLength);
        var dwData = Data(dw, nameof(dw), g.WeightLength);
        if (DirectFilterGradient.Applies && ConvBackwardFilterDirect(g, xData, dyData, dwData)) return;
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        float[] gradient = GatherOutputGroup(g, dyData, 0, g.Batch, _gathered, out int gradientOffset);
        // dW[cout, K] = dy[cout, N*P] * columns[K, N*P]^T, the columns generated on the fly.
        GemmParallel(false, g.OutChannels, k, g.Batch * p, 1f, gradient, gradientOffset,
            new Im2ColTransposedPanels(Address(xData), ShapeOf(g)), 0f, dwData, 0);
        GC.KeepAlive(xData);   // the panels hold its address only
    }

    /// <summary>
    /// What <see cref="DirectFilterGradient"/>'s kernel reads: x (or a zero-padded copy, so no tap
    /// needs a bounds check), the offset of every tap (ci, ky, kx) in K order and of every output
    /// pixel (n, oy, ox) in N*P order; null when the int offsets or a product of
    /// <paramref name="productColumns"/> floats per row would overflow.
    /// </summary>
    private float[]? PrepareTapBroadcast(ConvGeometry g, float[] xData, long productColumns, out int[] taps, out int[] pixels)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        int paddedHeight = (g.OutHeight - 1) * g.Stride + g.KernelHeight, paddedWidth = (g.OutWidth - 1) * g.Stride + g.KernelWidth;
        bool pad = g.PadTop > 0 || g.PadLeft > 0 || paddedHeight > g.InHeight || paddedWidth > g.InWidth;
        int height = pad ? paddedHeight : g.InHeight, width = pad ? paddedWidth : g.InWidth;
        long imageSize = (long)g.InChannels * height * width;
        long rows = Math.Max((long)g.Batch * p, k) + Sgemm.MR;
        taps = pixels = [];
        if (imageSize * g.Batch >= int.MaxValue || rows * Math.Max(productColumns, Sgemm.NR) >= int.MaxValue) return null;
        float[] source = xData;
        if (pad)
        {
            source = _paddedInput.Get((int)(imageSize * g.Batch));
            _partition.For(g.Batch, 1, (g, xData, source, height, width), static (s, _, start, end) =>
                PadImages(s.g, s.xData, s.source, s.height, s.width, start, end));
        }
        taps = _tapOffsets.Get(k);
        for (int ci = 0, t = 0; ci < g.InChannels; ci++)
            for (int ky = 0; ky < g.KernelHeight; ky++)
                for (int kx = 0; kx < g.KernelWidth; kx++)
                    taps[t++] = (ci * height + ky) * width + kx;
        pixels = _pixelOffsets.Get(g.Batch * p);
        for (int n = 0, j = 0; n < g.Batch; n++)
            for (int oy = 0; oy < g.OutHeight; oy++)
                for (int ox = 0; ox < g.OutWidth; ox++)
                    pixels[j++] = (int)(n * imageSize) + oy * g.Stride * width + ox * g.Stride;
        return source;
    }

    /// <summary>
    /// The forward pass for outputs too narrow for <see cref="DirectConv"/> (conv7's 10-, 4- and
    /// 1-pixel rows), by <see cref="DirectFilterGradient"/>'s kernel with the roles swapped: a C tile
    /// is 6 output pixels x 16 output channels, the 6 pixels' inputs for a tap are broadcast from
    /// the image and 16 channels of W^T loaded, summed over the K taps with the GEMM's k blocks, so
    /// y^T = col^T W^T equals the GEMM's y = W col bit for bit, without packing im2col panels (which
    /// cost about as much as the FMAs for these layers). False (nothing done) when offsets would overflow.
    /// </summary>
    private unsafe bool ConvForwardTapBroadcast(ConvGeometry g, float[] xData, float[] wData, float[] yData)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth, rows = g.Batch * p;
        int panels = (g.OutChannels + Sgemm.NR - 1) / Sgemm.NR, ldc = panels * Sgemm.NR;
        if ((long)panels * k * Sgemm.NR >= int.MaxValue) return false;
        float[]? source = PrepareTapBroadcast(g, xData, ldc, out var taps, out var pixels);
        if (source is null) return false;
        var packed = _packedWeights.Get(panels * k * Sgemm.NR);   // W^T as [panel][K][16], channels past cout zero
        for (int panel = 0; panel < panels; panel++)
            for (int t = 0; t < k; t++)
                for (int j = 0; j < Sgemm.NR; j++)
                {
                    int co = panel * Sgemm.NR + j;
                    packed[(panel * k + t) * Sgemm.NR + j] = co < g.OutChannels ? wData[co * k + t] : 0f;
                }
        int rowTiles = (rows + Sgemm.MR - 1) / Sgemm.MR;
        var product = _columns.Get(rowTiles * Sgemm.MR * ldc);   // y^T [N*P, ldc]
        _partition.For(rowTiles * panels, 1, (source, taps, pixels, rows, packed, k, panels, product), static (s, _, start, end) =>
        {
            fixed (int* tapOffsets = s.taps)
            fixed (int* pixelOffsets = s.pixels)
                DirectFilterGradient.Compute(Address(s.source), tapOffsets, pixelOffsets, s.rows, Address(s.packed), s.k, s.panels,
                    Address(s.product), start, end);
        });
        _partition.For(g.Batch, 8, (g, product, yData, ldc, p), static (s, _, start, end) =>
        {
            for (int n = start; n < end; n++)
                for (int co = 0; co < s.g.OutChannels; co++)
                {
                    var target = s.yData.AsSpan((n * s.g.OutChannels + co) * s.p, s.p);
                    for (int pix = 0; pix < s.p; pix++) target[pix] = s.product[(n * s.p + pix) * s.ldc + co];
                }
        });
        return true;
    }

    /// <summary>The filter gradient by <see cref="DirectFilterGradient"/>; false (nothing done) when its int offsets would overflow.</summary>
    private unsafe bool ConvBackwardFilterDirect(ConvGeometry g, float[] xData, float[] dyData, float[] dwData)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth;
        int panels = (g.OutChannels + Sgemm.NR - 1) / Sgemm.NR, tapTiles = (k + Sgemm.MR - 1) / Sgemm.MR, ldc = panels * Sgemm.NR;
        float[]? source = PrepareTapBroadcast(g, xData, ldc, out var taps, out var pixels);
        if (source is null) return false;
        int columns = g.Batch * p;
        var transposed = _gathered.Get(panels * columns * Sgemm.NR);
        _partition.For(g.Batch, 8, (g, dyData, transposed, p), static (s, _, start, end) =>
            DirectFilterGradient.TransposeOutputGradient(Address(s.dyData), Address(s.transposed), s.g.OutChannels, s.p, s.g.Batch, start, end));
        var product = _columns.Get(tapTiles * Sgemm.MR * ldc);
        // Blocks of consecutive tiles: a block streams all of dy^T once and reuses each k block of it
        // across its tiles from L1, so a few large blocks (two per thread) beat many small ones.
        int tiles = tapTiles * panels;
        _partition.For(tiles, (tiles + 2 * Threads - 1) / (2 * Threads), (source, pixels, taps, k, transposed, columns, panels, product), static (s, _, start, end) =>
        {
            fixed (int* pixelOffsets = s.pixels)
            fixed (int* tapOffsets = s.taps)
                DirectFilterGradient.Compute(Address(s.source), pixelOffsets, tapOffsets, s.k, Address(s.transposed), s.columns, s.panels,
                    Address(s.product), start, end);
        });
        for (int co = 0; co < g.OutChannels; co++)
            for (int t = 0; t < k; t++)
                dwData[co * k + t] = product[t * ldc + co];
        return true;
    }

    /// <summary>Images [start, end) of x into [N, C, height, width] with the convolution's zero padding around them.</summary>
    private static void PadImages(ConvGeometry g, float[] xData, float[] padded, int height, int width, int start, int end)
    {
        for (int n = start; n < end; n++)
            for (int ci = 0; ci < g.InChannels; ci++)
            {
                var plane = xData.AsSpan(((n * g.InChannels) + ci) * g.InHeight * g.InWidth, g.InHeight * g.InWidth);
                var target = padded.AsSpan(((n * g.InChannels) + ci) * height * width, height * width);
                target.Clear();
                for (int r = 0; r < height; r++)
                {
                    int iy = r - g.PadTop;
                    if ((uint)iy >= (uint)g.InHeight) continue;
                    int from = Math.Max(0, g.PadLeft), to = Math.Min(width, g.InWidth + g.PadLeft);   // target columns with an input column
                    if (to > from) plane.Slice(iy * g.InWidth + from - g.PadLeft, to - from).CopyTo(target.Slice(r * width + from, to - from));
                }
            }
    }

    /// <summary>dy of images [n0, n0+count) as one [cout, count*P] matrix in <paramref name="buffer"/> (a view of dy itself for one image).</summary>
    private static float[] GatherOutputGroup(ConvGeometry g, float[] dyData, int n0, int count, ScratchBuffer buffer, out int offset)
    {
        int p = g.OutHeight * g.OutWidth;
        if (count == 1)
        {
            offset = n0 * g.OutChannels * p;
            return dyData;
        }
        int width = count * p;
        var gathered = buffer.Get(g.OutChannels * width);
        for (int i = 0; i < count; i++)
            for (int co = 0; co < g.OutChannels; co++)
                dyData.AsSpan(((n0 + i) * g.OutChannels + co) * p, p).CopyTo(gathered.AsSpan(co * width + i * p, p));
        offset = 0;
        return gathered;
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
                        else if (g.Stride == 2 && Avx.IsSupported)
                        {
                            AddStride2(target, values, count);
                        }
                        else
                        {
                            for (int t = 0; t < count; t++) target[t * g.Stride] += values[t];
                        }
                    }
                }
            }
        }
        GC.KeepAlive(dxData);   // written through raw addresses only
        GC.KeepAlive(columns);
    }

    /// <summary>
    /// target[2t] += values[t] for t &lt; count, 8 values per step: the values are spread to the even
    /// lanes of two vectors and the sums blended into the even lanes only, so every target gets
    /// exactly the scalar sum and the odd ones are stored back unchanged. A vector step runs only
    /// while the last odd lane it touches lies before the last target (never past the array).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AddStride2(float* target, float* values, int count)
    {
        int t = 0;
        for (; t + 8 < count; t += 8)
        {
            var v = Avx.LoadVector256(values + t);
            var low = Avx.UnpackLow(v, Vector256<float>.Zero);     // v0 0 v1 0 | v4 0 v5 0
            var high = Avx.UnpackHigh(v, Vector256<float>.Zero);   // v2 0 v3 0 | v6 0 v7 0
            float* at = target + 2 * t;
            var t0 = Avx.LoadVector256(at);
            var t1 = Avx.LoadVector256(at + 8);
            Avx.Store(at, Avx.Blend(t0, t0 + Avx.Permute2x128(low, high, 0x20), 0x55));
            Avx.Store(at + 8, Avx.Blend(t1, t1 + Avx.Permute2x128(low, high, 0x31), 0x55));
        }
        for (; t < count; t++) target[2 * t] += values[t];
    }
}
