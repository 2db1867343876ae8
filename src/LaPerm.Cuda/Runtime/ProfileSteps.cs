using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// `--profile-steps A:B`: calls cuProfilerStart before step A and cuProfilerStop after step B,
/// so an Nsight capture range (`--capture-range=cudaProfilerApi`) covers exactly those steps.
/// </summary>
public sealed record ProfileSteps(long First, long Last)
{
    /// <summary>Parses "A:B" (inclusive, A &lt;= B, both &gt;= 1).</summary>
    public static ProfileSteps Parse(string text)
    {
        string[] parts = text.Split(':');
        if (parts.Length != 2 || !long.TryParse(parts[0], out long first) || !long.TryParse(parts[1], out long last) || first < 1 || last < first)
            throw new FormatException($"--profile-steps expects A:B with 1 <= A <= B (e.g. 10:20), got '{text}'.");
        return new ProfileSteps(first, last);
    }

    public bool Contains(long step) => step >= First && step <= Last;
}

/// <summary>
/// Brackets the steps of a <see cref="ProfileSteps"/> range with cuProfilerStart/Stop on the
/// real driver; does nothing on emu (there is no profiler to start).
/// </summary>
public sealed class StepProfiler
{
    private readonly ProfileSteps? _steps;
    private readonly CudaDriver? _driver;

    /// <param name="device">The device whose driver starts the profiler; null (cpu) or emu: nothing to start.</param>
    public StepProfiler(Device? device, ProfileSteps? steps)
    {
        _steps = steps;
        _driver = (device?.Runtime as CudaRuntime)?.Driver;
    }

    /// <summary>True between the start of step First and the end of step Last.</summary>
    public bool Active { get; private set; }

    /// <summary>Call at the start of each step.</summary>
    public void BeginStep(long step)
    {
        if (_steps is null || step != _steps.First) return;
        _driver?.ProfilerStart();
        Active = true;
    }

    /// <summary>Call at the end of each step (after the step's work is enqueued).</summary>
    public void EndStep(long step)
    {
        if (_steps is null || step != _steps.Last || !Active) return;
        _driver?.ProfilerStop();
        Active = false;
    }
}

/// <summary>
/// The trainer's <see cref="LaPerm.Core.Training.IStepTracer"/> for Nsight: one NVTX range per
/// step with the phases nested inside (no-ops without a profiler attached), and the
/// <c>--profile-steps</c> capture range.
/// </summary>
public sealed class NvtxStepTracer(StepProfiler profiler) : LaPerm.Core.Training.IStepTracer
{
    public void BeginStep(long step)
    {
        profiler.BeginStep(step);
        Nvtx.Push(NvtxPhase.Step);
    }

    public void EndStep(long step)
    {
        Nvtx.Pop();
        profiler.EndStep(step);
    }

    public void Push(string phase) => Nvtx.Push(phase);

    public void Pop() => Nvtx.Pop();
}
