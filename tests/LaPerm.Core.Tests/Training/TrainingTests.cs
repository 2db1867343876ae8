using System.Runtime.InteropServices;
using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.IO;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;

namespace LaPerm.Core.Tests.Training;

public sealed class TrainingTests
{
    [Fact]
    public void BenchMediansOfAnEvenCountAreTheMeanOfTheTwoMiddleValues()
    {
        // It was the upper middle value (the larger of two windows).
        Assert.Equal(41_439.0, TrainStepBench.Median([41_841.0, 41_037.0]));
        Assert.Equal(2.0, TrainStepBench.Median([3.0, 1.0, 2.0]));
        Assert.Equal(2.5, TrainStepBench.Median([4.0, 1.0, 3.0, 2.0]));
    }

    [Fact]
    public void PresetsCarryThePublishedSetups()
    {
        var conv7 = Presets.TryGet("conv7-mnist")!;
        Assert.Equal(("conv7", 50, 45, "1200", "exp:0.95", "mnist", false, false), (conv7.Model, conv7.Batch, conv7.Epochs, conv7.K.ToString(), conv7.LearningRateSchedule.ToString(), conv7.Augment, conv7.SkipBias, conv7.SkipBatchNorm));
        var f1 = Presets.TryGet("f1-mnist")!;
        // F1/F2 follow the authors' notebook: lr 1e-3 * 0.95^epoch; every preset sums the loss over the batch (their one loop).
        Assert.Equal(("f1", 128, 10, "250", 0.08f, "exp:0.95", "none", 0.0, LossReduction.Sum), (f1.Model, f1.Batch, f1.Epochs, f1.K.ToString(), f1.Init.SharedValue, f1.LearningRateSchedule.ToString(), f1.Augment, f1.Init.Prune, f1.LossReduction));
        Assert.Equal([4.0 / 7], f1.Init.Keep!);
        var f2 = Presets.TryGet("f2-mnist")!;
        Assert.Equal(("f2", 128, 25, "250", 0.03f, "exp:0.95", "none", LossReduction.Sum), (f2.Model, f2.Batch, f2.Epochs, f2.K.ToString(), f2.Init.SharedValue, f2.LearningRateSchedule.ToString(), f2.Augment, f2.LossReduction));
        Assert.Equal([1.0 / 15, 1.0 / 7, 1.0 / 3], f2.Init.Keep!);
        var f2Model = new ModelDefinition(BuiltInModels.F2());
        Assert.Equal([1e-4f, 1e-4f, 0f], f2Model.Parameters.Select(p => p.L2));
        foreach (var (name, model) in new[] { ("conv2-cifar10", "conv2"), ("conv4-cifar10", "conv4"), ("conv13-cifar10", "conv13") })
        {
            var c = Presets.TryGet(name)!;
            Assert.Equal((model, "cifar10", 50, 125, "1000", "step:0.6/10", "cifar", true, true), (c.Model, c.Data, c.Batch, c.Epochs, c.K.ToString(), c.LearningRateSchedule.ToString(), c.Augment, c.SkipBias, c.SkipBatchNorm));
            // L2 1e-4 on every kernel but the final Dense(10), which the authors' notebooks leave unregularised.
            var kernels = new ModelDefinition(BuiltInModels.TryGet(model)!).Parameters.Where(p => p.Kind == ParameterKind.Kernel).ToList();
            Assert.All(kernels[..^1], p => Assert.Equal(1e-4f, p.L2));
            Assert.Equal((10, 0f), (kernels[^1].Shape[0], kernels[^1].L2));
        }
        var resnet = Presets.TryGet("resnet50c-cifar10")!;
        Assert.Equal(("resnet50c", 50, 200, "400", true, true, "shift-flip"), (resnet.Model, resnet.Batch, resnet.Epochs, resnet.K.ToString(), resnet.SkipBias, resnet.SkipBatchNorm, resnet.Augment));
        Assert.Equal(1e-4f, resnet.LearningRateSchedule.At(1e-3f, 100), 1e-10f);
        Assert.All(Presets.Names, n => Assert.Equal(1e-3f, Presets.TryGet(n)!.LearningRate));
        Assert.All(Presets.Names, n => Assert.Equal((OptimizerKind.Adam, true, n), (Presets.TryGet(n)!.Optimizer, Presets.TryGet(n)!.Reconnect, Presets.TryGet(n)!.Preset)));
        Assert.All(Presets.Names, n => Assert.NotNull(BuiltInModels.TryGet(Presets.TryGet(n)!.Model)));
        Assert.All(Presets.Names, n => Assert.Equal(LossReduction.Sum, Presets.TryGet(n)!.LossReduction));
    }

