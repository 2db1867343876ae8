namespace LaPerm.Core.Checkpoints;

/// <summary>What to do when the loss, a gradient or a weight stops being finite.</summary>
public enum NonFinitePolicy
{
    /// <summary>Stop the run naming the step and tensor; the last checkpoint stays as it was.</summary>
    Stop,

    /// <summary>Leave the weights and optimizer state untouched for that step and go on with the next batch.</summary>
    SkipStep,
}

/// <summary>
/// How a run persists itself (`laperm train --checkpoint-every --keep-checkpoints --on-nan
/// --trace-reconnection --stop-after --resume`). Checkpoints are written only when the run has
/// an output directory: at the end of every epoch, and every <see cref="Every"/> steps when it is positive.
/// </summary>
public sealed record CheckpointOptions
{
    public static CheckpointOptions Default { get; } = new();

    /// <summary>Also checkpoint every N steps (0 = at epoch ends only).</summary>
    public int Every { get; init; }

    /// <summary>How many checkpoints stay on disk (the newest ones); at least 1.</summary>
    public int Keep { get; init; } = 3;

    public NonFinitePolicy OnNonFinite { get; init; } = NonFinitePolicy.Stop;

    /// <summary>
    /// Record reconnection traffic (per tensor, the fraction of positions whose value changed
    /// since the previous sync and since initialisation) in every sync line of metrics.jsonl.
    /// It downloads every reconnected tensor at each sync, so it defaults to on for the cpu
    /// device only (null = that default).
    /// </summary>
    public bool? TraceReconnection { get; init; }

    /// <summary>Checkpoint and stop after this step (a planned interruption, e.g. the end of a time slot); null = run to the end.</summary>
    public long? StopAfterStep { get; init; }

    /// <summary>Continue the run in the output directory from its latest valid checkpoint.</summary>
    public bool Resume { get; init; }

    /// <summary>
    /// A new run may replace a run its output directory holds (its checkpoints, summary, best and
    /// final weights, figures: `--overwrite`). Without it such a directory is refused, naming what
    /// it holds: nothing already written is lost by a repeated command.
    /// </summary>
    public bool Overwrite { get; init; }

    /// <summary>
    /// With <see cref="Resume"/>: the run's configuration as recorded, before this command's own
    /// flags (--threads, --checkpoint-every, --verify-invariants, ...). run-config.json keeps it:
    /// those flags apply to the command that gives them, not to every later resume. Null: the
    /// options are written as they are.
    /// </summary>
    public Training.TrainingOptions? Recorded { get; init; }

    public bool TraceReconnectionFor(string device) => TraceReconnection ?? device == "cpu";

    public static NonFinitePolicy ParsePolicy(string text) => text switch
    {
        "stop" => NonFinitePolicy.Stop,
        "skip-step" => NonFinitePolicy.SkipStep,
        _ => throw new FormatException($"--on-nan expects stop or skip-step, got '{text}'."),
    };

    public static string Describe(NonFinitePolicy policy) => policy == NonFinitePolicy.Stop ? "stop" : "skip-step";
}

/// <summary>The loss, a gradient or a weight is NaN or infinite; the message names the step and the tensor.</summary>
public sealed class NonFiniteException(string message) : Exception(message);

/// <summary>The output directory cannot be written (at the start, or when a checkpoint is written).</summary>
public sealed class RunStorageException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Thrown after the checkpoint of <see cref="CheckpointOptions.StopAfterStep"/> is on disk.</summary>
public sealed class TrainingStoppedException(long step, string checkpoint)
    : Exception($"stopped after step {step} as asked; checkpoint '{checkpoint}' holds the run")
{
    public long Step { get; } = step;
    public string Checkpoint { get; } = checkpoint;
}

/// <summary>
/// Thrown when a run was interrupted (<see cref="Training.Trainer.Interrupt"/>, Ctrl-C): after the
/// step in progress, and after its checkpoint when the run has an output directory.
/// </summary>
public sealed class TrainingInterruptedException(long step, string? checkpoint)
    : Exception(checkpoint is null
        ? $"interrupted after step {step}; without --out nothing was saved"
        : $"interrupted after step {step}; checkpoint '{checkpoint}' holds the run")
{
    public long Step { get; } = step;
    public string? Checkpoint { get; } = checkpoint;
}

/// <summary>A checkpoint to resume from is asked for, but the run directory cannot be resumed.</summary>
public sealed class ResumeException(string message) : Exception(message);
