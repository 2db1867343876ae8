using LaPerm.Core.Backend;
using LaPerm.Cuda.Reconnect;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests.Reconnect;

/// <summary>Runs the reconnection kernels on a device and compares them, bit for bit, with <see cref="Reconnection.SyncRow"/>.</summary>
internal static class ReconnectCheck
{
    public static Device OpenOrSkip(string kind)
    {
        try
        {
            return Device.Open(kind);
        }
        catch (InvalidOperationException e)
        {
            Assert.Skip($"{kind} is not available here: {e.Message}");
            throw; // unreachable: Skip throws
        }
    }

    /// <summary>A value pool with ties, both zeros and NaNs of both signs, or (rarely) a fresh random value.</summary>
    public static float Value(Random rng, float[] pool) => rng.Next(8) == 0
        ? (float)(rng.NextDouble() * 2 - 1)
        : pool[rng.Next(pool.Length)];

    public static float[] Pool(Random rng, int distinct) =>
    [
        .. Enumerable.Range(0, distinct).Select(_ => (float)(rng.NextDouble() * 2 - 1)),
        0.0f, -0.0f, float.PositiveInfinity, float.NegativeInfinity,
        BitConverter.UInt32BitsToSingle(0x7FC00000u), BitConverter.UInt32BitsToSingle(0xFFC00001u), BitConverter.UInt32BitsToSingle(0x7F800001u),
    ];

    /// <summary>
    /// Places the tensors one after another (with a gap of poison between them, which must stay
    /// untouched) in one buffer, reconnects them with the variant, and checks every element.
    /// </summary>
    public static void Run(Device device, ReconnectLimits limits, ReconnectVariant variant, IReadOnlyList<ReconnectShape> shapes, int seed,
        int syncs = 1, Func<Random, float>? draw = null)
    {
        var rng = new Random(seed);
        const int gap = 3;
        long total = shapes.Sum(s => s.Elements + gap);
        float poison = BitConverter.UInt32BitsToSingle(0x7FBADBADu);
        var host = Enumerable.Repeat(poison, (int)total).ToArray();
        var sorted = new List<float>();
        var expected = (float[])host.Clone();
        var targets = new List<(ReconnectShape Shape, long Offset)>();
        long at = 0;
        foreach (ReconnectShape s in shapes)
        {
            float[] pool = Pool(rng, 1 + rng.Next(Math.Max(1, s.RowLength / 3)));
            var scratch = new ulong[s.RowLength];
            for (int r = 0; r < s.Rows; r++)
            {
                var initial = Enumerable.Range(0, s.RowLength).Select(_ => draw is null ? Value(rng, pool) : draw(rng)).ToArray();
                var sorted0 = new float[s.RowLength];
                Reconnection.SortRow(initial, sorted0);
                sorted.AddRange(sorted0);
                var current = Enumerable.Range(0, s.RowLength).Select(_ => draw is null ? Value(rng, pool) : draw(rng)).ToArray();
                current.CopyTo(host, at + (long)r * s.RowLength);
                for (int k = 0; k < syncs; k++) Reconnection.SyncRow(current, sorted0, scratch);
                current.CopyTo(expected, at + (long)r * s.RowLength);
            }
            targets.Add((s, at));
            at += s.Elements + gap;
        }

        using var kernels = new ReconnectKernels(device, limits);
        using DeviceBuffer<float> weights = device.Allocate<float>(total);
        weights.CopyFrom(host);
        using var reconnector = new DeviceReconnector(kernels,
            [.. targets.Select(t => new DeviceReconnectTarget(t.Shape.Name, weights, t.Offset, t.Shape.Rows, t.Shape.RowLength))], variant, sorted.ToArray());
        for (int k = 0; k < syncs; k++) reconnector.Enqueue(device.Stream);
        float[] got = weights.ToArray();
        AssertBitEqual(expected, got, variant, shapes);
    }

    public static void AssertBitEqual(float[] expected, float[] got, ReconnectVariant variant, IReadOnlyList<ReconnectShape> shapes)
    {
        int mismatches = 0, first = -1;
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(got[i]))
            {
                mismatches++;
                if (first < 0) first = i;
            }
        Assert.True(mismatches == 0,
            $"variant {variant} on [{string.Join(", ", shapes.Select(s => $"{s.Rows}:{s.RowLength}"))}]: {mismatches} mismatching element(s), first at {first}");
    }
}

