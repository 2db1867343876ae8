using LaPerm.Core.Backend;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;
using LaPerm.Cuda.Reconnect;
using static LaPerm.Cuda.Tests.Backend.Compare;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// Every op of <see cref="CudaBackend"/> against <see cref="CpuBackend"/> (the reference) on random
/// inputs, outputs poisoned first. Exact (bit for bit) where both do the same float operations in
/// the same order: copies, fill, bias add, axpy, ReLU, dropout (mask and values), pooling (values
/// and argmax), global pooling, batch-norm inference, SGD and Adam updates, correct counts and
/// reconnection. Tolerance-bounded where the summation order differs (each bound says why):
/// GEMM and convolution (forward error bound of a dot product), double-accumulated reductions
/// (bias gradient, batch-norm statistics, loss totals), and the softmax (__expf/__logf).
/// The derived classes run the same checks on the emulator (CI) and on a real GPU.
/// </summary>
public abstract class BackendOpTests
{
    /// <summary>The backend under test; skips when the device is missing.</summary>
    protected abstract CudaBackend Open();

    /// <summary>The same device with cuDNN (emu: its stand-in) for convolution, pooling and batch-norm; skips when missing.</summary>
    protected abstract CudaBackend OpenWithCudnn();

    private static CpuBackend Cpu() => new(2);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void GemmAgreesWithinTheDotProductBound(bool transposeA, bool transposeB)
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(11 + (transposeA ? 1 : 0) + (transposeB ? 2 : 0));
        const int m = 37, n = 29, k = 53;
        var a = Random(rng, m * k);
        var b = Random(rng, k * n);
        var c0 = Random(rng, m * n);
        foreach (float beta in new[] { 0f, 0.5f })
        {
            float[] Run(IBackend backend, float[] aa, float[] bb, bool poison)
            {
                using var ta = Put(backend, aa, m * k);
                using var tb = Put(backend, bb, k * n);
                using var tc = poison ? Poisoned(backend, m * n) : Put(backend, c0, m * n);
                backend.Gemm(transposeA, transposeB, m, n, k, 1.5f, ta, tb, beta, tc);
                return Get(backend, tc);
            }
            bool poison = beta == 0f;   // beta = 0: C must not be read
            var expected = Run(cpu, a, b, poison);
            var magnitude = Run(cpu, [.. a.Select(Math.Abs)], [.. b.Select(Math.Abs)], poison);
            Within(expected, Run(device, a, b, poison), i => DotBound(k + 1, magnitude[i] + Math.Abs(beta * c0[i])), $"gemm beta={beta}");
        }
    }

    /// <summary>A reshaped tensor is a view: writes through either show in the other, and disposing the view leaves its source whole.</summary>
    [Fact]
    public void ReshapeIsAViewOfTheSameElements()
    {
        foreach (IBackend backend in new IBackend[] { Open(), Cpu() })
        {
            using var _ = backend;
            var rng = new Random(7);
            var values = Random(rng, 2 * 36);
            using var flat = Put(backend, values, values.Length);
            var view = backend.Reshape(flat, new Shape(2, 4, 3, 3));
            Assert.Equal(new Shape(2, 4, 3, 3), view.Shape);
            BitEqual(values, Get(backend, view), $"{backend.Name}: view of the source");
            backend.Fill(view, 1.25f);
            BitEqual(Enumerable.Repeat(1.25f, values.Length).ToArray(), Get(backend, flat), $"{backend.Name}: source after a write through the view");
            view.Dispose();
            backend.Upload<float>(values, flat);
            BitEqual(values, Get(backend, flat), $"{backend.Name}: source after the view is disposed");
            var e = Assert.Throws<ArgumentException>(() => backend.Reshape(flat, new Shape(2, 4, 3, 4)));
            Assert.Contains("96", e.Message);
        }
    }

    [Fact]
    public void MemoryOpsRoundTripExactlyAndNewTensorsAreZero()
    {
        using var device = Open();
        var rng = new Random(3);
        using var zeros = device.Allocate<byte>(new Shape(13));
        Equal(new byte[13], Get(device, zeros), "fresh byte tensor");
        using var zeroFloats = device.Allocate<float>(new Shape(5, 3));
        BitEqual(new float[15], Get(device, zeroFloats), "fresh float tensor");

        float[] values = [.. Random(rng, 97), -0.0f, float.NaN, float.PositiveInfinity];
        using var a = Put(device, values, values.Length);
        using var b = Poisoned(device, values.Length);
        device.Copy(a, b);
        BitEqual(values, Get(device, b), "copy");
        device.Fill(b, -2.5f);
        BitEqual(Enumerable.Repeat(-2.5f, values.Length).ToArray(), Get(device, b), "fill");

        int[] ints = [.. Enumerable.Range(0, 31).Select(_ => rng.Next(int.MinValue, int.MaxValue))];
        using var ti = Put(device, ints, ints.Length);
        Equal(ints, Get(device, ti), "int round trip");
        byte[] bytes = [.. Enumerable.Range(0, 7).Select(_ => (byte)rng.Next(256))];
        using var tb = Put(device, bytes, bytes.Length);
        Equal(bytes, Get(device, tb), "byte round trip");

        using var cpu = Cpu();
        using var foreign = cpu.Allocate<float>(new Shape(values.Length));
        Assert.Contains("belongs to backend 'cpu'", Assert.Throws<ArgumentException>(() => device.Copy(a, foreign)).Message, StringComparison.Ordinal);

        // A tensor that outlives its backend can still be disposed (the device freed it already).
        var orphan = device.Allocate<float>(new Shape(4));
        device.Dispose();
        orphan.Dispose();
        Assert.Throws<ObjectDisposedException>(() => device.Fill(b, 1f));
    }

    [Theory]
    [InlineData(new[] { 6, 10 }, 10)]          // dense activations [N, C]
    [InlineData(new[] { 3, 5, 4, 7 }, 5)]      // NCHW
    public void BiasAddIsExactAndBiasGradientWithinOneRounding(int[] shape, int channels)
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(5 + shape.Length);
        int length = shape.Aggregate(1, (x, y) => x * y);
        var y = Random(rng, length);
        var bias = Random(rng, channels);
        float[] Add(IBackend backend)
        {
            using var ty = Put(backend, y, shape);
            using var tb = Put(backend, bias, channels);
            backend.AddBias(ty, tb, channels);
            return Get(backend, ty);
        }
        BitEqual(Add(cpu), Add(device), "bias add");

        float[] Gradient(IBackend backend, float[] dy)
        {
            using var tdy = Put(backend, dy, shape);
            using var tg = Poisoned(backend, channels);
            backend.BiasGradient(tdy, tg, channels);
            return Get(backend, tg);
        }
        var dyValues = Random(rng, length, 3f);
        var sumAbs = Gradient(cpu, [.. dyValues.Select(Math.Abs)]);
        // Both sum in double and round once; only the order of the double additions differs.
        Within(Gradient(cpu, dyValues), Gradient(device, dyValues), i => Math.Pow(2, -23) * sumAbs[i], "bias gradient");
    }

    [Fact]
    public void ScaleAddReluAndOptimizerUpdatesAreBitExact()
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(7);
        const int n = 1000;
        float[] x = Random(rng, n), y = Random(rng, n);
        x[3] = float.NaN;
        x[4] = -0.0f;
        x[5] = 0.0f;
        float[] ScaleAdd(IBackend backend)
        {
            using var tx = Put(backend, x, n);
            using var ty = Put(backend, y, n);
            backend.ScaleAdd(-0.3f, tx, ty);
            return Get(backend, ty);
        }
        BitEqual(ScaleAdd(cpu), ScaleAdd(device), "scale-add");
        float[] Scale(IBackend backend)
        {
            using var tx = Put(backend, x, n);   // NaN, -0.0 and +0.0 included
            backend.Scale(96f, tx);
            return Get(backend, tx);
        }
        BitEqual(Scale(cpu), Scale(device), "scale");
        Assert.Equal(x.Select(v => 96f * v).Select(BitConverter.SingleToUInt32Bits), Scale(cpu).Select(BitConverter.SingleToUInt32Bits));

        (float[] Forward, float[] InPlace, float[] Backward) Relu(IBackend backend)
        {
            using var tx = Put(backend, x, n);
            using var ty = Poisoned(backend, n);
            backend.ReluForward(tx, ty);
            using var inPlace = Put(backend, x, n);
            backend.ReluForward(inPlace, inPlace);
            using var dy = Put(backend, y, n);
            using var dx = Poisoned(backend, n);
            backend.ReluBackward(ty, dy, dx);
            return (Get(backend, ty), Get(backend, inPlace), Get(backend, dx));
        }
        var (f0, i0, b0) = Relu(cpu);
        var (f1, i1, b1) = Relu(device);
        BitEqual(f0, f1, "relu forward");
        BitEqual(i0, i1, "relu forward in place");
        BitEqual(b0, b1, "relu backward");

        var w = Random(rng, n);
        var g = Random(rng, n, 0.1f);
        var m = Random(rng, n, 0.01f);
        var v = Random(rng, n, 0.001f).Select(Math.Abs).ToArray();
        float[][] Update(IBackend backend)
        {
            using var tw = Put(backend, w, n);
            using var tg = Put(backend, g, n);
            using var tm = Put(backend, m, n);
            using var tv = Put(backend, v, n);
            backend.BeginStep(new StepScalars(7, 0, 0, 1, 1e-3f, 7));
            backend.AdamUpdate(AdamParameters.Keras, tw, tg, tm, tv);
            backend.BeginStep(new StepScalars(8, 0, 0, 1, 1e-3f, 8));
            backend.AdamUpdate(AdamParameters.Keras, tw, tg, tm, tv);
            using var sw = Put(backend, w, n);
            using var velocity = Put(backend, m, n);
            backend.BeginStep(new StepScalars(9, 0, 0, 1, 0.05f, 9));
            backend.SgdMomentumUpdate(0.9f, sw, tg, velocity);
            return [Get(backend, tw), Get(backend, tm), Get(backend, tv), Get(backend, sw), Get(backend, velocity)];
        }
        var expected = Update(cpu);
        var actual = Update(device);
        string[] names = ["adam w", "adam m", "adam v", "sgd w", "sgd velocity"];
        for (int i = 0; i < names.Length; i++) BitEqual(expected[i], actual[i], names[i]);
    }

    /// <summary>
    /// A readback hands over the newest completed start, once, with its tag, and drops older
    /// ones; starts keep working when the caller never asks (the ring reuses superseded slots).
    /// </summary>
    [Fact]
    public void AnAsyncReadbackHandsOverItsNewestCompletedStartOnceWithItsTag()
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(47);
        foreach (IBackend backend in new IBackend[] { cpu, device })
        {
            var first = Random(rng, 3);
            var second = Random(rng, 3);
            var third = Random(rng, 3);
            using var tensor = Put(backend, first, 3);
            using var readback = backend.CreateReadback<float>(3);
            var got = new float[] { float.NaN, float.NaN, float.NaN };
            Assert.False(readback.TryGet(got, out _), $"{backend.Name}: nothing was started");
            Assert.True(readback.Start(tensor, 11));
            backend.Upload<float>(second, tensor);   // after the start: must not show in the first readback
            backend.Synchronize();
            Assert.True(readback.TryGet(got, out long tag), $"{backend.Name}: the copy has completed");
            Assert.Equal(11, tag);
            BitEqual(first, got, $"{backend.Name} first readback");
            Assert.False(readback.TryGet(got, out _), $"{backend.Name}: handed over once");
            // Two starts, then one ask: the newer one, and the older is gone.
            Assert.True(readback.Start(tensor, 12));
            backend.Upload<float>(third, tensor);
            Assert.True(readback.Start(tensor, 13));
            backend.Synchronize();
            Assert.True(readback.TryGet(got, out tag));
            Assert.Equal(13, tag);
            BitEqual(third, got, $"{backend.Name} newest readback");
            Assert.False(readback.TryGet(got, out _), $"{backend.Name}: the older start was dropped");
            // Many starts nobody asks for: completed ones are superseded and their slots reused.
            for (int i = 0; i < 10; i++)
            {
                Assert.True(readback.Start(tensor, 100 + i), $"{backend.Name}: start {i}");
                backend.Synchronize();
            }
            Assert.True(readback.TryGet(got, out tag));
            Assert.Equal(109, tag);
            using var wrong = Put(backend, Random(rng, 4), 4);
            Assert.Throws<ArgumentException>(() => readback.Start(wrong, 0));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BatchedUpdatesOverManyTensorsAreBitExactStepAfterStep(bool adam)
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(43);
        int[] lengths = [1, 10, 300, 2357, 70_001];
        var initial = lengths.Select(n => (W: Random(rng, n), M: Random(rng, n, 0.01f), V: Random(rng, n, 0.001f).Select(Math.Abs).ToArray())).ToArray();
        var gradients = Enumerable.Range(0, 3).Select(_ => lengths.Select(n => Random(rng, n, 0.1f)).ToArray()).ToArray();
        float[][] Run(IBackend backend)
        {
            var tensors = lengths.Select((n, i) => (W: Put(backend, initial[i].W, n), G: backend.Allocate<float>(new Shape(n)),
                M: Put(backend, initial[i].M, n), V: Put(backend, initial[i].V, n))).ToArray();
            try
            {
                for (int t = 1; t <= 3; t++)
                {
                    for (int i = 0; i < lengths.Length; i++) backend.Upload<float>(gradients[t - 1][i], tensors[i].G);
                    backend.BeginStep(new StepScalars(t, 0, 0, 1, 2e-3f, t));
                    // The last step updates only some tensors: the batch's table changes.
                    foreach (int i in t == 3 ? new[] { 4, 1 } : Enumerable.Range(0, lengths.Length))
                    {
                        if (adam) backend.AdamUpdate(AdamParameters.Keras, tensors[i].W, tensors[i].G, tensors[i].M, tensors[i].V);
                        else backend.SgdMomentumUpdate(0.9f, tensors[i].W, tensors[i].G, tensors[i].M); // M: the velocity
                    }
                }
                return [.. tensors.SelectMany(x => new[] { Get(backend, x.W), Get(backend, x.M), Get(backend, x.V) })];
            }
            finally
            {
                foreach (var (w, g, m, v) in tensors)
                {
                    w.Dispose();
                    g.Dispose();
                    m.Dispose();
                    v.Dispose();
                }
            }
        }
        var expected = Run(cpu);
        var actual = Run(device);
        for (int i = 0; i < expected.Length; i++) BitEqual(expected[i], actual[i], $"{(adam ? "adam" : "sgd")} tensor {i / 3} {"wmv"[i % 3]}");
    }

    [Theory]
    [InlineData(0.5f, 7UL, 3UL)]
    [InlineData(0.1f, 123456789UL, 0UL)]
    [InlineData(float.NaN, 7UL, 3UL)]   // the rate of element 5's own uniform: it sits exactly on the threshold (kept: u >= rate)
    public void DropoutMasksAndValuesAreBitExact(float rate, ulong seed, ulong step)
    {
        if (float.IsNaN(rate)) rate = DropoutRandom.Uniform(seed, step, 5);
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random((int)seed);
        const int n = 4099;
        var x = Random(rng, n);
        var dy = Random(rng, n);
        (float[] Y, byte[] Mask, float[] Dx) Run(IBackend backend)
        {
            using var tx = Put(backend, x, n);
            using var ty = Poisoned(backend, n);
            using var mask = PoisonedBytes(backend, n);
            backend.BeginStep(new StepScalars((long)step, 0, 0, n, 1e-3f, 1));
            backend.DropoutForward(rate, seed, tx, ty, mask);
            using var tdy = Put(backend, dy, n);
            using var tdx = Poisoned(backend, n);
            backend.DropoutBackward(rate, tdy, mask, tdx);
            return (Get(backend, ty), Get(backend, mask), Get(backend, tdx));
        }
        var expected = Run(cpu);
        var actual = Run(device);
        Equal(expected.Mask, actual.Mask, "dropout mask");
        BitEqual(expected.Y, actual.Y, "dropout forward");
        BitEqual(expected.Dx, actual.Dx, "dropout backward");
        int kept = actual.Mask.Count(b => b == 1);
        Assert.InRange(kept, (int)(n * (1 - rate) * 0.9), (int)(n * (1 - rate) * 1.1));
    }

    [Theory]
    [InlineData(37, 10)]
    [InlineData(300, 7)]
    public void SoftmaxCrossEntropyGradientAndCountAreBitExact(int batch, int classes)
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(batch);
        var logits = Random(rng, batch * classes, 6f);
        for (int i = 0; i < batch; i += 5) logits[i * classes + 2] = logits[i * classes + 4] = 9f;   // ties: the first max wins
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(classes)).ToArray();
        for (int i = 0; i < batch; i += 5) labels[i] = rng.Next(2) == 0 ? 2 : 4;
        (float[] Gradient, float[] Totals) Run(IBackend backend)
        {
            using var tl = Put(backend, logits, batch, classes);
            using var tlab = Put(backend, labels, batch);
            using var grad = Poisoned(backend, batch, classes);
            using var totals = Put(backend, new[] { 0.25f, 2f }, 2);   // accumulates onto what is there
            backend.SoftmaxCrossEntropy(batch, classes, tl, tlab, grad, totals);
            backend.SoftmaxCrossEntropy(batch, classes, tl, tlab, grad, totals);
            return (Get(backend, grad), Get(backend, totals));
        }
        var expected = Run(cpu);
        var actual = Run(device);
        // dLogits = (p - onehot) / N from SoftmaxMath's exp, the same operations on both sides.
        BitEqual(expected.Gradient, actual.Gradient, "softmax gradient");
        Assert.Equal(expected.Totals[1], actual.Totals[1]);   // correct count: exact
        // The per-example losses are equal too; their double sums differ only in order, so each of
        // the two calls' float roundings may move by one ulp.
        Assert.Equal(expected.Totals[0], actual.Totals[0], 2 * 1.2e-7 * Math.Abs(expected.Totals[0]));
    }

    /// <summary>A NaN logit beside a larger one: the row's loss is NaN (the step guard's signal), not the larger logit's; the other rows are untouched.</summary>
    [Fact]
    public void ANaNLogitMakesTheLossNaNEvenBesideALargerOne()
    {
        using var device = Open();
        using var cpu = Cpu();
        const int batch = 4, classes = 5;
        var logits = Random(new Random(19), batch * classes, 6f);
        logits[1 * classes + 1] = float.NaN;
        logits[1 * classes + 3] = 50f;
        int[] labels = [0, 3, 2, 4];
        (float[] Gradient, float[] Totals) Run(IBackend backend)
        {
            using var tl = Put(backend, logits, batch, classes);
            using var tlab = Put(backend, labels, batch);
            using var grad = Poisoned(backend, batch, classes);
            using var totals = Put(backend, new[] { 0f, 0f }, 2);
            backend.SoftmaxCrossEntropy(batch, classes, tl, tlab, grad, totals);
            return (Get(backend, grad), Get(backend, totals));
        }
        var expected = Run(cpu);
        var actual = Run(device);
        Assert.True(float.IsNaN(expected.Totals[0]), $"cpu loss total {expected.Totals[0]}");
        Assert.True(float.IsNaN(actual.Totals[0]), $"{device.Name} loss total {actual.Totals[0]}");
        // Rows 0, 2 and 3 bit for bit (a NaN's bits are the platform's: row 1 is not compared).
        foreach (int row in new[] { 0, 2, 3 })
            BitEqual(expected.Gradient[(row * classes)..((row + 1) * classes)], actual.Gradient[(row * classes)..((row + 1) * classes)], $"gradient row {row}");
    }

    [Fact]
    public void ALabelOutsideTheClassesMakesTheLossNaN()
    {
        using var device = Open();
        const int batch = 3, classes = 4;
        var logits = new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
        var labels = new[] { classes, 1, 2 };
        using var tl = Put(device, logits, batch, classes);
        using var tlab = Put(device, labels, batch);
        using var grad = Poisoned(device, batch, classes);
        using var totals = Put(device, new[] { 0f, 0f }, 2);
        device.SoftmaxCrossEntropy(batch, classes, tl, tlab, grad, totals);
        Assert.True(float.IsNaN(Get(device, totals)[0]));
    }

    public static TheoryData<int, int, int, int, int, int> PoolShapes => new()
    {
        // batch, channels, height, width, window, stride
        { 2, 3, 6, 6, 2, 2 },    // non-overlapping windows
        { 3, 2, 9, 9, 3, 2 },    // overlapping windows: an input feeds up to four outputs
        { 1, 4, 7, 7, 3, 1 },
        { 2, 3, 9, 6, 3, 2 },    // not square: a height/width mix-up in the index arithmetic shows
        { 2, 2, 5, 8, 2, 1 },
    };

    [Theory]
    [MemberData(nameof(PoolShapes))]
    public void PoolingIsBitExactIncludingArgmaxAndTies(int batch, int channels, int height, int width, int window, int stride)
    {
        using var device = Open();
        using var cpu = Cpu();
        var g = PoolGeometry.Create(batch, channels, height, width, window, stride);
        var rng = new Random(height * 31 + width * 7 + window);
        int inputs = batch * channels * height * width, outputs = batch * channels * g.OutHeight * g.OutWidth;
        var x = RandomIntegers(rng, inputs, 3);   // many ties
        x[1] = float.NaN; x[inputs - 2] = float.NaN;   // a NaN not first in its window must still win it (the step guard sees divergence)
        var dy = Random(rng, outputs);
        int[] xShape = [batch, channels, height, width], yShape = [batch, channels, g.OutHeight, g.OutWidth];
        (float[] Y, int[] Argmax, float[] Dx, float[] AvgY, float[] AvgDx) Run(IBackend backend)
        {
            using var tx = Put(backend, x, xShape);
            using var ty = Poisoned(backend, yShape);
            using var argmax = PoisonedInts(backend, yShape);
            backend.MaxPoolForward(g, tx, ty, argmax);
            using var tdy = Put(backend, dy, yShape);
            using var tdx = Poisoned(backend, xShape);
            backend.MaxPoolBackward(g, tx, ty, tdy, argmax, tdx);
            using var avg = Poisoned(backend, yShape);
            backend.AvgPoolForward(g, tx, avg);
            using var avgDx = Poisoned(backend, xShape);
            backend.AvgPoolBackward(g, tdy, avgDx);
            return (Get(backend, ty), Get(backend, argmax), Get(backend, tdx), Get(backend, avg), Get(backend, avgDx));
        }
        var e = Run(cpu);
        var a = Run(device);
        BitEqual(e.Y, a.Y, "max pool forward");
        Equal(e.Argmax, a.Argmax, "max pool argmax");
        BitEqual(e.Dx, a.Dx, "max pool backward");
        Assert.Contains(e.Y, float.IsNaN);   // the NaNs reached the max pool's output
        BitEqualAnyNaN(e.AvgY, a.AvgY, "avg pool forward");
        BitEqual(e.AvgDx, a.AvgDx, "avg pool backward");
    }

    [Fact]
    public void GlobalAveragePoolingIsBitExact()
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(17);
        const int batch = 3, channels = 5, spatial = 49;
        var x = Random(rng, batch * channels * spatial);
        var dy = Random(rng, batch * channels);
        (float[], float[]) Run(IBackend backend)
        {
            using var tx = Put(backend, x, batch, channels, 7, 7);
            using var ty = Poisoned(backend, batch, channels);
            backend.GlobalAvgPoolForward(batch, channels, spatial, tx, ty);
            using var tdy = Put(backend, dy, batch, channels);
            using var tdx = Poisoned(backend, batch, channels, 7, 7);
            backend.GlobalAvgPoolBackward(batch, channels, spatial, tdy, tdx);
            return (Get(backend, ty), Get(backend, tdx));
        }
        var (y0, dx0) = Run(cpu);
        var (y1, dx1) = Run(device);
        BitEqual(y0, y1, "global average pool forward");
        BitEqual(dx0, dx1, "global average pool backward");
    }

    [Theory]
    [InlineData(4, 6, 9)]      // conv activations
    [InlineData(300, 5, 1)]    // dense activations: more elements per channel than threads in a block
    public void BatchNormMatchesTheDoublePrecisionReference(int batch, int channels, int spatial)
    {
        using var device = Open();
        using var cpu = Cpu();
        var bn = BatchNormCase.Random(new Random(batch + channels), batch, channels, spatial, momentum: 0.99f);
        var e = bn.Run(cpu);
        var a = bn.Run(device);
        // Statistics: double sums in another order and a Newton-refined 1/sqrt, rounded once to
        // float: equal or one float ulp apart. Outputs inherit at most that relative difference.
        const double ulp = 1.2e-7;
        Close(e[1], a[1], ulp, 1e-9, "saved mean");
        Close(e[2], a[2], ulp, 0, "saved inverse deviation");
        Close(e[0], a[0], 8 * ulp, 1e-6, "batch-norm forward");
        Close(e[3], a[3], 2 * ulp, 1e-9, "running mean");
        Close(e[4], a[4], 2 * ulp, 0, "running variance");
        Close(e[5], a[5], 8 * ulp, 1e-6, "batch-norm dx");
        Close(e[6], a[6], 2 * ulp, 1e-6, "batch-norm dgamma");
        Close(e[7], a[7], 2 * ulp, 1e-6, "batch-norm dbeta");
        // Inference reads the running statistics, which may differ by the ulp above.
        Close(e[8], a[8], 8 * ulp, 1e-6, "batch-norm inference");
    }

    [Fact]
    public void BatchNormInferenceIsBitExactOnTheSameStatistics()
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(23);
        const int batch = 3, channels = 4, spatial = 10;
        var x = Random(rng, batch * channels * spatial);
        var gamma = Random(rng, channels);
        var beta = Random(rng, channels);
        var mean = Random(rng, channels);
        var variance = Random(rng, channels).Select(v => 0.5f + Math.Abs(v)).ToArray();
        float[] Run(IBackend backend)
        {
            using var tx = Put(backend, x, batch, channels, spatial);
            using var tg = Put(backend, gamma, channels);
            using var tb = Put(backend, beta, channels);
            using var tm = Put(backend, mean, channels);
            using var tv = Put(backend, variance, channels);
            using var ty = Poisoned(backend, batch, channels, spatial);
            backend.BatchNormForwardInference(batch, channels, spatial, 1e-3f, tx, tg, tb, tm, tv, ty);
            return Get(backend, ty);
        }
        BitEqual(Run(cpu), Run(device), "batch-norm inference");
    }

    /// <summary>
    /// An epsilon below cuDNN's minimum (CUDNN_BN_MIN_EPSILON, 0 since cuDNN 8) is refused: our
    /// kernels run that batch-norm, with the usual results, and the refusal is reported with its
    /// reason, once: the backward passes cuDNN the forward's epsilon, so it is off cuDNN too.
    /// </summary>
    [Fact]
    public void BatchNormWithAnEpsilonCudnnRefusesRunsOnOurKernelsAndSaysWhy()
    {
        var bn = BatchNormCase.Random(new Random(51), 4, 3, 5, momentum: 0.9f) with { Epsilon = -1e-6f };
        using var device = OpenWithCudnn();
        using var plain = Open();
        var e = bn.Run(plain);
        var a = bn.Run(device);
        for (int i = 0; i < e.Length; i++) BitEqual(e[i], a[i], $"batch-norm output {i}");
        // One refusal, of the first pass: the (shape, epsilon) is then off cuDNN for every pass.
        string refusal = Assert.Single(device.CudnnRefusals);
        Assert.StartsWith("batch-norm training", refusal, StringComparison.Ordinal);
        Assert.Contains($"epsilon {bn.Epsilon}", refusal, StringComparison.Ordinal);
        Assert.Equal(CudnnScope.All, device.CudnnScope);   // a refusal is per shape: cuDNN stays on
    }

    /// <summary>
    /// One value per channel (a dense batch-norm's batch of one): cuDNN's Bessel-corrected running
    /// variance would divide by zero, so cuDNN refuses the shape and our kernels run every pass,
    /// bit for bit as without cuDNN and as the CPU (whose running variance takes the biased 0).
    /// </summary>
    [Fact]
    public void BatchNormOfOneValuePerChannelRunsOnOurKernelsLikeTheCpu()
    {
        var bn = BatchNormCase.Random(new Random(53), 1, 7, 1, momentum: 0.5f);
        using var device = OpenWithCudnn();
        using var plain = Open();
        using var cpu = Cpu();
        var e = bn.Run(cpu);
        var a = bn.Run(device);
        var p = bn.Run(plain);
        for (int i = 0; i < e.Length; i++)
        {
            BitEqual(e[i], a[i], $"batch-norm output {i} (cuDNN asked for)");
            BitEqual(e[i], p[i], $"batch-norm output {i} (our kernels)");
        }
        for (int c = 0; c < bn.Channels; c++)
            Assert.Equal(bn.Momentum * bn.RunningVariance[c], e[4][c]);   // the batch's variance counts as 0
        string refusal = Assert.Single(device.CudnnRefusals);
        Assert.StartsWith("batch-norm training 7 channels x 1 (batch 1", refusal, StringComparison.Ordinal);
        Assert.Contains("undefined for 1 x 1 value per channel", refusal, StringComparison.Ordinal);
        Assert.Equal(CudnnScope.All, device.CudnnScope);
    }

    /// <summary>One batch-norm case: random inputs (x offset from zero), run as training forward, backward and inference.</summary>
    private sealed record BatchNormCase(int Batch, int Channels, int Spatial, float Epsilon, float Momentum,
        float[] X, float[] Dy, float[] Gamma, float[] Beta, float[] RunningMean, float[] RunningVariance)
    {
        public static BatchNormCase Random(Random rng, int batch, int channels, int spatial, float momentum)
        {
            int length = batch * channels * spatial;
            var x = Compare.Random(rng, length, 2f).Select(v => v + 0.7f).ToArray();
            var dy = Compare.Random(rng, length);
            var gamma = Compare.Random(rng, channels);
            var beta = Compare.Random(rng, channels);
            var runningMean = Compare.Random(rng, channels, 0.1f);
            var runningVariance = Compare.Random(rng, channels).Select(v => 1 + Math.Abs(v)).ToArray();
            return new(batch, channels, spatial, 1e-3f, momentum, x, dy, gamma, beta, runningMean, runningVariance);
        }

        /// <summary>y, saved mean, saved 1/std, running mean, running variance, dx, dgamma, dbeta, inference y.</summary>
        public float[][] Run(IBackend backend)
        {
            int[] shape = [Batch, Channels, Spatial];
            using var tx = Put(backend, X, shape);
            using var tg = Put(backend, Gamma, Channels);
            using var tb = Put(backend, Beta, Channels);
            using var rm = Put(backend, RunningMean, Channels);
            using var rv = Put(backend, RunningVariance, Channels);
            using var sm = Poisoned(backend, Channels);
            using var sis = Poisoned(backend, Channels);
            using var ty = Poisoned(backend, shape);
            backend.BatchNormForwardTraining(Batch, Channels, Spatial, Epsilon, Momentum, tx, tg, tb, rm, rv, sm, sis, ty);
            using var tdy = Put(backend, Dy, shape);
            using var tdx = Poisoned(backend, shape);
            using var dg = Poisoned(backend, Channels);
            using var db = Poisoned(backend, Channels);
            backend.BatchNormBackward(Batch, Channels, Spatial, Epsilon, tx, tdy, tg, sm, sis, tdx, dg, db);
            using var inference = Poisoned(backend, shape);
            backend.BatchNormForwardInference(Batch, Channels, Spatial, Epsilon, tx, tg, tb, rm, rv, inference);
            return [Get(backend, ty), Get(backend, sm), Get(backend, sis), Get(backend, rm), Get(backend, rv),
                    Get(backend, tdx), Get(backend, dg), Get(backend, db), Get(backend, inference)];
        }
    }

    public static TheoryData<int, int, int, int, int, int, int, bool, long> ConvShapes => new()
    {
        // batch, cin, height, width, cout, kernel height, kernel width, same padding, column budget
        // (floats; small = several groups)
        { 3, 2, 7, 7, 4, 3, 3, true, 1L << 24 },      // stride 1 'same'
        { 4, 3, 8, 8, 5, 3, 3, true, 200 },           // one image per group
        { 5, 2, 9, 9, 3, 5, 5, false, 700 },          // 'valid', groups of two
        { 3, 2, 8, 8, 3, 5, 5, true, 1L << 24 },      // 5x5 'same' at stride 2 on an even size: pads 1 top, 2 bottom (as conv7)
        // Not square (image, kernel, output): a height/width mix-up in the index arithmetic shows.
        { 3, 2, 9, 6, 4, 3, 5, true, 1L << 24 },
        { 4, 3, 6, 10, 2, 1, 3, false, 300 },
        { 2, 2, 8, 8, 3, 5, 3, true, 1L << 24 },   // "same" at stride 2: top padded, left not (a top/left mix-up shows)
        { 2, 2, 8, 8, 3, 5, 1, true, 1L << 24 },   // a 1-wide kernel at stride 2: the last column is read by no output (the padded copy is narrower than x)
    };

    [Theory]
    [MemberData(nameof(ConvShapes))]
    public void ConvolutionAgreesWithinTheDotProductBound(int batch, int cin, int height, int width, int cout, int kernelHeight, int kernelWidth,
        bool same, long columnBudget) =>
        CheckConvolution(Open, batch, cin, (height, width), cout, (kernelHeight, kernelWidth), same, columnBudget, boundFactor: 1);

    /// <summary>
    /// cuDNN's convolutions (asymmetric padding made explicit: a padded copy of x, a cropped dx).
    /// Winograd/FFT algorithms round differently from a direct dot product; 16x the dot-product
    /// bound still catches any wrong element (those differ by the size of the values themselves).
    /// </summary>
    [Theory]
    [MemberData(nameof(ConvShapes))]
    public void CudnnConvolutionAgreesWithinAWidenedBound(int batch, int cin, int height, int width, int cout, int kernelHeight, int kernelWidth,
        bool same, long columnBudget) =>
        CheckConvolution(OpenWithCudnn, batch, cin, (height, width), cout, (kernelHeight, kernelWidth), same, columnBudget, boundFactor: 16);

    /// <summary>
    /// cuDNN's max, average and global average pooling against the CPU, on distinct random values
    /// (cuDNN's tie rule is its own). Max forward selects, so it is exact; every sum (overlapping
    /// windows' gradients, averages) is within the dot-product bound of its terms. cuDNN takes
    /// no argmax: a poisoned one that our kernels would read proves the library ran.
    /// </summary>
    [Theory]
    [MemberData(nameof(PoolShapes))]
    public void CudnnPoolingAgreesWithTheCpu(int batch, int channels, int height, int width, int window, int stride)
    {
        var g = PoolGeometry.Create(batch, channels, height, width, window, stride);
        var rng = new Random(height * 37 + width * 7 + window);
        var x = Random(rng, batch * channels * height * width);
        var dy = Random(rng, batch * channels * g.OutHeight * g.OutWidth);
        int[] xShape = [batch, channels, height, width], yShape = [batch, channels, g.OutHeight, g.OutWidth];
        int spatial = height * width, planes = batch * channels;
        int overlap = (window + stride - 1) / stride * ((window + stride - 1) / stride);   // windows that share an input
        float[][] Run(IBackend backend, float[] xv, float[] dyv)
        {
            using var tx = Put(backend, xv, xShape);
            using var ty = Poisoned(backend, yShape);
            using var argmax = PoisonedInts(backend, yShape);
            using var tdy = Put(backend, dyv, yShape);
            using var tdx = Poisoned(backend, xShape);
            using var avg = Poisoned(backend, yShape);
            using var avgDx = Poisoned(backend, xShape);
            using var global = Poisoned(backend, batch, channels);
            using var globalDy = Put(backend, dyv[..planes], batch, channels);
            using var globalDx = Poisoned(backend, xShape);
            backend.MaxPoolForward(g, tx, ty, argmax);
            backend.MaxPoolBackward(g, tx, ty, tdy, argmax, tdx);
            backend.AvgPoolForward(g, tx, avg);
            backend.AvgPoolBackward(g, tdy, avgDx);
            backend.GlobalAvgPoolForward(batch, channels, spatial, tx, global);
            backend.GlobalAvgPoolBackward(batch, channels, spatial, globalDy, globalDx);
            return [Get(backend, ty), Get(backend, tdx), Get(backend, avg), Get(backend, avgDx), Get(backend, global), Get(backend, globalDx)];
        }
        using var device = OpenWithCudnn();
        using var cpu = Cpu();
        var e = Run(cpu, x, dy);
        var a = Run(device, x, dy);
        Assert.Equal(CudnnScope.All, device.CudnnScope);
        Assert.Empty(device.CudnnRefusals);   // cuDNN ran every op here, none fell back to our kernels
        // The same ops on absolute values give each result's sum of absolute terms; the max pool
        // backward's on x itself, since |x| would select other inputs than x does.
        var mag = Run(cpu, [.. x.Select(Math.Abs)], [.. dy.Select(Math.Abs)]);
        var maxMag = Run(cpu, x, [.. dy.Select(Math.Abs)]);
        BitEqual(e[0], a[0], "cuDNN max pool forward");
        Within(e[1], a[1], i => DotBound(overlap, maxMag[1][i]), "cuDNN max pool backward");
        Within(e[2], a[2], i => DotBound(window * window, mag[2][i]), "cuDNN average pool forward");
        Within(e[3], a[3], i => DotBound(overlap, mag[3][i]), "cuDNN average pool backward");
        Within(e[4], a[4], i => DotBound(spatial, mag[4][i]), "cuDNN global average pool forward");
        Within(e[5], a[5], i => DotBound(1, mag[5][i]), "cuDNN global average pool backward");
    }

    /// <summary>
    /// cuDNN's batch-norm against the CPU (double accumulation). cuDNN accumulates in float, so
    /// the bound is that of a float sum over the M = batch * spatial elements of a channel,
    /// relative r = 8 (M + 2) 2^-24 times the channel's E[x^2] / Var (what cancellation in the
    /// variance amplifies), with an absolute floor of r times the largest term magnitude of each
    /// output (dx cancels three terms, dgamma/dbeta sum M signed terms). A momentum of 0.5 makes
    /// the running variance tell Bessel's correction from its absence (a 1/M relative difference).
    /// </summary>
    [Theory]
    [InlineData(4, 6, 9)]      // conv activations
    [InlineData(300, 5, 1)]    // dense activations
    public void CudnnBatchNormAgreesWithTheCpu(int batch, int channels, int spatial)
    {
        var bn = BatchNormCase.Random(new Random(batch * 3 + channels), batch, channels, spatial, momentum: 0.5f);
        var (x, dy, epsilon, m) = (bn.X, bn.Dy, bn.Epsilon, batch * spatial);
        using var device = OpenWithCudnn();
        using var cpu = Cpu();
        var e = bn.Run(cpu);
        var a = bn.Run(device);
        Assert.Equal(CudnnScope.All, device.CudnnScope);
        Assert.Empty(device.CudnnRefusals);   // cuDNN ran every op here, none fell back to our kernels
        double kappa = 0, termGamma = 0, termBeta = 0;
        for (int c = 0; c < channels; c++)
        {
            double sum = 0, squares = 0, absDy = 0, absDyXhat = 0;
            for (int n = 0; n < batch; n++)
                for (int i = (n * channels + c) * spatial; i < (n * channels + c + 1) * spatial; i++) { sum += x[i]; squares += (double)x[i] * x[i]; }
            double mean = sum / m, variance = squares / m - mean * mean;
            kappa = Math.Max(kappa, squares / m / variance);
            for (int n = 0; n < batch; n++)
                for (int i = (n * channels + c) * spatial; i < (n * channels + c + 1) * spatial; i++)
                {
                    absDy += Math.Abs(dy[i]);
                    absDyXhat += Math.Abs(dy[i] * (x[i] - mean) / Math.Sqrt(variance + epsilon));
                }
            termGamma = Math.Max(termGamma, absDyXhat);
            termBeta = Math.Max(termBeta, absDy);
        }
        double r = 8.0 * (m + 2) * Math.Pow(2, -24) * kappa;
        double Largest(float[] v) => v.Max(f => Math.Abs((double)f));
        Close(e[1], a[1], r, r * Largest(e[1]), "cuDNN saved mean");
        Close(e[2], a[2], r, 0, "cuDNN saved inverse deviation");
        Close(e[0], a[0], r, r * Largest(e[0]), "cuDNN batch-norm forward");
        Close(e[3], a[3], r, r * Largest(e[3]), "cuDNN running mean");
        Close(e[4], a[4], r, 0, "cuDNN running variance (unbiased)");
        Close(e[5], a[5], r, 4 * r * Largest(e[5]), "cuDNN batch-norm dx");
        Close(e[6], a[6], r, r * termGamma, "cuDNN batch-norm dgamma");
        Close(e[7], a[7], r, r * termBeta, "cuDNN batch-norm dbeta");
        Close(e[8], a[8], r, r * Largest(e[8]), "cuDNN batch-norm inference");
    }

    /// <summary>
    /// Convolution on <paramref name="open"/>'s backend vs the CPU. cuDNN may pick Winograd or FFT
    /// algorithms, whose error exceeds a plain dot product's: <paramref name="boundFactor"/> widens the bound.
    /// </summary>
    protected static void CheckConvolution(Func<CudaBackend> open, int batch, int cin, (int Height, int Width) size, int cout,
        (int Height, int Width) kernel, bool same, long columnBudget, double boundFactor)
    {
        foreach (int stride in new[] { 1, 2 })
        {
            var g = ConvGeometry.Create(batch, cin, size.Height, size.Width, cout, kernel.Height, kernel.Width, stride, same);
            using var device = open();
            device.ColumnBudget = columnBudget;
            using var cpu = Cpu();
            var rng = new Random(batch * 100 + stride);
            var x = Random(rng, g.InputLength);
            var w = Random(rng, g.WeightLength);
            var dy = Random(rng, g.OutputLength);
            int[] xShape = [batch, cin, size.Height, size.Width], yShape = [batch, cout, g.OutHeight, g.OutWidth];
            int[] wShape = [cout, cin, kernel.Height, kernel.Width];
            int taps = kernel.Height * kernel.Width;
            (float[] Y, float[] Dx, float[] Dw) Run(IBackend backend, float[] xv, float[] wv, float[] dyv)
            {
                using var tx = Put(backend, xv, xShape);
                using var tw = Put(backend, wv, wShape);
                using var ty = Poisoned(backend, yShape);
                backend.ConvForward(g, tx, tw, ty);
                using var tdy = Put(backend, dyv, yShape);
                using var tdx = Poisoned(backend, xShape);
                backend.ConvBackwardData(g, tdy, tw, tdx);
                using var tdw = Poisoned(backend, wShape);
                backend.ConvBackwardFilter(g, tx, tdy, tdw);
                return (Get(backend, ty), Get(backend, tdx), Get(backend, tdw));
            }
            var e = Run(cpu, x, w, dy);
            var a = Run(device, x, w, dy);
            // The same convolutions of absolute values give sum |a_i b_i| for each output's dot product.
            var mag = Run(cpu, [.. x.Select(Math.Abs)], [.. w.Select(Math.Abs)], [.. dy.Select(Math.Abs)]);
            string where = $"stride {stride}, {g}";
            Within(e.Y, a.Y, i => boundFactor * DotBound(cin * taps, mag.Y[i]), $"conv forward ({where})");
            Within(e.Dx, a.Dx, i => boundFactor * DotBound(cout * taps, mag.Dx[i]), $"conv backward data ({where})");
            Within(e.Dw, a.Dw, i => boundFactor * DotBound(batch * g.OutHeight * g.OutWidth, mag.Dw[i]), $"conv backward filter ({where})");
            // Asymmetric 'same' padding (stride 2 on an even size) runs on cuDNN too, padded explicitly;
            // and a backend that was asked for cuDNN did not drop it as a whole on the way.
            Assert.Empty(device.CudnnRefusals);
            Assert.Null(device.CudnnUnavailableReason);
        }
    }

    [Fact]
    public void ReconnectionIsBitIdenticalToTheCpuBackend()
    {
        using var device = Open();
        using var cpu = Cpu();
        var rng = new Random(29);
        (string Name, int Rows, int RowLength)[] shapes = [("dense", 7, 33), ("conv", 5, 2 * 9), ("long", 2, 700), ("single", 3, 1)];
        float[] pool = [.. Random(rng, 6), 0.0f, -0.0f, float.PositiveInfinity, float.NegativeInfinity];
        float[] Values(int length) => [.. Enumerable.Range(0, length).Select(_ => rng.Next(3) == 0 ? (float)rng.NextDouble() : pool[rng.Next(pool.Length)])];
        var initial = shapes.Select(s => Values(s.Rows * s.RowLength)).ToArray();
        var trained = shapes.Select(s => Values(s.Rows * s.RowLength)).ToArray();
        (float[][] Weights, float[][] Sorted) Run(IBackend backend)
        {
            var tensors = shapes.Select((s, i) => Put(backend, initial[i], s.Rows, s.RowLength)).ToArray();
            try
            {
                var targets = shapes.Select((s, i) => new ReconnectTarget(s.Name, tensors[i], s.Rows, s.RowLength)).ToList();
                using var plan = backend.PrepareReconnect(targets);
                for (int i = 0; i < shapes.Length; i++) backend.Upload<float>(trained[i], tensors[i]);
                backend.Reconnect(plan);
                backend.Reconnect(plan);   // idempotent on reconnected rows
                var sorted = shapes.Select((s, i) =>
                {
                    var values = new float[s.Rows * s.RowLength];
                    plan.DownloadSortedInitial(i, values);
                    return values;
                }).ToArray();
                return ([.. tensors.Select(t => Get(backend, t))], sorted);
            }
            finally
            {
                foreach (var t in tensors) t.Dispose();
            }
        }
        var e = Run(cpu);
        var a = Run(device);
        for (int i = 0; i < shapes.Length; i++)
        {
            BitEqual(e.Sorted[i], a.Sorted[i], $"sorted initial rows of {shapes[i].Name}");
            BitEqual(e.Weights[i], a.Weights[i], $"reconnected {shapes[i].Name}");
        }
    }
}

