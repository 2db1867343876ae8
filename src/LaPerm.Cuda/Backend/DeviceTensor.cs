using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

/// <summary>
/// A tensor in device memory (host memory on <c>emu</c>), owned by one <see cref="CudaBackend"/>.
/// The buffer may be a few elements longer than <see cref="Tensor{T}.Length"/>: byte tensors are
/// padded to whole 32-bit words so they can be zeroed with one memset.
/// </summary>
public sealed class DeviceTensor<T> : Tensor<T> where T : unmanaged
{
    private readonly CudaBackend _backend;
    private readonly DeviceBuffer<T> _buffer;
    private readonly bool _ownsBuffer;
    private bool _disposed;

    /// <param name="ownsBuffer">False for a view under another shape (<see cref="CudaBackend.Reshape{T}"/>): disposing it frees nothing.</param>
    internal DeviceTensor(CudaBackend backend, Shape shape, DeviceBuffer<T> buffer, bool ownsBuffer = true) : base(shape)
    {
        _backend = backend;
        _buffer = buffer;
        _ownsBuffer = ownsBuffer;
    }

    public override IBackend Backend => _backend;

    /// <summary>The device allocation behind the tensor (its first <see cref="Tensor{T}.Length"/> elements).</summary>
    public DeviceBuffer<T> Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _buffer;
        }
    }

    /// <summary>The device address of the first element (a kernel argument).</summary>
    public ulong Pointer => Buffer.Pointer;

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsBuffer && _backend.BeforeFree()) _buffer.Dispose();
    }
}
