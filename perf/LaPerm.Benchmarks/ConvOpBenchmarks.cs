using BenchmarkDotNet.Attributes;
using LaPerm.Core.Backend;
using LaPerm.Cpu;

namespace LaPerm.Benchmarks;

/// <summary>
/// conv7's convolutions one op at a time (batch 128, 1 and 2 threads): where a training step's
/// time goes and how each op scales to the second core. The six large layers are about 90 % of
/// a conv7 step; compare Threads=1 with Threads=2 per op.
/// </summary>
[Config(typeof(ConvOpConfig))]
public class ConvOpBenchmarks
{
    private CpuBackend? _backend;
    private ConvGeometry? _g;
    private Tensor<float>? _x, _w, _y, _dy, _dx, _dw;

    /// <summary>cin-size-cout-kernel-stride-padding, the layers of conv7 (conv1 has no data gradient in training).</summary>
    [Params("1-28-32-3-1-valid", "32-26-32-3-1-valid", "32-24-32-5-2-same", "32-12-64-3-1-valid", "64-10-64-3-1-valid", "64-8-64-5-2-same", "64-4-128-4-1-valid")]
    public string Layer { get; set; } = "32-26-32-3-1-valid";

    [Params(1, 2)]
    public int Threads { get; set; } = 2;

    [GlobalSetup]
    public void Setup()
    {
        _g = Geometry(Layer);
        _backend = new CpuBackend(Threads);
        var rng = new Random(1);
        Tensor<float> RandomTensor(long length)
        {
            var values = new float[length];
            for (int i = 0; i < values.Length; i++) values[i] = (float)rng.NextDouble() - 0.5f;
            var t = _backend.Allocate<float>(new Shape((int)length));
            _backend.Upload<float>(values, t);
            return t;
        }
        _x = RandomTensor(_g.InputLength);
        _w = RandomTensor(_g.WeightLength);
        _y = RandomTensor(_g.OutputLength);
        _dy = RandomTensor(_g.OutputLength);
        _dx = RandomTensor(_g.InputLength);
        _dw = RandomTensor(_g.WeightLength);
    }

    /// <summary>The batch-128 geometry of a <see cref="Layer"/> value.</summary>
    public static ConvGeometry Geometry(string layer)
    {
        var f = layer.Split('-');
        int cin = int.Parse(f[0]), size = int.Parse(f[1]), cout = int.Parse(f[2]), kernel = int.Parse(f[3]), stride = int.Parse(f[4]);
        return ConvGeometry.Create(128, cin, size, size, cout, kernel, kernel, stride, f[5] == "same");
    }

    /// <summary>Multiply-adds of each of the three ops (forward, data gradient, filter gradient: the same products, summed differently).</summary>
    public static long MultiplyAdds(ConvGeometry g) => (long)g.OutputLength * g.InChannels * g.KernelHeight * g.KernelWidth;

    [Benchmark]
    public void Forward() => _backend!.ConvForward(_g!, _x!, _w!, _y!);

    [Benchmark]
    public void DataGradient() => _backend!.ConvBackwardData(_g!, _dy!, _w!, _dx!);

    [Benchmark]
    public void FilterGradient() => _backend!.ConvBackwardFilter(_g!, _x!, _dy!, _dw!);

    [GlobalCleanup]
    public void Cleanup() => _backend?.Dispose();
}
