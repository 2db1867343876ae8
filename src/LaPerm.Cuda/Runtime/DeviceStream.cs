namespace LaPerm.Cuda.Runtime;

/// <summary>An in-order queue of device work. Only synchronising calls wait for it.</summary>
public sealed class DeviceStream : IDisposable
{
    private bool _disposed;

    internal DeviceStream(Device device, nint handle)
    {
        Device = device;
        Handle = handle;
    }

    public Device Device { get; }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return field;
        }
    }

    /// <summary>Waits until everything enqueued on this stream has finished.</summary>
    public void Synchronize() => Device.Runtime.SynchronizeStream(Handle);

    /// <summary>
    /// Starts recording the stream's work into a graph instead of running it (kernels,
    /// device-to-device copies, memsets and GEMMs). Do one warm-up pass before capturing:
    /// library handles and workspaces are not created safely during capture.
    /// </summary>
    public void BeginCapture() => Device.Runtime.BeginCapture(Handle);

    /// <summary>Stops recording and returns the captured graph.</summary>
    public DeviceGraph EndCapture() => new(Device, Device.Runtime.EndCapture(Handle));

    public void Dispose()
    {
        if (_disposed) return;
        Device.Runtime.DestroyStream(Handle);
        _disposed = true;
    }
}

/// <summary>A point in a stream, for timing (milliseconds between two recorded events).</summary>
public sealed class DeviceEvent : IDisposable
{
    private readonly Device _device;
    private readonly nint _handle;
    private bool _disposed;

    internal DeviceEvent(Device device, nint handle)
    {
        _device = device;
        _handle = handle;
    }

    public void Record(DeviceStream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.Runtime.RecordEvent(_handle, stream.Handle);
    }

    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.Runtime.SynchronizeEvent(_handle);
    }

    /// <summary>True when the work recorded before this event has completed; never waits.</summary>
    public bool IsComplete
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _device.Runtime.QueryEvent(_handle);
        }
    }

    /// <summary>Milliseconds from <paramref name="start"/> to this event; waits for this event first.</summary>
    public float ElapsedMillisecondsSince(DeviceEvent start)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Synchronize();
        return _device.Runtime.ElapsedMilliseconds(start._handle, _handle);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _device.Runtime.DestroyEvent(_handle);
        _disposed = true;
    }
}

/// <summary>A captured sequence of stream work; instantiate it to replay.</summary>
public sealed class DeviceGraph : IDisposable
{
    private readonly Device _device;
    private bool _disposed;

    internal DeviceGraph(Device device, nint handle)
    {
        _device = device;
        Handle = handle;
    }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return field;
        }
    }

    public GraphExecutable Instantiate() => new(_device, _device.Runtime.Instantiate(Handle));

    /// <summary>Its nodes: each kernel launch (ours and cuBLAS's/cuDNN's), copy and memset captured.</summary>
    public int NodeCount => _device.Runtime.GraphNodeCount(Handle);

    public void Dispose()
    {
        if (_disposed) return;
        _device.Runtime.DestroyGraph(Handle);
        _disposed = true;
    }
}

/// <summary>An instantiated graph: replays the captured work with one launch.</summary>
public sealed class GraphExecutable : IDisposable
{
    private readonly Device _device;
    private readonly nint _handle;
    private bool _disposed;

    internal GraphExecutable(Device device, nint handle)
    {
        _device = device;
        _handle = handle;
    }

    public void Launch(DeviceStream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.Runtime.LaunchGraph(_handle, stream.Handle);
    }

    /// <summary>
    /// Takes over the parameters of <paramref name="graph"/> (same operations, new arguments).
    /// False when the topology differs; then instantiate the new graph instead.
    /// </summary>
    public bool TryUpdate(DeviceGraph graph)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _device.Runtime.UpdateGraph(_handle, graph.Handle);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _device.Runtime.DestroyGraphExec(_handle);
        _disposed = true;
    }
}
