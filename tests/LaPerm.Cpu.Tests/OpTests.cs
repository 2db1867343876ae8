using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

public sealed class OpTests
{
    [Fact]
    public void DropoutMaskFollowsTheCounterBasedUniformAndHasTheRightRate()
    {
        const int length = 200_000;
        const float rate = 0.3f;
        var rng = new Random(31);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, length);
        var tx = rig.Input(x, length);
        var ty = rig.Poisoned(length);
        var mask = rig.PoisonedByte(length);
        rig.Backend.BeginStep(new StepScalars(5, 0, 0, 1, 1e-3f, 1));
        rig.Backend.DropoutForward(rate, 99, tx, ty, mask);
        var maskBytes = rig.Get(mask);
        var y = rig.Get(ty);
        float scale = 1f / (1f - rate);
        int kept = 0;
        for (int i = 0; i < length; i++)
        {
            bool keep = DropoutRandom.Uniform(99, 5, (uint)i) >= rate;
            Assert.Equal(keep ? (byte)1 : (byte)0, maskBytes[i]);
            Assert.Equal(keep ? x[i] * scale : 0f, y[i]);
            kept += maskBytes[i];
        }
        // Binomial(n, 0.7): within 5 standard deviations.
        double sigma = Math.Sqrt(length * 0.7 * 0.3);
        Assert.InRange(kept, length * 0.7 - 5 * sigma, length * 0.7 + 5 * sigma);

