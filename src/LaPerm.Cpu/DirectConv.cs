using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LaPerm.Cpu;

/// <summary>
/// Forward convolution without packing the image side (a direct implicit GEMM). A C tile is
/// 6 output channels x two segments of 8 consecutive output pixels of one output row each;
/// for a 'valid' stride-1 convolution the 8 inputs of a segment for one kernel tap are 8
/// consecutive floats of one input row, so the micro-kernel loads B straight from the image
/// (tap k at segment base + tapOffset[k]) and writes its results straight into the NCHW
/// output. This removes the B packing (the im2col gather), which cost as much as the FMAs
/// for the 32-channel layers, and the [cout, N*P] -> NCHW reshuffle.
///
/// An output row of width W is covered by segments starting at 0, 8, ... and, when W is not
/// a multiple of 8, one more at W - 8 that overlaps its neighbour; overlapping segments
/// compute the same values with the same arithmetic, so which one is stored last does not
/// matter.
///
/// Rounding is the GEMM's exactly (see <see cref="Sgemm"/>): the same 6 x 16 FMA chain per
/// element, k cut into the same equal blocks of at most KC, the first block stored, later
/// blocks added to the stored value. The results are bit-identical to the GEMM path and do
/// not depend on how images are split between threads.
/// </summary>
internal static unsafe class DirectConv
{
    private const int MR = Sgemm.MR, Segment = 8;

    /// <summary>
    /// Whether the direct path applies and pays: FMA present, output rows of at least 8 pixels,
    /// and the overlapping last segment of a row wasting at most 32 multiply-adds per output
    /// pixel (K x wasted / used pixels). Otherwise the tap-broadcast kernel (the forward pass by
    /// <see cref="DirectFilterGradient"/>) is faster: measured on conv7 at batch 128, one thread,
    /// CPU time: the 5x5/2 layer (rows of 12, K = 800) 17.5 -> 13.1 ms; the first layer (rows of
    /// 26, K = 9) stays direct, 1.3 ms against 4.0 ms.
    /// </summary>
    public static bool Applies(LaPerm.Core.Backend.ConvGeometry g)
    {
        if (!Fma.IsSupported || g.OutWidth < Segment) return false;
        int segmentsPerRow = (g.OutWidth + Segment - 1) / Segment;
        long k = (long)g.InChannels * g.KernelHeight * g.KernelWidth;
        return k * (segmentsPerRow * Segment - g.OutWidth) <= 32L * g.OutWidth;
    }

    /// <summary>
    /// Whether the input can be read in place: stride 1 and every tap of every output inside
    /// the image. Otherwise the direct path reads a <see cref="PhaseSplit"/> copy.
    /// </summary>
    public static bool ReadsInPlace(LaPerm.Core.Backend.ConvGeometry g) =>
        g.Stride == 1 && g.PadTop == 0 && g.PadLeft == 0 &&
        g.OutHeight - 1 + g.KernelHeight <= g.InHeight && g.OutWidth - 1 + g.KernelWidth <= g.InWidth;

    /// <summary>
    /// The layout the direct path reads: [C][rows][stride phases][phase length], where padded
    /// row r is input row r - padTop and element t of phase q is input column t*stride + q -
    /// padLeft (zero outside the image). The 8 inputs of a segment for tap (ky, kx) are then
    /// consecutive: row oy*stride + ky, phase kx % stride, from ox + kx / stride. For an
    /// in-place read this is the image itself (1 phase, rows and length of the image).
    /// </summary>
    public readonly record struct PhaseSplit(int Rows, int Phases, int Length)
    {
        /// <summary>Floats per channel (in long: a large stride makes it exceed int before any guard sees it).</summary>
        public long Plane => (long)Rows * Phases * Length;

        public static PhaseSplit Of(LaPerm.Core.Backend.ConvGeometry g) => ReadsInPlace(g)
            ? new PhaseSplit(g.InHeight, 1, g.InWidth)
            : new PhaseSplit((g.OutHeight - 1) * g.Stride + g.KernelHeight, g.Stride, g.OutWidth + (g.KernelWidth - 1) / g.Stride);
    }

