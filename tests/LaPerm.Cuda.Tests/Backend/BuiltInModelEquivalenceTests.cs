using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// Every built-in model on the device backend against the CPU backend, from the same seed:
/// <list type="bullet">
/// <item>One forward and backward pass from the same weights and batch: every parameter's gradient
/// within <see cref="GradientRelativeTolerance"/> of the CPU's in relative L2 norm, plus
/// <see cref="GradientAbsoluteTolerance"/> for gradients that are zero in exact arithmetic (a conv
/// bias right before batch-norm: its computed gradient is rounding noise of norm ~1e-8 on both).
/// Measured on emu: at most 9e-7 relative over all nine models. A wrong or missing op moves a
/// gradient by far more. Where the model amplifies a rounding (batch-norm over 4 images), the bound
/// is <see cref="SensitivityMargin"/> times the CPU's own sensitivity instead: the largest distance
/// between the CPU's gradients (and loss) and its gradients with every weight one ulp up or down,
/// over <see cref="NudgeSeeds"/>. The emulator's GEMM is the CPU's, bit for bit; a GPU's cuBLAS
/// rounds otherwise, and so does the stand-in driver's (exact sums rounded once, or float FMA
/// chains), which lands from the CPU at 0.6 to 2.5 times one perturbation's sensitivity on every
/// parameter of the nine models (up to 3.3e-4 relative on conv13, where the 1e-5 bound alone would
/// fail any GEMM that does not reproduce the CPU's order of sums).</item>
/// <item>A few LaPerm steps on a tiny slice: the same number of syncs, every synchronised row a
/// bit-exact permutation of its initial row on both backends (--verify-invariants at every sync),
/// and the float agreement of <see cref="TrainingEquivalenceTests"/> (at most 2 % of the weights
/// in other places, final test loss within 1e-3 relative). Models without batch-norm: three steps
/// of 4 images, k 2 (a step between syncs). Models with it: two steps of 6, k 1, because
/// batch-norm amplifies the rounding differences of real-valued weights from step to step
/// (measured after three Adam steps of 4 on random CIFAR-shaped bytes: conv4 4.5 %, resnet50c
/// 10 %, conv13 90 % of the weights in other places, while one step's gradients agree within
/// 1e-6); a sync after every step puts every weight back on a permutation, so only a rank flip
/// could carry a difference on (measured on emu: conv2, conv4 and resnet20 bit-identical). With
/// GEMMs that round otherwise the rank flips are many more (the stand-in driver: conv4 16 %,
/// conv13 93 %), so both bounds widen to <see cref="SensitivityMargin"/> times what the CPU
/// itself does from initial weights one ulp up or down (the same perturbation as for the gradients;
/// the distance to its own run is compared, weights in other places and the test loss).</item>
/// </list>
/// The emulator runs the LaPerm steps for seven models (conv13 and resnet50c take minutes there;
/// their layers are the families of conv4 and resnet20, and their gradients are checked); a GPU
/// runs all nine.
/// </summary>
public abstract class BuiltInModelEquivalenceTests
{
    private const int TrainImages = 12, TestImages = 8, Batch = 4;

    public const double GradientRelativeTolerance = 1e-5;
    public const double GradientAbsoluteTolerance = 1e-6;

    /// <summary>
    /// How far beyond the CPU's own sensitivity to one rounding a device may land (see the class
    /// comment): a device whose GEMMs round otherwise than the CPU's lands about 1x from it.
    /// </summary>
    public const double SensitivityMargin = 10;

    /// <summary>
    /// The perturbations the sensitivity is the largest response to (each a seed of random ulp
    /// signs). One was too few: where a model amplifies roundings chaotically its response is a
    /// random draw, and a GEMM summing as one float FMA chain (the stand-in's LAPERM_STANDIN_SUMS=float)
    /// moved conv4's test loss 16 times as far as the one perturbation had moved the CPU's.
    /// </summary>
    private static readonly int[] NudgeSeeds = [31, 47, 59];

    protected abstract CudaBackend Open();

    internal static readonly Lazy<DataSplit> Mnist = new(() => DataSource.Load("mnist", TrainImages, TestImages));

    // Random CIFAR-shaped bytes: the check is about the ops, not about learning CIFAR-10.
    internal static readonly Lazy<DataSplit> Cifar = new(() =>
    {
        var rng = new Random(19);
        Dataset Make(string name, int count)
        {
            var images = new byte[count * 3 * 32 * 32];
            rng.NextBytes(images);
            byte[] labels = [.. Enumerable.Range(0, count).Select(_ => (byte)rng.Next(10))];
            return new Dataset(name, images, labels, 3, 32, 32, 10);
        }
        return new DataSplit(Make("random-cifar-train", TrainImages), Make("random-cifar-test", TestImages));
    });

