using LaPerm.Core.Backend;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The trainer's captured steps (one graph per batch size, a captured reconnection) give the same
/// bits as the same ops run one by one (--no-graphs), across an epoch boundary (a new learning
/// rate read from the step block), a short last batch (its own graph), dropout (a new mask per
/// replayed step) and syncs; and the non-finite guard stops a run whose steps are replayed graphs.
/// </summary>
public abstract class StepGraphTests
{
    protected abstract CudaBackend Open();

    private static readonly Lazy<DataSplit> Mnist = new(() => DataSource.Load("mnist", 128, 32));

    private sealed class StepHook(Action<long> onStep) : ITrainingObserver
    {
        public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) => onStep(step);
        public void OnEvaluation(EvaluationRecord record) { }
        public void OnSync(long step, int syncs, double seconds) { }
    }

    private (Dictionary<string, float[]> Weights, TrainingSummary Summary) Train(bool graphs, OptimizerKind optimizer)
    {
        using var backend = Open();
        var options = new TrainingOptions
        {
            Model = "tinyconv", Epochs = 2, Batch = 24, K = SyncSchedule.Constant(3), Seed = 9, Threads = 2,
            Optimizer = optimizer, LearningRate = optimizer == OptimizerKind.Adam ? 1e-3f : 0.05f,
            LearningRateSchedule = LearningRateSchedule.Parse("exp:0.5"), Augment = "mnist", Graphs = graphs,
        };
        var result = Compare.Train(backend, options, TrainingEquivalenceTests.TinyConv(), Mnist.Value);
        Assert.Null(backend.CudnnUnavailableReason);   // the cuDNN variants ran on cuDNN throughout
        return result;
    }

    [Theory]
    [InlineData(OptimizerKind.Adam)]
    [InlineData(OptimizerKind.Sgd)]
    public void CapturedStepsAreBitIdenticalToEagerSteps(OptimizerKind optimizer)
    {
        var eager = Train(graphs: false, optimizer);
        var captured = Train(graphs: true, optimizer);
        Assert.False(eager.Summary.Graphs);
        Assert.True(captured.Summary.Graphs);
        // 128 images at batch 24: five full batches and one of 8 per epoch, a sync every 3 steps.
        Assert.Equal(12, captured.Summary.Steps);
        Assert.Equal(4, captured.Summary.Syncs);
        // One graph per batch size (24, and the last batch's 8) and one for the reconnection; the
        // evaluation after every sync must not make them stale (a capture per step is no graph).
        Assert.Equal(3, captured.Summary.GraphCaptures);
        Assert.Equal(["reconnection", "step_batch_24", "step_batch_8"], captured.Summary.GraphNodes.Keys.Order());
        // A step is a few dozen launches; the reconnection of every tensor is one launch per size class.
        Assert.All(captured.Summary.GraphNodes.Where(g => g.Key.StartsWith("step", StringComparison.Ordinal)),
            g => Assert.True(g.Value > 10, $"{g.Key}: {g.Value} nodes"));
        Assert.InRange(captured.Summary.GraphNodes["reconnection"], 1, 3);
        Assert.Empty(eager.Summary.GraphNodes);
        Assert.Equal(eager.Weights.Keys, captured.Weights.Keys);
        foreach (var (name, values) in eager.Weights) Compare.BitEqual(values, captured.Weights[name], $"{optimizer} {name}");
        Assert.Equal(BitConverter.DoubleToInt64Bits(eager.Summary.FinalTestLoss), BitConverter.DoubleToInt64Bits(captured.Summary.FinalTestLoss));
    }

    [Fact]
    public void AStepRunsEagerlyOnceIsCapturedOnceAndReplayedAndIsCapturedAgainWhenStale()
    {
        using var backend = Open();
        var rng = new Random(5);
        float[] x = Compare.Random(rng, 64), y0 = Compare.Random(rng, 64);
        using var tx = backend.Allocate<float>(new Shape(64));
        using var ty = backend.Allocate<float>(new Shape(64));
        backend.Upload<float>(x, tx);
        backend.Upload<float>(y0, ty);
        // A step that also uses a backend scratch buffer (the loss's per-example values).
        const int classes = 4;
        using var logits = backend.Allocate<float>(new Shape(16, classes));
        using var labels = backend.Allocate<int>(new Shape(16));
        using var dLogits = backend.Allocate<float>(new Shape(16, classes));
        using var totals = backend.Allocate<float>(new Shape(2));
        using var smallLogits = backend.Allocate<float>(new Shape(2, classes));
        using var smallDLogits = backend.Allocate<float>(new Shape(2, classes));
        backend.Upload<float>(Compare.Random(rng, 2 * classes), smallLogits);
        backend.Upload<float>(Compare.Random(rng, 16 * classes), logits);
        backend.Upload<int>([.. Enumerable.Range(0, 16).Select(i => i % classes)], labels);
        int enqueued = 0;
        using var graphs = new StepGraphs(backend, enabled: true);
        bool Step()
        {
            enqueued++;
            backend.ScaleAdd(0.5f, tx, ty);   // y = x + 0.5 y
            backend.SoftmaxCrossEntropy(2, classes, smallLogits, labels, smallDLogits, totals);
            return true;
        }
        for (int i = 0; i < 4; i++) Assert.True(graphs.Run(7, Step));
        Assert.Equal(2, enqueued);            // the warm-up and the capture
        Assert.Equal(1, graphs.Captures);
        // A larger loss grows the scratch buffer: the capture is stale and is made again.
        backend.SoftmaxCrossEntropy(16, classes, logits, labels, dLogits, totals);
        for (int i = 0; i < 2; i++) Assert.True(graphs.Run(7, Step));
        Assert.Equal(3, enqueued);
        Assert.Equal(2, graphs.Captures);
        var expected = (float[])y0.Clone();
        for (int step = 0; step < 6; step++)
            for (int i = 0; i < expected.Length; i++) expected[i] = x[i] + 0.5f * expected[i];
        Compare.BitEqual(expected, Compare.Get(backend, ty), "y after six steps, four of them replayed");
    }

    /// <summary>
    /// A step whose capture fails does not end the run: the failure is reported once with what
    /// broke it, the step runs eagerly at once and on every later run, and its results are those
    /// of the eager step.
    /// </summary>
    [Fact]
    public void AStepThatCannotBeCapturedRunsEagerlyFromThenOnAndSaysWhy()
    {
        using var backend = Open();
        const int classes = 3;
        var rng = new Random(8);
        using var labels = Compare.Put(backend, Enumerable.Range(0, 64).Select(i => i % classes).ToArray(), 64);
        using var totals = backend.Allocate<float>(new Shape(2));
        var logits = new Dictionary<int, Tensor<float>> { [2] = Compare.Put(backend, Compare.Random(rng, 2 * classes), 2, classes), [64] = Compare.Put(backend, Compare.Random(rng, 64 * classes), 64, classes) };
        var dLogits = new Dictionary<int, Tensor<float>> { [2] = backend.Allocate<float>(new Shape(2, classes)), [64] = backend.Allocate<float>(new Shape(64, classes)) };
        var warnings = new StringWriter();
        using var graphs = new StepGraphs(backend, enabled: true, warnings: warnings, describeKey: key => $"the test step {key}");
        int batch = 2, enqueued = 0;
        bool Step()
        {
            enqueued++;
            backend.Fill(totals, 0f);
            backend.SoftmaxCrossEntropy(batch, classes, logits[batch], labels, dLogits[batch], totals);
            return true;
        }
        Assert.True(graphs.Run(1, Step));   // the warm-up sizes the loss's scratch buffer for 2 examples
        batch = 64;                         // the capture would have to grow it, which waits on the stream
        Assert.True(graphs.Run(1, Step));   // the failed capture, then the same step eagerly
        Assert.Equal(0, graphs.Captures);
        Assert.Equal(3, enqueued);
        Assert.False(graphs.Replays(1));
        string reason = Assert.Single(graphs.Failures).Value;
        Assert.Contains("captur", reason, StringComparison.OrdinalIgnoreCase);
        string line = Assert.Single(warnings.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("warning: capturing the test step 1 as a CUDA graph failed (", line, StringComparison.Ordinal);
        Assert.EndsWith("it runs eagerly from now on, as with --no-graphs.", line.TrimEnd(), StringComparison.Ordinal);
        var afterFallback = Compare.Get(backend, totals);
        Assert.True(graphs.Run(1, Step));   // eager from now on: no second attempt, no second warning
        Assert.Equal(4, enqueued);
        Assert.Equal(0, graphs.Captures);
        Assert.Single(warnings.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        // The eager runs are the step itself: the same sums each time, a real loss over 64 examples.
        Compare.BitEqual(afterFallback, Compare.Get(backend, totals), "the loss sums of two eager runs");
        Assert.True(float.IsFinite(afterFallback[0]) && afterFallback[0] > 0, $"loss {afterFallback[0]}");
        Assert.InRange(afterFallback[1], 0f, 64f);
        foreach (var t in logits.Values.Concat(dLogits.Values)) t.Dispose();
    }

    /// <summary>
    /// A capture that fails in its batched optimizer launch (the set of tensors changed since the
    /// warm-up) leaves no recorded update behind: the eager run that follows updates every tensor
    /// exactly once, bit for bit as the CPU backend does.
    /// </summary>
    [Fact]
    public void AFailedCaptureOfAnOptimizerStepUpdatesEachTensorOnce()
    {
        using var backend = Open();
        using var cpu = new LaPerm.Cpu.CpuBackend(1);
        var rng = new Random(21);
        float[][] initial = [.. Enumerable.Range(0, 8).Select(_ => Compare.Random(rng, 40))];   // w, g, m, v of A, then of B
        Tensor<float>[] Put(IBackend b) => [.. initial.Select(values => Compare.Put(b, (float[])values.Clone(), values.Length))];
        var onDevice = Put(backend);
        var onCpu = Put(cpu);
        for (int i = 0; i < 8; i += 4)
        {
            // Adam's v is a running mean of squares: non-negative.
            foreach (var (b, t) in new[] { ((IBackend)backend, onDevice), (cpu, onCpu) })
            {
                var v = Compare.Get(b, t[i + 3]);
                b.Upload<float>([.. v.Select(MathF.Abs)], t[i + 3]);
            }
        }
        var warnings = new StringWriter();
        using var graphs = new StepGraphs(backend, enabled: true, warnings: warnings);
        bool both = false;
        void Update(IBackend b, Tensor<float>[] t)
        {
            b.AdamUpdate(AdamParameters.Keras, t[0], t[1], t[2], t[3]);
            if (both) b.AdamUpdate(AdamParameters.Keras, t[4], t[5], t[6], t[7]);
        }
        for (int step = 1; step <= 3; step++)
        {
            both = step > 1;   // the capture (step 2) meets a second tensor: its table cannot be uploaded while capturing
            var scalars = new StepScalars(step, 0, 0, 1, 1e-2f, step);
            backend.BeginStep(scalars);
            Assert.True(graphs.Run(5, () => { Update(backend, onDevice); return true; }));
            cpu.BeginStep(scalars);
            Update(cpu, onCpu);
        }
        Assert.Equal(0, graphs.Captures);
        Assert.Contains("optimizer tensors changed", Assert.Single(graphs.Failures).Value, StringComparison.Ordinal);
        for (int i = 0; i < 8; i++)
            Compare.BitEqual(Compare.Get(cpu, onCpu[i]), Compare.Get(backend, onDevice[i]), $"tensor {i / 4} part {i % 4} after three steps");
        foreach (var t in onDevice.Concat(onCpu)) t.Dispose();
    }

    /// <summary>Giving up when no capture failed changes nothing: an eager update still waiting for its batched launch is kept.</summary>
    [Fact]
    public void GivingUpWithoutAFailedCaptureKeepsPendingUpdates()
    {
        using var backend = Open();
        using var cpu = new LaPerm.Cpu.CpuBackend(1);
        var rng = new Random(12);
        float[][] initial = [.. Enumerable.Range(0, 4).Select(i => Compare.Random(rng, 24).Select(v => i == 3 ? MathF.Abs(v) : v).ToArray())];
        var onDevice = initial.Select(v => Compare.Put(backend, (float[])v.Clone(), v.Length)).ToArray();
        var onCpu = initial.Select(v => Compare.Put(cpu, (float[])v.Clone(), v.Length)).ToArray();
        var scalars = new StepScalars(1, 0, 0, 1, 1e-2f, 1);
        backend.BeginStep(scalars);
        cpu.BeginStep(scalars);
        backend.AdamUpdate(AdamParameters.Keras, onDevice[0], onDevice[1], onDevice[2], onDevice[3]);
        cpu.AdamUpdate(AdamParameters.Keras, onCpu[0], onCpu[1], onCpu[2], onCpu[3]);
        backend.AbandonCapture();
        backend.Synchronize();
        Compare.BitEqual(Compare.Get(cpu, onCpu[0]), Compare.Get(backend, onDevice[0]), "w after one eager update");
        foreach (var t in onDevice.Concat(onCpu)) t.Dispose();
    }

    /// <summary>
    /// A graph's nodes are the launches it captured, as the driver counts them: two scalings and
    /// the one multi-tensor Adam launch that the two updates become.
    /// </summary>
    [Fact]
    public void AGraphHasANodeForEachLaunchItCaptured()
    {
        using var backend = Open();
        var rng = new Random(5);
        var y = Compare.Put(backend, Compare.Random(rng, 300), 300);
        Tensor<float>[] Quad() => [.. Enumerable.Range(0, 4).Select(_ => Compare.Put(backend, Compare.Random(rng, 16).Select(MathF.Abs).ToArray(), 16))];
        var a = Quad();
        var b = Quad();
        backend.BeginStep(new StepScalars(1, 0, 0, 1, 1e-3f, 1));
        void Ops()
        {
            backend.Scale(0.5f, y);
            foreach (var t in new[] { a, b }) backend.AdamUpdate(AdamParameters.Keras, t[0], t[1], t[2], t[3]);
            backend.Scale(2f, y);
        }
        Ops();   // the warm-up
        backend.Synchronize();
        backend.BeginCapture();
        Ops();
        using (var captured = backend.EndCapture())
            Assert.Equal(3, captured.Nodes);
        backend.BeginCapture();
        backend.Scale(0.5f, y);
        using (var captured = backend.EndCapture())
            Assert.Equal(1, captured.Nodes);
        foreach (var t in a.Concat(b).Append(y)) t.Dispose();
    }

    /// <summary>
    /// A capture records addresses and the optimizer table as they were: once the table is
    /// rewritten for another set of tensors, or a tensor is freed (its address may come back for a
    /// new one), the capture is stale and is not replayed.
    /// </summary>
    [Fact]
    public void ACaptureIsStaleOnceTheOptimizerTableIsRewrittenOrATensorIsFreed()
    {
        using var backend = Open();
        var rng = new Random(4);
        Tensor<float>[] Quad() => [.. Enumerable.Range(0, 4).Select(_ => Compare.Put(backend, Compare.Random(rng, 16).Select(MathF.Abs).ToArray(), 16))];
        var a = Quad();
        var b = Quad();
        var c = Quad();
        void Update(params Tensor<float>[][] tensors)
        {
            foreach (var t in tensors) backend.AdamUpdate(AdamParameters.Keras, t[0], t[1], t[2], t[3]);
            backend.Synchronize();
        }
        backend.BeginStep(new StepScalars(1, 0, 0, 1, 1e-3f, 1));
        ICapturedOps Capture()
        {
            Update(a, b);   // the warm-up: the table holds {a, b}
            backend.BeginCapture();
            foreach (var t in new[] { a, b }) backend.AdamUpdate(AdamParameters.Keras, t[0], t[1], t[2], t[3]);
            return backend.EndCapture();
        }
        using (var first = Capture())
        {
            Assert.True(first.IsValid);
            Update(c);   // {c} fits the table: rewritten in place
            Assert.False(first.IsValid);
            Assert.Throws<InvalidOperationException>(first.Replay);
        }
        using var second = Capture();
        Assert.True(second.IsValid);
        var unrelated = backend.Allocate<float>(new Shape(8));
        Assert.True(second.IsValid);   // allocating moves nothing
        unrelated.Dispose();
        Assert.False(second.IsValid);
        // A reconnection plan's table, scratch and sorted rows are device memory too.
        var w = Compare.Put(backend, Compare.Random(rng, 24), 24);
        var plan = backend.PrepareReconnect([new ReconnectTarget("w", w, 2, 12)]);
        using var third = Capture();
        Assert.True(third.IsValid);
        plan.Dispose();
        Assert.False(third.IsValid);
        using var fourth = Capture();
        plan.Dispose();   // frees nothing the second time: later captures stay valid
        Assert.True(fourth.IsValid);
        // A plan outliving its backend frees nothing (the device released everything), as a tensor.
        using (var other = Open())
        {
            var x = Compare.Put(other, Compare.Random(rng, 24), 24);
            var orphan = other.PrepareReconnect([new ReconnectTarget("x", x, 2, 12)]);
            other.Dispose();
            orphan.Dispose();
            x.Dispose();
        }
        foreach (var t in a.Concat(b).Concat(c).Append(w)) t.Dispose();
    }

    [Fact]
    public void ANonFiniteLossInAReplayedStepStopsAtTheNextReadbackNamingItsStepAndTheWeight()
    {
        using var backend = Open();
        var options = new TrainingOptions
        {
            Model = "lenet300", Epochs = 1, Batch = 8, K = SyncSchedule.Constant(5), Seed = 3, Threads = 2, Graphs = true,
        };
        Trainer? trainer = null;
        var hook = new StepHook(step =>
        {
            if (step != 10) return;
            var p = trainer!.Network!.Parameters.Single(x => x.Name == "dense3/kernel");
            var values = new float[p.Value.Length];
            backend.Download(p.Value, values);
            values[7] = float.NaN;
            backend.Upload<float>(values, p.Value);
        });
        var warnings = new StringWriter();
        trainer = new Trainer(options, new ModelDefinition(BuiltInModels.TryGet("lenet300")!), Mnist.Value, backend, hook) { Warnings = warnings };
        var e = Assert.Throws<NonFiniteException>(() => trainer.Run());
        Assert.DoesNotContain("as a CUDA graph failed", warnings.ToString(), StringComparison.Ordinal);   // the steps were replays
        // Step 11 is a replayed graph: its guard kernel records the step and the optimizer leaves the
        // weights alone; the sync at step 15 is the next readback.
        Assert.Contains("at step 11;", e.Message, StringComparison.Ordinal);
        Assert.Contains("'dense3/kernel' (1 of 1000 values)", e.Message, StringComparison.Ordinal);
        Assert.Equal(NonFiniteReport.None, backend.TakeNonFinite());
        trainer.Network?.Dispose();
    }
}

/// <summary>skip-step on a device: the checks, restores and the log are ops inside the captured step.</summary>
public abstract class DeviceSkipStepTests
{
    protected abstract CudaBackend Open();

    private sealed class StepHook(Action<long> onStep) : ITrainingObserver
    {
        public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) => onStep(step);
        public void OnEvaluation(EvaluationRecord record) { }
        public void OnSync(long step, int syncs, double seconds) { }
    }

    private (List<long> Skipped, List<string?> Tensors, float[] Weights, TrainingSummary Summary) Run(bool graphs, string dir)
    {
        using var backend = Open();
        var options = new TrainingOptions
        {
            Model = "lenet300", Epochs = 1, Batch = 4, K = SyncSchedule.Constant(25), Seed = 3, Threads = 2, Graphs = graphs, EvalEvery = 3,
            Out = dir, Checkpoints = new CheckpointOptions { OnNonFinite = NonFinitePolicy.SkipStep },
        };
        Trainer? trainer = null;
        float[]? saved = null;
        var hook = new StepHook(step =>
        {
            var p = trainer!.Network!.Parameters.Single(x => x.Name == "dense3/kernel");
            if (step == 10)
            {
                saved = new float[p.Value.Length];
                backend.Download(p.Value, saved);
                var poisoned = (float[])saved.Clone();
                poisoned[0] = float.PositiveInfinity;
                backend.Upload<float>(poisoned, p.Value);
            }
            else if (step == 20)
            {
                backend.Upload<float>(saved!, p.Value);
            }
        });
        trainer = new Trainer(options, new ModelDefinition(BuiltInModels.TryGet("lenet300")!), DataSource.Load("mnist", 128, 32), backend, hook);
        var summary = trainer.Run();
        using var network = trainer.Network!;
        var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
            .Where(n => n["event"]!.GetValue<string>() == "skipped_step").ToList();
        var weights = network.Parameters.SelectMany(p => Compare.Get(backend, p.Value)).ToArray();
        return ([.. lines.Select(n => n["step"]!.GetValue<long>())], [.. lines.Select(n => n["tensor"]?.GetValue<string>())], weights, summary);
    }

    [Fact]
    public void StepsWithANonFiniteLossAreLeftOutInsideTheGraphAsWithoutIt()
    {
        string root = Path.Combine(Path.GetTempPath(), $"laperm-skip-{Guid.NewGuid():N}");
        try
        {
            var eager = Run(graphs: false, Path.Combine(root, "eager"));
            var captured = Run(graphs: true, Path.Combine(root, "graphs"));
            Assert.True(captured.Summary.Graphs);
            // The infinite weight is in the logits layer, so steps 11..20 have a non-finite loss (tensor null).
            Assert.Equal(Enumerable.Range(11, 10).Select(s => (long)s), captured.Skipped);
            Assert.All(captured.Tensors, Assert.Null);
            Assert.Equal(eager.Skipped, captured.Skipped);
            Compare.BitEqual(eager.Weights, captured.Weights, "weights after a run with ten skipped steps");
            Assert.True(double.IsFinite(captured.Summary.FinalTestLoss));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}

public sealed class EmuDeviceSkipStepTests : DeviceSkipStepTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuDeviceSkipStepTests : DeviceSkipStepTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}

public sealed class EmuStepGraphTests : StepGraphTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuStepGraphTests : StepGraphTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}

/// <summary>The same with cuDNN's stand-in recorded into the emulated graphs (tinyconv has conv, max and average pooling, batch-norm).</summary>
public sealed class EmuCudnnStepGraphTests : StepGraphTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu", cudnn: CudnnScope.All);
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuCudnnStepGraphTests : StepGraphTests, IDisposable
{
    // cuDNN's Find times the algorithms, so two devices may each choose a different (deterministic)
    // one and differ in the last bits: the runs a test compares share one device, and its plans.
    private Device? _device;

    protected override CudaBackend Open()
    {
        if (_device is null)
        {
            var report = CudaInfo.Collect();
            if (!report.CudaAvailable) Assert.Skip(report.CudaUnavailableReason!);
            _device = Device.Open("cuda");
        }
        return GpuBackendOpTests.RequireCudnn(new CudaBackend(_device, GemmMath.Pedantic, CudnnScope.All));
    }

    public void Dispose() => _device?.Dispose();
}