public sealed class DeviceMemoryExceptionTests
{
    [Fact]
    public void TheMessageNamesTheRequestTheFreeMemoryAndTheRemedy()
    {
        var e = new DeviceMemoryException("NVIDIA H200", 3_000_000_000, 1_250_000, 150_000_000_000);
        Assert.Contains("3,000,000,000 bytes requested", e.Message, StringComparison.Ordinal);
        Assert.Contains("1,250,000 of 150,000,000,000 bytes free", e.Message, StringComparison.Ordinal);
        Assert.Contains("smaller --batch", e.Message, StringComparison.Ordinal);
        Assert.Contains("NVIDIA H200", e.Message, StringComparison.Ordinal);
    }

    /// <summary>An emulated device of <paramref name="bytes"/> bytes (what a GPU's memory is to cuMemAlloc).</summary>
    private static Device SmallDevice(long bytes)
    {
        var device = Device.Open("emu");
        ((EmulatorRuntime)device.Runtime).MemoryCapacity = bytes;
        return device;
    }

    [Fact]
    public void EveryDeviceAllocationThatDoesNotFitSaysSo()
    {
        using var device = SmallDevice(1 << 20);
        using (var fits = device.Allocate<float>(200_000))   // 800,000 bytes of 1,048,576
        {
            var e = Assert.Throws<DeviceMemoryException>(() => device.Allocate<float>(100_000));
            Assert.Equal(400_000, e.RequestedBytes);
            Assert.Equal(1 << 20, e.TotalBytes);
            Assert.InRange(e.FreeBytes, 1, (1 << 20) - 800_000);
            Assert.Contains("out of device memory on host emulator", e.Message, StringComparison.Ordinal);
            Assert.IsType<LaPerm.Cuda.Interop.CudaException>(e.InnerException);
        }
        // Freed memory is free again.
        using (device.Allocate<float>(200_000)) { }

        // The reconnection's own buffers go through the same path, and what it got before it ran
        // out is released: with the weights (400 KB) its sorted initial rows fit (400 KB), the
        // chunked path's scratch (800 KB) does not.
        using var kernels = new ReconnectKernels(device, ReconnectLimits.Default);
        var (freeBefore, _) = device.MemoryInfo();
        using (var w = device.Allocate<float>(100_000))
        {
            var e = Assert.Throws<DeviceMemoryException>(() =>
                DeviceReconnector.FromInitialWeights(kernels, [new DeviceReconnectTarget("big", w, 0, 200, 500)], ReconnectVariant.Chunked));
            Assert.Equal(800_000, e.RequestedBytes);
        }
        Assert.Equal(freeBefore, device.MemoryInfo().Free);

        // And the backend's tensors.
        using var backend = new CudaBackend(device);
        var t = Assert.Throws<DeviceMemoryException>(() => backend.Allocate<float>(new Shape(1000, 1000)));
        Assert.Equal(4_000_000, t.RequestedBytes);
    }
}