public sealed class ReconnectEmulatorTests
{
    public static TheoryData<int> Variants => [.. Enum.GetValues<ReconnectVariant>().Select(v => (int)v)];

    [Theory]
    [MemberData(nameof(Variants))]
    public void EveryVariantMatchesSyncRowOnMixedShapesInOneLaunch(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        ReconnectShape[] shapes =
        [
            new("len1", 5, 1), new("len2", 3, 2), new("conv3x3x1", 6, 9), new("warp-edge", 2, 32), new("odd", 3, 33),
            new("w64", 2, 64), new("w65", 2, 65), new("w128", 1, 128), new("b129", 2, 129), new("b300", 3, 300),
            new("pow2", 1, 1024), new("long", 1, 2049),
        ];
        ReconnectCheck.Run(device, ReconnectLimits.Default, (ReconnectVariant)variant, shapes, seed: 100 + variant);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void RowsLongerThanSharedMemoryGoThroughSeveralChunks(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        // 4 KB per block: chunks of 512, radix up to ~0, so block variants fall back to chunked.
        var small = new ReconnectLimits(4096);
        ReconnectShape[] shapes = [new("a", 2, 1500), new("b", 1, 513), new("c", 3, 40), new("d", 1, 3000)];
        ReconnectCheck.Run(device, small, (ReconnectVariant)variant, shapes, seed: 200 + variant);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void RandomShapesWithRepeatedSyncsStayExact(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        var rng = new Random(300 + variant);
        var shapes = Enumerable.Range(0, 6).Select(i => new ReconnectShape($"r{i}", 1 + rng.Next(6), 1 + rng.Next(rng.Next(2) == 0 ? 140 : 3000))).ToList();
        ReconnectCheck.Run(device, ReconnectLimits.Default, (ReconnectVariant)variant, shapes, seed: 400 + variant, syncs: 2);
    }

    /// <summary>
    /// Hopper's opt-in shared memory (227 KB) admits paths the 48 KB default never plans: chunks of
    /// 28,928 elements sorted by 1024-thread blocks, radix and bitonic rows of up to ~19,000
    /// elements, bucket rows up to 8192 in one block. The emulator runs them with the same sizes.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void LongRowsWithHopperSharedMemoryStayExact(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        var hopper = new ReconnectLimits(232448);
        ReconnectShape[] shapes = [new("b8192", 1, 8192), new("r12000", 1, 12000), new("c28928", 1, 28928), new("c30000", 1, 30000)];
        ReconnectCheck.Run(device, hopper, (ReconnectVariant)variant, shapes, seed: 1000 + variant);
    }

    /// <summary>
    /// The largest row count reconnection promises, 100,000 rows, in one launch through the dispatcher (warp
    /// per row; block-per-row variants take the same row indexing and are covered by the GPU test of this size).
    /// </summary>
    [Fact]
    public void AHundredThousandRowsStayExact()
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        ReconnectCheck.Run(device, ReconnectLimits.Default, ReconnectVariant.Auto, [new("rows", 100_000, 5)], seed: 1100);
    }

