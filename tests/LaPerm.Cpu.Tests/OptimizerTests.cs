using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// Optimizer steps against the documented Keras formulas evaluated by hand in double precision.
/// Tolerance: each updated value is a handful of float operations, so it must agree with the
/// double result to a few units in the last place: 4 * 2^-24 relative to max(|value|, scale),
/// where scale is the sum of the magnitudes of the terms (a sum may cancel) or 1 for weights of order 1.
/// </summary>
public sealed class OptimizerTests
{
    private const double Ulps = 4 * 5.960464477539063e-8;

    private static void Near(float got, double expected, double scale, string what)
    {
        double bound = Ulps * Math.Max(Math.Abs(expected), scale);
        Assert.True(Math.Abs(got - expected) <= bound, $"{what}: got {got:R}, expected {expected:R} (bound {bound:E2})");
    }

    [Fact]
    public void AdamMatchesThreeHandComputedKerasSteps()
    {
        const int length = 37;
        const float lr = 1e-3f;
        var rng = new Random(21);
        using var rig = new TestRig();
        var w0 = Data.Uniform(rng, length);
        var tw = rig.Input(w0, length);
        var tm = rig.Input(new float[length], length);
        var tv = rig.Input(new float[length], length);
        double[] w = Data.ToDouble(w0), m = new double[length], v = new double[length];
        for (int t = 1; t <= 3; t++)
        {
            var g = Data.Uniform(rng, length, -2f, 2f);
            rig.Backend.BeginStep(new StepScalars(t, 0, 0, 1, lr, t));
            rig.Backend.AdamUpdate(AdamParameters.Keras, tw, rig.Input(g, length), tm, tv);
            double lrT = lr * Math.Sqrt(1 - Math.Pow(0.999f, t)) / (1 - Math.Pow(0.9f, t));
            var gotW = rig.Get(tw);
            var gotM = rig.Get(tm);
            var gotV = rig.Get(tv);
            for (int i = 0; i < length; i++)
            {
                double mTerms = Math.Abs(0.9f * m[i]) + Math.Abs((1 - 0.9f) * (double)g[i]);   // m may cancel: bound by its terms
                m[i] = 0.9f * m[i] + (1 - 0.9f) * (double)g[i];
                v[i] = 0.999f * v[i] + (1 - 0.999f) * (double)g[i] * g[i];
                w[i] -= lrT * m[i] / (Math.Sqrt(v[i]) + 1e-7f);
                Near(gotM[i], m[i], mTerms, $"t={t} m[{i}]");
                Near(gotV[i], v[i], 0, $"t={t} v[{i}]");
                Near(gotW[i], w[i], 1, $"t={t} w[{i}]");
                // Compare against the reference, then continue from the backend's state so errors do not compound.
                m[i] = gotM[i];
                v[i] = gotV[i];
                w[i] = gotW[i];
            }
            if (t == 1)
            {
                // Sanity of the bias correction: Adam's first step moves every weight by about lr.
                for (int i = 0; i < length; i++) Assert.InRange(Math.Abs(gotW[i] - w0[i]), 0.98 * lr, 1.02 * lr);
            }
        }
    }

    [Fact]
    public void SgdMomentumMatchesHandComputedKerasSteps()
    {
        const int length = 29;
        const float lr = 0.05f, momentum = 0.9f;
        var rng = new Random(22);
        using var rig = new TestRig();
        var w0 = Data.Uniform(rng, length);
        var tw = rig.Input(w0, length);
        var tVelocity = rig.Input(new float[length], length);
        double[] w = Data.ToDouble(w0), velocity = new double[length];
        for (int step = 0; step < 3; step++)
        {
            var g = Data.Uniform(rng, length);
            rig.Backend.BeginStep(new StepScalars(step + 1, 0, 0, 1, lr, step + 1));
            rig.Backend.SgdMomentumUpdate(momentum, tw, rig.Input(g, length), tVelocity);
            var gotW = rig.Get(tw);
            var gotVelocity = rig.Get(tVelocity);
            for (int i = 0; i < length; i++)
            {
                double velocityTerms = Math.Abs(momentum * velocity[i]) + Math.Abs(lr * (double)g[i]);
                velocity[i] = momentum * velocity[i] - lr * (double)g[i];
                w[i] += velocity[i];
                Near(gotVelocity[i], velocity[i], velocityTerms, $"step {step} velocity[{i}]");
                Near(gotW[i], w[i], 1, $"step {step} w[{i}]");
                velocity[i] = gotVelocity[i];
                w[i] = gotW[i];
            }
        }
    }

    [Fact]
    public void AStepTheGuardSkippedDoesNotCountInAdamsT()
    {
        const int length = 16;
        const float lr = 1e-3f;
        var rng = new Random(23);
        using var rig = new TestRig();
        var w0 = Data.Uniform(rng, length);
        var tw = rig.Input(w0, length);
        var tm = rig.Input(new float[length], length);
        var tv = rig.Input(new float[length], length);
        var g = rig.Input(Data.Uniform(rng, length, -2f, 2f), length);
        // Step 1 (t = 1) has a non-finite loss under skip-step: no update.
        rig.Backend.BeginStep(new StepScalars(1, 0, 0, 1, lr, 1));
        rig.Backend.GuardLoss(rig.Input([float.NaN, 0f], 2), skipStep: true);
        rig.Backend.CommitStepGuard();
        rig.Backend.AdamUpdate(AdamParameters.Keras, tw, g, tm, tv);
        Assert.Equal(w0, rig.Get(tw));
        // Step 2 carries t = 2, but it is Adam's first applied step: its bias correction moves every weight by about lr.
        rig.Backend.BeginStep(new StepScalars(2, 0, 0, 1, lr, 2));
        rig.Backend.AdamUpdate(AdamParameters.Keras, tw, g, tm, tv);
        var w = rig.Get(tw);
        for (int i = 0; i < length; i++) Assert.InRange(Math.Abs(w[i] - w0[i]), 0.98 * lr, 1.02 * lr);
    }

    [Fact]
    public void AdamRejectsStepZero()
    {
        using var rig = new TestRig();
        var t = rig.Input(Data.Uniform(new Random(1), 4), 4);
        rig.Backend.BeginStep(new StepScalars(1, 0, 0, 1, 1e-3f, 0));
        Assert.Throws<InvalidOperationException>(() => rig.Backend.AdamUpdate(AdamParameters.Keras, t, t, t, t));
    }
}
