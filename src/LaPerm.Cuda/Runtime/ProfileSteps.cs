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
/// real driver; does nothing on emu (there is no profiler to start). A resumed run whose first
/// step lies inside the range starts the capture there, and says which steps ran before.
/// </summary>
public sealed class StepProfiler
{
    private readonly ProfileSteps? _steps;
    private readonly CudaDriver? _driver;
    private readonly TextWriter? _notes;
    private bool _seenAStep;

    /// <param name="device">The device whose driver starts the profiler; null (cpu) or emu: nothing to start.</param>
    /// <param name="notes">Where to say that part of the range ran before a resumed run's checkpoint.</param>
    public StepProfiler(Device? device, ProfileSteps? steps, TextWriter? notes = null)
    {
        _steps = steps;
        _driver = (device?.Runtime as CudaRuntime)?.Driver;
        _notes = notes;
    }

    /// <summary>True between the start of step First (or the first step run, if later) and the end of step Last.</summary>
    public bool Active { get; private set; }

    /// <summary>Call at the start of each step.</summary>
    public void BeginStep(long step)
    {
        if (_steps is null) return;
        bool first = !_seenAStep;
        _seenAStep = true;
        // A run resumed from a checkpoint begins after step 1: the steps of the range done
        // before it are not run again, so the capture covers what is left of the range.
        if (first && step > _steps.First)
            _notes?.WriteLine(step > _steps.Last
                ? $"laperm: warning: --profile-steps {_steps.First}:{_steps.Last} ran before the checkpoint this run resumes from (its first step is {step}); nothing will be captured."
                : $"laperm: warning: --profile-steps {_steps.First}:{_steps.Last}: {Steps(_steps.First, step - 1)} ran before the checkpoint this run resumes from; the capture covers {Steps(step, _steps.Last)}.");
        if (Active || !_steps.Contains(step) || (!first && step != _steps.First)) return;
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

    /// <summary>Call when the run has ended: a run resumed at its end ran no step, so nothing was captured; it says so.</summary>
    public void Finish()
    {
        if (_steps is not null && !_seenAStep)
            _notes?.WriteLine($"laperm: warning: --profile-steps {_steps.First}:{_steps.Last}: this run ran no step (it resumed after its last one): nothing was captured.");
    }

    private static string Steps(long first, long last) => first == last ? $"step {first}" : $"steps {first} to {last}";
}

/// <summary>
/// The trainer's <see cref="LaPerm.Core.Training.IStepTracer"/> for Nsight: one NVTX range per
/// step with the phases nested inside (no-ops without a profiler attached), and the
/// <c>--profile-steps</c> capture range.
/// </summary>
public sealed class NvtxStepTracer(StepProfiler profiler) : LaPerm.Core.Training.IStepTracer
{
    public StepProfiler Profiler => profiler;

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
