namespace LaPerm.Cuda.Runtime;

/// <summary>
/// The emulator's stand-in for cuBLAS SGEMM: row-major C[m,n] = alpha op(A) op(B) + beta C,
/// strided batches. Sums over k in ascending order in FP32, like the CPU reference; with
/// beta = 0, C is not read (so poisoned output cannot leak in), as cuBLAS specifies.
/// </summary>
internal static unsafe class HostGemm
{
    public static void Run(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batchCount)
    {
        for (int batch = 0; batch < batchCount; batch++)
            Single(transposeA, transposeB, m, n, k, alpha,
                (float*)a + batch * strideA, (float*)b + batch * strideB, beta, (float*)c + batch * strideC);
    }

    private static void Single(bool transposeA, bool transposeB, int m, int n, int k, float alpha, float* a, float* b, float beta, float* c)
    {
        Parallel.For(0, m, i =>
        {
            float* row = c + (long)i * n;
            for (int j = 0; j < n; j++)
            {
                float sum = 0f;
                for (int p = 0; p < k; p++)
                {
                    float av = transposeA ? a[(long)p * m + i] : a[(long)i * k + p];
                    float bv = transposeB ? b[(long)j * k + p] : b[(long)p * n + j];
                    sum += av * bv;
                }
                row[j] = beta == 0f ? alpha * sum : alpha * sum + beta * row[j];
            }
        });
    }
}
