using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

public sealed partial class CpuBackend
{
    private ulong[][] _reconnectScratch = [];

    public IReconnectPlan PrepareReconnect(IReadOnlyList<ReconnectTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var weights = new float[targets.Count][];
        for (int t = 0; t < targets.Count; t++)
        {
            targets[t].Validate();
            weights[t] = Own(targets[t].Weights, $"reconnect target '{targets[t].Name}'").Data;
        }
        return new CpuReconnectPlan(targets, weights);
    }

    public void Reconnect(IReconnectPlan plan)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (plan is not CpuReconnectPlan cpuPlan)
            throw new ArgumentException("the reconnect plan was not prepared by a cpu backend", nameof(plan));
        if (_reconnectScratch.Length != Threads || (Threads > 0 && _reconnectScratch[0].Length < cpuPlan.MaxRowLength))
        {
            _reconnectScratch = new ulong[Threads][];
            for (int i = 0; i < Threads; i++) _reconnectScratch[i] = new ulong[cpuPlan.MaxRowLength];
        }
        // Rows are independent, so any split gives the same result.
        _partition.For(cpuPlan.TotalRows, 16, (cpuPlan, _reconnectScratch), static (s, worker, start, end) =>
            s.cpuPlan.SyncRows(start, end, s._reconnectScratch[worker]));
    }
}
