using LaPerm.Core.Checkpoints;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>
/// Everything a training run is configured by (what `laperm train` flags and presets set).
/// The defaults are the `laperm train` default job: lenet300 on MNIST, 2 epochs, batch 32,
/// Adam lr 1e-3 halved per epoch, a sync every 50 steps (97.3 % best test accuracy, synchronised).
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Built-in model name or a JSON model file.</summary>
    public string Model { get; init; } = "lenet300";

    /// <summary>mnist | fashion-mnist | cifar10 | DIR (see DataSource).</summary>
    public string Data { get; init; } = "mnist";
    public int Epochs { get; init; } = 2;
    public int Batch { get; init; } = 32;
    public SyncSchedule K { get; init; } = SyncSchedule.Constant(50);
    public float LearningRate { get; init; } = 1e-3f;
    public LearningRateSchedule LearningRateSchedule { get; init; } = LearningRateSchedule.Parse("exp:0.5");
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    public float Momentum { get; init; } = 0.9f;

    /// <summary>The optimizer in words: "adam", or "sgd momentum 0.9" (momentum is SGD's alone).</summary>
    public string DescribeOptimizer() => Optimizer == OptimizerKind.Adam
        ? "adam"
        : $"sgd momentum {Momentum.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>Mean (Keras fit) or Sum over the batch (the authors' LaPerm loop; see <see cref="Training.LossReduction"/>).</summary>
    public LossReduction LossReduction { get; init; } = LossReduction.Mean;
    public InitOptions Init { get; init; } = InitOptions.HeUniform;
    public bool SkipBias { get; init; }
    public bool SkipBatchNorm { get; init; }

    /// <summary>none | mnist | cifar.</summary>
    public string Augment { get; init; } = "none";
    public ulong Seed { get; init; } = 1;
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>More CPU threads than any machine we know of has cores; each holds its own scratch buffers.</summary>
    public const int MaxThreads = 1024;

    /// <summary>Evaluate every N steps; 0 = right after a sync once a quarter epoch has passed since the last evaluation when reconnecting, else at the end of every epoch.</summary>
    public int EvalEvery { get; init; }

    /// <summary>
    /// A test accuracy (fraction) whose first reaching is recorded: step, training seconds and wall
    /// seconds (summary.json, metrics.jsonl). Only evaluations of synchronised weights count when
    /// reconnecting, so the time is that of a LaPerm model. Null = none.
    /// </summary>
    public double? TargetAccuracy { get; init; }

    /// <summary>End the run (final sync, evaluation and weights as usual) once <see cref="TargetAccuracy"/> is reached.</summary>
    public bool StopAtTarget { get; init; }

    /// <summary>Also evaluate (inference mode) on the first N training images at each evaluation; 0 = off.</summary>
    public int TrainEvalSize { get; init; }
    public int? LimitTrain { get; init; }
    public int? LimitTest { get; init; }
    public string? Out { get; init; }

    /// <summary>False = the inner optimizer alone (the baseline LaPerm is compared against).</summary>
    public bool Reconnect { get; init; } = true;
    public bool VerifyInvariants { get; init; }

    /// <summary>
    /// Capture the training step once per batch size and replay it (CUDA graphs) where the backend
    /// can (<see cref="Backend.IBackend.CanCapture"/>); false = run the same ops one by one
    /// (`--no-graphs`). Same results either way, bit for bit; not part of the stored run configuration.
    /// </summary>
    public bool Graphs { get; init; } = true;
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// The GPU backends' flags that change results (--math, --cudnn, --channel-reduction), as
    /// given; stored in the run configuration so that a resumed run computes as the run it
    /// continues. The cpu backend ignores them.
    /// </summary>
    public string GpuMath { get; init; } = "fp32";
    public string Cudnn { get; init; } = "none";
    public string ChannelReduction { get; init; } = "chunked";
    public string? Preset { get; init; }

    /// <summary>Checkpoints, resume, the non-finite policy and reconnection tracing (see Checkpoints/).</summary>
    public CheckpointOptions Checkpoints { get; init; } = CheckpointOptions.Default;

    public ReconnectOptions ReconnectOptions => new(SkipBias, SkipBatchNorm);

    /// <summary>Steps of one epoch over <paramref name="trainImages"/> images (the last batch may be short).</summary>
    public int StepsPerEpoch(int trainImages) => (trainImages + Batch - 1) / Batch;

    /// <summary>The run's last step: <see cref="Epochs"/> epochs of <see cref="StepsPerEpoch"/>.</summary>
    public long LastStep(int trainImages) => (long)Epochs * StepsPerEpoch(trainImages);
}
