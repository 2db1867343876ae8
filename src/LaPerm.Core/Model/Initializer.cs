using System.Globalization;
using LaPerm.Core.Backend;

namespace LaPerm.Core.Model;

/// <summary>
/// The init regimes of the paper's setups. Null <see cref="SharedValue"/> = He-uniform kernels and biases;
/// otherwise weight-agnostic: every kernel (and bias) weight is <see cref="SharedValue"/>, kept
/// with probability <see cref="Keep"/>[i] for the i-th kernel tensor (one entry = all), else 0.
/// <see cref="Prune"/> = P: Bernoulli keep mask with q = 1 - P on kernels (input layer keeps
/// max(q, 0.8)); 1-D tensors are never pruned. Batch-norm: gamma 1, beta 0.
/// </summary>
public sealed record InitOptions(float? SharedValue = null, IReadOnlyList<double>? Keep = null, double Prune = 0)
{
    public static InitOptions HeUniform { get; } = new();

    public string Describe() =>
        (SharedValue is { } v ? $"shared:{v.ToString(CultureInfo.InvariantCulture)} keep {string.Join(",", (Keep ?? [1.0]).Select(Fraction))}" : "he-uniform")
        + (Prune > 0 ? $" pruned {Prune.ToString("0.###", CultureInfo.InvariantCulture)}" : "");

    /// <summary>A keep probability as the a/b it was given as (--keep 4/7), when one with b up to 1000 gives exactly it.</summary>
    public static string Fraction(double q)
    {
        for (int b = 1; b <= 1000; b++)
        {
            double a = Math.Round(q * b);
            if (a / b == q) return b == 1 ? a.ToString(CultureInfo.InvariantCulture) : $"{a.ToString(CultureInfo.InvariantCulture)}/{b}";
        }
        return q.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>A small seeded generator (SplitMix64) so init is identical on every machine and .NET version.</summary>
public sealed class SeededRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return DropoutRandom.Mix(_state);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, bound).</summary>
    public int Next(int bound) => (int)((NextUInt64() >> 33) % (ulong)bound);

    /// <summary>Fisher-Yates shuffle.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = (int)(NextUInt64() % (ulong)(i + 1));
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

public static class Initializer
{
    /// <summary>Computes every parameter's initial values on the host (seeded, deterministic).</summary>
    public static Dictionary<string, float[]> Compute(ModelDefinition model, InitOptions options, ulong seed)
    {
        Validate(model, options);
        var result = new Dictionary<string, float[]>();
        var keepOf = KeepOf(model, options);
        for (int index = 0; index < model.Parameters.Count; index++)
        {
            var p = model.Parameters[index];
            var values = new float[p.Shape.Length];
            // One stream per parameter index, so adding a layer at the end does not change the others.
            var rng = new SeededRandom(DropoutRandom.Mix(seed * 0x100000001B3UL + (ulong)index + 1));
            if (p.Kind == ParameterKind.BatchNorm)
            {
                Array.Fill(values, p.Name.EndsWith("/gamma", StringComparison.Ordinal) ? 1f : 0f);
            }
            else if (options.SharedValue is { } shared)
            {
                double q = keepOf[p.Name];
                for (int i = 0; i < values.Length; i++) values[i] = rng.NextDouble() < q ? shared : 0f;
            }
            else
            {
                double limit = Math.Sqrt(6.0 / p.FanIn);
                for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * limit);
            }
            if (options.Prune > 0 && p.Kind == ParameterKind.Kernel)
            {
                double q = 1 - options.Prune;
                if (p.InInputLayer) q = Math.Max(q, 0.8);
                var mask = new SeededRandom(DropoutRandom.Mix(seed * 0x100000001B3UL + (ulong)index + 0xABCDEF));
                for (int i = 0; i < values.Length; i++)
                    if (mask.NextDouble() >= q) values[i] = 0f;
            }
            result[p.Name] = values;
        }
        return result;
    }

    /// <summary>
    /// With shared:V, each kernel and bias tensor's probability of a weight being V (else 0): the
    /// i-th kernel's keep entry (one entry: every kernel's), a bias its layer's kernel's. Empty for
    /// he-uniform; batch-norm parameters have none.
    /// </summary>
    public static Dictionary<string, double> KeepOf(ModelDefinition model, InitOptions options)
    {
        var keep = new Dictionary<string, double>();
        if (options.SharedValue is null) return keep;
        var list = options.Keep ?? [1.0];
        int kernelIndex = -1;
        foreach (var p in model.Parameters)
        {
            if (p.Kind == ParameterKind.Kernel) kernelIndex++;
            if (p.Kind != ParameterKind.BatchNorm) keep[p.Name] = list.Count == 1 ? list[0] : list[Math.Max(kernelIndex, 0)];
        }
        return keep;
    }

    /// <summary>Throws <see cref="ArgumentException"/> when the options do not fit the model.</summary>
    public static void Validate(ModelDefinition model, InitOptions options)
    {
        if (options.Prune is < 0 or >= 1) throw new ArgumentException($"--prune must be in [0, 1), got {options.Prune}");
        var kernels = model.Parameters.Where(p => p.Kind == ParameterKind.Kernel).ToList();
        if (options.Keep is { } keep)
        {
            if (keep.Count != 1 && keep.Count != kernels.Count)
                throw new ArgumentException($"--keep has {keep.Count} entries but model '{model.Name}' has {kernels.Count} kernel tensor{(kernels.Count == 1 ? "" : "s")}; give one entry or one per kernel.");
            if (keep.Any(k => k is < 0 or > 1 || double.IsNaN(k))) throw new ArgumentException("--keep probabilities must be in [0, 1]");
        }
    }

    /// <summary>Computes and uploads the initial values into a network.</summary>
    public static void Apply(Network network, InitOptions options, ulong seed)
    {
        var values = Compute(network.Definition, options, seed);
        foreach (var p in network.Parameters) network.Backend.Upload<float>(values[p.Name], p.Value);
    }
}
