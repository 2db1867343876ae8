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
///
/// A capture that fails (an op the driver's stream capture refuses that the warm-up could not
/// reveal) does not end the run: the capture is given up (<see cref="IBackend.AbandonCapture"/>),
/// the same ops run eagerly, and that key runs eagerly from then on, as with graphs off; the
/// reason goes to <paramref name="warnings"/> once, naming the ops by <paramref name="describeKey"/>,
/// and stays in <see cref="Failures"/>.
/// </summary>
public sealed class StepGraphs(IBackend backend, bool enabled, IStepTracer? tracer = null, TextWriter? warnings = null,
    Func<int, string>? describeKey = null) : IDisposable
{
    private readonly HashSet<int> _warm = [];
    private readonly Dictionary<int, ICapturedOps> _captured = [];
    private readonly Dictionary<int, string> _failures = [];

    /// <summary>Graphs requested and the backend can capture.</summary>
    public bool Enabled { get; } = enabled && backend.CanCapture;

    /// <summary>How many captures were made (tests, diagnostics).</summary>
    public int Captures { get; private set; }

    /// <summary>The keys whose capture failed, with the reason: they run eagerly.</summary>
    public IReadOnlyDictionary<int, string> Failures => _failures;

    /// <summary>The node count of <paramref name="key"/>'s captured graph; null before its capture, and for eager runs.</summary>
    public int? Nodes(int key) => _captured.TryGetValue(key, out var graph) ? graph.Nodes : null;

    /// <summary>Each captured key's node count, in key order.</summary>
    public IReadOnlyList<(int Key, int Nodes)> NodeCounts => [.. _captured.OrderBy(c => c.Key).Select(c => (c.Key, c.Value.Nodes))];

    /// <summary>Whether <paramref name="key"/>'s runs are replays (false: eager, by choice or after a failed capture).</summary>
    public bool Replays(int key) => Enabled && !_failures.ContainsKey(key);

    /// <summary>
    /// Runs <paramref name="enqueue"/>'s ops for <paramref name="key"/> (eagerly, or by replaying
    /// their capture). Returns what <paramref name="enqueue"/> returns on an eager run (false: a host
    /// check left the step out); a replay returns true.
    /// </summary>
    public bool Run(int key, Func<bool> enqueue)
    {
        if (!Replays(key) || _warm.Add(key)) return enqueue();
        if (!_captured.TryGetValue(key, out var graph) || !graph.IsValid)
        {
            graph?.Dispose();
            _captured.Remove(key);
            bool complete;
            try
            {
                backend.BeginCapture();
                complete = enqueue();
                graph = backend.EndCapture();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Nothing captured has run: give the capture up and run the ops eagerly, now and
                // from now on. A fault that is not about capturing throws again in the eager run,
                // as it would with graphs off, and then no warning is printed.
                try { backend.AbandonCapture(); }
                catch (Exception abandoning) { throw new AggregateException("a capture failed, and so did giving it up", e, abandoning); }
                bool ran = enqueue();
                string reason = e.Message.ReplaceLineEndings(" ").TrimEnd('.');
                _failures[key] = reason;
                string what = describeKey?.Invoke(key) ?? $"the ops of key {key}";
                warnings?.WriteLine($"warning: capturing {what} as a CUDA graph failed ({reason}); it runs eagerly from now on, as with --no-graphs.");
                return ran;
            }
            _captured[key] = graph;
            Captures++;
            if (!complete) throw new InvalidOperationException("captured ops must not depend on a host check (run such steps with graphs off)");
        }
        using (new TracerPhase(tracer, TrainingPhase.Graph)) graph.Replay();
        return true;
    }

    public void Dispose()
    {
        foreach (var graph in _captured.Values) graph.Dispose();
        _captured.Clear();
    }
}