    /// <summary>Writes images [start, end) of x in the <paramref name="split"/> layout.</summary>
    public static void Split(LaPerm.Core.Backend.ConvGeometry g, PhaseSplit split, float* x, float* dest, int start, int end)
    {
        int inPlane = g.InHeight * g.InWidth;
        for (int n = start; n < end; n++)
            for (int ci = 0; ci < g.InChannels; ci++)
            {
                float* plane = x + ((long)n * g.InChannels + ci) * inPlane;
                float* target = dest + ((long)n * g.InChannels + ci) * split.Plane;
                for (int r = 0; r < split.Rows; r++)
                {
                    int iy = r - g.PadTop;
                    for (int q = 0; q < split.Phases; q++)
                    {
                        float* row = target + ((long)r * split.Phases + q) * split.Length;
                        if ((uint)iy >= (uint)g.InHeight)
                        {
                            for (int t = 0; t < split.Length; t++) row[t] = 0f;
                            continue;
                        }
                        float* source = plane + iy * g.InWidth;
                        for (int t = 0, ix = q - g.PadLeft; t < split.Length; t++, ix += g.Stride)
                            row[t] = (uint)ix < (uint)g.InWidth ? source[ix] : 0f;
                    }
                }
            }
    }

    /// <summary>Number of floats <see cref="PackWeights"/> writes for a [cout, k] kernel.</summary>
    public static int PackedWeightsLength(int cout, int k) => checked((cout + MR - 1) / MR * MR * k);

    /// <summary>Packs W [cout, k] into MR-row panels [tile][k][MR], rows past cout zero.</summary>
    public static void PackWeights(float* w, int cout, int k, float* dest)
    {
        for (int tile = 0; tile * MR < cout; tile++)
        {
            float* panel = dest + (long)tile * k * MR;
            for (int r = 0; r < MR; r++)
            {
                int row = tile * MR + r;
                if (row < cout)
                {
                    float* source = w + (long)row * k;
                    for (int p = 0; p < k; p++) panel[p * MR + r] = source[p];
                }
                else
                {
                    for (int p = 0; p < k; p++) panel[p * MR + r] = 0f;
                }
            }
        }
    }

    /// <summary>
    /// Offsets in the <paramref name="split"/> layout of every tap (ci, ky, kx), in the GEMM's
    /// k order, and the (input, output) offsets of every 8-pixel segment of an image, in tile order.
    /// </summary>
    public static (int[] Taps, int[] SegmentInput, int[] SegmentOutput) Layout(LaPerm.Core.Backend.ConvGeometry g, PhaseSplit split)
    {
        int stride = g.Stride, rowSize = split.Phases * split.Length;
        var taps = new int[g.InChannels * g.KernelHeight * g.KernelWidth];
        int t = 0;
        for (int ci = 0; ci < g.InChannels; ci++)
            for (int ky = 0; ky < g.KernelHeight; ky++)
                for (int kx = 0; kx < g.KernelWidth; kx++)
                    taps[t++] = (int)(ci * split.Plane) + ky * rowSize + kx % stride * split.Length + kx / stride;   // the caller keeps C x Plane < int.MaxValue
        int perRow = (g.OutWidth + Segment - 1) / Segment;
        int count = perRow * g.OutHeight;
        count += count & 1;   // an odd count repeats the last segment (same values, stored twice)
        var input = new int[count];
        var output = new int[count];
        int i = 0;
        for (int oy = 0; oy < g.OutHeight; oy++)
            for (int j = 0; j < perRow; j++, i++)
            {
                int ox = Math.Min(j * Segment, g.OutWidth - Segment);
                input[i] = oy * stride * rowSize + ox;
                output[i] = oy * g.OutWidth + ox;
            }
        if (i < count)
        {
            input[i] = input[i - 1];
            output[i] = output[i - 1];
        }
        return (taps, input, output);
    }

