using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LaPerm.Cpu;

/// <summary>Packing buffers for one worker's share of a GEMM (reused across calls).</summary>
internal sealed unsafe class GemmWorkspace
{
    // Pinned (pinned object heap) and over-allocated so each buffer can start on a 64-byte
    // cache line: the micro-kernel's 32-byte loads then never straddle two lines.
    private readonly float[] _packedA = GC.AllocateArray<float>(Sgemm.MC * Sgemm.KC + 16, pinned: true);
    private readonly float[] _packedB = GC.AllocateArray<float>(Sgemm.KC * Sgemm.NC + 16, pinned: true);
    private readonly float[] _tile = GC.AllocateArray<float>(Sgemm.MR * Sgemm.NR + 16, pinned: true);

    public float* PackedA => Align(_packedA);
    public float* PackedB => Align(_packedB);

    /// <summary>An MR x NR staging tile for edge tiles of C.</summary>
    public float* Tile => Align(_tile);

    private static float* Align(float[] pinned)
    {
        nuint address = (nuint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));
        return (float*)((address + 63) & ~(nuint)63);
    }
}

/// <summary>
/// Single-precision GEMM, row-major, all transpose combinations, in the BLIS structure:
/// B is packed into KC x NR micro-panels, A into MR x KC micro-panels, and an MR x NR
/// register-tiled micro-kernel (AVX2 + FMA, scalar fallback) accumulates over KC.
///
/// Determinism: every element of C goes through the same micro-kernel with the same k
/// order and the same KC blocking whatever part of C a call covers (edge tiles run on
/// zero-padded panels), so a result never depends on how C is split between threads.
/// Rounding: per KC block, c = alpha * acc + beta' * c with beta' = beta for the first
/// block and 1 afterwards (multiply and add, never fused, identical in the vector and
/// scalar paths). With beta = 0 the old C is never read.
/// </summary>
internal static unsafe class Sgemm
{
    public const int MR = 6, NR = 16, KC = 256, MC = 96, NC = 1024;

    public static bool UsesFma => Fma.IsSupported;

    /// <summary>
    /// Computes the block rows [i0, i1) x columns [j0, j1) of C (leading dimension n) with
    /// A stored [m, k] (or [k, m] when transposed) and B stored [k, n] (or [n, k]).
    /// </summary>
    public static void ComputeBlock(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        float* a, float* b, float beta, float* c, int i0, int i1, int j0, int j1, GemmWorkspace workspace) =>
        ComputeBlock(transposeA, m, n, k, alpha, a, new DensePanels(transposeB, b, n, k), beta, c, i0, i1, j0, j1, workspace);

