using System.Diagnostics;
using LaPerm.Core.Backend;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>
/// The measurements behind `laperm bench` and perf/LaPerm.Benchmarks: one full training step
/// (the batch gathered from a data set resident on the backend, forward, loss, backward, Adam)
/// on synthetic images, and one full LaPerm sync of every tensor. Synthetic data keeps the file
/// loader out of the number. The step runs as the trainer runs it: the batch gathered on the
/// backend (no augmentation, like the PyTorch baselines' resident batches), captured and replayed
/// (<see cref="StepGraphs"/>) where the backend can, unless graphs are off; a timed window waits
/// for the device once, at its end.
/// </summary>
public sealed class TrainStepBench : IDisposable
{
    private readonly Network _network;
    private readonly Optimizer _optimizer;
    private readonly Network.Pass _pass;
    private readonly Tensor<float> _sums;
    private readonly IDeviceDataset _data;
    private readonly StepGraphs _graphs;
    private readonly ulong _seed;
    private long _step;

    /// <summary>Batches in the synthetic data set: the gather cycles through them, an epoch each round.</summary>
    private const int BatchesPerEpoch = 16;

    public TrainStepBench(ModelDefinition model, IBackend backend, int batch, ulong seed = 1, bool graphs = true)
    {
        Batch = batch;
        _graphs = new StepGraphs(backend, graphs);
        _network = new Network(model, backend);
        Initializer.Apply(_network, InitOptions.HeUniform, seed);
        _optimizer = new Optimizer(_network, OptimizerKind.Adam);
        _pass = _network.GetPass(batch);
        _sums = backend.Allocate<float>(new Shape(2));
        _seed = seed;
        var rng = new SeededRandom(seed);
        var input = model.Input;
        int count = BatchesPerEpoch * batch;
        var images = new byte[(long)count * input.Channels * input.Height * input.Width];
        for (long i = 0; i < images.LongLength; i++) images[i] = (byte)rng.Next(256);
        var labels = new byte[count];
        for (int i = 0; i < count; i++) labels[i] = (byte)rng.Next(model.Classes);
        _data = backend.UploadDataset(new Dataset("synthetic", images, labels, input.Channels, input.Height, input.Width, model.Classes));
    }

    public int Batch { get; }
    public Network Network => _network;

    /// <summary>The largest batch whose synthetic data set (<see cref="BatchesPerEpoch"/> batches of images, a byte per value) fits one array.</summary>
    public static int MaxBatch(ModelDefinition model)
    {
        var input = model.Input;
        return (int)Math.Min(int.MaxValue, Array.MaxLength / ((long)BatchesPerEpoch * input.Channels * input.Height * input.Width));
    }

    /// <summary>Whether the steps run as captured graphs (false with graphs off, or after a failed capture: <see cref="CaptureFailure"/>).</summary>
    public bool Graphs => _graphs.Replays(Batch);

    /// <summary>The nodes of the step's graph once captured (after <see cref="Measure"/>'s warm-up); null when eager.</summary>
    public int? GraphNodes => _graphs.Nodes(Batch);

    /// <summary>Why the step could not be captured (it then ran eagerly); null when it was, or graphs are off.</summary>
    public string? CaptureFailure => _graphs.Failures.GetValueOrDefault(Batch);

    /// <summary>One step, waited for.</summary>
    public void Step()
    {
        EnqueueStep();
        _network.Backend.Synchronize();
    }

    private void EnqueueStep()
    {
        var backend = _network.Backend;
        long position = _step++;
        backend.BeginStep(_optimizer.NextStep(_step, (int)(position / BatchesPerEpoch), (int)(position % BatchesPerEpoch) * Batch, Batch, 1e-3f));
        _graphs.Run(Batch, () =>
        {
            backend.GatherBatch(_data, _seed, null, _pass.Input, _pass.Labels);
            _pass.Forward(new ForwardMode(true, 1));
            _pass.Loss(_sums);
            backend.GuardLoss(_sums, skipStep: false);   // as the trainer's default --on-nan stop
            _pass.Backward();
            _optimizer.EnqueueUpdate(Batch);
            return true;
        });
        _optimizer.CountStep();
    }

    /// <summary>Warm-up, then the median images/s over <paramref name="windows"/> windows of <paramref name="stepsPerWindow"/> steps.</summary>
    public (double Median, double[] Windows) Measure(int warmupSteps, int windows, int stepsPerWindow)
    {
        for (int i = 0; i < warmupSteps; i++) Step();
        var rates = new double[windows];
        for (int w = 0; w < windows; w++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < stepsPerWindow; i++) EnqueueStep();
            _network.Backend.Synchronize();
            rates[w] = stepsPerWindow * (double)Batch / sw.Elapsed.TotalSeconds;
        }
        return (Median(rates), rates);
    }

    /// <summary>The middle value; for an even count the mean of the two middle ones.</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        int half = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
    }

    public void Dispose()
    {
        _graphs.Dispose();
        _data.Dispose();
        _sums.Dispose();
        _optimizer.Dispose();
        _network.Dispose();
    }
}

/// <summary>One full sync of every kernel, bias and batch-norm tensor of a model, on weights scrambled before each sync.</summary>
public sealed class SyncBench : IDisposable
{
    private readonly Network _network;
    private readonly Reconnector _reconnector;
    private readonly Dictionary<string, float[]> _scrambled = [];

    public SyncBench(ModelDefinition model, IBackend backend, ulong seed = 1)
    {
        _network = new Network(model, backend);
        Initializer.Apply(_network, InitOptions.HeUniform, seed);
        _reconnector = new Reconnector(_network, new ReconnectOptions());
        var rng = new SeededRandom(seed + 1);
        foreach (var p in _network.Parameters)
        {
            var values = new float[p.Value.Length];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() - 0.5);
            _scrambled[p.Name] = values;
        }
    }

    public long Weights => _reconnector.Targets.Sum(t => (long)t.Weights.Length);
    public int Rows => _reconnector.Targets.Sum(t => t.Rows);

    /// <summary>Puts unsorted values back so the next sync does real work (not timed).</summary>
    public void Scramble()
    {
        foreach (var p in _network.Parameters) _network.Backend.Upload<float>(_scrambled[p.Name], p.Value);
        _network.Backend.Synchronize();
    }

    public void Sync()
    {
        _reconnector.Sync();
        _network.Backend.Synchronize();
    }

    /// <summary>Median seconds of one sync over <paramref name="repetitions"/> timed syncs after a warm-up.</summary>
    public (double Median, double[] Samples) Measure(int warmup, int repetitions)
    {
        for (int i = 0; i < warmup; i++)
        {
            Scramble();
            Sync();
        }
        var samples = new double[repetitions];
        for (int r = 0; r < repetitions; r++)
        {
            Scramble();
            var sw = Stopwatch.StartNew();
            Sync();
            samples[r] = sw.Elapsed.TotalSeconds;
        }
        return (TrainStepBench.Median(samples), samples);
    }

    public void Dispose()
    {
        _reconnector.Dispose();
        _network.Dispose();
    }
}
