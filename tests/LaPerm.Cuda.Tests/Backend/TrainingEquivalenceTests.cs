using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// N training steps of small models on the device backend and on the CPU backend from the same
/// seed. Initialisation, shuffling, augmentation and dropout masks are identical by construction;
/// the float results drift apart only through summation order (GEMM, convolution, reductions).
///
/// Documented tolerances:
/// <list type="bullet">
/// <item>Without reconnection (inner optimizer only), every weight agrees within
/// <see cref="WeightTolerance"/> absolute after the steps: a quarter of one Adam step (lr 1e-3), so
/// the two runs take the same steps; a wrong op moves weights by whole steps. (Adam divides by
/// sqrt(v): a weight whose gradient is ~1e-7 or less amplifies rounding differences, which is
/// why this is not tighter.) SGD amplifies nothing: its weights differ by lr times the gradients'
/// rounding differences, so it gets <see cref="SgdWeightTolerance"/> (lr 0.05, 4 steps: a
/// gradient off by 1e-3 relative, or a wrong momentum, moves weights by more).</item>
/// <item>With reconnection, every synchronised row is bit for bit a permutation of its initial row
/// on both backends (checked after every sync by --verify-invariants), and almost all weights are
/// bit-identical: a position can differ only where two trained values of a row were within the
/// drift of each other and the sort put them in the other order. At most
/// <see cref="SwappedFraction"/> of the weights may differ.</item>
/// <item>The final test loss agrees within <see cref="LossTolerance"/> relative.</item>
/// </list>
/// </summary>
public abstract class TrainingEquivalenceTests
{
    public const double WeightTolerance = 2.5e-4;   // Adam; measured on emu: f2 1.6e-7, tinyconv 5.0e-5
    public const double SgdWeightTolerance = 5e-6;  // measured on emu: lenet300 1.5e-8
    public const double SwappedFraction = 0.02;   // measured on emu: f2 0, lenet300 0, tinyconv 6 of 836 (0.7 %)
    public const double LossTolerance = 1e-3;

    protected abstract CudaBackend Open();

    private static readonly Lazy<DataSplit> Mnist = new(() => DataSource.Load("mnist", 128, 64));

    /// <summary>conv + relu + max-pool + conv (stride 2, same) + batch-norm + dropout + dense: every op of a conv net.</summary>
    internal static ModelSpec TinyConv() => new("tinyconv", [1, 28, 28],
    [
        new Conv2dSpec(4, 3), new ReluSpec(), new MaxPoolSpec(2),
        new Conv2dSpec(6, 3, Stride: 2, Padding: "same"), new BatchNormSpec(), new ReluSpec(), new DropoutSpec(0.25f),
        new AvgPoolSpec(2), new FlattenSpec(), new DenseSpec(10),
    ]);

    /// <summary>A convolution with a bias right before flatten: its bias gradient reads channels from flatten's gradient.</summary>
    private static ModelSpec ConvFlatten() => new("convflatten", [1, 28, 28],
    [
        new Conv2dSpec(4, 3, Stride: 2), new ReluSpec(), new Conv2dSpec(6, 3, Stride: 2, Padding: "same"), new FlattenSpec(), new DenseSpec(10),
    ]);

    private static ModelSpec Model(string name) => name switch
    {
        "tinyconv" => TinyConv(),
        "convflatten" => ConvFlatten(),
        _ => BuiltInModels.TryGet(name)!,
    };

    private static (Dictionary<string, float[]> Weights, TrainingSummary Summary) Train(IBackend backend, string model, bool reconnect, OptimizerKind optimizer)
    {
        var options = new TrainingOptions
        {
            Model = model, Epochs = 1, Batch = 32, K = SyncSchedule.Constant(2), Seed = 5, Threads = 2,
            Reconnect = reconnect, VerifyInvariants = reconnect, Optimizer = optimizer, Augment = "mnist",
            LearningRate = optimizer == OptimizerKind.Adam ? 1e-3f : 0.05f,
        };
        return Compare.Train(backend, options, Model(model), Mnist.Value);
    }

    [Theory]
    [InlineData("f2", OptimizerKind.Adam)]
    [InlineData("lenet300", OptimizerKind.Sgd)]
    [InlineData("tinyconv", OptimizerKind.Adam)]
    [InlineData("convflatten", OptimizerKind.Adam)]
    public void InnerOptimizerStepsAgreeWithinTolerance(string model, OptimizerKind optimizer)
    {
        using var device = Open();
        using var cpu = new CpuBackend(2);
        var expected = Train(cpu, model, reconnect: false, optimizer);
        var actual = Train(device, model, reconnect: false, optimizer);
        Assert.Equal(expected.Weights.Keys, actual.Weights.Keys);
        double largest = expected.Weights.Max(p => p.Value.Zip(actual.Weights[p.Key], (x, y) => Math.Abs((double)x - y)).Max());
        TestContext.Current.TestOutputHelper?.WriteLine($"{model} {optimizer}: largest weight difference {largest:G3}, test loss {expected.Summary.FinalTestLoss} vs {actual.Summary.FinalTestLoss}");
        foreach (var (name, values) in expected.Weights)
            Compare.Within(values, actual.Weights[name], _ => optimizer == OptimizerKind.Sgd ? SgdWeightTolerance : WeightTolerance, $"{model} {name}");
        Assert.Equal(expected.Summary.FinalTestLoss, actual.Summary.FinalTestLoss, LossTolerance * Math.Abs(expected.Summary.FinalTestLoss));
    }

