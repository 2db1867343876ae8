using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LaPerm.Cpu;

/// <summary>The fields of a convolution that the implicit im2col panel sources need.</summary>
internal readonly record struct ConvShape(int Channels, int Height, int Width, int KernelHeight, int KernelWidth,
    int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth)
{
    public int Plane => Height * Width;
    public int ImageSize => Channels * Height * Width;
    public int Pixels => OutHeight * OutWidth;
    public int KernelArea => KernelHeight * KernelWidth;
}

/// <summary>
/// Implicit im2col: op(B) = the column matrix [K = cin*kh*kw, N*P] of a batch of NCHW images,
/// generated straight into GEMM micro-panels from the input (which stays in cache), so the
/// column matrix is never written to memory. Column j is image j / P, output pixel j % P.
/// Out-of-image taps (padding) read as 0.
/// </summary>
internal readonly unsafe struct Im2ColPanels : IPanelSource
{
    private readonly float* _x;
    private readonly ConvShape _s;

    public Im2ColPanels(float* x, ConvShape shape)
    {
        _x = x;
        _s = shape;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(int pc, int kc, int jc, int nc, float* dest)
    {
        const int nr = Sgemm.NR;
        var s = _s;
        // A panel's 16 columns split into runs of consecutive output pixels of one output row;
        // a run's taps are a contiguous (stride 1) or strided stretch of one input row.
        int* runStart = stackalloc int[nr];
        int* runLength = stackalloc int[nr];
        int* runRow = stackalloc int[nr];
        int* runColumn = stackalloc int[nr];
        long* runImage = stackalloc long[nr];
        var strided = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * s.Stride;   // gather offsets of 8 taps of a strided run
        for (int jr = 0; jr < nc; jr += nr)
        {
            int width = Math.Min(nr, nc - jr), runs = 0;
            for (int jj = 0; jj < width; runs++)
            {
                int j = jc + jr + jj, image = j / s.Pixels, pixel = j - image * s.Pixels, oy = pixel / s.OutWidth, ox = pixel - oy * s.OutWidth;
                int length = Math.Min(width - jj, s.OutWidth - ox);
                runStart[runs] = jj;
                runLength[runs] = length;
                runRow[runs] = oy * s.Stride - s.PadTop;
                runColumn[runs] = ox * s.Stride - s.PadLeft;
                runImage[runs] = (long)image * s.ImageSize;
                jj += length;
            }
            int ci = pc / s.KernelArea, rest = pc - ci * s.KernelArea, ky = rest / s.KernelWidth, kx = rest - ky * s.KernelWidth;
            float* panel = dest + (long)jr * kc;
            for (int p = 0; p < kc; p++)
            {
                float* d = panel + p * nr;
                long channelBase = (long)ci * s.Plane;
                for (int r = 0; r < runs; r++)
                {
                    float* target = d + runStart[r];
                    int length = runLength[r], iy = runRow[r] + ky, ix = runColumn[r] + kx;
                    if ((uint)iy >= (uint)s.Height)
                    {
                        for (int t = 0; t < length; t++) target[t] = 0f;
                        continue;
                    }
                    float* row = _x + runImage[r] + channelBase + (long)iy * s.Width;
                    if (s.Stride == 1)
                    {
                        if (ix >= 0 && ix + length <= s.Width) CopyRun(row + ix, target, length);
                        else for (int t = 0; t < length; t++) target[t] = (uint)(ix + t) < (uint)s.Width ? row[ix + t] : 0f;
                    }
                    else if (ix >= 0 && ix + (length - 1) * s.Stride < s.Width)
                    {
                        int t = 0;
                        if (Avx2.IsSupported)
                            for (; t <= length - 8; t += 8) Vector256.Store(Avx2.GatherVector256(row + ix + t * s.Stride, strided, 4), target + t);
                        for (int at = ix + t * s.Stride; t < length; t++, at += s.Stride) target[t] = row[at];
                    }
                    else
                    {
                        for (int t = 0, at = ix; t < length; t++, at += s.Stride) target[t] = (uint)at < (uint)s.Width ? row[at] : 0f;
                    }
                }
                for (int jj = width; jj < nr; jj++) d[jj] = 0f;
                if (++kx == s.KernelWidth)
                {
                    kx = 0;
                    if (++ky == s.KernelHeight)
                    {
                        ky = 0;
                        ci++;
                    }
                }
            }
        }
    }

    /// <summary>Copies 1..16 floats; lengths from 4 up use two possibly overlapping vector moves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* source, float* target, int length)
    {
        if (length == 16)
        {
            Vector256.Store(Vector256.Load(source), target);
            Vector256.Store(Vector256.Load(source + 8), target + 8);
        }
        else if (length >= 8)
        {
            var head = Vector256.Load(source);
            var tail = Vector256.Load(source + length - 8);
            head.Store(target);
            tail.Store(target + length - 8);
        }
        else if (length >= 4)
        {
            var head = Vector128.Load(source);
            var tail = Vector128.Load(source + length - 4);
            head.Store(target);
            tail.Store(target + length - 4);
        }
        else
        {
            for (int t = 0; t < length; t++) target[t] = source[t];
        }
    }
}

/// <summary>
/// Implicit transposed im2col: op(B) = columns^T [N*P, K] (row = output pixel of the batch,
/// column = kernel tap (ci, ky, kx)), the B operand of the filter gradient dW = dy * columns^T.
/// </summary>
internal readonly unsafe struct Im2ColTransposedPanels : IPanelSource
{
    private const int Outside = -1 << 28;
    private readonly float* _x;
    private readonly ConvShape _s;

    public Im2ColTransposedPanels(float* x, ConvShape shape)
    {
        _x = x;
        _s = shape;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(int pc, int kc, int jc, int nc, float* dest)
    {
        const int nr = Sgemm.NR;
        var s = _s;
        long* tapOffset = stackalloc long[nr];
        int* tapY = stackalloc int[nr];
        int* tapX = stackalloc int[nr];
        for (int jr = 0; jr < nc; jr += nr)
        {
            int width = Math.Min(nr, nc - jr);
            for (int jj = 0; jj < nr; jj++)
            {
                if (jj < width)
                {
                    int tap = jc + jr + jj, ci = tap / s.KernelArea, rest = tap - ci * s.KernelArea, ky = rest / s.KernelWidth, kx = rest - ky * s.KernelWidth;
                    tapOffset[jj] = (long)ci * s.Plane + (long)ky * s.Width + kx;
                    tapY[jj] = ky;
                    tapX[jj] = kx;
                }
                else
                {
                    tapOffset[jj] = 0;
                    tapY[jj] = Outside;
                    tapX[jj] = 0;
                }
            }
            int image = pc / s.Pixels, pixel = pc - image * s.Pixels, oy = pixel / s.OutWidth, ox = pixel - oy * s.OutWidth;
            float* panel = dest + (long)jr * kc;
            bool useGather = Avx2.IsSupported && width == nr && tapOffset[nr - 1] <= int.MaxValue;
            var gatherLow = Vector256.Create((int)tapOffset[0], (int)tapOffset[1], (int)tapOffset[2], (int)tapOffset[3],
                (int)tapOffset[4], (int)tapOffset[5], (int)tapOffset[6], (int)tapOffset[7]);
            var gatherHigh = Vector256.Create((int)tapOffset[8], (int)tapOffset[9], (int)tapOffset[10], (int)tapOffset[11],
                (int)tapOffset[12], (int)tapOffset[13], (int)tapOffset[14], (int)tapOffset[15]);
            for (int p = 0; p < kc; p++)
            {
                float* d = panel + p * nr;
                int y0 = oy * s.Stride - s.PadTop, x0 = ox * s.Stride - s.PadLeft;
                float* origin = _x + (long)image * s.ImageSize + (long)y0 * s.Width + x0;
                if (useGather && y0 >= 0 && y0 + s.KernelHeight <= s.Height && x0 >= 0 && x0 + s.KernelWidth <= s.Width)
                {
                    // Every tap inside the image and all 16 taps real: two hardware gathers.
                    Vector256.Store(Avx2.GatherVector256(origin, gatherLow, 4), d);
                    Vector256.Store(Avx2.GatherVector256(origin, gatherHigh, 4), d + 8);
                }
                else if (y0 >= 0 && y0 + s.KernelHeight <= s.Height && x0 >= 0 && x0 + s.KernelWidth <= s.Width)
                {
                    // Every tap of this pixel is inside the image ('valid' convolutions: always).
                    int jj = 0;
                    for (; jj < width; jj++) d[jj] = origin[tapOffset[jj]];
                    for (; jj < nr; jj++) d[jj] = 0f;
                }
                else
                {
                    for (int jj = 0; jj < nr; jj++)
                    {
                        int iy = y0 + tapY[jj], ix = x0 + tapX[jj];
                        d[jj] = (uint)iy < (uint)s.Height && (uint)ix < (uint)s.Width ? origin[tapOffset[jj]] : 0f;
                    }
                }
                if (++ox == s.OutWidth)
                {
                    ox = 0;
                    if (++oy == s.OutHeight)
                    {
                        oy = 0;
                        image++;
                    }
                }
            }
        }
    }
}
