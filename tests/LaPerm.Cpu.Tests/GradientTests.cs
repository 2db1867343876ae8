using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// Every backward op against central differences of the double-precision reference forward.
/// Each op's output y is contracted with a random upstream gradient r (L = sum r*y), so the
/// finite-difference gradient of L is exactly the vector-Jacobian product the backward op computes.
///
/// Tolerance <see cref="GradientTolerance"/> = 1e-4 relative to the largest gradient entry:
/// the float backward sums at most a few hundred products (relative rounding ~ n * 2^-24 &lt; 3e-5
/// in the worst case, far less typically) and the double central difference with h = 1e-5 errs
/// by ~1e-10; any indexing or formula error shows up at the size of the gradient itself.
/// </summary>
public sealed class GradientTests
{
    internal const double GradientTolerance = 1e-4;

    /// <summary>Forward results are single float roundings of short sums: 1e-5 of the largest output.</summary>
    internal const double ForwardTolerance = 1e-5;

    [Fact]
    public void DenseGemmPlusBias()
    {
        const int batch = 4, inputs = 9, outputs = 6;
        var rng = new Random(1);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, batch * inputs);
        var w = Data.Uniform(rng, outputs * inputs);
        var b = Data.Uniform(rng, outputs);
        var r = Data.Uniform(rng, batch * outputs);
        var tx = rig.Input(x, batch, inputs);
        var tw = rig.Input(w, outputs, inputs);
        var ty = rig.Poisoned(batch, outputs);
        rig.Backend.Gemm(false, true, batch, outputs, inputs, 1f, tx, tw, 0f, ty);
        rig.Backend.AddBias(ty, rig.Input(b, outputs), outputs);
        double[] dx = Data.ToDouble(x), dw = Data.ToDouble(w), db = Data.ToDouble(b), dr = Data.ToDouble(r);
        Check.Close(rig.Get(ty), Reference.Dense(batch, inputs, outputs, dx, dw, db), ForwardTolerance, "y");

