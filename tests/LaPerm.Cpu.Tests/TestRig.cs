using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>A backend plus helpers to move data in and out; outputs start NaN-poisoned.</summary>
internal sealed class TestRig : IDisposable
{
    public TestRig(int threads = 2) => Backend = new CpuBackend(threads);

    public CpuBackend Backend { get; }

    public Tensor<float> Input(float[] data, params int[] shape)
    {
        var t = Backend.Allocate<float>(new Shape(shape));
        Backend.Upload<float>(data, t);
        return t;
    }

    public Tensor<int> Input(int[] data, params int[] shape)
    {
        var t = Backend.Allocate<int>(new Shape(shape));
        Backend.Upload<int>(data, t);
        return t;
    }

    public Tensor<byte> Input(byte[] data, params int[] shape)
    {
        var t = Backend.Allocate<byte>(new Shape(shape));
        Backend.Upload<byte>(data, t);
        return t;
    }

    /// <summary>An output tensor filled with NaN, so anything an op fails to write shows up.</summary>
    public Tensor<float> Poisoned(params int[] shape)
    {
        var t = Backend.Allocate<float>(new Shape(shape));
        Backend.Fill(t, float.NaN);
        return t;
    }

    public Tensor<int> PoisonedInt(params int[] shape)
    {
        var t = Backend.Allocate<int>(new Shape(shape));
        ((CpuTensor<int>)t).Span.Fill(int.MinValue);
        return t;
    }

    public Tensor<byte> PoisonedByte(params int[] shape)
    {
        var t = Backend.Allocate<byte>(new Shape(shape));
        ((CpuTensor<byte>)t).Span.Fill(0xAB);
        return t;
    }

    public T[] Get<T>(Tensor<T> t) where T : unmanaged
    {
        var result = new T[t.Length];
        Backend.Download(t, result);
        return result;
    }

    public void Dispose() => Backend.Dispose();
}

internal static class Data
{
    /// <summary>Uniform in [lo, hi), never exactly zero.</summary>
    public static float[] Uniform(Random rng, int count, float lo = -1f, float hi = 1f)
    {
        var result = new float[count];
        for (int i = 0; i < count; i++)
        {
            float v;
            do v = (float)(lo + (hi - lo) * rng.NextDouble()); while (v == 0f);
            result[i] = v;
        }
        return result;
    }

    /// <summary>Uniform values whose magnitude is at least <paramref name="gap"/> (keeps finite differences off ReLU's kink).</summary>
    public static float[] AwayFromZero(Random rng, int count, float gap = 0.05f)
    {
        var result = Uniform(rng, count);
        for (int i = 0; i < count; i++) result[i] = MathF.CopySign(gap + (1 - gap) * MathF.Abs(result[i]), result[i]);
        return result;
    }

    public static double[] ToDouble(float[] x) => Array.ConvertAll(x, v => (double)v);

    public static uint Bits(float v) => BitConverter.SingleToUInt32Bits(v);
}

internal static class Check
{
    /// <summary>|got - expected| &lt;= tolerance * max(1, max |expected|) element by element, and no NaN.</summary>
    public static void Close(ReadOnlySpan<float> got, ReadOnlySpan<double> expected, double tolerance, string what)
    {
        Assert.Equal(expected.Length, got.Length);
        double scale = 1;
        foreach (var e in expected) scale = Math.Max(scale, Math.Abs(e));
        for (int i = 0; i < got.Length; i++)
        {
            double error = Math.Abs(got[i] - expected[i]);
            if (!(error <= tolerance * scale))
                Assert.Fail($"{what}[{i}]: got {got[i]:R}, expected {expected[i]:R} (error {error:E2} > {tolerance:E1} x scale {scale:G4})");
        }
    }

    public static void BitIdentical(ReadOnlySpan<float> a, ReadOnlySpan<float> b, string what)
    {
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
            if (Data.Bits(a[i]) != Data.Bits(b[i]))
                Assert.Fail($"{what}[{i}]: {a[i]:R} vs {b[i]:R} differ in bits");
    }
}
