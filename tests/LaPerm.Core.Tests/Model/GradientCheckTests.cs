using LaPerm.Core.Backend;
using LaPerm.Core.Model;
using LaPerm.Cpu;

namespace LaPerm.Core.Tests.Model;

/// <summary>
/// Whole-model gradients (forward, softmax cross-entropy, backward through every layer kind)
/// against central finite differences of the mean loss, computed in double from the CPU
/// backend's float loss.
///
/// Tolerance: the float loss (mean over 4 examples, |L| ~ 2.5) carries a rounding error of a few
/// ulps, about 1e-6; divided by the 2h = 2e-2 step that is ~1e-4 of noise in the difference
/// quotient. Truncation error is h^2/6 * L''' ~ 1e-5 for these smooth-ish losses. ReLU and
/// max-pool kinks inside [w-h, w+h] can add more (a conv weight moves every spatial position),
/// so an entry that misses is re-checked with h/4 and h/10 (noise ~1e-3 there) before it counts. A wrong backward (missing term, wrong transpose, wrong
/// scale) is off by the order of the gradient itself, far above 1e-3 + 3 %.
/// </summary>
public sealed class GradientCheckTests
{
    private const int Batch = 4;

    public static TheoryData<string> Models => ["dense", "conv", "residual", "conv-flatten", "bn-flatten"];