    /// <summary>
    /// As above with op(B) supplied by a panel source, so B can be generated on the fly
    /// (implicit im2col) instead of being read from a materialised matrix.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // hot loops: skip tier-0 and on-stack replacement
    public static void ComputeBlock<TPanels>(bool transposeA, int m, int n, int k, float alpha,
        float* a, in TPanels b, float beta, float* c, int i0, int i1, int j0, int j1, GemmWorkspace workspace)
        where TPanels : struct, IPanelSource
    {
        if (i0 >= i1 || j0 >= j1) return;
        if (k == 0 || alpha == 0f)
        {
            for (int i = i0; i < i1; i++)
            {
                float* row = c + (long)i * n;
                for (int j = j0; j < j1; j++) row[j] = beta == 0f ? 0f : beta * row[j];
            }
            return;
        }
        float* packedA = workspace.PackedA, packedB = workspace.PackedB, tile = workspace.Tile;
        {
            for (int jc = j0; jc < j1; jc += NC)
            {
                int nc = Math.Min(NC, j1 - jc);
                // k is cut into equal blocks of at most KC (288 -> 144 + 144, not 256 + 32): short
                // blocks pay the C load/store and packing for little work. Depends on k only.
                int kBlocks = (k + KC - 1) / KC, kStep = (k + kBlocks - 1) / kBlocks;
                for (int pc = 0; pc < k; pc += kStep)
                {
                    int kc = Math.Min(kStep, k - pc);
                    b.Pack(pc, kc, jc, nc, packedB);
                    float blockBeta = pc == 0 ? beta : 1f;
                    for (int ic = i0; ic < i1; ic += MC)
                    {
                        int mc = Math.Min(MC, i1 - ic);
                        PackA(transposeA, a, m, k, ic, mc, pc, kc, packedA);
                        for (int jr = 0; jr < nc; jr += NR)
                        {
                            int nr = Math.Min(NR, nc - jr);
                            float* bPanel = packedB + (long)jr * kc;
                            for (int ir = 0; ir < mc; ir += MR)
                            {
                                int mr = Math.Min(MR, mc - ir);
                                float* cTile = c + (long)(ic + ir) * n + jc + jr;
                                if (Fma.IsSupported)
                                    KernelFma(kc, packedA + (long)ir * kc, bPanel, cTile, n, mr, nr, alpha, blockBeta, tile);
                                else
                                    KernelScalar(kc, packedA + (long)ir * kc, bPanel, cTile, n, mr, nr, alpha, blockBeta, tile);
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Packs rows [ic, ic+mc) x k-range [pc, pc+kc) of op(A) into MR-row micro-panels, zero-padded.</summary>
    private static void PackA(bool transposeA, float* a, int m, int k, int ic, int mc, int pc, int kc, float* dest)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int mr = Math.Min(MR, mc - ir);
            float* panel = dest + (long)ir * kc;
            if (!transposeA)
            {
                for (int r = 0; r < MR; r++)
                {
                    if (r < mr)
                    {
                        float* src = a + (long)(ic + ir + r) * k + pc;
                        for (int p = 0; p < kc; p++) panel[p * MR + r] = src[p];
                    }
                    else
                    {
                        for (int p = 0; p < kc; p++) panel[p * MR + r] = 0f;
                    }
                }
            }
            else
            {
                for (int p = 0; p < kc; p++)
                {
                    float* src = a + (long)(pc + p) * m + ic + ir;
                    float* d = panel + p * MR;
                    int r = 0;
                    for (; r < mr; r++) d[r] = src[r];
                    for (; r < MR; r++) d[r] = 0f;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Combine(Vector256<float> acc, Vector256<float> alpha, float beta, float* c)
    {
        Vector256<float> scaled = acc * alpha;
        return beta == 0f ? scaled : scaled + Vector256.Create(beta) * Vector256.Load(c);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelFma(int kc, float* a, float* b, float* c, int ldc, int mr, int nr, float alpha, float beta, float* tile)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector256<float> b0 = Vector256.Load(b), b1 = Vector256.Load(b + 8);
            Vector256<float> x = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(x, b0, c40); c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(x, b0, c50); c51 = Fma.MultiplyAdd(x, b1, c51);
            a += MR;
            b += NR;
        }
        var va = Vector256.Create(alpha);
        if (mr == MR && nr == NR)
        {
            float* r0 = c, r1 = c + ldc, r2 = r1 + ldc, r3 = r2 + ldc, r4 = r3 + ldc, r5 = r4 + ldc;
            Vector256.Store(Combine(c00, va, beta, r0), r0); Vector256.Store(Combine(c01, va, beta, r0 + 8), r0 + 8);
            Vector256.Store(Combine(c10, va, beta, r1), r1); Vector256.Store(Combine(c11, va, beta, r1 + 8), r1 + 8);
            Vector256.Store(Combine(c20, va, beta, r2), r2); Vector256.Store(Combine(c21, va, beta, r2 + 8), r2 + 8);
            Vector256.Store(Combine(c30, va, beta, r3), r3); Vector256.Store(Combine(c31, va, beta, r3 + 8), r3 + 8);
            Vector256.Store(Combine(c40, va, beta, r4), r4); Vector256.Store(Combine(c41, va, beta, r4 + 8), r4 + 8);
            Vector256.Store(Combine(c50, va, beta, r5), r5); Vector256.Store(Combine(c51, va, beta, r5 + 8), r5 + 8);
            return;
        }
        Vector256.Store(c00, tile); Vector256.Store(c01, tile + 8);
        Vector256.Store(c10, tile + 16); Vector256.Store(c11, tile + 24);
        Vector256.Store(c20, tile + 32); Vector256.Store(c21, tile + 40);
        Vector256.Store(c30, tile + 48); Vector256.Store(c31, tile + 56);
        Vector256.Store(c40, tile + 64); Vector256.Store(c41, tile + 72);
        Vector256.Store(c50, tile + 80); Vector256.Store(c51, tile + 88);
        StorePartial(tile, c, ldc, mr, nr, alpha, beta);
    }

    private static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, int mr, int nr, float alpha, float beta, float* tile)
    {
        for (int i = 0; i < MR * NR; i++) tile[i] = 0f;
        for (int p = 0; p < kc; p++)
        {
            for (int r = 0; r < MR; r++)
            {
                float x = a[r];
                float* t = tile + r * NR;
                for (int j = 0; j < NR; j++) t[j] += x * b[j];
            }
            a += MR;
            b += NR;
        }
        StorePartial(tile, c, ldc, mr, nr, alpha, beta);
    }

    private static void StorePartial(float* tile, float* c, int ldc, int mr, int nr, float alpha, float beta)
    {
        for (int r = 0; r < mr; r++)
        {
            float* row = c + (long)r * ldc;
            float* t = tile + r * NR;
            for (int j = 0; j < nr; j++)
            {
                float scaled = t[j] * alpha;
                row[j] = beta == 0f ? scaled : scaled + beta * row[j];
            }
        }
    }
}

/// <summary>Supplies op(B) to <see cref="Sgemm"/> as packed micro-panels.</summary>
internal unsafe interface IPanelSource
{
    /// <summary>
    /// Writes rows [pc, pc+kc) x columns [jc, jc+nc) of op(B) to dest as consecutive
    /// micro-panels of NR columns (dest[panel * NR * kc + p * NR + j]), zero-padding columns past nc.
    /// </summary>
    void Pack(int pc, int kc, int jc, int nc, float* dest);
}

/// <summary>op(B) read from a row-major matrix stored [k, n], or [n, k] when transposed.</summary>
internal readonly unsafe struct DensePanels : IPanelSource
{
    private readonly bool _transpose;
    private readonly float* _b;
    private readonly int _n, _k;

    public DensePanels(bool transpose, float* b, int n, int k)
    {
        _transpose = transpose;
        _b = b;
        _n = n;
        _k = k;
    }

    /// <summary>Packs k-range [pc, pc+kc) x columns [jc, jc+nc) of op(B) into Sgemm.NR-column micro-panels, zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(int pc, int kc, int jc, int nc, float* dest)
    {
        for (int jr = 0; jr < nc; jr += Sgemm.NR)
        {
            int nr = Math.Min(Sgemm.NR, nc - jr);
            float* panel = dest + (long)jr * kc;
            if (!_transpose)
            {
                for (int p = 0; p < kc; p++)
                {
                    float* src = _b + (long)(pc + p) * _n + jc + jr;
                    float* d = panel + p * Sgemm.NR;
                    if (nr == Sgemm.NR && Vector256.IsHardwareAccelerated)
                    {
                        Vector256.Store(Vector256.Load(src), d);
                        Vector256.Store(Vector256.Load(src + 8), d + 8);
                    }
                    else
                    {
                        int j = 0;
                        for (; j < nr; j++) d[j] = src[j];
                        for (; j < Sgemm.NR; j++) d[j] = 0f;
                    }
                }
            }
            else
            {
                for (int j = 0; j < Sgemm.NR; j++)
                {
                    if (j < nr)
                    {
                        float* src = _b + (long)(jc + jr + j) * _k + pc;
                        for (int p = 0; p < kc; p++) panel[p * Sgemm.NR + j] = src[p];
                    }
                    else
                    {
                        for (int p = 0; p < kc; p++) panel[p * Sgemm.NR + j] = 0f;
                    }
                }
            }
        }
    }

}