        var tr = rig.Input(r, batch, outputs);
        var gx = rig.Poisoned(batch, inputs);
        var gw = rig.Poisoned(outputs, inputs);
        var gb = rig.Poisoned(outputs);
        rig.Backend.Gemm(false, false, batch, inputs, outputs, 1f, tr, tw, 0f, gx);
        rig.Backend.Gemm(true, false, outputs, inputs, batch, 1f, tr, tx, 0f, gw);
        rig.Backend.BiasGradient(tr, gb, outputs);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Reference.Dense(batch, inputs, outputs, v, dw, db))), GradientTolerance, "dx");
        Check.Close(rig.Get(gw), Reference.NumericGradient(dw, v => Reference.Dot(dr, Reference.Dense(batch, inputs, outputs, dx, v, db))), GradientTolerance, "dW");
        Check.Close(rig.Get(gb), Reference.NumericGradient(db, v => Reference.Dot(dr, Reference.Dense(batch, inputs, outputs, dx, dw, v))), GradientTolerance, "db");
    }

    public static TheoryData<int, int, int, int, int, int, int, bool> ConvCases() => new()
    {
        // batch, cin, size, cout, kernel, stride, (unused), same
        { 2, 3, 7, 4, 3, 1, 0, false },
        { 2, 2, 6, 3, 3, 1, 0, true },
        { 2, 2, 8, 3, 5, 2, 0, true },    // pads 1 top/left, 2 bottom/right (TF 'same', stride 2)
        { 3, 2, 7, 2, 4, 2, 0, true },    // even kernel, odd input: asymmetric padding
        { 2, 3, 9, 2, 3, 2, 0, false },
        { 3, 1, 5, 5, 5, 1, 0, false },   // output 1x1 (conv7's last layer shape)
        { 2, 2, 20, 3, 3, 1, 0, true },   // rows of >= 16 outputs: the contiguous implicit-im2col path, at and off the edges
        { 1, 2, 21, 2, 5, 1, 0, false },
        { 2, 1, 18, 2, 4, 1, 0, true },   // even kernel, stride 1: pads 1 top/left, 2 bottom/right
    };

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void ConvolutionWithBias(int batch, int cin, int size, int cout, int kernel, int stride, int unused, bool same)
    {
        _ = unused;
        var g = ConvGeometry.Create(batch, cin, size, size, cout, kernel, kernel, stride, same);
        var rng = new Random(batch * 100 + size * 10 + kernel);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, g.InputLength);
        var w = Data.Uniform(rng, g.WeightLength);
        var b = Data.Uniform(rng, cout);
        var r = Data.Uniform(rng, g.OutputLength);
        int[] xShape = [batch, cin, size, size], yShape = [batch, cout, g.OutHeight, g.OutWidth];
        var tx = rig.Input(x, xShape);
        var tw = rig.Input(w, cout, cin, kernel, kernel);
        var ty = rig.Poisoned(yShape);
        rig.Backend.ConvForward(g, tx, tw, ty);
        rig.Backend.AddBias(ty, rig.Input(b, cout), cout);
        double[] dx = Data.ToDouble(x), dw = Data.ToDouble(w), db = Data.ToDouble(b), dr = Data.ToDouble(r);
        double[] Forward(double[] xs, double[] ws, double[] bs)
        {
            var y = Reference.Conv(g, xs, ws);
            int spatial = g.OutHeight * g.OutWidth;
            for (int i = 0; i < y.Length; i++) y[i] += bs[i / spatial % cout];
            return y;
        }
        Check.Close(rig.Get(ty), Forward(dx, dw, db), ForwardTolerance, "y");

        var tr = rig.Input(r, yShape);
        var gx = rig.Poisoned(xShape);
        var gw = rig.Poisoned(cout, cin, kernel, kernel);
        var gb = rig.Poisoned(cout);
        rig.Backend.ConvBackwardData(g, tr, tw, gx);
        rig.Backend.ConvBackwardFilter(g, tx, tr, gw);
        rig.Backend.BiasGradient(tr, gb, cout);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Forward(v, dw, db))), GradientTolerance, "dx");
        Check.Close(rig.Get(gw), Reference.NumericGradient(dw, v => Reference.Dot(dr, Forward(dx, v, db))), GradientTolerance, "dW");
        Check.Close(rig.Get(gb), Reference.NumericGradient(db, v => Reference.Dot(dr, Forward(dx, dw, v))), GradientTolerance, "db");
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(3, 2)]   // overlapping windows: several outputs may pick the same input
    [InlineData(3, 1)]
    public void MaxPool(int window, int stride)
    {
        var g = PoolGeometry.Create(2, 3, 7, 7, window, stride);
        var rng = new Random(window * 10 + stride);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, 2 * 3 * 49);
        int outputs = 2 * 3 * g.OutHeight * g.OutWidth;
        var r = Data.Uniform(rng, outputs);
        var tx = rig.Input(x, 2, 3, 7, 7);
        var ty = rig.Poisoned(2, 3, g.OutHeight, g.OutWidth);
        var argmax = rig.PoisonedInt(outputs);
        rig.Backend.MaxPoolForward(g, tx, ty, argmax);
        var dx = Data.ToDouble(x);
        var (expectedY, expectedArgmax) = Reference.MaxPool(g, dx);
        Check.Close(rig.Get(ty), expectedY, 0, "y");
        Assert.Equal(expectedArgmax, rig.Get(argmax));

        var gx = rig.Poisoned(2, 3, 7, 7);
        rig.Backend.MaxPoolBackward(g, tx, ty, rig.Input(r, outputs), argmax, gx);
        var dr = Data.ToDouble(r);
        // Random inputs are distinct far beyond h, so the max never switches inside a difference.
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Reference.MaxPool(g, v).Y)), GradientTolerance, "dx");
    }

    [Fact]
    public void MaxPoolFirstMaximumWinsOnTies()
    {
        var g = PoolGeometry.Create(1, 1, 2, 2, 2, 2);
        using var rig = new TestRig();
        var argmax = rig.PoisonedInt(1);
        rig.Backend.MaxPoolForward(g, rig.Input([0.5f, 0.75f, 0.75f, 0.25f], 1, 1, 2, 2), rig.Poisoned(1, 1, 1, 1), argmax);
        Assert.Equal(1, rig.Get(argmax)[0]);
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(3, 1)]
    public void AvgPool(int window, int stride)
    {
        var g = PoolGeometry.Create(2, 3, 7, 7, window, stride);
        var rng = new Random(window * 10 + stride + 5);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, 2 * 3 * 49);
        int outputs = 2 * 3 * g.OutHeight * g.OutWidth;
        var r = Data.Uniform(rng, outputs);
        var ty = rig.Poisoned(outputs);
        rig.Backend.AvgPoolForward(g, rig.Input(x, 2, 3, 7, 7), ty);
        var dx = Data.ToDouble(x);
        Check.Close(rig.Get(ty), Reference.AvgPool(g, dx), ForwardTolerance, "y");
        var gx = rig.Poisoned(2 * 3 * 49);
        rig.Backend.AvgPoolBackward(g, rig.Input(r, outputs), gx);
        var dr = Data.ToDouble(r);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Reference.AvgPool(g, v))), GradientTolerance, "dx");
    }

    [Fact]
    public void GlobalAvgPool()
    {
        const int batch = 3, channels = 4, spatial = 10;
        var rng = new Random(3);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, batch * channels * spatial);
        var r = Data.Uniform(rng, batch * channels);
        var ty = rig.Poisoned(batch, channels);
        rig.Backend.GlobalAvgPoolForward(batch, channels, spatial, rig.Input(x, batch, channels, spatial), ty);
        var dx = Data.ToDouble(x);
        Check.Close(rig.Get(ty), Reference.GlobalAvgPool(batch, channels, spatial, dx), ForwardTolerance, "y");
        var gx = rig.Poisoned(batch * channels * spatial);
        rig.Backend.GlobalAvgPoolBackward(batch, channels, spatial, rig.Input(r, batch * channels), gx);
        var dr = Data.ToDouble(r);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Reference.GlobalAvgPool(batch, channels, spatial, v))), GradientTolerance, "dx");
    }

    [Theory]
    [InlineData(5, 3, 1)]    // dense activations [N, C]
    [InlineData(3, 2, 12)]   // conv activations [N, C, H*W]
    public void BatchNormTraining(int batch, int channels, int spatial)
    {
        const float epsilon = 1e-3f, momentum = 0.99f;
        var rng = new Random(batch * 31 + spatial);
        using var rig = new TestRig();
        int length = batch * channels * spatial;
        var x = Data.Uniform(rng, length, -2f, 3f);
        var gamma = Data.Uniform(rng, channels, 0.5f, 1.5f);
        var beta = Data.Uniform(rng, channels);
        var r = Data.Uniform(rng, length);
        var tx = rig.Input(x, batch, channels, spatial);
        var tGamma = rig.Input(gamma, channels);
        var savedMean = rig.Poisoned(channels);
        var savedInvStd = rig.Poisoned(channels);
        var ty = rig.Poisoned(batch, channels, spatial);
        rig.Backend.BatchNormForwardTraining(batch, channels, spatial, epsilon, momentum, tx, tGamma, rig.Input(beta, channels),
            rig.Input(Data.Uniform(rng, channels), channels), rig.Input(Data.Uniform(rng, channels, 0.5f, 2f), channels), savedMean, savedInvStd, ty);
        double[] dx = Data.ToDouble(x), dGamma = Data.ToDouble(gamma), dBeta = Data.ToDouble(beta), dr = Data.ToDouble(r);
        var (expectedY, mean, variance) = Reference.BatchNormTraining(batch, channels, spatial, epsilon, dx, dGamma, dBeta);
        Check.Close(rig.Get(ty), expectedY, ForwardTolerance, "y");
        Check.Close(rig.Get(savedMean), mean, ForwardTolerance, "saved mean");
        Check.Close(rig.Get(savedInvStd), Array.ConvertAll(variance, v => 1 / Math.Sqrt(v + epsilon)), ForwardTolerance, "saved invStd");

        var gx = rig.Poisoned(batch, channels, spatial);
        var gGamma = rig.Poisoned(channels);
        var gBeta = rig.Poisoned(channels);
        rig.Backend.BatchNormBackward(batch, channels, spatial, epsilon, tx, rig.Input(r, batch, channels, spatial), tGamma, savedMean, savedInvStd, gx, gGamma, gBeta);
        double Loss(double[] xs, double[] gs, double[] bs) => Reference.Dot(dr, Reference.BatchNormTraining(batch, channels, spatial, epsilon, xs, gs, bs).Y);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Loss(v, dGamma, dBeta)), GradientTolerance, "dx");
        Check.Close(rig.Get(gGamma), Reference.NumericGradient(dGamma, v => Loss(dx, v, dBeta)), GradientTolerance, "dGamma");
        Check.Close(rig.Get(gBeta), Reference.NumericGradient(dBeta, v => Loss(dx, dGamma, v)), GradientTolerance, "dBeta");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Relu(bool inPlace)
    {
        var rng = new Random(inPlace ? 2 : 1);
        using var rig = new TestRig();
        const int length = 203;   // not a multiple of the vector width
        var x = Data.AwayFromZero(rng, length);
        var r = Data.Uniform(rng, length);
        var tx = rig.Input(x, length);
        var ty = inPlace ? tx : rig.Poisoned(length);
        rig.Backend.ReluForward(tx, ty);
        var dx = Data.ToDouble(x);
        Check.Close(rig.Get(ty), Reference.Relu(dx), 0, "y");
        var tr = rig.Input(r, length);
        var gx = inPlace ? tr : rig.Poisoned(length);
        rig.Backend.ReluBackward(ty, tr, gx);
        var dr = Data.ToDouble(r);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Reference.Relu(v))), GradientTolerance, "dx");
    }

    [Fact]
    public void DropoutWithItsMaskFixed()
    {
        const float rate = 0.4f;
        const int length = 301;
        var rng = new Random(9);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, length);
        var r = Data.Uniform(rng, length);
        var ty = rig.Poisoned(length);
        var mask = rig.PoisonedByte(length);
        rig.Backend.BeginStep(new StepScalars(7, 0, 0, 1, 1e-3f, 1));
        rig.Backend.DropoutForward(rate, 1234, rig.Input(x, length), ty, mask);
        var maskBytes = rig.Get(mask);
        double scale = 1 / (1 - (double)rate);
        double[] Forward(double[] v) => v.Select((value, i) => maskBytes[i] == 1 ? value * scale : 0).ToArray();
        var dx = Data.ToDouble(x);
        Check.Close(rig.Get(ty), Forward(dx), ForwardTolerance, "y");
        var gx = rig.Poisoned(length);
        rig.Backend.DropoutBackward(rate, rig.Input(r, length), mask, gx);
        var dr = Data.ToDouble(r);
        Check.Close(rig.Get(gx), Reference.NumericGradient(dx, v => Reference.Dot(dr, Forward(v))), GradientTolerance, "dx");
    }

    [Fact]
    public void SoftmaxCrossEntropy()
    {
        const int batch = 7, classes = 10;
        var rng = new Random(4);
        using var rig = new TestRig();
        var logits = Data.Uniform(rng, batch * classes, -4f, 4f);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(classes)).ToArray();
        var totals0 = new[] { 2.5f, 3f };
        var totals = rig.Input(totals0, 2);
        var gradient = rig.Poisoned(batch, classes);
        rig.Backend.SoftmaxCrossEntropy(batch, classes, rig.Input(logits, batch, classes), rig.Input(labels, batch), gradient, totals);
        var dLogits = Data.ToDouble(logits);
        var (meanLoss, correct) = Reference.SoftmaxCrossEntropy(batch, classes, dLogits, labels);
        var gotTotals = rig.Get(totals);
        Check.Close(gotTotals, [totals0[0] + meanLoss * batch, totals0[1] + correct], ForwardTolerance, "loss and correct (accumulated)");
        Assert.Equal(totals0[1] + correct, gotTotals[1]);
        Check.Close(rig.Get(gradient), Reference.NumericGradient(dLogits, v => Reference.SoftmaxCrossEntropy(batch, classes, v, labels).MeanLoss), GradientTolerance, "dLogits");
    }

    [Theory]
    [InlineData(1f)]       // residual add
    [InlineData(-0.3f)]
    public void ScaleAddFollowsTheContractLiterally(float alpha)
    {
        // IBackend documents y = x + alpha * y (for alpha = 1, the residual add y = x + y).
        const int length = 77;
        var rng = new Random(8);
        using var rig = new TestRig();
        var x = Data.Uniform(rng, length);
        var y = Data.Uniform(rng, length);
        var ty = rig.Input(y, length);
        rig.Backend.ScaleAdd(alpha, rig.Input(x, length), ty);
        var expected = x.Select((v, i) => v + (double)alpha * y[i]).ToArray();
        Check.Close(rig.Get(ty), expected, ForwardTolerance, "y");
    }
}
