using BenchmarkDotNet.Attributes;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;

namespace LaPerm.Benchmarks;

/// <summary>
/// One full training step at batch 128 (upload, forward, loss, backward, Adam) on the CPU
/// backend, the measurement `laperm bench train` reports; the Images/s column is Batch / median time.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(TrainStepConfig))]
public class TrainStepBenchmarks
{
    private CpuBackend? _backend;
    private TrainStepBench? _bench;

    [Params("f2", "lenet300", "conv7")]
    public string Model { get; set; } = "f2";

    [Params(128)]
    public int Batch { get; set; } = 128;

    [Params(2)]
    public int Threads { get; set; } = 2;

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend(Threads);
        _bench = new TrainStepBench(new ModelDefinition(BuiltInModels.TryGet(Model)!), _backend, Batch);
        for (int i = 0; i < 5; i++) _bench.Step();
    }

    [Benchmark]
    public void TrainStep() => _bench!.Step();

    [GlobalCleanup]
    public void Cleanup()
    {
        _bench?.Dispose();
        _backend?.Dispose();
    }
}

/// <summary>One full LaPerm sync of every conv7 tensor (weights scrambled before each, outside the timing).</summary>
public class SyncBenchmarks
{
    private CpuBackend? _backend;
    private SyncBench? _bench;

    [Params("conv7")]
    public string Model { get; set; } = "conv7";

    [Params(2)]
    public int Threads { get; set; } = 2;

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend(Threads);
        _bench = new SyncBench(new ModelDefinition(BuiltInModels.TryGet(Model)!), _backend);
    }

    [IterationSetup]
    public void Scramble() => _bench!.Scramble();

    // One sync per iteration: the scramble that makes it real work must run before each one.
    [Benchmark]
    [InvocationCount(1)]
    public void FullSync() => _bench!.Sync();

    [GlobalCleanup]
    public void Cleanup()
    {
        _bench?.Dispose();
        _backend?.Dispose();
    }
}