/// <summary>The checks on the host emulator: the real kernel sources and orchestration, in CI.</summary>
public sealed class EmuBackendOpTests : BackendOpTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");

    protected override CudaBackend OpenWithCudnn() => CudaBackend.Open("emu", cudnn: CudnnScope.All);

    [Fact]
    public void TheBackendsReconnectVariantPlansItsReconnections()
    {
        foreach (ReconnectVariant variant in Enum.GetValues<ReconnectVariant>())
        {
            using var backend = CudaBackend.Open("emu", reconnectVariant: variant);
            Assert.Equal(variant, backend.ReconnectVariant);
            using var w = backend.Allocate<float>(new Shape(2, 300));
            backend.Upload<float>([.. Enumerable.Range(0, 600).Select(i => (float)Math.Sin(i))], w);
            using var plan = backend.PrepareReconnect([new ReconnectTarget("w", w, 2, 300)]);
            var reconnector = Assert.IsType<DeviceReconnectPlan>(plan).Reconnector;
            Assert.Equal(variant, reconnector.Plan.Variant);
            // The emulator plans with the default 48 KB of shared memory per block.
            Assert.Equal(ReconnectPlanner.ChoosePath(variant, 300, ReconnectLimits.Default), Assert.Single(reconnector.Plan.Launches).Path);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => CudaBackend.Open("emu", reconnectVariant: (ReconnectVariant)99));
    }
}

