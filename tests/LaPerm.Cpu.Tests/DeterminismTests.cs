using LaPerm.Core.Backend;
using LaPerm.Core.Data;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// Every op is documented to give bit-identical results for any thread count (each output
/// element is computed by one worker in a split-independent order); these tests run a
/// forward/backward/update chain of every op on 1, 2 and 3 threads and compare bits.
/// </summary>
public sealed class DeterminismTests
{
    private static List<float[]> RunChain(int threads, int columnBudget)
    {
        var rng = new Random(2024);
        using var rig = new TestRig(threads);
        rig.Backend.ColumnBudget = columnBudget;
        var b = rig.Backend;
        var outputs = new List<float[]>();
        const int batch = 5;
        var c1 = ConvGeometry.Create(batch, 2, 12, 12, 8, 3, 3, 1, false);   // 10x10
        var c2 = ConvGeometry.Create(batch, 8, 10, 10, 6, 5, 5, 2, true);    // 5x5, asymmetric pad
        var pool = PoolGeometry.Create(batch, 6, 5, 5, 2, 1);                 // 4x4
        var x = rig.Input(Data.Uniform(rng, c1.InputLength), batch, 2, 12, 12);
        var w1 = rig.Input(Data.Uniform(rng, c1.WeightLength), 8, 2, 3, 3);
        var w2 = rig.Input(Data.Uniform(rng, c2.WeightLength), 6, 8, 5, 5);
        var h1 = rig.Poisoned(batch, 8, 10, 10);
        b.ConvForward(c1, x, w1, h1);
        b.AddBias(h1, rig.Input(Data.Uniform(rng, 8), 8), 8);
        var gamma = rig.Input(Data.Uniform(rng, 8, 0.5f, 1.5f), 8);
        var beta = rig.Input(Data.Uniform(rng, 8), 8);
        var mean = rig.Poisoned(8);
        var invStd = rig.Poisoned(8);
        var n1 = rig.Poisoned(batch, 8, 10, 10);
        b.BatchNormForwardTraining(batch, 8, 100, 1e-3f, 0.99f, h1, gamma, beta, rig.Input(new float[8], 8), rig.Input(new float[8], 8), mean, invStd, n1);
        b.ReluForward(n1, n1);
        var mask = rig.PoisonedByte(batch * 800);
        var d1 = rig.Poisoned(batch, 8, 10, 10);
        b.BeginStep(new StepScalars(4, 0, 0, 1, 0.1f, 1));
        b.DropoutForward(0.25f, 3, n1, d1, mask);
        var h2 = rig.Poisoned(batch, 6, 5, 5);
        b.ConvForward(c2, d1, w2, h2);
        var p = rig.Poisoned(batch, 6, 4, 4);
        var argmax = rig.PoisonedInt(batch * 96);
        b.MaxPoolForward(pool, h2, p, argmax);
        var logits = rig.Poisoned(batch, 6);
        b.GlobalAvgPoolForward(batch, 6, 16, p, logits);
        var totals = rig.Input([0f, 0f], 2);
        var dLogits = rig.Poisoned(batch, 6);
        b.SoftmaxCrossEntropy(batch, 6, logits, rig.Input(Enumerable.Range(0, batch).Select(i => i % 6).ToArray(), batch), dLogits, totals);
        var dp = rig.Poisoned(batch, 6, 4, 4);
        b.GlobalAvgPoolBackward(batch, 6, 16, dLogits, dp);
        var dh2 = rig.Poisoned(batch, 6, 5, 5);
        b.MaxPoolBackward(pool, h2, p, dp, argmax, dh2);
        var dw2 = rig.Poisoned(6, 8, 5, 5);
        b.ConvBackwardFilter(c2, d1, dh2, dw2);
        var dd1 = rig.Poisoned(batch, 8, 10, 10);
        b.ConvBackwardData(c2, dh2, w2, dd1);
        b.DropoutBackward(0.25f, dd1, mask, dd1);
        b.ReluBackward(n1, dd1, dd1);
        var dh1 = rig.Poisoned(batch, 8, 10, 10);
        var dGamma = rig.Poisoned(8);
        var dBeta = rig.Poisoned(8);
        b.BatchNormBackward(batch, 8, 100, 1e-3f, h1, dd1, gamma, mean, invStd, dh1, dGamma, dBeta);
        var dw1 = rig.Poisoned(8, 2, 3, 3);
        b.ConvBackwardFilter(c1, x, dh1, dw1);
        var db1 = rig.Poisoned(8);
        b.BiasGradient(dh1, db1, 8);
        var m = rig.Input(new float[c2.WeightLength], c2.WeightLength);
        var v = rig.Input(new float[c2.WeightLength], c2.WeightLength);
        b.BeginStep(new StepScalars(4, 0, 0, 1, 1e-3f, 1));
        b.AdamUpdate(AdamParameters.Keras, w2, dw2, m, v);
        using var plan = b.PrepareReconnect([new ReconnectTarget("w1", w1, 8, 18)]);
        b.BeginStep(new StepScalars(4, 0, 0, 1, 0.1f, 1));
        b.SgdMomentumUpdate(0.9f, w1, dw1, rig.Input(new float[c1.WeightLength], c1.WeightLength));
        b.Reconnect(plan);
        foreach (var t in new[] { h1, n1, d1, h2, p, logits, totals, dLogits, dp, dh2, dw2, dd1, dh1, dGamma, dBeta, dw1, db1, w2, w1 })
            outputs.Add(rig.Get(t));

        // A gathered batch with every kind of augmentation (the images are warped in parallel).
        var pixels = new byte[40 * 2 * 9 * 11];
        rng.NextBytes(pixels);
        var data = new Dataset("random", pixels, [.. Enumerable.Range(0, 40).Select(i => (byte)(i % 7))], 2, 9, 11, 7);
        using var onBackend = b.UploadDataset(data);
        var images = rig.Poisoned(30, 2, 9, 11);
        var labels = rig.PoisonedInt(30);
        var augmenter = new Augmenter(new AugmentationPreset("all", 20f, 0.2f, 0.15f, true), 8);
        b.BeginStep(new StepScalars(1, 2, 5, 30, 1e-3f, 1));
        b.GatherBatch(onBackend, 4, augmenter, images, labels);
        outputs.Add(rig.Get(images));
        outputs.Add([.. rig.Get(labels).Select(l => (float)l)]);
        return outputs;
    }

