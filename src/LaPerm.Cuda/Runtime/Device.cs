using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// A GPU (<c>cuda</c>) or the host emulator (<c>emu</c>) behind one API: the same
/// orchestration code allocates, copies, launches kernels, captures graphs and calls GEMM on
/// either. Owns its default stream; everything it creates must be disposed before it.
/// On <c>cuda</c>, call from the thread that opened it, or call <see cref="MakeCurrent"/> first
/// (a context is current per OS thread).
/// </summary>
public sealed class Device : IDisposable
{
    private readonly IDeviceRuntime _runtime;
    private bool _disposed;

    private Device(IDeviceRuntime runtime)
    {
        _runtime = runtime;
        Stream = new DeviceStream(this, runtime.CreateStream());
    }

    /// <summary>Opens "cuda" (optionally "cuda:N" for GPU N) or "emu".</summary>
    /// <exception cref="InvalidOperationException">The kind is unavailable here; the message says why in one sentence.</exception>
    public static Device Open(string kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (kind == "emu") return new Device(new EmulatorRuntime());
        if (kind == "cuda") return new Device(new CudaRuntime(0));
        if (kind.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(kind.AsSpan(5), out int ordinal))
            return new Device(new CudaRuntime(ordinal));
        throw new ArgumentException($"device kind '{kind}' is unknown; expected \"cuda\", \"cuda:N\" or \"emu\"", nameof(kind));
    }

    /// <summary>"cuda" or "emu".</summary>
    public string Kind => _runtime.Kind;

    /// <summary>The GPU's name, or a description of the emulator.</summary>
    public string Name => _runtime.Name;

    /// <summary>The stream that work goes to unless another is given.</summary>
    public DeviceStream Stream { get; }

    internal IDeviceRuntime Runtime
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _runtime;
        }
    }

    /// <summary>Makes this device's context current on the calling thread.</summary>
    public void MakeCurrent() => Runtime.MakeCurrent();

    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => new(this, length);

    public DeviceStream CreateStream() => new(this, Runtime.CreateStream());

    public DeviceEvent CreateEvent() => new(this, Runtime.CreateEvent());

    /// <summary>
    /// Loads an embedded PTX file (e.g. "axpy.ptx") and the kernels it declares. On emu the
    /// kernels come from the emulator library, so no PTX is needed.
    /// </summary>
    public DeviceModule LoadModule(string ptxFileName)
    {
        PtxFile? file = PtxCatalog.Embedded.Find(ptxFileName);
        byte[] ptx = file is null ? [] : PtxCatalog.Embedded.ReadPtx(file.FileName);
        IReadOnlyList<string> kernels = file?.Kernels ?? [];
        return new DeviceModule(this, ptxFileName, Runtime.LoadModule(ptxFileName, ptx, kernels));
    }

    /// <summary>Free and total device memory in bytes.</summary>
    public (long Free, long Total) MemoryInfo() => Runtime.MemoryInfo();

    /// <summary>Waits for the default stream.</summary>
    public void Synchronize() => Stream.Synchronize();

    /// <summary>
    /// Row-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C (IBackend.Gemm's semantics):
    /// cuBLAS SGEMM on <c>cuda</c>, a C# GEMM on <c>emu</c>. With beta = 0, C is not read.
    /// </summary>
    public void Gemm(DeviceStream stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        DeviceBuffer<float> a, DeviceBuffer<float> b, float beta, DeviceBuffer<float> c) =>
        GemmStridedBatched(stream, transposeA, transposeB, m, n, k, alpha, a, (long)m * k, b, (long)k * n, beta, c, (long)m * n, 1);

    /// <summary><see cref="Gemm"/> over <paramref name="batchCount"/> matrices at the given element strides.</summary>
    public void GemmStridedBatched(DeviceStream stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        DeviceBuffer<float> a, long strideA, DeviceBuffer<float> b, long strideB, float beta, DeviceBuffer<float> c, long strideC, int batchCount)
    {
        if (m <= 0 || n <= 0 || k <= 0 || batchCount <= 0)
            throw new ArgumentException($"GEMM sizes must be positive, got m={m} n={n} k={k} batch={batchCount}");
        RequireExtent(a, strideA, (long)m * k, batchCount, "A");
        RequireExtent(b, strideB, (long)k * n, batchCount, "B");
        RequireExtent(c, strideC, (long)m * n, batchCount, "C");
        Runtime.Gemm(stream.Handle, transposeA, transposeB, m, n, k, alpha,
            a.Pointer, strideA, b.Pointer, strideB, beta, c.Pointer, strideC, batchCount);
    }

    private static void RequireExtent(DeviceBuffer<float> buffer, long stride, long matrix, int batchCount, string name)
    {
        long needed = stride * (batchCount - 1) + matrix;
        if (buffer.Length < needed)
            throw new ArgumentException($"GEMM operand {name} has {buffer.Length} elements, expected at least {needed}");
    }

    public void Dispose()
    {
        if (_disposed) return;
        Stream.Dispose();
        _disposed = true;
        _runtime.Dispose();
    }

    public override string ToString() => $"{Kind}: {Name}";
}
