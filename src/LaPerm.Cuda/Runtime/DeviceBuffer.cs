namespace LaPerm.Cuda.Runtime;

/// <summary>
/// A typed device allocation of <see cref="Length"/> elements. Copies are length-checked;
/// they go on the given stream (the device's default stream when omitted). Pass
/// <see cref="Pointer"/> as a kernel argument. No finalizer: dispose explicitly.
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly Device _device;
    private bool _disposed;

    internal DeviceBuffer(Device device, long length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), $"a buffer length must not be negative, got {length}");
        _device = device;
        Length = length;
        ByteLength = checked(length * sizeof(T));
        Pointer = device.Runtime.Allocate(ByteLength);
    }

    public long Length { get; }

    public long ByteLength { get; }

    public Device Device => _device;

    /// <summary>The device address (a host address on emu); kernel argument for a <c>T*</c> parameter.</summary>
    public ulong Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return field;
        }
    }

    /// <summary>The address of element <paramref name="offset"/>, bounds-checked.</summary>
    public ulong PointerAt(long offset)
    {
        if ((ulong)offset > (ulong)Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"offset {offset} is outside a buffer of {Length} elements");
        return Pointer + (ulong)(offset * sizeof(T));
    }

    /// <summary>Copies all of <paramref name="source"/> to the buffer's start; the span may be reused on return.</summary>
    public void CopyFrom(ReadOnlySpan<T> source, DeviceStream? stream = null) => CopyFrom(source, 0, stream);

    public void CopyFrom(ReadOnlySpan<T> source, long destinationOffset, DeviceStream? stream = null)
    {
        CheckRange(destinationOffset, source.Length, "host-to-device copy");
        if (source.IsEmpty) return;
        fixed (T* p = source)
            _device.Runtime.CopyHostToDevice(PointerAt(destinationOffset), p, (long)source.Length * sizeof(T), StreamHandle(stream));
    }

    /// <summary>Copies the buffer's first destination.Length elements to the host; waits for the stream.</summary>
    public void CopyTo(Span<T> destination, DeviceStream? stream = null) => CopyTo(0, destination, stream);

    public void CopyTo(long sourceOffset, Span<T> destination, DeviceStream? stream = null)
    {
        CheckRange(sourceOffset, destination.Length, "device-to-host copy");
        if (destination.IsEmpty) return;
        fixed (T* p = destination)
            _device.Runtime.CopyDeviceToHost(p, PointerAt(sourceOffset), (long)destination.Length * sizeof(T), StreamHandle(stream));
    }

    /// <summary>Downloads the whole buffer into a new array (tests, checkpoints).</summary>
    public T[] ToArray(DeviceStream? stream = null)
    {
        var result = new T[checked((int)Length)];
        CopyTo(result, stream);
        return result;
    }

    /// <summary>Copies <paramref name="count"/> elements to another buffer of the same device, stream-ordered.</summary>
    public void CopyTo(DeviceBuffer<T> destination, long count, long sourceOffset = 0, long destinationOffset = 0, DeviceStream? stream = null)
    {
        if (destination._device != _device) throw new ArgumentException("device-to-device copy between buffers of different devices");
        CheckRange(sourceOffset, count, "device-to-device copy (source)");
        destination.CheckRange(destinationOffset, count, "device-to-device copy (destination)");
        if (count == 0) return;
        _device.Runtime.CopyDeviceToDevice(destination.PointerAt(destinationOffset), PointerAt(sourceOffset), count * sizeof(T), StreamHandle(stream));
    }

    /// <summary>Sets every element to <paramref name="value"/> (4-byte element types only, via memset D32).</summary>
    public void Fill(T value, DeviceStream? stream = null)
    {
        if (sizeof(T) != 4) throw new NotSupportedException($"Fill needs a 4-byte element type, {typeof(T).Name} has {sizeof(T)} bytes");
        if (Length == 0) return;
        _device.Runtime.Memset32(Pointer, *(uint*)&value, Length, StreamHandle(stream));
    }

    private nint StreamHandle(DeviceStream? stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (stream is not null && stream.Device != _device) throw new ArgumentException("the stream belongs to another device");
        return (stream ?? _device.Stream).Handle;
    }

    private void CheckRange(long offset, long count, string what)
    {
        if (offset < 0 || count < 0 || offset + count > Length)
            throw new ArgumentOutOfRangeException(nameof(count),
                $"{what} of {count} element(s) at offset {offset} does not fit a buffer of {Length} {typeof(T).Name} elements");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _device.Runtime.Free(Pointer, ByteLength);
        _disposed = true;
    }

    public override string ToString() => $"DeviceBuffer<{typeof(T).Name}>[{Length}] on {_device.Kind}";
}