    public static TheoryData<string> Models => [.. BuiltInModels.Names];

    /// <summary>The models whose LaPerm steps the emulator runs (all but conv13 and resnet50c): those without residual blocks, and resnet20.</summary>
    public static TheoryData<string> EmulatedPlainStepModels => ["f1", "f2", "lenet300", "conv7", "conv2", "conv4"];

    public static TheoryData<string> EmulatedResidualStepModels => ["resnet20"];

    /// <summary>Models with every op family cuDNN can take: conv2 (max pool, batch-norm after conv and dense), resnet20 (global average pool, residual batch-norm).</summary>
    public static TheoryData<string> CudnnModels => ["conv2", "resnet20"];

    private static bool HasBatchNorm(IEnumerable<LayerSpec> layers) => layers.Any(l => l switch
    {
        BatchNormSpec => true,
        ResidualSpec r => HasBatchNorm(r.Main) || (r.Shortcut is not null && HasBatchNorm(r.Shortcut)),
        _ => false,
    });

    private static (Dictionary<string, float[]> Weights, TrainingSummary Summary) Train(IBackend backend, ModelSpec spec, int? nudgeSeed = null)
    {
        bool mnist = spec.Input[0] == 1, batchNorm = HasBatchNorm(spec.Layers);
        var options = new TrainingOptions
        {
            // Batch-norm: a sync after every step (see the class comment).
            Model = spec.Name, Epochs = 1, Batch = batchNorm ? TrainImages / 2 : Batch, K = SyncSchedule.Constant(batchNorm ? 1 : 2),
            Seed = 7, Threads = 2,
            Reconnect = true, VerifyInvariants = true, Augment = mnist ? "mnist" : "cifar",
            Optimizer = OptimizerKind.Sgd, LearningRate = 0.005f,
        };
        if (nudgeSeed is not int seed) return Compare.Train(backend, options, spec, mnist ? Mnist.Value : Cifar.Value);
        // The nudged run reconnects permutations of the nudged values: each is mapped back to the
        // value it was nudged from, so "in another place" means what it means for the device.
        var originals = new Dictionary<string, Dictionary<float, float>>();
        var run = Compare.Train(backend, options, spec, mnist ? Mnist.Value : Cifar.Value,
            n => originals = NudgeByOneUlp(backend, n, seed));
        foreach (var (name, values) in run.Weights)
            if (originals.TryGetValue(name, out var original))
                for (int i = 0; i < values.Length; i++)
                    if (original.TryGetValue(values[i], out float before)) values[i] = before;
        return run;
    }

    // Every weight one ulp up or down (signs drawn from the seed): a perturbation of the size of
    // one rounding. Returns, per parameter, each nudged value's value before.
    private static Dictionary<string, Dictionary<float, float>> NudgeByOneUlp(IBackend backend, Network network, int seed)
    {
        var signs = new Random(seed);
        var originals = new Dictionary<string, Dictionary<float, float>>();
        foreach (var p in network.Parameters)
        {
            float[] values = Compare.Get(backend, p.Value);
            var original = originals[p.Name] = [];
            for (int i = 0; i < values.Length; i++)
            {
                float before = values[i];
                values[i] = signs.Next(2) == 0 ? MathF.BitIncrement(before) : MathF.BitDecrement(before);
                original.TryAdd(values[i], before);
            }
            backend.Upload<float>(values, p.Value);
        }
        return originals;
    }

    // One forward and backward pass from the same weights and batch on both backends.
    private static (float Loss, Dictionary<string, float[]> Gradients) Gradients(IBackend backend, ModelSpec spec, int? nudgeSeed = null)
    {
        using var network = new Network(new ModelDefinition(spec), backend);
        Initializer.Apply(network, InitOptions.HeUniform, 11);
        if (nudgeSeed is int seed) _ = NudgeByOneUlp(backend, network, seed);
        using var pass = network.GetPass(Batch);
        var rng = new Random(23);
        backend.Upload<float>([.. Enumerable.Range(0, pass.Input.Length).Select(_ => (float)rng.NextDouble())], pass.Input);
        backend.Upload<int>([.. Enumerable.Range(0, Batch).Select(_ => rng.Next(10))], pass.Labels);
        using var totals = backend.Allocate<float>(new Shape(2));
        backend.BeginStep(new StepScalars(1, 0, 0, Batch, 1e-3f, 1));
        pass.Forward(new ForwardMode(true, 11));
        pass.Loss(totals);
        pass.Backward();
        var gradients = network.Parameters.ToDictionary(p => p.Info.Name, p => Compare.Get(backend, p.Gradient));
        return (Compare.Get(backend, totals)[0], gradients);
    }

