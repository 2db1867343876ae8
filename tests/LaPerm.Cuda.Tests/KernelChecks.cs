using LaPerm.Core.Backend;
using LaPerm.Cuda.Kernels;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

/// <summary>
/// The first kernels against C# references, written once and run on emu (every CI run) and
/// on cuda (Gpu trait). Inputs are random, outputs are poisoned (NaN) before each launch.
/// </summary>
internal static class KernelChecks
{
    public static void Axpy(Device device, int n, int variant, int seed)
    {
        var random = new Random(seed);
        float a = (float)(random.NextDouble() * 4 - 2);
        float[] x = TestDevices.RandomFloats(random, n), y = TestDevices.RandomFloats(random, n);
        using var kernels = new PrimitiveKernels(device);
        using var dx = TestDevices.Upload(device, x);
        using var dy = TestDevices.Upload(device, y);
        kernels.Axpy(device.Stream, n, a, dx, dy, variant);
        float[] result = dy.ToArray();
        for (int i = 0; i < n; i++)
        {
            // The kernel rounds a*x, then the sum (no fused multiply-add): two roundings, as here.
            float product = a * x[i];
            float expected = product + y[i];
            Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(result[i]),
                $"axpy_v{variant} y[{i}] = {result[i]:R}, expected {expected:R} (bit-exact)");
        }
    }

    public static void Sum(Device device, int n, int variant, int seed)
    {
        var random = new Random(seed);
        float[] x = TestDevices.RandomFloats(random, n);
        using var kernels = new PrimitiveKernels(device);
        using var dx = TestDevices.Upload(device, x);
        using var partials = TestDevices.Poisoned(device, PrimitiveKernels.ReductionBlocks);
        using var result = TestDevices.Poisoned(device, 1);
        kernels.Sum(device.Stream, n, dx, partials, result, variant);
        float actual = result.ToArray()[0];

        double exact = 0, magnitude = 0;
        foreach (float v in x)
        {
            exact += v;
            magnitude += Math.Abs(v);
        }
        // The kernel adds in a tree whose depth is at most: the grid-stride slice per thread
        // (ceil(n / (blocks*threads))), log2 of the block, log2 of the partials. Each float
        // addition errs by at most 2^-24 of its result, so |error| <= depth * 2^-24 * sum|x|.
        int blocks = Math.Min((n + PrimitiveKernels.BlockSize - 1) / PrimitiveKernels.BlockSize, PrimitiveKernels.ReductionBlocks);
        int slice = (n + blocks * PrimitiveKernels.BlockSize - 1) / (blocks * PrimitiveKernels.BlockSize);
        int depth = slice + 8 + 8 + 1;
        double bound = depth * Math.Pow(2, -24) * magnitude;
        Assert.False(float.IsNaN(actual), $"reduce_sum_v{variant} left the result unwritten (NaN)");
        Assert.True(Math.Abs(actual - exact) <= bound,
            $"reduce_sum_v{variant} of {n} = {actual:R}, exact {exact:R}, error {Math.Abs(actual - exact):E3} > bound {bound:E3}");
    }

    public static void Scan(Device device, int n, int seed)
    {
        var random = new Random(seed);
        // Integer values: every partial sum is an integer below 2^24, so float addition is
        // exact in any order and the comparison is exact.
        float[] x = TestDevices.RandomIntegers(random, n, 1000);
        using var kernels = new PrimitiveKernels(device);
        using var dx = TestDevices.Upload(device, x);
        using var dy = TestDevices.Poisoned(device, n);
        using var totals = TestDevices.Poisoned(device, (n + PrimitiveKernels.BlockSize - 1) / PrimitiveKernels.BlockSize);
        kernels.InclusiveScan(device.Stream, n, dx, dy, totals);
        float[] y = dy.ToArray();
        long running = 0;
        for (int i = 0; i < n; i++)
        {
            running += (long)x[i];
            Assert.True(y[i] == running, $"scan y[{i}] = {y[i]:R}, expected {running}");
        }
    }

    public static void Adam(Device device, int n, int seed)
    {
        var random = new Random(seed);
        float[] w = TestDevices.RandomFloats(random, n), g = TestDevices.RandomFloats(random, n, 0.1f);
        float[] m = TestDevices.RandomFloats(random, n, 0.01f), v = TestDevices.RandomFloats(random, n, 0.001f);
        for (int i = 0; i < n; i++) v[i] = Math.Abs(v[i]);
        var step = new AdamStep(1e-3f * (1 + random.Next(10)), 0.9f, 0.999f, 1e-7f, random.Next(1, 500));
        using var kernels = new PrimitiveKernels(device);
        using var dw = TestDevices.Upload(device, w);
        using var dg = TestDevices.Upload(device, g);
        using var dm = TestDevices.Upload(device, m);
        using var dv = TestDevices.Upload(device, v);
        kernels.Adam(device.Stream, step, n, dw, dg, dm, dv);
        float[] w1 = dw.ToArray(), m1 = dm.ToArray(), v1 = dv.ToArray();

        // The IBackend contract, one float operation at a time in the kernel's order.
        float lrT = PrimitiveKernels.AdamLearningRate(step);
        for (int i = 0; i < n; i++)
        {
            float mi = step.Beta1 * m[i] + (1f - step.Beta1) * g[i];
            float vi = step.Beta2 * v[i] + (1f - step.Beta2) * g[i] * g[i];
            float wi = w[i] - lrT * mi / (MathF.Sqrt(vi) + step.Epsilon);
            AssertBits(mi, m1[i], "m", i);
            AssertBits(vi, v1[i], "v", i);
            AssertBits(wi, w1[i], "w", i);
        }
    }

    private static void AssertBits(float expected, float actual, string name, int i) =>
        Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual),
            $"adam_v1 {name}[{i}] = {actual:R}, expected {expected:R} (bit-exact; {Math.Abs(BitConverter.SingleToInt32Bits(expected) - BitConverter.SingleToInt32Bits(actual))} ulp apart)");

    /// <summary>The same kernel sequence captured into a graph and replayed gives what direct launches give.</summary>
    public static void GraphReplay(Device device, int seed)
    {
        const int n = 3000;
        var random = new Random(seed);
        float[] x = TestDevices.RandomIntegers(random, n, 50), y = TestDevices.RandomIntegers(random, n, 50);
        using var kernels = new PrimitiveKernels(device);
        using var stream = device.CreateStream();
        using var dx = TestDevices.Upload(device, x);
        using var direct = TestDevices.Upload(device, y);
        using var replayed = TestDevices.Upload(device, y);
        using var directScan = TestDevices.Poisoned(device, n);
        using var replayedScan = TestDevices.Poisoned(device, n);
        using var totals = TestDevices.Poisoned(device, 16);

        void Step(DeviceBuffer<float> target, DeviceBuffer<float> scan)
        {
            kernels.Axpy(stream, n, 2f, dx, target);
            kernels.InclusiveScan(stream, n, target, scan, totals);
        }

        // Warm-up outside the capture, then three direct steps vs. one capture and three replays.
        for (int i = 0; i < 3; i++) Step(direct, directScan);
        stream.Synchronize();
        float[] expectedY = direct.ToArray(stream), expectedScan = directScan.ToArray(stream);

        stream.BeginCapture();
        Step(replayed, replayedScan);
        using DeviceGraph graph = stream.EndCapture();
        // Capturing must not run anything: the target is unchanged.
        Assert.Equal(y, replayed.ToArray(stream));
        using GraphExecutable executable = graph.Instantiate();
        for (int i = 0; i < 3; i++) executable.Launch(stream);
        stream.Synchronize();
        Assert.Equal(expectedY, replayed.ToArray(stream));
        Assert.Equal(expectedScan, replayedScan.ToArray(stream));

        // Update with the same topology but another target buffer: replays now write there.
        using var other = TestDevices.Upload(device, y);
        stream.BeginCapture();
        Step(other, replayedScan);
        using DeviceGraph retargeted = stream.EndCapture();
        Assert.True(executable.TryUpdate(retargeted));
        for (int i = 0; i < 3; i++) executable.Launch(stream);
        stream.Synchronize();
        Assert.Equal(expectedY, other.ToArray(stream));

        // A different topology is refused.
        stream.BeginCapture();
        kernels.Axpy(stream, n, 2f, dx, other);
        using DeviceGraph shorter = stream.EndCapture();
        Assert.False(executable.TryUpdate(shorter));
    }

    /// <summary>GEMM through the device (cuBLAS or the emulator's) against a double reference.</summary>
    public static void Gemm(Device device, bool transposeA, bool transposeB, int seed)
    {
        const int m = 33, n = 17, k = 29;
        var random = new Random(seed);
        float[] a = TestDevices.RandomFloats(random, m * k), b = TestDevices.RandomFloats(random, k * n);
        using var da = TestDevices.Upload(device, a);
        using var db = TestDevices.Upload(device, b);
        using var dc = TestDevices.Poisoned(device, m * n);
        device.Gemm(device.Stream, transposeA, transposeB, m, n, k, 1.5f, da, db, 0f, dc);
        float[] c = dc.ToArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (int p = 0; p < k; p++)
                {
                    double product = (double)(transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j]);
                    sum += product;
                    magnitude += Math.Abs(product);
                }
                // FP32 accumulation in any order (cuBLAS may split k): |error| <= (k+1) 2^-24 * 1.5 sum|a b|.
                double bound = (k + 1) * Math.Pow(2, -24) * 1.5 * magnitude;
                Assert.True(Math.Abs(c[i * n + j] - 1.5 * sum) <= bound, $"C[{i},{j}] = {c[i * n + j]}, expected {1.5 * sum} +- {bound}");
            }
    }
}