    [Theory]
    [InlineData("f2")]
    [InlineData("lenet300")]
    [InlineData("tinyconv")]
    public void ReconnectedRowsArePermutationsAndAgreeAlmostEverywhere(string model)
    {
        using var device = Open();
        using var cpu = new CpuBackend(2);
        // VerifyInvariants makes every sync check, bit for bit, that each row is a permutation of its initial row.
        var expected = Train(cpu, model, reconnect: true, OptimizerKind.Adam);
        var actual = Train(device, model, reconnect: true, OptimizerKind.Adam);
        Assert.Equal(expected.Summary.Syncs, actual.Summary.Syncs);
        Assert.True(actual.Summary.Syncs >= 2, $"expected at least two syncs, got {actual.Summary.Syncs}");
        var (differing, total) = Compare.DifferingBits(expected.Weights, actual.Weights);
        TestContext.Current.TestOutputHelper?.WriteLine($"{model}: {differing} of {total} weights differ after {actual.Summary.Syncs} syncs, test loss {expected.Summary.FinalTestLoss} vs {actual.Summary.FinalTestLoss}");
        Assert.True(differing <= SwappedFraction * total, $"{model}: {differing} of {total} weights differ after reconnection");
        Assert.Equal(expected.Summary.FinalTestLoss, actual.Summary.FinalTestLoss, LossTolerance * Math.Abs(expected.Summary.FinalTestLoss));
    }
}

/// <summary>
/// A whole training step (forward, loss, backward, reconnection) captured into a device graph and
/// replayed gives bit-identical gradients and weights: no op of the step waits on the host or
/// allocates once warmed up, so the step can run as one CUDA graph.
/// </summary>
public abstract class GraphCaptureTests
{
    protected abstract CudaBackend Open();

    [Theory]
    [InlineData("lenet300")]
    [InlineData("tinyconv")]
    public void ACapturedTrainingStepReplaysBitIdentically(string model)
    {
        using var backend = Open();
        var spec = model == "tinyconv" ? TrainingEquivalenceTests.TinyConv() : BuiltInModels.TryGet(model)!;
        using var network = new Network(new ModelDefinition(spec), backend);
        Initializer.Apply(network, InitOptions.HeUniform, 3);
        using var reconnector = new Reconnector(network, new ReconnectOptions());
        const int batch = 8;
        using var pass = network.GetPass(batch);
        var rng = new Random(41);
        backend.Upload<float>(Compare.Random(rng, pass.Input.Length), pass.Input);
        backend.Upload<int>([.. Enumerable.Range(0, batch).Select(_ => rng.Next(10))], pass.Labels);
        using var totals = backend.Allocate<float>(new Shape(2));
        backend.BeginStep(new StepScalars(1, 0, 0, batch, 1e-3f, 1));
        var mode = new ForwardMode(true, 3);
        void Step()
        {
            pass.Forward(mode);
            pass.Loss(totals);
            pass.Backward();
        }
        float[][] Snapshot() => [.. network.Parameters.SelectMany(p => new[] { p.Gradient, p.Value }).Select(t => Compare.Get(backend, t))];

        Step();   // warm-up: scratch buffers and library handles are made outside the capture
        reconnector.Sync();
        // Fresh values, not a permutation of the initial ones: the step's gradients depend on them
        // and the sync must rewrite every row (values already synced would pass unchanged).
        float[][] fresh = [.. network.Parameters.Select(p => Compare.Random(rng, p.Value.Length))];
        void PutFresh()
        {
            for (int i = 0; i < fresh.Length; i++) backend.Upload<float>(fresh[i], network.Parameters[i].Value);
        }
        PutFresh();
        Step();
        reconnector.Sync();
        var direct = Snapshot();
        for (int i = 0; i < fresh.Length; i++) Assert.NotEqual(fresh[i], direct[2 * i + 1]);   // the sync moved values

        var stream = backend.Device.Stream;
        stream.BeginCapture();
        Step();
        reconnector.Sync();
        using var graph = stream.EndCapture();
        using var executable = graph.Instantiate();
        PutFresh();
        foreach (var p in network.Parameters) backend.Fill(p.Gradient, float.NaN);
        executable.Launch(stream);
        backend.Synchronize();
        var replayed = Snapshot();
        for (int i = 0; i < direct.Length; i++) Compare.BitEqual(direct[i], replayed[i], $"{model} tensor {i / 2} {(i % 2 == 0 ? "gradient" : "value")}");
    }
}

public sealed class EmuGraphCaptureTests : GraphCaptureTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuGraphCaptureTests : GraphCaptureTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}

public sealed class EmuTrainingEquivalenceTests : TrainingEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuTrainingEquivalenceTests : TrainingEquivalenceTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);
}