    [Theory]
    [InlineData("constant", 0, 1e-3)]
    [InlineData("constant", 30, 1e-3)]
    [InlineData("exp:0.95", 2, 1e-3 * 0.95 * 0.95)]
    [InlineData("step:0.6/10", 9, 1e-3)]
    [InlineData("step:0.6/10", 10, 6e-4)]
    [InlineData("step:0.6/10", 25, 1e-3 * 0.36)]
    [InlineData("piecewise:80=0.1,120=0.01", 79, 1e-3)]
    [InlineData("piecewise:80=0.1,120=0.01", 80, 1e-4)]
    [InlineData("piecewise:80=0.1,120=0.01", 150, 1e-5)]
    public void LearningRateSchedulesFollowTheirFormulas(string text, int epoch, double expected) =>
        Assert.Equal(expected, LearningRateSchedule.Parse(text).At(1e-3f, epoch), 1e-9);

    [Theory]
    [InlineData("step:0.6/0", "the epochs E of step:F/E must be at least 1, got 0")]
    [InlineData("step:-0.6/10", "the factor F of step:F/E must be positive, got -0.6")]
    [InlineData("exp:-1", "the factor per epoch must be positive, got -1")]
    [InlineData("exp:0", "the factor per epoch must be positive, got 0")]
    [InlineData("piecewise:80=0.1,40=0.01", "the epochs must increase, but 40 follows 80")]
    [InlineData("piecewise:80=0.1,80=0.01", "the epochs must increase, but 80 follows 80")]
    [InlineData("piecewise:80=0", "the factor of epoch 80 must be positive, got 0")]
    [InlineData("cosine", "expects constant, exp:G, step:F/E or piecewise:E=F")]
    [InlineData("step:x/10", "expects constant, exp:G, step:F/E or piecewise:E=F")]
    public void ABadScheduleSaysWhatIsWrongWithIt(string text, string expected) =>
        Assert.Contains(expected, Assert.Throws<FormatException>(() => LearningRateSchedule.Parse(text)).Message, StringComparison.Ordinal);

    [Fact]
    public void OptimizerAddsTheL2GradientTwoLambdaW()
    {
        // One dense layer with L2 0.5: plain SGD (momentum 0) must give w - lr (g + 2 * 0.5 * w).
        var model = new ModelDefinition(new ModelSpec("l2", [1, 1, 3], [new DenseSpec(2, Bias: false, L2: 0.5f)]));
        using var backend = new CpuBackend(1);
        using var network = new Network(model, backend);
        var p = network.Parameters[0];
        float[] w = [0.3f, -1.2f, 2.5f, 0.7f, -0.1f, 1.9f], g = [0.05f, 0.4f, -0.3f, 1.1f, -0.6f, 0.2f];
        backend.Upload<float>(w, p.Value);
        backend.Upload<float>(g, p.Gradient);
        using var optimizer = new Optimizer(network, OptimizerKind.Sgd, momentum: 0f);
        backend.BeginStep(optimizer.NextStep(1, 0, 0, 1, 0.1f));
        optimizer.Step();
        var result = new float[6];
        backend.Download(p.Value, result);
        for (int i = 0; i < 6; i++) Assert.Equal(w[i] - 0.1 * (g[i] + w[i]), result[i], 5e-6);
    }

