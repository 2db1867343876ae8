using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

/// <summary>
/// Row-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C on device pointers (IBackend.Gemm's
/// semantics). On <c>cuda</c>: cuBLAS SGEMM on a handle of its own whose math mode is the
/// backend's <see cref="GemmMath"/> (pedantic FP32 unless TF32 is asked for), with an explicit
/// workspace so it can be captured into a graph after the first call. On <c>emu</c>: the
/// runtime's host GEMM (which also records into a capturing stream).
/// </summary>
internal sealed unsafe class DeviceGemm : IDisposable
{
    private const long WorkspaceBytes = 32L << 20;

    private readonly Device _device;
    private readonly Cublas? _cublas;
    private readonly nint _handle;
    private readonly DeviceBuffer<byte>? _workspace;
    private bool _disposed;

    public DeviceGemm(Device device, GemmMath math)
    {
        _device = device;
        Math = math;
        if (device.Kind != "cuda") return;
        _cublas = Cublas.TryLoad(out string? reason) ?? throw new InvalidOperationException($"cuBLAS unavailable: {reason}.");
        device.MakeCurrent();
        _handle = _cublas.Create();
        _workspace = device.Allocate<byte>(WorkspaceBytes);
        _cublas.SetMathMode(_handle, math == GemmMath.Tf32 ? CublasMath.Tf32TensorOp : CublasMath.Pedantic);
    }

    public GemmMath Math { get; }

    /// <summary>"cuBLAS 13.0.2, pedantic FP32" or "host GEMM".</summary>
    public string Description => _cublas is null
        ? "host GEMM"
        : $"cuBLAS {CudaInfo.FormatLibraryVersion(_cublas.LibraryVersion())}, {(Math == GemmMath.Tf32 ? "TF32 tensor cores" : "pedantic FP32")}";

    public void Run(DeviceStream stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, ulong b, float beta, ulong c)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_cublas is null)
        {
            _device.Runtime.Gemm(stream.Handle, transposeA, transposeB, m, n, k, alpha, a, (long)m * k, b, (long)k * n, beta, c, (long)m * n, 1);
            return;
        }
        _cublas.BindStream(_handle, stream.Handle, _workspace!.Pointer, WorkspaceBytes);
        var g = RowMajorGemm.Of(transposeA, transposeB, m, n, k);
        _cublas.Sgemm(_handle, g.OpB, g.OpA, n, m, k, alpha, b, g.Ldb, a, g.Lda, beta, c, g.Ldc);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_cublas is null) return;
        _device.MakeCurrent();
        _device.Synchronize();
        _cublas.Destroy(_handle);
        _workspace!.Dispose();
    }
}