        // Same (seed, step): same mask on any thread count; another step: an independent mask.
        using var other = new TestRig(3);
        var mask2 = other.PoisonedByte(length);
        other.Backend.BeginStep(new StepScalars(5, 0, 0, 1, 1e-3f, 1));
        other.Backend.DropoutForward(rate, 99, other.Input(x, length), other.Poisoned(length), mask2);
        Assert.Equal(maskBytes, other.Get(mask2));
        var mask3 = other.PoisonedByte(length);
        other.Backend.BeginStep(new StepScalars(6, 0, 0, 1, 1e-3f, 1));
        other.Backend.DropoutForward(rate, 99, other.Input(x, length), other.Poisoned(length), mask3);
        int differing = maskBytes.Zip(other.Get(mask3)).Count(p => p.First != p.Second);
        double expectedDiffering = length * 2 * 0.7 * 0.3, sigmaDiffering = Math.Sqrt(length * 0.42 * 0.58);
        Assert.InRange(differing, expectedDiffering - 5 * sigmaDiffering, expectedDiffering + 5 * sigmaDiffering);
    }

    [Fact]
    public void DropoutRateZeroKeepsEverything()
    {
        var x = Data.Uniform(new Random(2), 100);
        using var rig = new TestRig();
        var ty = rig.Poisoned(100);
        var mask = rig.PoisonedByte(100);
        rig.Backend.BeginStep(new StepScalars(1, 0, 0, 1, 1e-3f, 1));
        rig.Backend.DropoutForward(0f, 1, rig.Input(x, 100), ty, mask);
        Assert.Equal(x, rig.Get(ty));
        Assert.All(rig.Get(mask), b => Assert.Equal(1, b));
    }

    [Fact]
    public void BatchNormUpdatesRunningStatisticsKerasStyleAndInferenceUsesThem()
    {
        const int batch = 6, channels = 3, spatial = 5;
        const float epsilon = 1e-3f, momentum = 0.9f;
        var rng = new Random(41);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, batch * channels * spatial, -1f, 4f);
        var gamma = Data.Uniform(rng, channels, 0.5f, 1.5f);
        var beta = Data.Uniform(rng, channels);
        var runningMean0 = Data.Uniform(rng, channels);
        var runningVariance0 = Data.Uniform(rng, channels, 0.5f, 2f);
        var runningMean = rig.Input(runningMean0, channels);
        var runningVariance = rig.Input(runningVariance0, channels);
        var tx = rig.Input(x, batch, channels, spatial);
        var tGamma = rig.Input(gamma, channels);
        var tBeta = rig.Input(beta, channels);
        rig.Backend.BatchNormForwardTraining(batch, channels, spatial, epsilon, momentum, tx, tGamma, tBeta,
            runningMean, runningVariance, rig.Poisoned(channels), rig.Poisoned(channels), rig.Poisoned(batch, channels, spatial));
        var (_, mean, variance) = Reference.BatchNormTraining(batch, channels, spatial, epsilon, Data.ToDouble(x), Data.ToDouble(gamma), Data.ToDouble(beta));
        int count = batch * spatial;
        var expectedMean = mean.Select((m, c) => momentum * (double)runningMean0[c] + (1 - momentum) * m).ToArray();
        var expectedVariance = variance.Select((v, c) => momentum * (double)runningVariance0[c] + (1 - momentum) * v * count / (count - 1)).ToArray();
        var gotMean = rig.Get(runningMean);
        var gotVariance = rig.Get(runningVariance);
        Check.Close(gotMean, expectedMean, GradientTests.ForwardTolerance, "running mean");
        Check.Close(gotVariance, expectedVariance, GradientTests.ForwardTolerance, "running variance");

        var ty = rig.Poisoned(batch, channels, spatial);
        rig.Backend.BatchNormForwardInference(batch, channels, spatial, epsilon, tx, tGamma, tBeta, runningMean, runningVariance, ty);
        var expectedY = Reference.BatchNormInference(batch, channels, spatial, epsilon, Data.ToDouble(x), Data.ToDouble(gamma), Data.ToDouble(beta),
            Data.ToDouble(gotMean), Data.ToDouble(gotVariance));
        Check.Close(rig.Get(ty), expectedY, GradientTests.ForwardTolerance, "inference y");
    }

    [Fact]
    public void SoftmaxCrossEntropyCountsFirstMaximumAndRejectsBadLabels()
    {
        using var rig = new TestRig();
        // Row 0 ties classes 1 and 2, row 1 ties 0 and 2. Each row alone, so "first max" and "last
        // max" cannot cancel out: the first tied class is a hit, the last one is not.
        var logits = rig.Input([0.1f, 0.9f, 0.9f, 0.7f, 0.2f, 0.7f], 2, 3);
        float Hits(int row, int label)
        {
            var totals = rig.Input([0f, 0f], 2);
            var one = rig.Input(rig.Get(logits).AsSpan(row * 3, 3).ToArray(), 1, 3);
            rig.Backend.SoftmaxCrossEntropy(1, 3, one, rig.Input([label], 1), rig.Poisoned(1, 3), totals);
            return rig.Get(totals)[1];
        }
        Assert.Equal((1f, 0f), (Hits(0, 1), Hits(0, 2)));
        Assert.Equal((1f, 0f), (Hits(1, 0), Hits(1, 2)));
        var ex = Assert.Throws<ArgumentException>(() => rig.Backend.SoftmaxCrossEntropy(2, 3, logits, rig.Input([1, 3], 2), rig.Poisoned(2, 3), rig.Input([0f, 0f], 2)));
        Assert.Contains("labels[1] = 3", ex.Message);
    }

    [Fact]
    public void SoftmaxCrossEntropyKeepsTheLossOfHugeEqualLogits()
    {
        // Ten equal logits of 1e20: the loss is ln 10, not 0 (log(sum) + max - label vanished in max).
        using var rig = new TestRig();
        var totals = rig.Input([0f, 0f], 2);
        rig.Backend.SoftmaxCrossEntropy(1, 10, rig.Input([.. Enumerable.Repeat(1e20f, 10)], 1, 10), rig.Input([4], 1), rig.Poisoned(1, 10), totals);
        Assert.Equal((float)Math.Log(10), rig.Get(totals)[0], 1e-6f);
    }

    [Fact]
    public void ReluLetsNaNThroughAndSoftmaxCountsNoHitForARowWithNaN()
    {
        // Zeroing NaN in ReLU hid a diverged layer from the loss guard; a NaN row at label 0 counted as correct.
        using var rig = new TestRig();
        float[] x = [float.NaN, -1f, -0.0f, 2f, .. Enumerable.Repeat(float.NaN, 9), 3f, -2f, 0f, 1f];   // the vector path and the tail
        var y = rig.Poisoned(x.Length);
        rig.Backend.ReluForward(rig.Input(x, x.Length), y);
        var result = rig.Get(y);
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(float.IsNaN(x[i]) ? x[i] : x[i] > 0 ? x[i] : 0f), BitConverter.SingleToUInt32Bits(result[i]));

        var totals = rig.Input([0f, 0f], 2);
        rig.Backend.SoftmaxCrossEntropy(3, 3, rig.Input([float.NaN, 1f, 2f, 1f, float.NaN, 0f, 3f, 1f, 2f], 3, 3), rig.Input([0, 0, 0], 3), rig.Poisoned(3, 3), totals);
        Assert.Equal(1f, rig.Get(totals)[1]);   // only the finite row 2, whose arg-max is its label
    }

    [Fact]
    public void MaxPoolPropagatesANaNWhereverItSitsInTheWindow()
    {
        // [1, NaN, 3, 2] gave 3 (the NaN dropped) while [NaN, 5, 3, 2] gave NaN.
        using var rig = new TestRig();
        var g = PoolGeometry.Create(3, 1, 2, 2, 2, 2);
        var y = rig.Poisoned(3, 1, 1, 1);
        var argmax = rig.Backend.Allocate<int>(new Shape(3));
        rig.Backend.MaxPoolForward(g, rig.Input([1f, float.NaN, 3f, 2f, float.NaN, 5f, 3f, 2f, 2f, 2f, 2f, 2f], 3, 1, 2, 2), y, argmax);
        var result = rig.Get(y);
        Assert.True(float.IsNaN(result[0]) && float.IsNaN(result[1]));
        Assert.Equal(2f, result[2]);
        var indices = new int[3];
        rig.Backend.Download(argmax, indices);
        Assert.Equal([1, 4, 8], indices);   // the NaN's own cell; ties: the first
    }

    [Fact]
    public void BiasOpsUseTheChannelAxis()
    {
        const int batch = 2, channels = 3, spatial = 4;
        var rng = new Random(3);
        using var rig = new TestRig();
        var y = Data.Uniform(rng, batch * channels * spatial);
        var bias = Data.Uniform(rng, channels);
        var ty = rig.Input(y, batch, channels, 2, 2);
        rig.Backend.AddBias(ty, rig.Input(bias, channels), channels);
        var expected = y.Select((v, i) => v + (double)bias[i / spatial % channels]).ToArray();
        Check.Close(rig.Get(ty), expected, GradientTests.ForwardTolerance, "y + bias");
    }

    [Fact]
    public void MemoryOpsRoundTripAndRejectMismatches()
    {
        using var rig = new TestRig();
        using var another = new TestRig();
        var data = Data.Uniform(new Random(4), 10);
        var t = rig.Input(data, 2, 5);
        Assert.Equal(data, ((CpuTensor<float>)t).Span.ToArray());
        var copy = rig.Poisoned(10);
        rig.Backend.Copy(t, copy);
        Assert.Equal(data, rig.Get(copy));
        var fresh = rig.Backend.Allocate<float>(new Shape(3));
        Assert.Equal(new float[3], rig.Get(fresh));
        Assert.Throws<ArgumentException>(() => rig.Backend.Upload<float>(new float[9], t));
        var foreign = Assert.Throws<ArgumentException>(() => rig.Backend.ReluForward(another.Input(data, 10), copy));
        Assert.Contains("not to this cpu backend", foreign.Message);
    }
}