/// <summary>The same checks on a real GPU (cuBLAS pedantic FP32, our convolution kernels); skipped where there is none.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuBackendOpTests : BackendOpTests
{
    protected override CudaBackend Open() => OpenGpu(CudnnScope.None);

    protected override CudaBackend OpenWithCudnn() => OpenGpu(CudnnScope.All);

    /// <summary>
    /// --math tf32: cuBLAS on the tensor cores, inputs cut to TF32 (10 mantissa bits: at most 2^-10
    /// relative each, whether rounded or truncated, so 2^-9 per product). Within that bound of the
    /// CPU, and not bit-identical to pedantic FP32 (which would mean TF32 never took effect).
    /// </summary>
    [Fact]
    public void Tf32GemmsAgreeWithinTheTf32BoundAndDifferFromPedantic()
    {
        var report = CudaInfo.Collect();
        if (!report.CudaAvailable) Assert.Skip(report.CudaUnavailableReason!);
        using var tf32 = CudaBackend.Open("cuda", GemmMath.Tf32);
        using var pedantic = CudaBackend.Open("cuda", GemmMath.Pedantic);
        using var cpu = new CpuBackend(2);
        Assert.Contains("TF32", tf32.Description, StringComparison.Ordinal);
        const int m = 128, n = 96, k = 256;
        var rng = new Random(37);
        var a = Random(rng, m * k);
        var b = Random(rng, k * n);
        float[] Run(IBackend backend, float[] aa, float[] bb)
        {
            using var ta = Put(backend, aa, m * k);
            using var tb = Put(backend, bb, k * n);
            using var tc = Poisoned(backend, m * n);
            backend.Gemm(false, false, m, n, k, 1f, ta, tb, 0f, tc);
            return Get(backend, tc);
        }
        var expected = Run(cpu, a, b);
        var magnitude = Run(cpu, [.. a.Select(Math.Abs)], [.. b.Select(Math.Abs)]);
        var actual = Run(tf32, a, b);
        Within(expected, actual, i => Math.Pow(2, -9) * magnitude[i] + DotBound(k, magnitude[i]), "tf32 gemm");
        Assert.NotEqual(Run(pedantic, a, b), actual);
    }

    internal static CudaBackend OpenGpu(CudnnScope cudnn, ChannelReduction reduction = ChannelReduction.Chunked)
    {
        var report = CudaInfo.Collect();
        if (!report.CudaAvailable) Assert.Skip(report.CudaUnavailableReason!);
        var backend = CudaBackend.Open("cuda", GemmMath.Pedantic, cudnn, reduction);
        return cudnn == CudnnScope.None ? backend : RequireCudnn(backend);
    }

    /// <summary>
    /// The backend, if cuDNN came up on it; else skipped: a cuDNN test on a GPU without a usable
    /// cuDNN would compare our kernels instead (on the GPU check a skip counts as a failure, so
    /// the missing library shows).
    /// </summary>
    internal static CudaBackend RequireCudnn(CudaBackend backend)
    {
        if (backend.CudnnUnavailableReason is { } reason)
        {
            backend.Dispose();
            Assert.Skip($"cuDNN not usable: {reason}");
        }
        return backend;
    }

}