    private static ModelSpec Spec(string name) => name switch
    {
        "dense" => new ModelSpec("dense", [1, 4, 4],
        [
            new FlattenSpec(), new DenseSpec(12, L2: 0f), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(0.25f),
            new DenseSpec(7, Bias: false), new ReluSpec(), new DenseSpec(5),
        ]),
        "conv" => new ModelSpec("conv", [2, 9, 9],
        [
            new Conv2dSpec(4, 3), new ReluSpec(),
            new Conv2dSpec(5, 3, Stride: 2, Padding: "same"), new BatchNormSpec(), new ReluSpec(),
            new MaxPoolSpec(2), new DropoutSpec(0.2f),
            new FlattenSpec(), new DenseSpec(6), new ReluSpec(), new DenseSpec(4),
        ]),
        "residual" => new ModelSpec("residual", [3, 8, 8],
        [
            new Conv2dSpec(4, 3, Padding: "same"), new BatchNormSpec(), new ReluSpec(),
            new ResidualSpec([new Conv2dSpec(4, 3, Padding: "same"), new BatchNormSpec(), new ReluSpec(), new Conv2dSpec(4, 3, Padding: "same")]),
            new ReluSpec(),
            new ResidualSpec([new Conv2dSpec(6, 3, 2, "same"), new BatchNormSpec()], [new Conv2dSpec(6, 1, 2, "same")]),
            new ReluSpec(), new AvgPoolSpec(2), new GlobalAvgPoolSpec(), new DenseSpec(3),
        ]),
        // Flatten right after a layer that reads channels on axis 1 in its backward pass (a conv's
        // bias gradient, batch-norm): flatten must hand the gradient back in the input's shape.
        "conv-flatten" => new ModelSpec("conv-flatten", [2, 7, 7],
        [
            new Conv2dSpec(3, 3), new ReluSpec(), new Conv2dSpec(4, 3, Stride: 2, Padding: "same"), new FlattenSpec(), new DenseSpec(5),
        ]),
        "bn-flatten" => new ModelSpec("bn-flatten", [2, 7, 7],
        [
            new Conv2dSpec(3, 3), new ReluSpec(), new Conv2dSpec(4, 3, Bias: false), new BatchNormSpec(), new FlattenSpec(), new DenseSpec(5),
        ]),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void BackwardMatchesFiniteDifferencesOfTheLoss(string name)
    {
        var model = new ModelDefinition(Spec(name));
        using var backend = new CpuBackend(2);
        using var network = new Network(model, backend);
        Initializer.Apply(network, InitOptions.HeUniform, 11);
        // Non-trivial BN parameters so gamma/beta gradients are exercised away from the identity.
        var rng = new Random(5);
        foreach (var p in network.Parameters.Where(p => p.Info.Kind == ParameterKind.BatchNorm))
            backend.Upload<float>([.. Enumerable.Range(0, p.Value.Length).Select(_ => (float)(0.5 + rng.NextDouble()))], p.Value);
        var pass = network.GetPass(Batch);
        backend.Upload<float>([.. Enumerable.Range(0, pass.Input.Length).Select(_ => (float)(rng.NextDouble() * 2 - 1))], pass.Input);
        backend.Upload<int>([.. Enumerable.Range(0, Batch).Select(_ => rng.Next(model.Classes))], pass.Labels);
        using var sums = backend.Allocate<float>(new Shape(2));
        backend.BeginStep(new StepScalars(7, 0, 0, Batch, 1e-3f, 1));
        var mode = new ForwardMode(true, 3);

        double Loss()
        {
            backend.Fill(sums, 0f);
            pass.Forward(mode);
            pass.Loss(sums);
            var s = new float[2];
            backend.Download(sums, s);
            return (double)s[0] / Batch;
        }

        // Analytic gradients (poison first so a gradient the backward forgets to write shows up).
        foreach (var p in network.Parameters) backend.Fill(p.Gradient, float.NaN);
        Loss();
        pass.Backward();
        var failures = new List<string>();
        double largest = 0;
        var perParameter = new List<string>();
        foreach (var p in network.Parameters)
        {
            double largestHere = 0;
            var g = new float[p.Value.Length];
            backend.Download(p.Gradient, g);
            var w = new float[p.Value.Length];
            backend.Download(p.Value, w);
            int checks = Math.Min(w.Length, 12);
            for (int c = 0; c < checks; c++)
            {
                int i = c * w.Length / checks;
                Assert.True(float.IsFinite(g[i]), $"{p.Name}[{i}] gradient was not written");
                double Numeric(double h)
                {
                    float original = w[i];
                    float plus = (float)(original + h), minus = (float)(original - h);
                    w[i] = plus;
                    backend.Upload<float>(w, p.Value);
                    double lp = Loss();
                    w[i] = minus;
                    backend.Upload<float>(w, p.Value);
                    double lm = Loss();
                    w[i] = original;
                    backend.Upload<float>(w, p.Value);
                    return (lp - lm) / ((double)plus - minus);
                }
                bool Close(double numeric) => Math.Abs(numeric - g[i]) <= 1e-3 + 0.03 * Math.Abs(numeric);
                double n1 = Numeric(1e-2);
                largest = Math.Max(largest, Math.Abs(n1));
                largestHere = Math.Max(largestHere, Math.Abs(n1));
                if (!Close(n1) && !Close(Numeric(2.5e-3)) && !Close(Numeric(1e-3)))
                    failures.Add($"{p.Name}[{i}]: analytic {g[i]:G5}, numeric {n1:G5}");
            }
            perParameter.Add($"{p.Name} {largestHere:G3}");
            // Each parameter either has gradients the 1e-3 + 3 % comparison can see (measured:
            // >= 0.028), or a true zero (a bias right before batch-norm: <= 6e-6), where the
            // analytic gradient must be ~0 too. In between, a zeroed backward would pass unseen.
            if (largestHere < 1e-4)
            {
                for (int c = 0; c < checks; c++)
                {
                    int i = c * w.Length / checks;
                    if (!(Math.Abs(g[i]) < 1e-4)) failures.Add($"{p.Name}[{i}]: the loss does not depend on it (numeric ~0), analytic {g[i]:G5}");
                }
            }
            else if (!(largestHere > 1e-2))
            {
                failures.Add($"{p.Name}: its sampled gradients are at most {largestHere:G3}, too small for this check to see a wrong backward");
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join(", ", perParameter));
        Assert.True(largest > 1e-2, $"gradients are all tiny ({largest}); the check would not catch anything");
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    }
}
