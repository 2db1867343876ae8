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
        var step = AdamParameters.Keras;
        float lr = 1e-3f * (1 + random.Next(10));
        long t = random.Next(1, 500);
        using var kernels = new PrimitiveKernels(device);
        using var dw = TestDevices.Upload(device, w);
        using var dg = TestDevices.Upload(device, g);
        using var dm = TestDevices.Upload(device, m);
        using var dv = TestDevices.Upload(device, v);
        kernels.Adam(device.Stream, step, lr, t, n, dw, dg, dm, dv);
        float[] w1 = dw.ToArray(), m1 = dm.ToArray(), v1 = dv.ToArray();

        // The IBackend contract, one float operation at a time in the kernel's order.
        float lrT = step.LearningRateAt(lr, t);
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

    /// <summary>The multi-tensor Adam over tensors of different lengths equals per-tensor references.</summary>
    public static void AdamMulti(Device device, int seed)
    {
        var random = new Random(seed);
        int[] lengths = [1, 300, 4097, 64];
        var step = AdamParameters.Keras;
        const float lr = 2e-3f;
        long adamT = random.Next(1, 100);
        using var kernels = new PrimitiveKernels(device);
        var host = new List<float[][]>();
        var buffers = new List<DeviceBuffer<float>>();
        var records = new AdamTensorRecord[lengths.Length];
        try
        {
            for (int t = 0; t < lengths.Length; t++)
            {
                float[] w = TestDevices.RandomFloats(random, lengths[t]), g = TestDevices.RandomFloats(random, lengths[t], 0.1f);
                float[] m = TestDevices.RandomFloats(random, lengths[t], 0.01f), v = TestDevices.RandomFloats(random, lengths[t], 0.001f);
                for (int i = 0; i < v.Length; i++) v[i] = Math.Abs(v[i]);
                host.Add([w, g, m, v]);
                var d = new[] { w, g, m, v }.Select(a => TestDevices.Upload(device, a)).ToArray();
                buffers.AddRange(d);
                records[t] = new AdamTensorRecord(d[0].Pointer, d[1].Pointer, d[2].Pointer, d[3].Pointer, lengths[t]);
            }
            using var table = device.Allocate<AdamTensorRecord>(records.Length);
            table.CopyFrom(records);
            kernels.AdamMulti(device.Stream, step, lr, adamT, table, records.Length, blocksPerTensor: 4);
            float lrT = step.LearningRateAt(lr, adamT);
            for (int t = 0; t < lengths.Length; t++)
            {
                float[] w1 = buffers[4 * t].ToArray(), m1 = buffers[4 * t + 2].ToArray(), v1 = buffers[4 * t + 3].ToArray();
                float[] w = host[t][0], g = host[t][1], m = host[t][2], v = host[t][3];
                for (int i = 0; i < lengths[t]; i++)
                {
                    float mi = step.Beta1 * m[i] + (1f - step.Beta1) * g[i];
                    float vi = step.Beta2 * v[i] + (1f - step.Beta2) * g[i] * g[i];
                    float wi = w[i] - lrT * mi / (MathF.Sqrt(vi) + step.Epsilon);
                    AssertBits(mi, m1[i], $"tensor {t} m", i);
                    AssertBits(vi, v1[i], $"tensor {t} v", i);
                    AssertBits(wi, w1[i], $"tensor {t} w", i);
                }
            }
        }
        finally
        {
            foreach (var buffer in buffers) buffer.Dispose();
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
        // The uploads and poisoning went on the device's stream; the steps run on another one.
        device.Synchronize();

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
        device.Synchronize();
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

/// <summary>Device library calls (GEMM, convolutions) against the CPU backend, the reference.</summary>
internal static class LibraryChecks
{
    /// <summary>
    /// Runs forward, backward data and backward filter on the device and on the CPU backend.
    /// <paramref name="exact"/> demands bit-identity (emu runs the CPU code); on a GPU cuDNN
    /// sums in another order, so the comparison is bounded (see Compare).
    /// </summary>
    public static void Convolutions(Device device, ConvGeometry g, int seed, bool exact)
    {
        var random = new Random(seed);
        float[] x = TestDevices.RandomFloats(random, g.InputLength), w = TestDevices.RandomFloats(random, g.WeightLength);
        float[] dy = TestDevices.RandomFloats(random, g.OutputLength);
        using var cpu = new LaPerm.Cpu.CpuBackend(2);
        float[] Cpu(Action<Tensor<float>, Tensor<float>, Tensor<float>> op, float[] first, float[] second, int outputLength)
        {
            using var a = cpu.Allocate<float>(new Shape(first.Length));
            using var b = cpu.Allocate<float>(new Shape(second.Length));
            using var c = cpu.Allocate<float>(new Shape(outputLength));
            cpu.Upload<float>(first, a);
            cpu.Upload<float>(second, b);
            op(a, b, c);
            var result = new float[outputLength];
            cpu.Download(c, result);
            return result;
        }
        float[] expectedY = Cpu((a, b, c) => cpu.ConvForward(g, a, b, c), x, w, g.OutputLength);
        float[] expectedDx = Cpu((a, b, c) => cpu.ConvBackwardData(g, a, b, c), dy, w, g.InputLength);
        float[] expectedDw = Cpu((a, b, c) => cpu.ConvBackwardFilter(g, a, b, c), x, dy, g.WeightLength);

        using var dx = TestDevices.Upload(device, x);
        using var dw = TestDevices.Upload(device, w);
        using var ddy = TestDevices.Upload(device, dy);
        using var y = TestDevices.Poisoned(device, g.OutputLength);
        using var gx = TestDevices.Poisoned(device, g.InputLength);
        using var gw = TestDevices.Poisoned(device, g.WeightLength);
        device.ConvForward(device.Stream, g, dx, dw, y);
        device.ConvBackwardData(device.Stream, g, ddy, dw, gx);
        device.ConvBackwardFilter(device.Stream, g, dx, ddy, gw);
        Compare("y", expectedY, y.ToArray(), x, w, g.InChannels * g.KernelHeight * g.KernelWidth, exact);
        Compare("dx", expectedDx, gx.ToArray(), dy, w, g.OutChannels * g.KernelHeight * g.KernelWidth, exact);
        Compare("dw", expectedDw, gw.ToArray(), x, dy, g.Batch * g.OutHeight * g.OutWidth, exact);
    }

    /// <summary>TF "same" at stride 2 on an even size pads 0 top, 1 bottom: cuDNN (and the emulator's stand-in) refuse it with a reason.</summary>
    public static void RefusesAsymmetricPadding(Device device)
    {
        var g = ConvGeometry.Create(1, 2, 8, 8, 2, 3, 3, 2, true);
        using var x = device.Allocate<float>(g.InputLength);
        using var w = device.Allocate<float>(g.WeightLength);
        using var y = device.Allocate<float>(g.OutputLength);
        var e = Assert.Throws<NotSupportedException>(() => device.ConvForward(device.Stream, g, x, w, y));
        Assert.Contains("symmetrically", e.Message);
    }

    /// <summary>
    /// The batch-norm backward hands cuDNN the forward's epsilon (its documentation asks for the
    /// same value in both passes): one below CUDNN_BN_MIN_EPSILON is refused with the value it got.
    /// </summary>
    public static void BatchNormBackwardTakesTheForwardsEpsilon(Device device)
    {
        var shape = new BatchNormShape(2, 3, 4);
        using var x = device.Allocate<float>(shape.Length);
        using var dy = device.Allocate<float>(shape.Length);
        using var dx = device.Allocate<float>(shape.Length);
        using var gamma = device.Allocate<float>(3);
        using var mean = device.Allocate<float>(3);
        using var invStd = device.Allocate<float>(3);
        using var dGamma = device.Allocate<float>(3);
        using var dBeta = device.Allocate<float>(3);
        const float epsilon = -0.25f;
        var e = Assert.Throws<NotSupportedException>(() =>
            device.BatchNormBackward(device.Stream, shape, epsilon, x, dy, gamma, mean, invStd, dx, dGamma, dBeta));
        Assert.Contains($"got {epsilon}", e.Message, StringComparison.Ordinal);
    }

    private static void Compare(string name, float[] expected, float[] actual, float[] first, float[] second, int terms, bool exact)
    {
        Assert.Equal(expected.Length, actual.Length);
        // Every output sums at most `terms` products, each at most P = max|first| * max|second|;
        // float summation in any order errs by <= terms * 2^-24 * (terms * P) per side, so two
        // differently ordered results differ by <= 2 * terms * 2^-24 * terms * P.
        double bound = exact ? 0 : 2.0 * terms * Math.Pow(2, -24) * MaxAbs(first) * MaxAbs(second) * terms;
        for (int i = 0; i < expected.Length; i++)
        {
            bool ok = exact
                ? BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i])
                : Math.Abs(expected[i] - actual[i]) <= bound;
            Assert.True(ok, $"{name}[{i}] = {actual[i]:R}, CPU backend {expected[i]:R} ({(exact ? "bit-exact" : $"bound {bound:E2}")})");
        }
    }

    private static double MaxAbs(float[] values) => values.Max(v => Math.Abs((double)v));

    /// <summary>Batched GEMM on the device against the CPU backend's GEMM of each matrix.</summary>
    public static void GemmAgainstCpu(Device device, bool transposeA, bool transposeB, float beta, int seed, bool exact)
    {
        const int m = 19, n = 23, k = 300, batch = 3;
        var random = new Random(seed);
        float[] a = TestDevices.RandomFloats(random, m * k * batch), b = TestDevices.RandomFloats(random, k * n * batch);
        float[] c = TestDevices.RandomFloats(random, m * n * batch);
        using var cpu = new LaPerm.Cpu.CpuBackend(2);
        var expected = new float[m * n * batch];
        for (int s = 0; s < batch; s++)
        {
            using var ta = cpu.Allocate<float>(new Shape(m * k));
            using var tb = cpu.Allocate<float>(new Shape(k * n));
            using var tc = cpu.Allocate<float>(new Shape(m * n));
            cpu.Upload<float>(a.AsSpan(s * m * k, m * k), ta);
            cpu.Upload<float>(b.AsSpan(s * k * n, k * n), tb);
            cpu.Upload<float>(c.AsSpan(s * m * n, m * n), tc);
            cpu.Gemm(transposeA, transposeB, m, n, k, 0.5f, ta, tb, beta, tc);
            cpu.Download(tc, expected.AsSpan(s * m * n, m * n));
        }
        using var da = TestDevices.Upload(device, a);
        using var db = TestDevices.Upload(device, b);
        using var dc = beta == 0f ? TestDevices.Poisoned(device, c.Length) : TestDevices.Upload(device, c);
        device.GemmStridedBatched(device.Stream, transposeA, transposeB, m, n, k, 0.5f, da, m * k, db, k * n, beta, dc, m * n, batch);
        Compare("C", expected, dc.ToArray(), a, b, k, exact);
    }
}