    /// <summary>Mostly distinct values (the bucket path proper, not its radix fallback) with rare specials.</summary>
    private static float Spread(Random rng) => rng.Next(300) switch
    {
        0 => -0.0f,
        1 => 0.0f,
        2 => float.NaN,
        3 => float.NegativeInfinity,
        4 => float.PositiveInfinity,
        5 => BitConverter.UInt32BitsToSingle(0xFFC00003u),
        6 => 1e-42f, // subnormal
        _ => (float)(rng.NextDouble() * 2 - 1) * 0.1f,
    };

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    public void BucketPathMatchesSyncRowOnSpreadValuesWithSpecials(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        ReconnectShape[] shapes = [new("a", 3, 200), new("b", 2, 257), new("c", 2, 1000), new("d", 1, 2100), new("e", 1, 3000)];
        ReconnectCheck.Run(device, ReconnectLimits.Default, (ReconnectVariant)variant, shapes, seed: 600 + variant, draw: Spread);
        // Values near the float range: the bucket span overflows to infinity and must stay monotone.
        ReconnectCheck.Run(device, ReconnectLimits.Default, (ReconnectVariant)variant, [new("huge", 2, 700)], seed: 700 + variant,
            draw: rng => rng.Next(2) == 0 ? (float)(rng.NextDouble() * 2 - 1) * 3e38f : Spread(rng));
        // The largest classes up to 8192 (Hopper-sized shared memory; the emulator has no limit);
        // for variant 9: 512 x 8, 384 x 12 (4608), 320 x 16 (5000) and 512 x 16.
        ReconnectCheck.Run(device, new ReconnectLimits(232448), (ReconnectVariant)variant,
            [new("c4096", 1, 4096), new("c8192", 1, 8192), new("c5000", 1, 5000), new("c4608", 1, 4608)],
            seed: 900 + variant, draw: Spread);
        // Only non-finite values and one finite value.
        ReconnectCheck.Run(device, ReconnectLimits.Default, (ReconnectVariant)variant, [new("nonfinite", 2, 300)], seed: 800 + variant,
            draw: rng => rng.Next(4) switch { 0 => float.NaN, 1 => float.NegativeInfinity, 2 => float.PositiveInfinity, _ => 1.5f });
    }

