namespace LaPerm.Cuda.Runtime;

/// <summary>
/// Page-locked host memory of <see cref="Length"/> elements: device copies into it run
/// asynchronously (record an event after the copy to know when it is there). For small,
/// frequent readbacks; allocation is expensive, so keep one. No finalizer: dispose explicitly.
/// </summary>
public sealed unsafe class HostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly Device _device;
    private T* _pointer;

    internal HostBuffer(Device device, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _device = device;
        Length = length;
        _pointer = (T*)device.Runtime.AllocateHost((long)length * sizeof(T));
    }

    public int Length { get; }

    /// <summary>The host memory; its contents are defined once the copy into it has completed.</summary>
    public Span<T> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return new Span<T>(_pointer, Length);
        }
    }

    /// <summary>Enqueues a copy of <see cref="Length"/> elements from device address <paramref name="source"/>; does not wait.</summary>
    public void CopyFromDeviceAsync(ulong source, DeviceStream stream)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        if (stream.Device != _device) throw new ArgumentException("the stream belongs to another device");
        _device.Runtime.CopyDeviceToHostAsync(_pointer, source, (long)Length * sizeof(T), stream.Handle);
    }

    public void Dispose()
    {
        if (_pointer == null) return;
        _device.Runtime.FreeHost(_pointer);
        _pointer = null;
    }
}
