using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>Moving test data in and out of a backend, and the comparisons the equivalence tests use.</summary>
internal static class Compare
{
    public static Tensor<T> Put<T>(IBackend backend, T[] values, params int[] shape) where T : unmanaged
    {
        var tensor = backend.Allocate<T>(new Shape(shape));
        backend.Upload<T>(values, tensor);
        return tensor;
    }

    /// <summary>A float tensor filled with NaN, so an op that leaves an element unwritten fails the comparison.</summary>
    public static Tensor<float> Poisoned(IBackend backend, params int[] shape)
    {
        var tensor = backend.Allocate<float>(new Shape(shape));
        backend.Fill(tensor, float.NaN);
        return tensor;
    }

    public static Tensor<int> PoisonedInts(IBackend backend, params int[] shape) =>
        Put(backend, Enumerable.Repeat(int.MinValue, new Shape(shape).Length).ToArray(), shape);

    public static Tensor<byte> PoisonedBytes(IBackend backend, params int[] shape) =>
        Put(backend, Enumerable.Repeat((byte)0xCD, new Shape(shape).Length).ToArray(), shape);

    /// <summary>Trains <paramref name="spec"/> on <paramref name="backend"/>; returns every checkpoint tensor (weights and state) and the summary.</summary>
    public static (Dictionary<string, float[]> Weights, TrainingSummary Summary) Train(IBackend backend, TrainingOptions options, ModelSpec spec, DataSplit data,
        Action<Network>? initialized = null)
    {
        var trainer = new Trainer(options, new ModelDefinition(spec), data, backend) { Initialized = initialized };
        var summary = trainer.Run();
        using var network = trainer.Network!;
        var weights = new Dictionary<string, float[]>();
        foreach (var (name, _, tensor) in network.CheckpointTensors())
        {
            var values = new float[tensor.Length];
            Array.Fill(values, float.NaN);
            backend.Download(tensor, values);
            weights[name] = values;
        }
        return (weights, summary);
    }

    /// <summary>How many values of two runs' tensors differ in their bits, of how many.</summary>
    public static (long Differing, long Total) DifferingBits(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        long total = 0, differing = 0;
        foreach (var (name, values) in expected)
        {
            var other = actual[name];
            Assert.Equal(values.Length, other.Length);
            total += values.Length;
            for (int i = 0; i < values.Length; i++)
                if (BitConverter.SingleToUInt32Bits(values[i]) != BitConverter.SingleToUInt32Bits(other[i])) differing++;
        }
        return (differing, total);
    }

    public static T[] Get<T>(IBackend backend, Tensor<T> tensor) where T : unmanaged
    {
        var result = new T[tensor.Length];
        backend.Download(tensor, result);
        return result;
    }

    /// <summary>Uniform in [-scale, scale); never exactly zero in practice.</summary>
    public static float[] Random(Random rng, int length, float scale = 1f)
    {
        var result = new float[length];
        for (int i = 0; i < length; i++) result[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return result;
    }

    /// <summary>Small integers as floats: many exact ties (pooling's "first max wins").</summary>
    public static float[] RandomIntegers(Random rng, int length, int limit)
    {
        var result = new float[length];
        for (int i = 0; i < length; i++) result[i] = rng.Next(-limit, limit + 1);
        return result;
    }

    public static void BitEqual(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R} (0x{BitConverter.SingleToUInt32Bits(expected[i]):x8}), got {actual[i]:R} (0x{BitConverter.SingleToUInt32Bits(actual[i]):x8})");
    }

    /// <summary>
    /// <see cref="BitEqual"/>, except that a NaN computed by arithmetic matches any NaN: its sign and
    /// payload are the platform's (x86 keeps an operand's, a GPU gives 0x7FFFFFFF).
    /// </summary>
    public static void BitEqualAnyNaN(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (float.IsNaN(expected[i]) ? !float.IsNaN(actual[i]) : BitConverter.SingleToUInt32Bits(expected[i]) != BitConverter.SingleToUInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R} (0x{BitConverter.SingleToUInt32Bits(expected[i]):x8}), got {actual[i]:R} (0x{BitConverter.SingleToUInt32Bits(actual[i]):x8})");
    }

    public static void Equal<T>(T[] expected, T[] actual, string what) where T : IEquatable<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!expected[i].Equals(actual[i])) Assert.Fail($"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    /// <summary>|expected - actual| &lt;= bound[i] elementwise; NaN never passes.</summary>
    public static void Within(float[] expected, float[] actual, Func<int, double> bound, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = Math.Abs((double)expected[i] - actual[i]);
            if (!(difference <= bound(i)))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}, difference {difference:G3} exceeds {bound(i):G3}");
        }
    }

    /// <summary>Relative tolerance with an absolute floor.</summary>
    public static void Close(float[] expected, float[] actual, double relative, double absolute, string what) =>
        Within(expected, actual, i => absolute + relative * Math.Abs(expected[i]), what);

    /// <summary>
    /// Bound for a float dot product of length k computed in any summation order (with or without
    /// FMA): each of two results is within k * 2^-24 * sum|a_i b_i| of the exact value (standard
    /// forward error bound, first order), so two of them differ by at most twice that.
    /// </summary>
    public static double DotBound(int k, double sumOfAbsoluteProducts) => 2.0 * (k + 2) * Math.Pow(2, -24) * sumOfAbsoluteProducts + 1e-30;
}
