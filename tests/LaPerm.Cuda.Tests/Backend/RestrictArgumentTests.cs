using System.Text.RegularExpressions;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// No launch passes one buffer for two pointer parameters when either is __restrict__. The
/// compiler reads a const __restrict__ pointer through the read-only cache (ld.global.nc) and
/// reorders freely around a restrict pointer's accesses, so an aliased call is undefined on a
/// GPU, while the emulator, running host code, computes what the source says. Every launch of a
/// few LaPerm steps of f2, conv7 and resnet20 (dense, convolution, dropout, batch-norm, residual
/// adds, global average pooling; Adam and SGD; augmentation, evaluation and reconnection) is
/// checked against the parameter lists of cuda/kernels/*.cu. (Max pooling's models take half a
/// minute on the emulator; pool.cu's kernels have no in-place use.)
/// </summary>
public sealed partial class EmuRestrictArgumentTests
{
    [Fact]
    public void SignaturesAreReadFromTheKernelSources()
    {
        var kernels = KernelSignatures();
        Assert.True(kernels.Count > 50, $"only {kernels.Count} kernels read from cuda/kernels");
        var scaleAdd = kernels["scale_add_v1"];
        Assert.Equal([false, false, true, true], scaleAdd.Select(p => p.Pointer));
        Assert.Equal([false, false, true, true], scaleAdd.Select(p => p.Restrict));
        // relu_backward_v1's dy and dx may be one buffer: only y is restrict.
        Assert.Equal([false, true, false, false], kernels["relu_backward_v1"].Select(p => p.Restrict));
    }

    [Theory]
    [InlineData("f2", "adam")]
    [InlineData("conv7", "sgd")]
    [InlineData("resnet20", "adam")]
    public void NoLaunchAliasesARestrictPointer(string model, string optimizer)
    {
        var kernels = KernelSignatures();
        var problems = new List<string>();
        var seen = new HashSet<string>();
        using var backend = CudaBackend.Open("emu");
        ((EmulatorRuntime)backend.Device.Runtime).LaunchObserver = (name, values) =>
        {
            seen.Add(name);
            if (!kernels.TryGetValue(name, out var parameters))
            {
                problems.Add($"{name}: not found in cuda/kernels");
                return;
            }
            problems.AddRange(RestrictAliases(name, parameters, values));
        };
        ModelSpec spec = BuiltInModels.TryGet(model)!;
        bool mnist = spec.Input[0] == 1;
        var options = new TrainingOptions
        {
            Model = model, Epochs = 1, Batch = 4, K = SyncSchedule.Constant(2), Seed = 3, Reconnect = true,
            Augment = mnist ? "mnist" : "cifar",
            Optimizer = optimizer == "adam" ? OptimizerKind.Adam : OptimizerKind.Sgd, LearningRate = 0.01f,
        };
        // The equivalence tests' slices: 12 MNIST images, or 12 of random CIFAR-shaped bytes.
        Compare.Train(backend, options, spec, mnist ? BuiltInModelEquivalenceTests.Mnist.Value : BuiltInModelEquivalenceTests.Cifar.Value);
        Assert.Contains("gather_batch_v1", seen);
        Assert.Contains(optimizer == "adam" ? "adam_multi_v2" : "sgd_momentum_multi_v1", seen);
        Assert.True(seen.Count > 8, $"only {seen.Count} kernels ran: {string.Join(", ", seen)}");
        Assert.True(problems.Count == 0, string.Join('\n', problems.Distinct()));
    }

    [Fact]
    public void AnAliasedRestrictPointerIsFound()
    {
        var kernels = KernelSignatures();
        // scale_add_v1(n, alpha, x, y) with x == y: both are restrict.
        var found = RestrictAliases("scale_add_v1", kernels["scale_add_v1"], [100, 0, 0x7000, 0x7000]);
        Assert.Equal("scale_add_v1: x and y are the same buffer, and x is __restrict__", Assert.Single(found));
        Assert.Empty(RestrictAliases("scale_add_v1", kernels["scale_add_v1"], [100, 0, 0x7000, 0x8000]));
        // relu_backward_v1(n, y, dy, dx) in place (dy == dx) is allowed; y == dx is not.
        Assert.Empty(RestrictAliases("relu_backward_v1", kernels["relu_backward_v1"], [100, 0x6000, 0x7000, 0x7000]));
        Assert.Single(RestrictAliases("relu_backward_v1", kernels["relu_backward_v1"], [100, 0x7000, 0x6000, 0x7000]));
    }

    /// <summary>Each pair of pointer parameters given the same address where either is __restrict__.</summary>
    public static IEnumerable<string> RestrictAliases(string kernel, List<Parameter> parameters, ulong[] values)
    {
        for (int i = 0; i < parameters.Count && i < values.Length; i++)
            for (int j = i + 1; j < parameters.Count && j < values.Length; j++)
            {
                var (a, b) = (parameters[i], parameters[j]);
                if (a.Pointer && b.Pointer && (a.Restrict || b.Restrict) && values[i] == values[j] && values[i] != 0)
                    yield return $"{kernel}: {a.Name} and {b.Name} are the same buffer, and {(a.Restrict ? a.Name : b.Name)} is __restrict__";
            }
    }

    public sealed record Parameter(string Name, bool Pointer, bool Restrict);

    /// <summary>Every extern "C" __global__ kernel of cuda/kernels and its parameters, in order.</summary>
    public static Dictionary<string, List<Parameter>> KernelSignatures()
    {
        var kernels = new Dictionary<string, List<Parameter>>();
        foreach (string file in Directory.GetFiles(Path.Combine(StepScalarsTests.RepositoryRoot(), "cuda", "kernels"), "*.cu"))
            foreach (Match m in KernelDeclaration().Matches(File.ReadAllText(file)))
            {
                var parameters = new List<Parameter>();
                foreach (string raw in m.Groups[2].Value.Split(','))
                {
                    string p = Regex.Replace(raw, @"/\*.*?\*/|//[^\n]*", " ").Trim();
                    if (p.Length == 0) continue;
                    string name = Regex.Match(p, @"(\w+)\s*$").Groups[1].Value;
                    parameters.Add(new Parameter(name, p.Contains('*'), p.Contains("__restrict__")));
                }
                kernels[m.Groups[1].Value] = parameters;
            }
        return kernels;
    }

    [GeneratedRegex(@"extern\s+""C""\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s+)?void\s+(\w+)\s*\(([^)]*)\)")]
    private static partial Regex KernelDeclaration();
}