    protected void GradientsOfOneStepAgreeWithTheCpu(string model)
    {
        var spec = BuiltInModels.TryGet(model)!;
        using var device = Open();
        using var cpu = new CpuBackend(2);
        var expected = Gradients(cpu, spec);
        var actual = Gradients(device, spec);
        // Computed only where a fixed bound does not hold: the bound is the larger of the two, so
        // the verdict is the same, and the emulator (the CPU's GEMM) rarely needs the extra runs.
        var nudged = new Lazy<List<(float Loss, Dictionary<string, float[]> Gradients)>>(() => [.. NudgeSeeds.Select(seed => Gradients(cpu, spec, seed))]);
        double worst = 0;
        var outside = new List<string>();
        static double Distance(float[] a, float[] b)
        {
            double sum = 0;
            for (int i = 0; i < a.Length; i++) sum += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            return Math.Sqrt(sum);
        }
        foreach (var (name, g) in expected.Gradients)
        {
            var h = actual.Gradients[name];
            double error = Distance(g, h), norm = Distance(g, new float[g.Length]), scale = Math.Max(norm, 1e-30);
            if (norm > 1e-4) worst = Math.Max(worst, error / norm);
            bool withinFixed = error <= GradientRelativeTolerance * norm + GradientAbsoluteTolerance;
            double? sensitivity = withinFixed ? null : nudged.Value.Max(n => Distance(g, n.Gradients[name]));
            TestContext.Current.TestOutputHelper?.WriteLine($"{model} {name}: error {error:G3}, norm {norm:G3}, relative {error / scale:G3}, "
                + (sensitivity is double s ? $"one-ulp sensitivity {s / scale:G3}" : "within the fixed bound"));
            // Every parameter is compared before the verdict, so a failure names all that are off.
            double relative = Math.Max(GradientRelativeTolerance, SensitivityMargin * (sensitivity ?? 0) / scale);
            if (!(error <= relative * norm + GradientAbsoluteTolerance))
                outside.Add($"{name}: gradient differs from the CPU's by {error:G3} in L2 norm (gradient norm {norm:G3}, bound {relative:G3} relative)");
        }
        Assert.True(outside.Count == 0, $"{model} {string.Join("; ", outside)}");
        // The loss, the forward pass's output, widens as the gradients do (conv13's moved 1.3e-5
        // relative under float FMA-chain sums).
        double lossError = Math.Abs((double)actual.Loss - expected.Loss), lossBound = GradientRelativeTolerance * Math.Abs(expected.Loss);
        double? lossSensitivity = lossError <= lossBound ? null : nudged.Value.Max(n => Math.Abs((double)n.Loss - expected.Loss));
        TestContext.Current.TestOutputHelper?.WriteLine($"{model}: loss {expected.Loss} vs {actual.Loss}, "
            + (lossSensitivity is double ls ? $"one-ulp loss sensitivity {ls:G3}, " : "") + $"worst relative gradient error {worst:G3}");
        Assert.Equal(expected.Loss, actual.Loss, Math.Max(lossBound, SensitivityMargin * (lossSensitivity ?? 0)));
        Assert.Null(device.CudnnUnavailableReason);   // a cuDNN variant ran on cuDNN, not on our kernels after a silent switch
    }

