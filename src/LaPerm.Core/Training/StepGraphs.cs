using LaPerm.Core.Backend;

namespace LaPerm.Core.Training;

/// <summary>
/// Runs recurring sequences of ops (a training step of one batch size, a reconnection) either one
/// op at a time or, where the backend can capture (<see cref="IBackend.CanCapture"/>), as a
/// captured graph: the first run of each key is eager (the warm-up: scratch buffers and library
/// handles are made there), the second captures the ops and every run from then on replays them
/// with one launch. A capture that has gone stale (the backend replaced a buffer it used) is
/// made again. The ops must not wait on the host, and must read everything that changes from
/// step to step from the device (the step block of <see cref="IBackend.BeginStep"/>, uploaded
/// tensors), because a replay repeats their arguments as they were at capture.
/// </summary>
public sealed class StepGraphs(IBackend backend, bool enabled, IStepTracer? tracer = null) : IDisposable
{
    private readonly HashSet<int> _warm = [];
    private readonly Dictionary<int, ICapturedOps> _captured = [];

    /// <summary>Graphs requested and the backend can capture.</summary>
    public bool Enabled { get; } = enabled && backend.CanCapture;

    /// <summary>How many captures were made (tests, diagnostics).</summary>
    public int Captures { get; private set; }

    /// <summary>
    /// Runs <paramref name="enqueue"/>'s ops for <paramref name="key"/> (eagerly, or by replaying
    /// their capture). Returns what <paramref name="enqueue"/> returns on an eager run (false: a host
    /// check left the step out); a replay returns true.
    /// </summary>
    public bool Run(int key, Func<bool> enqueue)
    {
        if (!Enabled || _warm.Add(key)) return enqueue();
        if (!_captured.TryGetValue(key, out var graph) || !graph.IsValid)
        {
            graph?.Dispose();
            _captured.Remove(key);
            backend.BeginCapture();
            bool complete;
            try
            {
                complete = enqueue();
            }
            catch
            {
                // End the broken capture, but report what broke it, not what ending it says.
                try { backend.EndCapture().Dispose(); }
                catch (Exception) { }
                throw;
            }
            graph = backend.EndCapture();
            _captured[key] = graph;
            Captures++;
            if (!complete) throw new InvalidOperationException("captured ops must not depend on a host check (run such steps with graphs off)");
        }
        tracer?.Push(TrainingPhase.Graph);
        graph.Replay();
        tracer?.Pop();
        return true;
    }

    public void Dispose()
    {
        foreach (var graph in _captured.Values) graph.Dispose();
        _captured.Clear();
    }
}
