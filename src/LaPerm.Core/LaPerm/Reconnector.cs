using LaPerm.Core.Backend;
using LaPerm.Core.Model;

namespace LaPerm.Core.LaPerm;

/// <summary>Which tensors LaPerm permutes (the method's rows and skip flags).</summary>
public sealed record ReconnectOptions(bool SkipBias = false, bool SkipBatchNorm = false)
{
    public bool Includes(ParameterInfo p) => p.Kind switch
    {
        ParameterKind.Kernel => true,
        ParameterKind.Bias => !SkipBias,
        ParameterKind.BatchNorm => !SkipBatchNorm,
        _ => false,
    };
}

/// <summary>A row that is no longer a permutation of its initial row; names tensor and row.</summary>
public sealed class InvariantViolationException(string message) : Exception(message);

/// <summary>
/// LaPerm's synchronisation for one network: the sorted initial rows are captured once
/// (<see cref="IBackend.PrepareReconnect"/>, right after init) and every <see cref="Sync"/>
/// re-fills each row with them in the optimizer's rank order.
/// </summary>
public sealed class Reconnector : IDisposable
{
    private readonly IBackend _backend;
    private readonly IReconnectPlan _plan;

    public Reconnector(Network network, ReconnectOptions options)
    {
        _backend = network.Backend;
        Targets = [.. network.Parameters.Where(p => options.Includes(p.Info))
            .Select(p => new ReconnectTarget(p.Name, p.Value, p.Info.Rows, p.Info.RowLength))];
        foreach (var t in Targets) t.Validate();
        _plan = _backend.PrepareReconnect(Targets);
    }

    public IReadOnlyList<ReconnectTarget> Targets { get; }
    public int Syncs { get; private set; }

    public void Sync()
    {
        EnqueueSync();
        CountSync();
    }

    /// <summary>Enqueues one reconnection without counting it (what a captured sync holds).</summary>
    internal void EnqueueSync()
    {
        if (Targets.Count > 0) _backend.Reconnect(_plan);
    }

    /// <summary>Counts a sync whose reconnection was enqueued, directly or by replaying captured ops.</summary>
    internal void CountSync()
    {
        if (Targets.Count > 0) Syncs++;
    }

    /// <summary>
    /// Downloads every target and checks each row is, bit for bit, a permutation of its
    /// initial row; throws naming the first tensor and row that is not.
    /// </summary>
    public void VerifyInvariants()
    {
        for (int i = 0; i < Targets.Count; i++)
        {
            var t = Targets[i];
            var sorted0 = new float[t.Weights.Length];
            var current = new float[t.Weights.Length];
            _plan.DownloadSortedInitial(i, sorted0);
            _backend.Download(t.Weights, current);
            for (int r = 0; r < t.Rows; r++)
            {
                var row = current.AsSpan(r * t.RowLength, t.RowLength);
                var initial = sorted0.AsSpan(r * t.RowLength, t.RowLength);
                if (!Reconnection.IsPermutationOf(row, initial))
                    throw new InvariantViolationException(
                        $"LaPerm invariant broken after sync {Syncs}: row {r} of '{t.Name}' ({t.RowLength} values) is not a permutation of its initial values");
            }
        }
    }

    // ---- checkpoints (see Checkpoints/RunSession) ----
    internal void RestoreSyncs(int syncs) => Syncs = syncs;

    internal void DownloadSortedInitial(int index, Span<float> destination) => _plan.DownloadSortedInitial(index, destination);

    public void Dispose() => _plan.Dispose();
}
