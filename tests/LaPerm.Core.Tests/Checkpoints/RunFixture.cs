using System.Text.Json.Nodes;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.Data;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cpu;

namespace LaPerm.Core.Tests.Checkpoints;

/// <summary>A small run with every source of state (conv, batch-norm, dropout, augmentation, reconnection) in a temporary directory.</summary>
internal sealed class RunFixture : IDisposable
{
    public static readonly ModelSpec Spec = new("ckpt", [1, 28, 28],
    [
        new Conv2dSpec(4, 3, Stride: 2), new ReluSpec(), new BatchNormSpec(), new DropoutSpec(0.3f),
        new FlattenSpec(), new DenseSpec(10),
    ]);

    private static readonly Lazy<DataSplit> SharedData = new(() => DataSource.Load("mnist", 256, 64));

    public RunFixture() => Directory.CreateDirectory(Root);

    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"laperm-ckpt-{Guid.NewGuid():N}");

    public static DataSplit Data => SharedData.Value;

    /// <summary>8 steps per epoch, 3 epochs, sync every 5 steps, checkpoint every 4.</summary>
    public static TrainingOptions Options(string dir, OptimizerKind optimizer = OptimizerKind.Adam) => new()
    {
        Epochs = 3, Batch = 32, K = SyncSchedule.Constant(5), Seed = 11, Threads = 2, Augment = "mnist", Optimizer = optimizer,
        Out = dir, EvalEvery = 3, Checkpoints = new CheckpointOptions { Every = 4, Keep = 10 },
    };

    public string Dir(string name) => Path.Combine(Root, name);

    public static TrainingSummary Train(TrainingOptions options, TextWriter? warnings = null, ITrainingObserver? observer = null,
        Func<Trainer, ITrainingObserver>? makeObserver = null, CancellationTokenSource? interrupt = null)
    {
        using var backend = new CpuBackend(options.Threads);
        Trainer? trainer = null;
        trainer = new Trainer(options, new ModelDefinition(Spec), Data, backend, makeObserver is null ? observer : new Deferred(() => trainer!, makeObserver))
        {
            Warnings = warnings, Interrupt = interrupt?.Token ?? CancellationToken.None,
        };
        try
        {
            return trainer.Run();
        }
        finally
        {
            trainer.Network?.Dispose();
        }
    }

    /// <summary>metrics.jsonl without the wall-clock fields, which no two runs share.</summary>
    public static List<string> MetricsWithoutClock(string dir) =>
        [.. File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(line =>
        {
            var o = JsonNode.Parse(line)!.AsObject();
            o.Remove("wall_seconds");
            o.Remove("seconds");
            return o.ToJsonString();
        })];

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }

    private sealed class Deferred(Func<Trainer> trainer, Func<Trainer, ITrainingObserver> make) : ITrainingObserver
    {
        private ITrainingObserver? _inner;
        private ITrainingObserver Inner => _inner ??= make(trainer());
        public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) => Inner.OnStep(step, totalSteps, epoch, runningLoss, runningAccuracy);
        public void OnEvaluation(EvaluationRecord record) => Inner.OnEvaluation(record);
        public void OnSync(long step, int syncs, double seconds) => Inner.OnSync(step, syncs, seconds);
    }
}

/// <summary>Calls an action at the step callbacks (every 10th step) — how the tests break a run from inside.</summary>
internal sealed class StepHook(Action<long> onStep) : ITrainingObserver
{
    public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) => onStep(step);
    public void OnEvaluation(EvaluationRecord record) { }
    public void OnSync(long step, int syncs, double seconds) { }
}

/// <summary>Calls an action with the step of every evaluation.</summary>
internal sealed class EvaluationHook(Action<long> onEvaluation) : ITrainingObserver
{
    public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) { }
    public void OnEvaluation(EvaluationRecord record) => onEvaluation(record.Step);
    public void OnSync(long step, int syncs, double seconds) { }
}
