namespace LaPerm.Core.Training;

/// <summary>
/// Names the phases of the training loop for a profiler timeline (NVTX ranges on CUDA) and
/// brackets chosen steps (cuProfilerStart/Stop for an Nsight capture range). The trainer calls
/// it whatever the backend; an implementation without a profiler attached does nothing.
/// </summary>
public interface IStepTracer
{
    /// <summary>Before the step's data is prepared; steps count from 1.</summary>
    void BeginStep(long step);

    /// <summary>After the step's work (and a sync, when due) is enqueued.</summary>
    void EndStep(long step);

    /// <summary>Opens a phase (one of <see cref="TrainingPhase"/>); phases nest inside a step.</summary>
    void Push(string phase);

    void Pop();
}

/// <summary>A phase that closes however its block is left (an op that throws inside a graph capture, which then runs again eagerly).</summary>
public readonly struct TracerPhase : IDisposable
{
    private readonly IStepTracer? _tracer;

    public TracerPhase(IStepTracer? tracer, string phase)
    {
        _tracer = tracer;
        _tracer?.Push(phase);
    }

    public void Dispose() => _tracer?.Pop();
}

/// <summary>The phase names the trainer uses, so profiles read like the loop.</summary>
public static class TrainingPhase
{
    public const string Data = "data";
    public const string Forward = "forward";
    public const string Backward = "backward";
    public const string Optimizer = "optimizer";

    /// <summary>A replay of the captured step (forward, loss, backward and optimizer in one graph launch).</summary>
    public const string Graph = "graph";
    public const string Reconnect = "reconnect";
    public const string Evaluate = "eval";
}
