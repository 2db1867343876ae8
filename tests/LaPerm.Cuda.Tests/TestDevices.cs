using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

/// <summary>Opens the devices the tests run on.</summary>
internal static class TestDevices
{
    /// <summary>The emulator must be there: the native build produces it wherever the tests run.</summary>
    public static Device OpenEmulator() => Device.Open("emu");

    /// <summary>The GPU, or a skip that says why there is none.</summary>
    public static Device OpenGpuOrSkip()
    {
        CudaInfoReport report = CudaInfo.Collect();
        // A GPU older than the kernels' PTX cannot run them: it is no GPU for these tests either.
        if (report.GpuUnusableReason is { } reason) Assert.Skip(reason);
        return Device.Open("cuda");
    }

    public static float[] RandomFloats(Random random, int length, float scale = 1f)
    {
        var result = new float[length];
        for (int i = 0; i < length; i++) result[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return result;
    }

    /// <summary>Integers in [-limit, limit] stored as floats: their sums are exact while below 2^24.</summary>
    public static float[] RandomIntegers(Random random, int length, int limit)
    {
        var result = new float[length];
        for (int i = 0; i < length; i++) result[i] = random.Next(-limit, limit + 1);
        return result;
    }

    public static DeviceBuffer<float> Upload(Device device, float[] values)
    {
        var buffer = device.Allocate<float>(values.Length);
        buffer.CopyFrom(values);
        return buffer;
    }

    public static DeviceBuffer<float> Poisoned(Device device, long length)
    {
        var buffer = device.Allocate<float>(length);
        buffer.Fill(float.NaN);
        return buffer;
    }
}