    [Fact]
    public void AllEqualRowsKeepColumnOrder()
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        using var kernels = new ReconnectKernels(device, ReconnectLimits.Default);
        foreach (int n in new[] { 17, 100, 777 })
            foreach (ReconnectVariant variant in Enum.GetValues<ReconnectVariant>())
            {
                // Current row all equal: the stable rank is the column, so w must become sorted0.
                var sorted0 = Enumerable.Range(0, n).Select(i => (float)i - n / 2).ToArray();
                using DeviceBuffer<float> w = device.Allocate<float>(n);
                w.Fill(0.5f);
                using var reconnector = new DeviceReconnector(kernels, [new DeviceReconnectTarget("t", w, 0, 1, n)], variant, sorted0);
                reconnector.Enqueue(device.Stream);
                Assert.Equal(sorted0, w.ToArray());
            }
    }

    [Fact]
    public void FromInitialWeightsKeepsEachRowsMultisetAndTheOptimizersRankOrder()
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        using var kernels = new ReconnectKernels(device, ReconnectLimits.Default);
        var rng = new Random(7);
        const int rows = 4, n = 700;
        var initial = Enumerable.Range(0, rows * n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        using DeviceBuffer<float> w = device.Allocate<float>(rows * n);
        w.CopyFrom(initial);
        using var reconnector = DeviceReconnector.FromInitialWeights(kernels, [new DeviceReconnectTarget("t", w, 0, rows, n)], ReconnectVariant.Auto);
        var trained = initial.Select(v => v + (float)(rng.NextDouble() - 0.5)).ToArray();
        w.CopyFrom(trained);
        reconnector.Enqueue(device.Stream);
        float[] synced = w.ToArray();
        for (int r = 0; r < rows; r++)
        {
            var row = synced.AsSpan(r * n, n);
            var sortedInitial = new float[n];
            Reconnection.SortRow(initial.AsSpan(r * n, n), sortedInitial);
            Assert.True(Reconnection.IsPermutationOf(row, sortedInitial), $"row {r} is not a permutation of its initial values");
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j += 37)
                    if (trained[r * n + i] < trained[r * n + j]) Assert.True(row[i] < row[j]);
        }
    }

    [Fact]
    public void ACapturedGraphReplaysTheReconnection()
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        ReconnectShape[] shapes = [new("a", 3, 50), new("b", 2, 400)];
        var rng = new Random(9);
        long total = shapes.Sum(s => s.Elements);
        var current = Enumerable.Range(0, (int)total).Select(_ => (float)rng.NextDouble()).ToArray();
        var sorted = Enumerable.Range(0, (int)total).Select(_ => (float)rng.NextDouble()).ToArray();
        var expected = (float[])current.Clone();
        long at = 0;
        foreach (ReconnectShape s in shapes)
            for (int r = 0; r < s.Rows; r++, at += s.RowLength)
            {
                Array.Sort(sorted, (int)at, s.RowLength);
                Reconnection.SyncRow(expected.AsSpan((int)at, s.RowLength), sorted.AsSpan((int)at, s.RowLength), new ulong[s.RowLength]);
            }
        using var kernels = new ReconnectKernels(device, ReconnectLimits.Default);
        using DeviceBuffer<float> w = device.Allocate<float>(total);
        using var reconnector = new DeviceReconnector(kernels, [new("a", w, 0, 3, 50), new("b", w, 150, 2, 400)], ReconnectVariant.Auto, sorted);
        using DeviceStream stream = device.CreateStream();
        stream.BeginCapture();
        reconnector.Enqueue(stream);
        using DeviceGraph graph = stream.EndCapture();
        using GraphExecutable exec = graph.Instantiate();
        w.CopyFrom(current, stream);
        exec.Launch(stream);
        stream.Synchronize();
        ReconnectCheck.AssertBitEqual(expected, w.ToArray(stream), ReconnectVariant.Auto, shapes);
    }

    [Fact]
    public void BenchReportsItsResultsAfterEveryLineSoACutRunKeepsThem()
    {
        using (ReconnectCheck.OpenOrSkip("emu")) { }
        var seen = new List<int>();
        var results = new ReconnectBench().Measure(new ReconnectBenchOptions("all", "4:7;2:300", "emu"), TextWriter.Null,
            measured => seen.Add(measured.Count));
        int lines = 2 * Enum.GetValues<ReconnectVariant>().Length;
        Assert.Equal(lines, results.Count);
        // Once empty before the first line (so an unwritable path fails before anything is measured), then after every line.
        Assert.Equal(Enumerable.Range(0, lines + 1), seen);
    }

    [Fact]
    public void BenchOnTheEmulatorVerifiesEveryVariant()
    {
        using (ReconnectCheck.OpenOrSkip("emu")) { }
        var output = new StringWriter();
        int code = ReconnectBench.Run(new ReconnectBenchOptions("all", "4:7,3:130,2:1100,2:2500", "emu"), output);
        string text = output.ToString();
        Assert.True(code == 0, text);
        Assert.Equal(Enum.GetValues<ReconnectVariant>().Length, text.Split('\n').Count(l => l.Contains("mismatches 0", StringComparison.Ordinal)));
    }

    [Fact]
    public void TargetsOutsideTheirBufferAreRejected()
    {
        using Device device = ReconnectCheck.OpenOrSkip("emu");
        using var kernels = new ReconnectKernels(device, ReconnectLimits.Default);
        using DeviceBuffer<float> w = device.Allocate<float>(10);
        var e = Assert.Throws<ArgumentException>(() => new DeviceReconnector(kernels, [new DeviceReconnectTarget("fc", w, 2, 3, 3)], ReconnectVariant.Auto, new float[9]));
        Assert.Contains("fc", e.Message);
    }
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class ReconnectGpuTests
{
    public static TheoryData<int> Variants => [.. Enum.GetValues<ReconnectVariant>().Select(v => (int)v)];

    [Theory]
    [MemberData(nameof(Variants))]
    public void EveryVariantMatchesSyncRowOnLargeShapes(int variant)
    {
        using Device device = ReconnectCheck.OpenOrSkip("cuda");
        ReconnectShape[] shapes =
        [
            new("many-short", 100_000, 9), new("warp", 3000, 100), new("conv3x3x512", 512, 4608), new("fc", 1000, 2048),
            new("block-limit", 4, 18_000), new("long", 3, 30_000), new("odd", 777, 1153), new("single", 1, 1),
        ];
        ReconnectCheck.Run(device, ReconnectLimits.For(device), (ReconnectVariant)variant, shapes, seed: 500 + variant, syncs: 2);
    }

    [Fact]
    public void BenchOnTheGpuReportsNoMismatches()
    {
        using (ReconnectCheck.OpenOrSkip("cuda")) { }
        var output = new StringWriter();
        int code = ReconnectBench.Run(new ReconnectBenchOptions("all", "conv7;resnet50-imagenet", "cuda", Samples: 5), output);
        Assert.True(code == 0, output.ToString());
    }
}
