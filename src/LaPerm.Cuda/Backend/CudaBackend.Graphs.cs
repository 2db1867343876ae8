using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// Capture: the backend's ops go onto one stream, so recording that stream (cuStreamBeginCapture
// on cuda, the emulator's recorder on emu) records the ops, and one graph launch replays them.
// Every op is capture-safe once warmed up (no host copy, allocation or wait inside a step); what
// is not (a scratch buffer that must grow, a new Adam table) fails loudly during capture. A
// buffer replaced after a capture makes the graph stale (IsValid), and the caller captures again.
public sealed partial class CudaBackend
{
    private bool _capturing;
    private bool _captureUnfinished;   // from BeginCapture until a graph is made: what AbandonCapture gives up

    /// <summary>Counts replaced scratch buffers, rewritten optimizer tables and freed tensors: graphs captured before a change may refer to memory that is gone or holds something else.</summary>
    private long _bufferGeneration;

    public bool CanCapture => true;

    public void BeginCapture()
    {
        Begin();   // Adam updates recorded before the capture are launched before it, not inside
        if (_capturing) throw new InvalidOperationException("the backend is already capturing");
        Stream.BeginCapture();
        _capturing = true;
        _captureUnfinished = true;
    }

    public ICapturedOps EndCapture()
    {
        BeginWithoutFlush();
        if (!_capturing) throw new InvalidOperationException("the backend is not capturing");
        try
        {
            FlushUpdates();   // the step's batched optimizer launch belongs inside the graph
        }
        catch
        {
            _capturing = false;
            try { Stream.EndCapture().Dispose(); }
            catch (Exception e) when (e is Interop.CudaException or InvalidOperationException) { }   // broken anyway: report what broke it
            throw;
        }
        _capturing = false;
        using DeviceGraph graph = Stream.EndCapture();
        var captured = new CapturedOps(this, graph.Instantiate(), _bufferGeneration, _device.WorkspaceGeneration, graph.NodeCount);
        _captureUnfinished = false;
        return captured;
    }

    public void AbandonCapture()
    {
        if (!_captureUnfinished) return;   // nothing to give up: pending eager updates stay
        _captureUnfinished = false;
        // Updates recorded for the failed capture: the eager run that follows records them again
        // (left here, the next flush would apply them twice).
        _adam.Pending.Clear();
        _sgd.Pending.Clear();
        if (!_capturing) return;
        _capturing = false;
        try { Stream.EndCapture().Dispose(); }
        catch (Exception e) when (e is Interop.CudaException or InvalidOperationException) { }   // invalidated: nothing to keep
    }

    private sealed class CapturedOps(CudaBackend backend, GraphExecutable executable, long generation, long workspaceGeneration, int nodes)
        : ICapturedOps
    {
        public int Nodes => nodes;

        // The workspace belongs to the device (every backend on it shares it), the rest to the backend.
        public bool IsValid => !backend.IsDisposed && backend._bufferGeneration == generation
            && backend._device.WorkspaceGeneration == workspaceGeneration;

        public void Replay()
        {
            if (!IsValid) throw new InvalidOperationException("the captured ops refer to a buffer the backend has replaced since; capture them again");
            backend.Begin();
            executable.Launch(backend.Stream);
        }

        public void Dispose() => executable.Dispose();
    }
}
