using System.Text.Json;
using System.Text.Json.Serialization;
using LaPerm.Core.IO;
using LaPerm.Core.Training;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// Where a run stands after a step: state.json of a checkpoint. Together with the tensors it is
/// the whole state of the run. There is no random generator state to save: the epoch order is a
/// function of (seed, epoch), augmentation of (seed, epoch, record) and dropout of (seed, step,
/// layer), all counter-based, so the position (epoch, batch in epoch, step) is the RNG state.
/// Floats that must come back bit for bit are stored as their IEEE-754 bit patterns.
/// </summary>
public sealed record RunState
{
    public const string RandomStateNote =
        "counter-based: epoch order = f(seed, epoch), augmentation = f(seed, epoch, record), dropout = f(seed, step, layer); the position is the state";

    public int Version { get; init; } = 1;

    /// <summary>Optimizer steps taken (global, from 1); the next step is Step + 1.</summary>
    public long Step { get; init; }

    /// <summary>The epoch (from 0) and the batch within it that the next step trains on.</summary>
    public int Epoch { get; init; }
    public int BatchInEpoch { get; init; }
    public int StepsPerEpoch { get; init; }
    public ulong Seed { get; init; }
    public string RandomState { get; init; } = RandomStateNote;

    /// <summary>Schedule position: the learning rate and k in force at Step.</summary>
    public uint LearningRateBits { get; init; }
    public int K { get; init; }
    public int Syncs { get; init; }
    public long LastSyncStep { get; init; } = -1;
    public long LastEvalStep { get; init; }
    public long OptimizerSteps { get; init; }
    public long SkippedSteps { get; init; }

    /// <summary>Best test accuracy so far (-1 before the first evaluation) and its step.</summary>
    public double BestTestAccuracy { get; init; } = -1;
    public long BestStep { get; init; }

    /// <summary>The running train loss/accuracy sums since the last evaluation (device accumulator) and their image count.</summary>
    public uint TrainLossSumBits { get; init; }
    public uint TrainCorrectSumBits { get; init; }
    public long ImagesSinceEval { get; init; }

    public double TrainSeconds { get; init; }
    public long TrainImages { get; init; }
    public double WallSeconds { get; init; }

    /// <summary>The --target-accuracy reached so far (null when not reached or not set).</summary>
    public TargetReached? Target { get; init; }

    /// <summary>
    /// SHA-256 of the images and labels the run trains and tests on (after its limits), in hex; a
    /// resumed run on other data cannot end as the run straight would, and says so. Null in
    /// checkpoints written before it was recorded.
    /// </summary>
    public string? DataSha256 { get; init; }

    /// <summary>Length of metrics.jsonl when the checkpoint was taken; a resumed run cuts it back to this.</summary>
    public long MetricsBytes { get; init; }

    [JsonIgnore] public float LearningRate => BitConverter.UInt32BitsToSingle(LearningRateBits);

    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>Parses state.json; throws <see cref="ResumeException"/> naming the file when it is not one.</summary>
    public static RunState FromJson(string text, string path)
    {
        RunState? state;
        try
        {
            state = JsonSerializer.Deserialize<RunState>(text, Options);
        }
        catch (JsonException e)
        {
            throw new ResumeException($"run state '{path}' is not valid ({JsonText.Describe(e)})");
        }
        if (state is null || state.Version != 1 || state.Step < 0 || state.Epoch < 0 || state.BatchInEpoch < 0 || state.StepsPerEpoch <= 0
            || state.BatchInEpoch >= state.StepsPerEpoch || state.MetricsBytes < 0)
            throw new ResumeException($"run state '{path}' must be version 1 with step >= 0, 0 <= batch_in_epoch < steps_per_epoch and metrics_bytes >= 0");
        // The position and the counters tell of each other: a state that contradicts itself was not written by a run.
        if ((long)state.Epoch * state.StepsPerEpoch + state.BatchInEpoch != state.Step)
            throw new ResumeException($"run state '{path}': step {state.Step} must be epoch x steps_per_epoch + batch_in_epoch ({state.Epoch} x {state.StepsPerEpoch} + {state.BatchInEpoch})");
        if (!(state.BestTestAccuracy is -1 or (>= 0 and <= 1)) || state.BestStep < 0 || state.BestStep > state.Step
            || state.LastEvalStep < 0 || state.LastEvalStep > state.Step || state.LastSyncStep < -1 || state.LastSyncStep > state.Step)
            throw new ResumeException($"run state '{path}' must have best_test_accuracy -1 or from 0 to 1, and best_step, last_eval_step and last_sync_step from 0 (last_sync_step -1) to step {state.Step}");
        return state;
    }
}