    protected void AFewLaPermStepsAgreeWithTheCpu(string model)
    {
        var spec = BuiltInModels.TryGet(model)!;
        using var device = Open();
        using var cpu = new CpuBackend(2);
        var expected = Train(cpu, spec);
        var actual = Train(device, spec);
        Assert.Equal(expected.Summary.Syncs, actual.Summary.Syncs);
        Assert.True(actual.Summary.Syncs >= 2, $"{model}: expected at least two syncs, got {actual.Summary.Syncs}");
        Assert.True(double.IsFinite(actual.Summary.FinalTestLoss), $"{model}: test loss {actual.Summary.FinalTestLoss} on the device");
        Assert.Null(device.CudnnUnavailableReason);
        var (differing, total) = Compare.DifferingBits(expected.Weights, actual.Weights);
        double loss = expected.Summary.FinalTestLoss, lossShift = Math.Abs(actual.Summary.FinalTestLoss - loss);
        double fixedFraction = TrainingEquivalenceTests.SwappedFraction, fixedLoss = TrainingEquivalenceTests.LossTolerance * Math.Abs(loss);
        string line = $"{model}: {differing} of {total} weights differ after {actual.Summary.Syncs} syncs, test loss {loss} vs {actual.Summary.FinalTestLoss}";
        if (differing <= fixedFraction * total && lossShift <= fixedLoss)
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"{line}: within the fixed bounds");
            return;
        }
        // Beyond the fixed bounds: the CPU's own response to perturbations of one rounding (see the gradients).
        var nudged = NudgeSeeds.Select(seed => Train(cpu, spec, seed)).ToList();
        long differingNudged = nudged.Max(n => Compare.DifferingBits(expected.Weights, n.Weights).Differing);
        double lossShiftNudged = nudged.Max(n => Math.Abs(n.Summary.FinalTestLoss - loss));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{line}; the CPU from initial weights one ulp off ({NudgeSeeds.Length} ways): up to {differingNudged} differ, test losses "
            + string.Join(", ", nudged.Select(n => n.Summary.FinalTestLoss)));
        double allowedFraction = Math.Max(fixedFraction, SensitivityMargin * differingNudged / (double)total);
        Assert.True(differing <= allowedFraction * total,
            $"{model}: {differing} of {total} weights differ after reconnection (allowed {allowedFraction:P2}; up to {differingNudged} on the CPU from initial weights one ulp off)");
        Assert.Equal(loss, actual.Summary.FinalTestLoss, Math.Max(fixedLoss, SensitivityMargin * lossShiftNudged));
    }
}

// The emulator's share in three classes: xunit runs classes beside each other and the tests of
// one class one after another, and in one class these took 2.5 minutes of a 3-minute run on two
// cores (one core idle for most of it).

/// <summary>One step's gradients of every built-in model on the emulator.</summary>
public sealed class EmuBuiltInModelGradientTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");

    [Theory]
    [MemberData(nameof(Models), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void GradientsOfOneStepOfEveryModelAgreeWithTheCpu(string model) => GradientsOfOneStepAgreeWithTheCpu(model);
}

/// <summary>LaPerm steps on the emulator: the models without residual blocks.</summary>
public sealed class EmuBuiltInModelStepTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");

    [Theory]
    [MemberData(nameof(EmulatedPlainStepModels), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void AFewLaPermStepsAgreeWithTheCpuOnTheEmulator(string model) => AFewLaPermStepsAgreeWithTheCpu(model);
}

/// <summary>LaPerm steps on the emulator: the models with residual blocks.</summary>
public sealed class EmuBuiltInModelResidualStepTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu");

    [Theory]
    [MemberData(nameof(EmulatedResidualStepModels), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void AFewLaPermStepsAgreeWithTheCpuOnTheEmulator(string model) => AFewLaPermStepsAgreeWithTheCpu(model);
}

/// <summary>The emulator with its stand-in for cuDNN: the backend's routing of convolution, pooling and batch-norm to the library.</summary>
public sealed class EmuCudnnBuiltInModelEquivalenceTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => CudaBackend.Open("emu", cudnn: CudnnScope.All);

    [Theory]
    [MemberData(nameof(CudnnModels), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void GradientsOfOneStepWithTheLibraryAgreeWithTheCpu(string model) => GradientsOfOneStepAgreeWithTheCpu(model);
}

[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuBuiltInModelEquivalenceTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.None);

    [Theory]
    [MemberData(nameof(Models), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void GradientsOfOneStepOfEveryModelAgreeWithTheCpu(string model) => GradientsOfOneStepAgreeWithTheCpu(model);

    [Theory]
    [MemberData(nameof(Models), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void AFewLaPermStepsOfEveryModelAgreeWithTheCpu(string model) => AFewLaPermStepsAgreeWithTheCpu(model);
}

/// <summary>Every built-in model on the GPU with cuDNN for convolution, pooling and batch-norm.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public sealed class GpuCudnnBuiltInModelEquivalenceTests : BuiltInModelEquivalenceTests
{
    protected override CudaBackend Open() => GpuBackendOpTests.OpenGpu(CudnnScope.All);

    [Theory]
    [MemberData(nameof(Models), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void GradientsOfOneStepWithCudnnAgreeWithTheCpu(string model) => GradientsOfOneStepAgreeWithTheCpu(model);

    [Theory]
    [MemberData(nameof(Models), MemberType = typeof(BuiltInModelEquivalenceTests))]
    public void AFewLaPermStepsWithCudnnAgreeWithTheCpu(string model) => AFewLaPermStepsAgreeWithTheCpu(model);
}
