using LaPerm.Core.Backend;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;
using static LaPerm.Cuda.Tests.Backend.Compare;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The two layouts of the per-channel reductions (<see cref="ChannelReduction"/>: v1 one block
/// per channel, v2 chunked) against the CPU backend on shapes that exercise the chunking: one to
/// 64 channels, 1 to about 20,000 elements per channel (never powers of two, so the last chunk is
/// short), spatial 1 (dense batch-norm) and larger. Both must stay within the bounds the existing
/// op tests document (one float ulp of the statistics, one rounding of the bias sum), v2 must be
/// deterministic, and v2 must replay correctly from a captured graph.
/// </summary>
public abstract class ChannelReductionTests
{
    /// <summary>The backend under test with the given layout; skips when the device is missing.</summary>
    protected abstract CudaBackend Open(ChannelReduction reduction);

    private static CpuBackend Cpu() => new(2);

    private sealed record Inputs(int Batch, int Channels, int Spatial, float[] X, float[] Dy, float[] Gamma, float[] Beta,
        float[] RunningMean, float[] RunningVariance)
    {
        public int[] Shape => [Batch, Channels, Spatial];

        public static Inputs Create(int batch, int channels, int spatial, int seed)
        {
            var rng = new Random(seed);
            int length = batch * channels * spatial;
            // An offset mean, so a mean taken wrongly (a chunk missed or counted twice) shows in every output.
            var x = Random(rng, length, 2f).Select(v => v + 0.7f).ToArray();
            return new Inputs(batch, channels, spatial, x, Random(rng, length), Random(rng, channels), Random(rng, channels),
                Random(rng, channels, 0.1f), [.. Random(rng, channels).Select(v => 1 + Math.Abs(v))]);
        }
    }

    /// <summary>Training forward, backward and the bias gradient of dy: every output, poisoned first.</summary>
    private static float[][] Run(IBackend backend, Inputs p)
    {
        const float epsilon = 1e-3f, momentum = 0.99f;
        using var tx = Put(backend, p.X, p.Shape);
        using var tg = Put(backend, p.Gamma, p.Channels);
        using var tb = Put(backend, p.Beta, p.Channels);
        using var rm = Put(backend, p.RunningMean, p.Channels);
        using var rv = Put(backend, p.RunningVariance, p.Channels);
        using var sm = Poisoned(backend, p.Channels);
        using var sis = Poisoned(backend, p.Channels);
        using var ty = Poisoned(backend, p.Shape);
        backend.BatchNormForwardTraining(p.Batch, p.Channels, p.Spatial, epsilon, momentum, tx, tg, tb, rm, rv, sm, sis, ty);
        using var tdy = Put(backend, p.Dy, p.Shape);
        using var tdx = Poisoned(backend, p.Shape);
        using var dg = Poisoned(backend, p.Channels);
        using var db = Poisoned(backend, p.Channels);
        backend.BatchNormBackward(p.Batch, p.Channels, p.Spatial, epsilon, tx, tdy, tg, sm, sis, tdx, dg, db);
        using var dBias = Poisoned(backend, p.Channels);
        backend.BiasGradient(tdy, dBias, p.Channels);
        return [Get(backend, ty), Get(backend, sm), Get(backend, sis), Get(backend, rm), Get(backend, rv),
                Get(backend, tdx), Get(backend, dg), Get(backend, db), Get(backend, dBias)];
    }

    /// <summary>The bounds of BackendOpTests.BatchNormMatchesTheDoublePrecisionReference and of its bias-gradient check.</summary>
    private static void AgreeWithTheCpu(float[][] e, float[][] a, float[] biasSumOfAbs, string layout)
    {
        const double ulp = 1.2e-7;
        Close(e[1], a[1], ulp, 1e-9, $"{layout} saved mean");
        Close(e[2], a[2], ulp, 0, $"{layout} saved inverse deviation");
        Close(e[0], a[0], 8 * ulp, 1e-6, $"{layout} batch-norm forward");
        Close(e[3], a[3], 2 * ulp, 1e-9, $"{layout} running mean");
        Close(e[4], a[4], 2 * ulp, 0, $"{layout} running variance");
        Close(e[5], a[5], 8 * ulp, 1e-6, $"{layout} batch-norm dx");
        Close(e[6], a[6], 2 * ulp, 1e-6, $"{layout} batch-norm dgamma");
        Close(e[7], a[7], 2 * ulp, 1e-6, $"{layout} batch-norm dbeta");
        Within(e[8], a[8], i => Math.Pow(2, -23) * biasSumOfAbs[i], $"{layout} bias gradient");
    }

    private static float[] BiasSumOfAbsolutes(Inputs p)
    {
        using var cpu = Cpu();
        using var tdy = Put(cpu, [.. p.Dy.Select(Math.Abs)], p.Shape);
        using var sum = Poisoned(cpu, p.Channels);
        cpu.BiasGradient(tdy, sum, p.Channels);
        return Get(cpu, sum);
    }

    // batch x spatial = elements per channel; the comment gives v2's chunks (ChannelChunks).
    [Theory]
    [InlineData(1, 1, 1)]          // one element: one chunk of one
    [InlineData(19_997, 1, 1)]     // dense, one channel: 20 chunks of 1000 (the last 997)
    [InlineData(7, 3, 1_111)]      // 7,777 per channel: 8 chunks of 973 (the last 966)
    [InlineData(13, 16, 397)]      // 5,161 per channel: 6 chunks of 861 (the last 856)
    [InlineData(37, 64, 1)]        // dense, fewer elements than threads in a block: one chunk
    [InlineData(3, 64, 3_343)]     // 10,029 per channel: capped at 9 chunks (64 x 9 blocks) of 1,115
    public void BothLayoutsAgreeWithTheCpuAndTheChunkedOneIsDeterministic(int batch, int channels, int spatial)
    {
        var p = Inputs.Create(batch, channels, spatial, seed: batch * 131 + channels * 7 + spatial);
        float[][] expected;
        using (var cpu = Cpu()) expected = Run(cpu, p);
        var biasSumOfAbs = BiasSumOfAbsolutes(p);

        using (var v1 = Open(ChannelReduction.PerChannel))
        {
            Assert.Equal(ChannelReduction.PerChannel, v1.ChannelReduction);
            AgreeWithTheCpu(expected, Run(v1, p), biasSumOfAbs, "v1");
        }
        using var v2 = Open(ChannelReduction.Chunked);
        var first = Run(v2, p);
        AgreeWithTheCpu(expected, first, biasSumOfAbs, "v2");
        var second = Run(v2, p);
        for (int i = 0; i < first.Length; i++) BitEqual(first[i], second[i], $"v2 output {i}, second run");
    }

    [Fact]
    public void CapturedChunkedReductionsReplayWithNewInputs()
    {
        using var backend = Open(ChannelReduction.Chunked);
        var p = Inputs.Create(5, 16, 301, seed: 41);
        var q = Inputs.Create(5, 16, 301, seed: 43);
        const float epsilon = 1e-3f, momentum = 0.9f;
        using var tx = Put(backend, p.X, p.Shape);
        using var tdy = Put(backend, p.Dy, p.Shape);
        using var tg = Put(backend, p.Gamma, p.Channels);
        using var tb = Put(backend, p.Beta, p.Channels);
        using var rm = Put(backend, p.RunningMean, p.Channels);
        using var rv = Put(backend, p.RunningVariance, p.Channels);
        using var sm = Poisoned(backend, p.Channels);
        using var sis = Poisoned(backend, p.Channels);
        using var ty = Poisoned(backend, p.Shape);
        using var tdx = Poisoned(backend, p.Shape);
        using var dg = Poisoned(backend, p.Channels);
        using var db = Poisoned(backend, p.Channels);
        using var dBias = Poisoned(backend, p.Channels);
        void Ops()
        {
            backend.BatchNormForwardTraining(p.Batch, p.Channels, p.Spatial, epsilon, momentum, tx, tg, tb, rm, rv, sm, sis, ty);
            backend.BatchNormBackward(p.Batch, p.Channels, p.Spatial, epsilon, tx, tdy, tg, sm, sis, tdx, dg, db);
            backend.BiasGradient(tdy, dBias, p.Channels);
        }
        float[][] Outputs() => [Get(backend, ty), Get(backend, sm), Get(backend, sis), Get(backend, tdx), Get(backend, dg), Get(backend, db), Get(backend, dBias)];

        Ops();   // warm-up: the scratch buffer is allocated here, not inside the capture
        backend.BeginCapture();
        Ops();
        using var captured = backend.EndCapture();

        // New inputs, poisoned outputs: the replay must compute them, as the eager ops do.
        backend.Upload<float>(q.X, tx);
        backend.Upload<float>(q.Dy, tdy);
        foreach (var output in new[] { ty, sm, sis, tdx, dg, db, dBias }) backend.Fill(output, float.NaN);
        Assert.True(captured.IsValid);
        captured.Replay();
        var replayed = Outputs();

        foreach (var output in new[] { ty, sm, sis, tdx, dg, db, dBias }) backend.Fill(output, float.NaN);
        Ops();
        var eager = Outputs();
        for (int i = 0; i < eager.Length; i++) BitEqual(eager[i], replayed[i], $"replayed output {i}");
    }
}

/// <summary>On the host emulator (CI).</summary>
public sealed class EmuChannelReductionTests : ChannelReductionTests
{
    protected override CudaBackend Open(ChannelReduction reduction) => CudaBackend.Open("emu", channelReduction: reduction);

    /// <summary>A property of the chunking alone (no device): once, here, not again in the GPU class.</summary>
    [Fact]
    public void ChunksCoverEachChannelOnceAndFillTheGpuWhereTheChannelIsLargeEnough()
    {
        foreach (int channels in new[] { 1, 3, 16, 32, 64, 512, 2048 })
        {
            foreach (int count in new[] { 1, 255, 1_023, 1_025, 7_777, 20_000, 131_072, 1_000_003 })
            {
                var (chunks, length) = CudaBackend.ChannelChunks(channels, count);
                Assert.InRange(chunks, 1, Math.Max(1, 4 * 132 / channels + 1));
                Assert.True((long)chunks * length >= count, $"{channels} x {count}: {chunks} chunks of {length} miss elements");
                Assert.True((long)(chunks - 1) * length < count, $"{channels} x {count}: chunk {chunks - 1} of {length} is empty");
                // Either the channel is too small to split further, or the (channel, chunk) blocks fill 132 SMs four times.
                if (count >= 4 * 132 * 1024) Assert.True((long)channels * chunks >= 4 * 132, $"{channels} x {count}: only {chunks} chunks");
            }
        }
        // resnet50c at batch 128: its 16-channel stage at 32 x 32 gets 528 blocks instead of 16.
        Assert.Equal(33, CudaBackend.ChannelChunks(16, 128 * 32 * 32).Chunks);
    }
}

/// <summary>The same checks on a real GPU; skipped where there is none.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuChannelReductionTests : ChannelReductionTests
{
    protected override CudaBackend Open(ChannelReduction reduction) => GpuBackendOpTests.OpenGpu(CudnnScope.None, reduction);
}
