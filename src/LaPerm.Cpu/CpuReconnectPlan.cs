using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

/// <summary>
/// Sorted initial rows of every target, in host memory, plus a flat row table so one
/// reconnection runs in parallel over all rows of all targets with a static split.
/// </summary>
internal sealed class CpuReconnectPlan : IReconnectPlan
{
    private readonly float[][] _sortedInitial;
    private readonly float[][] _weights;
    private readonly int[] _firstRow;   // global index of each target's first row; last entry = total rows
    private bool _disposed;

    public CpuReconnectPlan(IReadOnlyList<ReconnectTarget> targets, float[][] weights)
    {
        Targets = targets;
        _weights = weights;
        _sortedInitial = new float[targets.Count][];
        _firstRow = new int[targets.Count + 1];
        for (int t = 0; t < targets.Count; t++)
        {
            var target = targets[t];
            var sorted = new float[target.Weights.Length];
            for (int r = 0; r < target.Rows; r++)
            {
                int offset = r * target.RowLength;
                Reconnection.SortRow(weights[t].AsSpan(offset, target.RowLength), sorted.AsSpan(offset, target.RowLength));
            }
            _sortedInitial[t] = sorted;
            _firstRow[t + 1] = checked(_firstRow[t] + target.Rows);
            MaxRowLength = Math.Max(MaxRowLength, target.RowLength);
        }
    }

    public IReadOnlyList<ReconnectTarget> Targets { get; }

    public int TotalRows => _firstRow[^1];

    public int MaxRowLength { get; }

    public void DownloadSortedInitial(int index, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var sorted = _sortedInitial[index];
        if (destination.Length != sorted.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, target '{Targets[index].Name}' has {sorted.Length}", nameof(destination));
        sorted.CopyTo(destination);
    }

    /// <summary>Synchronises global rows [start, end) using <paramref name="scratch"/> (at least MaxRowLength).</summary>
    public void SyncRows(int start, int end, Span<ulong> scratch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int t = Array.BinarySearch(_firstRow, start);
        if (t < 0) t = ~t - 1;
        for (int row = start; row < end; row++)
        {
            while (row >= _firstRow[t + 1]) t++;
            int length = Targets[t].RowLength;
            int offset = (row - _firstRow[t]) * length;
            Reconnection.SyncRow(_weights[t].AsSpan(offset, length), _sortedInitial[t].AsSpan(offset, length), scratch);
        }
    }

    public void Dispose() => _disposed = true;
}