    [Theory]
    [InlineData(LossReduction.Mean)]
    [InlineData(LossReduction.Sum)]
    public void AdamStepsOnTheGradientOfTheChosenLossReduction(LossReduction reduction)
    {
        // Gradients near Adam's epsilon (as in the weight-agnostic F1/F2 setups), where mean and sum
        // differ: Sum must step on n * (g + 2 l2 w), Mean on g + 2 l2 w, both with epsilon 1e-7.
        const int n = 96;
        const float lr = 1e-3f, l2 = 1e-4f;
        var model = new ModelDefinition(new ModelSpec("red", [1, 1, 4], [new DenseSpec(3, L2: l2)]));
        using var backend = new CpuBackend(1);
        using var network = new Network(model, backend);
        using var optimizer = new Optimizer(network, OptimizerKind.Adam, reduction: reduction);
        var rng = new SeededRandom(17);
        var ps = network.Parameters;
        var w = ps.Select(p => Enumerable.Range(0, p.Info.Shape.Length).Select(_ => (float)(rng.NextDouble() * 0.06 - 0.03)).ToArray()).ToArray();
        var m = ps.Select(p => new double[p.Info.Shape.Length]).ToArray();
        var v = ps.Select(p => new double[p.Info.Shape.Length]).ToArray();
        var expected = w.Select(a => a.Select(x => (double)x).ToArray()).ToArray();
        for (int i = 0; i < ps.Count; i++) backend.Upload<float>(w[i], ps[i].Value);
        for (int t = 1; t <= 3; t++)
        {
            for (int i = 0; i < ps.Count; i++)
            {
                var g = Enumerable.Range(0, w[i].Length).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 2e-7)).ToArray();
                backend.Upload<float>(g, ps[i].Gradient);
                double scale = reduction == LossReduction.Sum ? n : 1;
                double lrT = lr * Math.Sqrt(1 - Math.Pow(0.999, t)) / (1 - Math.Pow(0.9, t));
                for (int j = 0; j < g.Length; j++)
                {
                    double gj = scale * (g[j] + 2.0 * ps[i].Info.L2 * expected[i][j]);
                    m[i][j] = 0.9 * m[i][j] + 0.1 * gj;
                    v[i][j] = 0.999 * v[i][j] + 0.001 * gj * gj;
                    expected[i][j] -= lrT * m[i][j] / (Math.Sqrt(v[i][j]) + 1e-7);
                }
            }
            backend.BeginStep(optimizer.NextStep(t, 0, 0, n, lr));
            optimizer.Step(n);
        }
        for (int i = 0; i < ps.Count; i++)
        {
            var actual = new float[w[i].Length];
            Array.Fill(actual, float.NaN);
            backend.Download(ps[i].Value, actual);
            for (int j = 0; j < actual.Length; j++)
                Assert.Equal(expected[i][j], actual[j], 2e-8 + 1e-5 * Math.Abs(expected[i][j] - w[i][j]));
        }
    }

    [Fact]
    public void SameSeedAndThreadsGiveBitIdenticalWeightsAndAnotherSeedDoesNot()
    {
        var data = DataSource.Load("mnist", 256, 64);
        var spec = new ModelSpec("det", [1, 28, 28],
        [
            new Conv2dSpec(4, 3, Stride: 2), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(0.3f),
            new FlattenSpec(), new DenseSpec(10),
        ]);
        float[] Run(ulong seed)
        {
            var options = new TrainingOptions { Epochs = 1, Batch = 32, K = Core.LaPerm.SyncSchedule.Constant(3), Seed = seed, Threads = 2, Augment = "mnist" };
            using var backend = new CpuBackend(2);
            var trainer = new Trainer(options, new ModelDefinition(spec), data, backend);
            trainer.Run();
            using var network = trainer.Network!;
            return [.. network.CheckpointTensors().SelectMany(t =>
            {
                var v = new float[t.Tensor.Length];
                backend.Download(t.Tensor, v);
                return v;
            })];
        }
        var a = Run(4);
        var b = Run(4);
        var c = Run(5);
        Assert.Equal(a.Select(BitConverter.SingleToUInt32Bits), b.Select(BitConverter.SingleToUInt32Bits));
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void SafeTensorsRoundTripWithAnAlignedHeaderAndRejectBadFiles()
    {
        var path = Path.Combine(Path.GetTempPath(), $"laperm-{Guid.NewGuid():N}.safetensors");
        try
        {
            var rng = new Random(1);
            NamedArray[] arrays =
            [
                new("a/kernel", [3, 2, 2], [.. Enumerable.Range(0, 12).Select(_ => (float)rng.NextDouble())]),
                new("a/bias", [3], [-0.0f, float.Epsilon, -7f]),
            ];
            SafeTensors.Write(path, arrays, new Dictionary<string, string> { ["model"] = "x" });
            var bytes = File.ReadAllBytes(path);
            long header = BitConverter.ToInt64(bytes, 0);
            Assert.Equal(0, (8 + header) % 8);
            Assert.Equal(8 + header + 15 * 4, bytes.Length);
            var (read, meta) = SafeTensors.Read(path);
            Assert.Equal("x", meta["model"]);
            Assert.Equal(arrays.Select(a => a.Name), read.Select(a => a.Name));
            for (int i = 0; i < arrays.Length; i++)
            {
                Assert.Equal(arrays[i].Shape, read[i].Shape);
                Assert.Equal(arrays[i].Values.Select(BitConverter.SingleToUInt32Bits), read[i].Values.Select(BitConverter.SingleToUInt32Bits));
            }
            File.WriteAllBytes(path, bytes[..(bytes.Length - 4)]);
            Assert.Contains("a/bias", Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path)).Message, StringComparison.Ordinal);
            File.WriteAllBytes(path, [1, 2, 3]);
            Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
            // Another kind of file (here a PNG's signature and header) is named as such, not as a header length.
            File.WriteAllBytes(path, [0x89, .. "PNG\r\n\u001a\n"u8, 0, 0, 0, 13, .. "IHDR"u8, 0, 0, 1, 0]);
            Assert.Contains("is not a safetensors file", Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path)).Message, StringComparison.Ordinal);
            File.WriteAllBytes(path, bytes[..(int)(8 + header / 2)]);
            Assert.Contains("declares a", Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path)).Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    // Each of these escaped as another exception (a crash of laperm eval), or read bytes of the header.
    [InlineData("[1,2,3]", "not a JSON object")]
    [InlineData("42", "not a JSON object")]
    [InlineData("""{"__metadata__":{"x":5}}""", "metadata 'x'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "Duplicate")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", "two data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}""", "non-negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775800,9223372036854775804]}}""", "do not fit")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}""", "'a'")]
    public void MalformedSafetensorsHeadersAreWeightsFormatErrorsNamingTheFile(string header, string expected)
    {
        string path = Path.GetTempFileName();
        try
        {
            byte[] json = System.Text.Encoding.UTF8.GetBytes(header);
            File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json, .. new byte[16]]);
            var e = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    // Each was read: two tensors sharing bytes, bytes of no tensor between or after them.
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12,
        "the data of tensors 'a' and 'b' overlap (bytes 4 to 8 of the data)")]
    [InlineData("""{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12,
        "bytes 4 to 8 of the data belong to no tensor (before 'b')")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "bytes 0 to 4 of the data belong to no tensor (before 'a')")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 16, "holds 12 byte(s) after the last tensor's data")]
    [InlineData("""{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"c":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}""", 12,
        "the data of tensors 'b' and 'c' overlap")]
    [InlineData("""{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8, null)]
    [InlineData("""{"__metadata__":{"k":"v"}}""", 0, null)]
    public void SafetensorsDataMustBeTiledByItsTensorsWithNoGapOverlapOrTrailingBytes(string header, int dataBytes, string? expected)
    {
        string path = Path.GetTempFileName();
        try
        {
            byte[] json = System.Text.Encoding.UTF8.GetBytes(header);
            byte[] data = [.. Enumerable.Range(1, dataBytes).Select(i => (byte)i)];
            File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json, .. data]);
            if (expected is null)
            {
                // In any order, with empty tensors at a tensor's edge: read, each tensor its own bytes.
                var (tensors, _) = SafeTensors.Read(path);
                var offsets = System.Text.Json.Nodes.JsonNode.Parse(header)!.AsObject().Where(p => p.Key != "__metadata__")
                    .ToDictionary(p => p.Key, p => p.Value!["data_offsets"]![0]!.GetValue<int>());
                Assert.Equal(offsets.Count, tensors.Count);
                Assert.All(tensors, t => Assert.Equal(MemoryMarshal.Cast<byte, float>(data.AsSpan(offsets[t.Name], 4 * t.Values.Length)).ToArray(), t.Values));
                return;
            }
            var e = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A header byte that is not UTF-8 (in a tensor name or a metadata value) escaped as an unhandled transcoding error.</summary>
    [Theory]
    [InlineData("""{"a\u00ff":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""")]
    [InlineData("""{"__metadata__":{"model":"x\u00ff"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""")]
    public void ASafetensorsHeaderThatIsNotUtf8IsAWeightsFormatErrorNamingTheByte(string header)
    {
        string path = Path.GetTempFileName();
        try
        {
            // Latin-1 turns the \u00ff marker into the single byte 0xFF, which no UTF-8 text holds.
            byte[] json = System.Text.Encoding.Latin1.GetBytes(header.Replace("\\u00ff", "\u00ff", StringComparison.Ordinal));
            int at = Array.IndexOf(json, (byte)0xFF);
            File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)json.Length), .. json, .. new byte[16]]);
            var e = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains($"not valid UTF-8 (byte {8 + at} of the file)", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Lenet300ReachesNinetySevenPercentByReconnectionWithinTwoEpochs()
    {
        // The requirement, as the default `laperm train` runs it: lenet300 on all of MNIST,
        // 2 epochs, batch 32, k 50 (about 10 s on two cores). Every sync returns each row to a
        // permutation of its random init, so the accuracy can only come from where the initial
        // values were moved; the best counts synchronised evaluations only.
        var data = DataSource.Load("mnist");
        var options = new TrainingOptions { Threads = 2 };
        Assert.Equal(("lenet300", 2, 32, "50"), (options.Model, options.Epochs, options.Batch, options.K.ToString()));
        using var backend = new CpuBackend(2);
        var trainer = new Trainer(options, new ModelDefinition(BuiltInModels.LeNet300()), data, backend);
        var summary = trainer.Run();
        trainer.Network!.Dispose();
        Assert.Equal(3750, summary.Steps);
        Assert.Equal(75, summary.Syncs);   // 74 scheduled + the final one
        // The requirement is the best synchronised model (README: 97.29 % best, 97.24 % final on this
        // configuration); the final one must still be a trained network.
        Assert.True(summary.BestTestAccuracy >= 0.97, $"best synchronised test accuracy {summary.BestTestAccuracy:P2}");
        Assert.True(summary.FinalTestAccuracy >= 0.96, $"final test accuracy {summary.FinalTestAccuracy:P2}");
    }
}
