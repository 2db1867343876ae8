using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

/// <summary>
/// A tensor in host memory, owned by one <see cref="CpuBackend"/>. The storage is a pinned
/// array (on the pinned object heap) so the SIMD kernels can take its address without
/// pinning on every op; <see cref="Span"/> is the accessor for trainers and loaders.
/// </summary>
public sealed class CpuTensor<T> : Tensor<T> where T : unmanaged
{
    private readonly CpuBackend _backend;
    private T[]? _data;

    internal CpuTensor(CpuBackend backend, Shape shape) : base(shape)
    {
        _backend = backend;
        _data = GC.AllocateArray<T>(shape.Length, pinned: true);
    }

    /// <summary>Another shape over <paramref name="data"/> (<see cref="CpuBackend.Reshape{T}"/>).</summary>
    internal CpuTensor(CpuBackend backend, Shape shape, T[] data) : base(shape)
    {
        _backend = backend;
        _data = data;
    }

    public override IBackend Backend => _backend;

    /// <summary>The elements, row-major. Ops run synchronously on the CPU, so the span is always current.</summary>
    public Span<T> Span => Data;

    /// <summary>The elements as <see cref="Memory{T}"/> (for async consumers).</summary>
    public Memory<T> Memory => Data;

    internal T[] Data => _data ?? throw new ObjectDisposedException(ToString(), "the tensor was disposed");

    public override void Dispose() => _data = null;
}