    /// <summary>y[n] for images [start, end): every 6-channel tile, every pair of segments.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward(float* x, float* packedW, float* y, int cout, int k, int imageSize, int outPixels,
        int[] taps, int[] segmentInput, int[] segmentOutput, int start, int end)
    {
        int kBlocks = (k + Sgemm.KC - 1) / Sgemm.KC, kStep = (k + kBlocks - 1) / kBlocks;
        fixed (int* tapOffsets = taps)
        fixed (int* inputs = segmentInput)
        fixed (int* outputs = segmentOutput)
        {
            for (int n = start; n < end; n++)
            {
                float* image = x + (long)n * imageSize;
                float* output = y + (long)n * cout * outPixels;
                for (int tile = 0; tile * MR < cout; tile++)
                {
                    int mr = Math.Min(MR, cout - tile * MR);
                    float* a = packedW + (long)tile * k * MR;
                    float* c = output + (long)tile * MR * outPixels;
                    for (int sIndex = 0; sIndex < segmentInput.Length; sIndex += 2)
                    {
                        for (int pc = 0; pc < k; pc += kStep)
                        {
                            int kc = Math.Min(kStep, k - pc);
                            Kernel(kc, a + (long)pc * MR, tapOffsets + pc, image + inputs[sIndex], image + inputs[sIndex + 1],
                                c + outputs[sIndex], c + outputs[sIndex + 1], outPixels, mr, pc == 0);
                        }
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(int kc, float* a, int* taps, float* b0Base, float* b1Base, float* c0, float* c1, int ldc, int mr, bool first)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            int offset = taps[p];
            Vector256<float> b0 = Vector256.Load(b0Base + offset), b1 = Vector256.Load(b1Base + offset);
            Vector256<float> v = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(v, b0, c00); c01 = Fma.MultiplyAdd(v, b1, c01);
            v = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(v, b0, c10); c11 = Fma.MultiplyAdd(v, b1, c11);
            v = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(v, b0, c20); c21 = Fma.MultiplyAdd(v, b1, c21);
            v = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(v, b0, c30); c31 = Fma.MultiplyAdd(v, b1, c31);
            v = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(v, b0, c40); c41 = Fma.MultiplyAdd(v, b1, c41);
            v = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(v, b0, c50); c51 = Fma.MultiplyAdd(v, b1, c51);
            a += MR;
        }
        Store(c00, c01, c0, c1, first);
        if (mr > 1) Store(c10, c11, c0 + ldc, c1 + ldc, first);
        if (mr > 2) Store(c20, c21, c0 + 2 * ldc, c1 + 2 * ldc, first);
        if (mr > 3) Store(c30, c31, c0 + 3 * ldc, c1 + 3 * ldc, first);
        if (mr > 4) Store(c40, c41, c0 + 4 * ldc, c1 + 4 * ldc, first);
        if (mr > 5) Store(c50, c51, c0 + 5 * ldc, c1 + 5 * ldc, first);
    }

    /// <summary>
    /// The GEMM's combine with alpha 1 (acc * 1 is exact): the first k block stores, later
    /// blocks add. Both segments are read before either is written, as they may overlap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> acc0, Vector256<float> acc1, float* c0, float* c1, bool first)
    {
        if (!first)
        {
            var old0 = Vector256.Load(c0);
            var old1 = Vector256.Load(c1);
            acc0 += old0;
            acc1 += old1;
        }
        Vector256.Store(acc0, c0);
        Vector256.Store(acc1, c1);
    }
}

/// <summary>
/// The filter gradient without packing the image side: dW^T[K, cout] = columns[K, N*P] *
/// dy^T[N*P, cout], a C tile being 6 kernel taps x 16 output channels. Per output pixel the
/// micro-kernel broadcasts the 6 taps' inputs straight from the image (tap offset + pixel
/// offset) and loads 16 channels of dy from a transposed copy [channel panel][N*P][16] made
/// once per call. Padded or strided convolutions read a zero-padded copy of the input, so no
/// tap needs a bounds check.
///
/// Every dW element is the GEMM's dot product over the N*P pixels in the same order, with
/// the same k blocking over N*P and the same combine (first block stored, later blocks added);
/// x * dy and dy * x round alike, so the results are bit-identical to the GEMM formulation,
/// and one thread computes each whole C tile, so they do not depend on the thread count.
///
/// The same kernel computes the forward pass of narrow outputs with the roles swapped: rows =
/// output pixels, the reduction over the K taps, B = W^T (see CpuBackend.ConvForwardTapBroadcast).
/// </summary>
internal static unsafe class DirectFilterGradient
{
    private const int MR = Sgemm.MR, NR = Sgemm.NR;

    public static bool Applies => Fma.IsSupported;

    /// <summary>Writes dy [N, cout, P] as [ceil(cout/16)][N*P][16] (channels past cout zero) for images [start, end).</summary>
    public static void TransposeOutputGradient(float* dy, float* dest, int cout, int pixels, int batch, int start, int end)
    {
        int panels = (cout + NR - 1) / NR;
        long width = (long)batch * pixels;
        for (int n = start; n < end; n++)
            for (int panel = 0; panel < panels; panel++)
            {
                float* target = dest + panel * width * NR + (long)n * pixels * NR;
                int vectorPixels = Avx.IsSupported && panel * NR + NR <= cout ? pixels / 8 * 8 : 0;
                for (int half = 0; half < NR && vectorPixels > 0; half += 8)
                {
                    float* source = dy + ((long)n * cout + panel * NR + half) * pixels;
                    for (int p = 0; p < vectorPixels; p += 8) Transpose8x8(source + p, pixels, target + (long)p * NR + half, NR);
                }
                for (int j = 0; j < NR; j++)
                {
                    int co = panel * NR + j;
                    if (co < cout)
                    {
                        float* source = dy + ((long)n * cout + co) * pixels;
                        for (int p = vectorPixels; p < pixels; p++) target[p * NR + j] = source[p];
                    }
                    else
                    {
                        for (int p = 0; p < pixels; p++) target[p * NR + j] = 0f;
                    }
                }
            }
    }

    /// <summary>8 rows of 8 floats (row stride <paramref name="sourceStride"/>) to 8 columns (row stride <paramref name="targetStride"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* source, int sourceStride, float* target, int targetStride)
    {
        var r0 = Avx.LoadVector256(source);
        var r1 = Avx.LoadVector256(source + sourceStride);
        var r2 = Avx.LoadVector256(source + 2 * sourceStride);
        var r3 = Avx.LoadVector256(source + 3 * sourceStride);
        var r4 = Avx.LoadVector256(source + 4 * sourceStride);
        var r5 = Avx.LoadVector256(source + 5 * sourceStride);
        var r6 = Avx.LoadVector256(source + 6 * sourceStride);
        var r7 = Avx.LoadVector256(source + 7 * sourceStride);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(target, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(target + targetStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(target + 2 * targetStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(target + 3 * targetStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(target + 4 * targetStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(target + 5 * targetStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(target + 6 * targetStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(target + 7 * targetStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>
    /// C tiles [first, last) (tile = tapTile * panels + panel) of dW^T [ceil(K/6)*6, panels*16]
    /// over all pixels: x at <paramref name="x"/> + pixelOffsets[pixel] + taps[tap].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Compute(float* x, int* pixelOffsets, int* taps, int k, float* dyT, int width, int panels,
        float* c, int first, int last)
    {
        int kBlocks = (width + Sgemm.KC - 1) / Sgemm.KC, kStep = (width + kBlocks - 1) / kBlocks;
        int ldc = panels * NR;
        for (int pc = 0; pc < width; pc += kStep)
        {
            int kc = Math.Min(kStep, width - pc);
            for (int tile = first; tile < last; tile++)
            {
                int tapTile = tile / panels, panel = tile - tapTile * panels;
                int t0 = tapTile * MR;
                int* tapRow = taps + t0;
                // Taps past k (a partial last tile) read tap 0 of the tile; their rows are never copied out.
                int o0 = tapRow[0], o1 = t0 + 1 < k ? tapRow[1] : o0, o2 = t0 + 2 < k ? tapRow[2] : o0;
                int o3 = t0 + 3 < k ? tapRow[3] : o0, o4 = t0 + 4 < k ? tapRow[4] : o0, o5 = t0 + 5 < k ? tapRow[5] : o0;
                Kernel(kc, x, pixelOffsets + pc, o0, o1, o2, o3, o4, o5, dyT + (long)panel * width * NR + (long)pc * NR,
                    c + (long)t0 * ldc + panel * NR, ldc, pc == 0);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(int kc, float* x, int* pixelOffsets, int o0, int o1, int o2, int o3, int o4, int o5,
        float* b, float* c, int ldc, bool first)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            float* origin = x + pixelOffsets[p];
            Vector256<float> b0 = Vector256.Load(b), b1 = Vector256.Load(b + 8);
            Vector256<float> v = Vector256.Create(origin[o0]);
            c00 = Fma.MultiplyAdd(v, b0, c00); c01 = Fma.MultiplyAdd(v, b1, c01);
            v = Vector256.Create(origin[o1]);
            c10 = Fma.MultiplyAdd(v, b0, c10); c11 = Fma.MultiplyAdd(v, b1, c11);
            v = Vector256.Create(origin[o2]);
            c20 = Fma.MultiplyAdd(v, b0, c20); c21 = Fma.MultiplyAdd(v, b1, c21);
            v = Vector256.Create(origin[o3]);
            c30 = Fma.MultiplyAdd(v, b0, c30); c31 = Fma.MultiplyAdd(v, b1, c31);
            v = Vector256.Create(origin[o4]);
            c40 = Fma.MultiplyAdd(v, b0, c40); c41 = Fma.MultiplyAdd(v, b1, c41);
            v = Vector256.Create(origin[o5]);
            c50 = Fma.MultiplyAdd(v, b0, c50); c51 = Fma.MultiplyAdd(v, b1, c51);
            b += NR;
        }
        Store(c00, c01, c, first);
        Store(c10, c11, c + ldc, first);
        Store(c20, c21, c + 2 * ldc, first);
        Store(c30, c31, c + 3 * ldc, first);
        Store(c40, c41, c + 4 * ldc, first);
        Store(c50, c51, c + 5 * ldc, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector256<float> acc0, Vector256<float> acc1, float* c, bool first)
    {
        if (!first)
        {
            acc0 += Vector256.Load(c);
            acc1 += Vector256.Load(c + 8);
        }
        Vector256.Store(acc0, c);
        Vector256.Store(acc1, c + 8);
    }
}
