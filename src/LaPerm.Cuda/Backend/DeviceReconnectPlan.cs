using LaPerm.Core.Backend;
using LaPerm.Cuda.Reconnect;

namespace LaPerm.Cuda.Backend;

/// <summary>A prepared reconnection on the device: the sorted initial rows and the descriptor table stay resident.</summary>
internal sealed class DeviceReconnectPlan : IReconnectPlan
{
    public DeviceReconnectPlan(CudaBackend backend, IReadOnlyList<ReconnectTarget> targets, DeviceReconnector reconnector)
    {
        Backend = backend;
        Targets = targets;
        Reconnector = reconnector;
    }

    public CudaBackend Backend { get; }
    public IReadOnlyList<ReconnectTarget> Targets { get; }
    public DeviceReconnector Reconnector { get; }

    public void DownloadSortedInitial(int index, Span<float> destination) => Reconnector.DownloadSortedInitial(index, destination);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // A captured reconnection graph refers to the table, scratch and sorted rows freed here,
        // whose addresses the next allocation may get: BeforeFree makes it stale.
        if (Backend.BeforeFree()) Reconnector.Dispose();
    }

    private bool _disposed;
}
