using LaPerm.Core.Backend;
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

    /// <summary>The GPU's number (as `laperm info` lists it); null on emu.</summary>
    public int? GpuOrdinal => _runtime is CudaRuntime cuda ? cuda.Ordinal : null;

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

    /// <summary>A buffer of <paramref name="length"/> elements; running out of memory becomes a <see cref="DeviceMemoryException"/> with the sizes.</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        try
        {
            return new DeviceBuffer<T>(this, length);
        }
        catch (Exception e) when (DeviceMemoryException.IsOutOfMemory(e))
        {
            var (free, total) = MemoryInfo();
            throw new DeviceMemoryException(Name, length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), free, total, e);
        }
    }

    public DeviceStream CreateStream() => new(this, Runtime.CreateStream());

    public DeviceEvent CreateEvent() => new(this, Runtime.CreateEvent());

    /// <summary>Page-locked host memory for asynchronous readbacks.</summary>
    public HostBuffer<T> AllocateHost<T>(int length) where T : unmanaged => new(this, length);

    /// <summary>
    /// Loads an embedded PTX file (e.g. "axpy.ptx") and the kernels it declares. On emu the
    /// kernels come from the emulator library, so no PTX is needed.
    /// </summary>
    public DeviceModule LoadModule(string ptxFileName)
    {
        PtxCatalog catalog = PtxCatalog.Active;
        PtxFile? file = catalog.Find(ptxFileName);
        byte[] ptx = file is null ? [] : catalog.ReadPtx(file.FileName);
        IReadOnlyList<string> kernels = file?.Kernels ?? [];
        return new DeviceModule(this, ptxFileName, Runtime.LoadModule(ptxFileName, ptx, kernels));
    }

    /// <summary>Null when cuDNN (emu: its stand-in) is usable, after loading it if needed; else why not.</summary>
    public string? LibraryUnavailableReason() => Runtime.LibraryUnavailableReason();

    /// <summary>Free and total device memory in bytes.</summary>
    public (long Free, long Total) MemoryInfo() => Runtime.MemoryInfo();

    /// <summary>Counts replacements of the libraries' shared workspace: a graph captured before one is stale.</summary>
    public long WorkspaceGeneration => Runtime.WorkspaceGeneration;

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

    /// <summary>y = conv(x, w) (NCHW, OIHW, no bias; overwrites y): cuDNN on <c>cuda</c>, the CPU backend on <c>emu</c>.</summary>
    public void ConvForward(DeviceStream stream, ConvGeometry g, DeviceBuffer<float> x, DeviceBuffer<float> w, DeviceBuffer<float> y) =>
        Convolution(stream, ConvolutionDirection.Forward, g, (x, g.InputLength, "x"), (w, g.WeightLength, "w"), (y, g.OutputLength, "y"));

    /// <summary>dx = conv_transpose(dy, w) (overwrites dx).</summary>
    public void ConvBackwardData(DeviceStream stream, ConvGeometry g, DeviceBuffer<float> dy, DeviceBuffer<float> w, DeviceBuffer<float> dx) =>
        Convolution(stream, ConvolutionDirection.BackwardData, g, (dy, g.OutputLength, "dy"), (w, g.WeightLength, "w"), (dx, g.InputLength, "dx"));

    /// <summary>dw = correlation of x and dy summed over the batch (overwrites dw).</summary>
    public void ConvBackwardFilter(DeviceStream stream, ConvGeometry g, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw) =>
        Convolution(stream, ConvolutionDirection.BackwardFilter, g, (x, g.InputLength, "x"), (dy, g.OutputLength, "dy"), (dw, g.WeightLength, "dw"));

    private void Convolution(DeviceStream stream, ConvolutionDirection direction, ConvGeometry g,
        (DeviceBuffer<float> Buffer, int Length, string Name) first, (DeviceBuffer<float> Buffer, int Length, string Name) second,
        (DeviceBuffer<float> Buffer, int Length, string Name) output)
    {
        ArgumentNullException.ThrowIfNull(g);
        static void Require((DeviceBuffer<float> Buffer, int Length, string Name) operand, ConvGeometry g)
        {
            if (operand.Buffer.Length < operand.Length)
                throw new ArgumentException($"convolution operand {operand.Name} has {operand.Buffer.Length} elements, expected at least {operand.Length} for {g}");
        }
        Require(first, g);
        Require(second, g);
        Require(output, g);
        Runtime.Convolution(stream.Handle, direction, g, first.Buffer.Pointer, second.Buffer.Pointer, output.Buffer.Pointer);
    }

    /// <summary>y = pool(x), overwritten: cuDNN on <c>cuda</c>, the CPU backend on <c>emu</c>.</summary>
    public void PoolingForward(DeviceStream stream, PoolingWindow window, DeviceBuffer<float> x, DeviceBuffer<float> y)
    {
        ArgumentNullException.ThrowIfNull(window);
        Require(x, window.InputLength, "pooling operand x");
        Require(y, window.OutputLength, "pooling operand y");
        Runtime.PoolingForward(stream.Handle, window, x.Pointer, y.Pointer);
    }

    /// <summary>dx from the forward's x, y and dy (overwritten).</summary>
    public void PoolingBackward(DeviceStream stream, PoolingWindow window, DeviceBuffer<float> x, DeviceBuffer<float> y,
        DeviceBuffer<float> dy, DeviceBuffer<float> dx)
    {
        ArgumentNullException.ThrowIfNull(window);
        Require(x, window.InputLength, "pooling operand x");
        Require(y, window.OutputLength, "pooling operand y");
        Require(dy, window.OutputLength, "pooling operand dy");
        Require(dx, window.InputLength, "pooling operand dx");
        Runtime.PoolingBackward(stream.Handle, window, x.Pointer, y.Pointer, dy.Pointer, dx.Pointer);
    }

    /// <summary>Training batch-norm with IBackend's semantics: cuDNN on <c>cuda</c>, the CPU backend on <c>emu</c>.</summary>
    public void BatchNormForwardTraining(DeviceStream stream, BatchNormShape shape, float epsilon, float momentum,
        DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> runningMean,
        DeviceBuffer<float> runningVariance, DeviceBuffer<float> savedMean, DeviceBuffer<float> savedInvStd, DeviceBuffer<float> y)
    {
        Require(x, shape.Length, "batch-norm operand x");
        Require(y, shape.Length, "batch-norm operand y");
        RequireChannels(shape, gamma, beta, runningMean, runningVariance, savedMean, savedInvStd);
        Runtime.BatchNormForwardTraining(stream.Handle, shape, epsilon, momentum, x.Pointer, gamma.Pointer, beta.Pointer,
            runningMean.Pointer, runningVariance.Pointer, savedMean.Pointer, savedInvStd.Pointer, y.Pointer);
    }

    public void BatchNormForwardInference(DeviceStream stream, BatchNormShape shape, float epsilon,
        DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> mean,
        DeviceBuffer<float> variance, DeviceBuffer<float> y)
    {
        Require(x, shape.Length, "batch-norm operand x");
        Require(y, shape.Length, "batch-norm operand y");
        RequireChannels(shape, gamma, beta, mean, variance);
        Runtime.BatchNormForwardInference(stream.Handle, shape, epsilon, x.Pointer, gamma.Pointer, beta.Pointer, mean.Pointer, variance.Pointer, y.Pointer);
    }

    public void BatchNormBackward(DeviceStream stream, BatchNormShape shape, float epsilon, DeviceBuffer<float> x, DeviceBuffer<float> dy,
        DeviceBuffer<float> gamma, DeviceBuffer<float> savedMean, DeviceBuffer<float> savedInvStd,
        DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta)
    {
        Require(x, shape.Length, "batch-norm operand x");
        Require(dy, shape.Length, "batch-norm operand dy");
        Require(dx, shape.Length, "batch-norm operand dx");
        RequireChannels(shape, gamma, savedMean, savedInvStd, dGamma, dBeta);
        Runtime.BatchNormBackward(stream.Handle, shape, epsilon, x.Pointer, dy.Pointer, gamma.Pointer, savedMean.Pointer, savedInvStd.Pointer,
            dx.Pointer, dGamma.Pointer, dBeta.Pointer);
    }

    private static void RequireChannels(BatchNormShape shape, params ReadOnlySpan<DeviceBuffer<float>> perChannel)
    {
        if (shape.Batch <= 0 || shape.Channels <= 0 || shape.Spatial <= 0)
            throw new ArgumentException($"batch-norm sizes must be positive, got {shape}");
        foreach (var buffer in perChannel) Require(buffer, shape.Channels, "batch-norm per-channel operand");
    }

    private static void Require(DeviceBuffer<float> buffer, long length, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer.Length < length)
            throw new ArgumentException($"{name} has {buffer.Length} elements, expected at least {length}");
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