    [Fact]
    public void EveryOpIsRepeatableAndIndependentOfTheThreadCount()
    {
        var reference = RunChain(1, 4 << 20);
        Check.BitIdentical(reference.SelectMany(a => a).ToArray(), RunChain(1, 4 << 20).SelectMany(a => a).ToArray(), "repeat, 1 thread");
        foreach (int threads in new[] { 2, 3 })
        {
            var got = RunChain(threads, 4 << 20);
            for (int i = 0; i < reference.Count; i++) Check.BitIdentical(reference[i], got[i], $"output {i}, {threads} threads");
        }
        Assert.All(reference, a => Assert.All(a, v => Assert.False(float.IsNaN(v))));
    }

    [Fact]
    public void ConvolutionResultsDoNotDependOnTheDataGradientGroupSize()
    {
        // The data gradient runs in groups of images (sized from ColumnBudget); its GEMM reduces over
        // cout only and col2im works per image, so the grouping must be invisible in the bits.
        var g = ConvGeometry.Create(5, 3, 9, 9, 4, 3, 3, 1, true);
        var rng = new Random(6);
        var x = Data.Uniform(rng, g.InputLength);
        var w = Data.Uniform(rng, g.WeightLength);
        var dy = Data.Uniform(rng, g.OutputLength);
        (float[] Y, float[] Dx, float[] Dw) Run(int budget)
        {
            using var rig = new TestRig(2);
            rig.Backend.ColumnBudget = budget;
            var tx = rig.Input(x, g.InputLength);
            var tw = rig.Input(w, g.WeightLength);
            var ty = rig.Poisoned(g.OutputLength);
            var tdx = rig.Poisoned(g.InputLength);
            var tdw = rig.Poisoned(g.WeightLength);
            rig.Backend.ConvForward(g, tx, tw, ty);
            rig.Backend.ConvBackwardData(g, rig.Input(dy, g.OutputLength), tw, tdx);
            rig.Backend.ConvBackwardFilter(g, tx, rig.Input(dy, g.OutputLength), tdw);
            return (rig.Get(ty), rig.Get(tdx), rig.Get(tdw));
        }
        var whole = Run(4 << 20);
        int perImage = 27 * 81;
        foreach (int budget in new[] { 1, 2 * perImage, 3 * perImage })   // groups of 1, of 2+2+1, of 3+2
        {
            var grouped = Run(budget);
            Check.BitIdentical(whole.Y, grouped.Y, $"y, budget {budget}");
            Check.BitIdentical(whole.Dx, grouped.Dx, $"dx, budget {budget}");
            Check.BitIdentical(whole.Dw, grouped.Dw, $"dw, budget {budget}");
        }
    }
}
