using LaPerm.Core.Backend;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The non-finite guard's ops give the same record and the same optimizer results on the device
/// as on the CPU backend: which steps are left out and why, the first bad gradient's index, the
/// restores, the stop record, and Adam's t not counting the skipped steps.
/// </summary>
public abstract class GuardOpTests
{
    protected abstract CudaBackend Open();

    private sealed record Outcome(NonFiniteReport First, NonFiniteReport Second, float[] Weights, float[] M, float[] V, float[] Restored, float[] Totals);

    private static Outcome Run(IBackend backend)
    {
        var rng = new Random(12);
        const int n = 300;
        using var w = Compare.Put(backend, Compare.Random(rng, n), n);
        using var m = Compare.Put(backend, Compare.Random(rng, n, 0.01f), n);
        using var v = Compare.Put(backend, Compare.Random(rng, n, 0.001f).Select(Math.Abs).ToArray(), n);
        var gradients = Enumerable.Range(0, 3).Select(_ => Compare.Put(backend, Compare.Random(rng, n, 0.1f), n)).ToArray();
        var bad = Compare.Random(rng, n, 0.1f);
        bad[n - 1] = float.PositiveInfinity;
        using var badGradient = Compare.Put(backend, bad, n);
        using var totals = Compare.Put(backend, new[] { 1.5f, 3f }, 2);
        using var backup = Compare.Put(backend, new[] { 0.25f, 1f }, 2);
        using var state = Compare.Put(backend, Compare.Random(rng, 7), 7);
        using var stateBackup = Compare.Put(backend, Compare.Random(rng, 7), 7);
        try
        {
            // Steps 1..5, Adam t = step: step 2 has a non-finite gradient in parameters 2 and 1 (1 is named),
            // step 4 a non-finite loss. Steps 3 and 5 must use t = 2 and 3.
            for (int step = 1; step <= 5; step++)
            {
                backend.BeginStep(new StepScalars(step, 0, 8 * step, 8, 1e-3f, step));
                if (step == 4) backend.Upload<float>([float.NaN, 4f], totals);
                backend.GuardLoss(totals, skipStep: true);
                for (int i = 0; i < 3; i++) backend.GuardGradient(step == 2 && i >= 1 ? badGradient : gradients[i], i);
                backend.RestoreIfSkipped(backup, totals);
                backend.RestoreIfSkipped(stateBackup, state);
                backend.CommitStepGuard();
                backend.AdamUpdate(AdamParameters.Keras, w, gradients[step % 3], m, v);
            }
            var first = backend.TakeNonFinite();
            // The stop record: the first step with a non-finite loss; the optimizer then does nothing.
            var before = Compare.Get(backend, w);
            backend.BeginStep(new StepScalars(6, 0, 48, 8, 1e-3f, 4));
            backend.Upload<float>([float.PositiveInfinity, 0f], totals);
            backend.GuardLoss(totals, skipStep: false);
            backend.AdamUpdate(AdamParameters.Keras, w, gradients[0], m, v);
            backend.BeginStep(new StepScalars(7, 0, 56, 8, 1e-3f, 5));
            backend.GuardLoss(totals, skipStep: false);
            backend.AdamUpdate(AdamParameters.Keras, w, gradients[1], m, v);
            Compare.BitEqual(before, Compare.Get(backend, w), $"{backend.Name}: weights after a recorded non-finite loss");
            var second = backend.TakeNonFinite();
            return new Outcome(first, second, Compare.Get(backend, w), Compare.Get(backend, m), Compare.Get(backend, v), Compare.Get(backend, state), Compare.Get(backend, totals));
        }
        finally
        {
            foreach (var g in gradients) g.Dispose();
        }
    }

    [Fact]
    public void TheGuardRecordsRestoresAndSkipsAsTheCpuBackendDoes()
    {
        using var device = Open();
        using var cpu = new CpuBackend(2);
        var expected = Run(cpu);
        var actual = Run(device);
        Assert.Equal([new SkippedStep(2, true, 1, 8), new SkippedStep(4, false, -1, 8)], expected.First.Skipped);
        Assert.Equal(0L, expected.First.FirstNonFiniteStep);
        Assert.Equal(6L, expected.Second.FirstNonFiniteStep);
        Assert.Empty(expected.Second.Skipped);
        Assert.Equal(expected.First.Skipped, actual.First.Skipped);
        Assert.Equal((expected.First.FirstNonFiniteStep, expected.First.Lost), (actual.First.FirstNonFiniteStep, actual.First.Lost));
        Assert.Equal((expected.Second.FirstNonFiniteStep, expected.Second.Skipped.Count), (actual.Second.FirstNonFiniteStep, actual.Second.Skipped.Count));
        Compare.BitEqual(expected.Weights, actual.Weights, "w");
        Compare.BitEqual(expected.M, actual.M, "m");
        Compare.BitEqual(expected.V, actual.V, "v");
        Compare.BitEqual(expected.Restored, actual.Restored, "restored state");
        Compare.BitEqual(expected.Totals, actual.Totals, "totals");
        Assert.Equal(NonFiniteReport.None, device.TakeNonFinite());

        // Left out means left out: the applied steps 1, 3, 5 alone, with t = 1, 2, 3, give the same bits.
        using var straight = new CpuBackend(2);
        var rng = new Random(12);
        const int n = 300;
        using var w = Compare.Put(straight, Compare.Random(rng, n), n);
        using var m = Compare.Put(straight, Compare.Random(rng, n, 0.01f), n);
        using var v = Compare.Put(straight, Compare.Random(rng, n, 0.001f).Select(Math.Abs).ToArray(), n);
        var gradients = Enumerable.Range(0, 3).Select(_ => Compare.Put(straight, Compare.Random(rng, n, 0.1f), n)).ToArray();
        int t = 0;
        foreach (int step in new[] { 1, 3, 5 })
        {
            straight.BeginStep(new StepScalars(step, 0, 0, 8, 1e-3f, ++t));
            straight.AdamUpdate(AdamParameters.Keras, w, gradients[step % 3], m, v);
        }
        Compare.BitEqual(Compare.Get(straight, w), expected.Weights, "w of the applied steps alone");
        Compare.BitEqual(Compare.Get(straight, v), expected.V, "v of the applied steps alone");
        foreach (var g in gradients) g.Dispose();
    }

    [Fact]
    public void SgdLeavesTheWeightsOfASkippedStepAlone()
    {
        using var device = Open();
        var rng = new Random(5);
        const int n = 300;
        var w0 = Compare.Random(rng, n);
        using var w = Compare.Put(device, w0, n);
        using var vel = Compare.Put(device, Compare.Random(rng, n, 0.01f), n);
        using var g = Compare.Put(device, Compare.Random(rng, n, 0.1f), n);
        using var totals = Compare.Put(device, new[] { float.NaN, 1f }, 2);
        device.BeginStep(new StepScalars(1, 0, 0, 8, 1e-2f, 1));
        device.GuardLoss(totals, skipStep: true);
        device.CommitStepGuard();
        device.SgdMomentumUpdate(0.9f, w, g, vel);
        Compare.BitEqual(w0, Compare.Get(device, w), "sgd weights after a skipped step");
        device.TakeNonFinite();
    }
}

public sealed class EmuGuardOpTests : GuardOpTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuGuardOpTests : GuardOpTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}
