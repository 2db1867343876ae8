using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// The real GPU through the driver API, on the device's primary context (which cuBLAS and
/// cuDNN share, since they use the runtime API). Work is enqueued asynchronously on streams.
/// </summary>
internal sealed unsafe class CudaRuntime : IDeviceRuntime
{
    private const uint StreamNonBlocking = 1;
    private const int CaptureModeThreadLocal = 1;
    private const long CublasWorkspaceBytes = 32L << 20;

    private readonly CudaDriver _driver;
    private readonly int _device;
    private readonly nint _context;
    private readonly Cublas? _cublas;
    private string? _cublasFailure;
    private nint _cublasHandle;
    private ulong _cublasWorkspace;
    private CudnnOperations? _cudnn;
    private string? _cudnnFailure;
    private readonly LaunchJournal _journal = new();
    private readonly HashSet<nint> _capturingStreams = [];   // a launch on one is recorded into a graph, not run
    // The kernels each capture recorded, then each graph's and executable graph's description
    // (LaunchJournal.DescribeGraph), so that a fault during a replay names what the replay ran.
    private readonly Dictionary<nint, List<string>> _capturedKernels = [];
    private readonly Dictionary<nint, string> _graphContents = [];
    private readonly Dictionary<nint, string> _execContents = [];
    private bool _disposed;

    public CudaRuntime(int ordinal)
    {
        _driver = CudaDriver.TryLoad(out string? reason)
            ?? throw new InvalidOperationException($"CUDA unavailable: {reason}.");
        _driver.Init();
        int count = _driver.DeviceCount();
        if (ordinal < 0 || ordinal >= count)
            throw new InvalidOperationException($"GPU {ordinal} was asked for and the driver reports {count} GPU{(count == 1 ? "" : "s")} (numbered from 0; laperm info lists them).");
        _device = _driver.DeviceGet(ordinal);
        Ordinal = ordinal;
        // The PTX would fail to load at the first kernel, with the driver's code alone: say why now.
        if (GpuInfo.Unsupported(ordinal, _driver.DeviceName(_device), _driver.DeviceAttribute(_device, CuDeviceAttribute.ComputeCapabilityMajor),
                _driver.DeviceAttribute(_device, CuDeviceAttribute.ComputeCapabilityMinor)) is { } unsupported)
            throw new InvalidOperationException($"CUDA unavailable: {unsupported}.");
        _context = _driver.PrimaryContextRetain(_device);
        _driver.ContextSetCurrent(_context);
        // The primary context is the process's: a kernel fault under an earlier runtime on this
        // device (disposed or not) left it broken for good, and every call fails with that fault.
        // Say so here rather than let the first allocation or launch fail as if it were at fault.
        try { _driver.ContextSynchronize(); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode))
        {
            Release(() => _driver.PrimaryContextRelease(_device));
            throw new CudaException(e.ApiName, e.ErrorCode, e.ErrorName, e.ErrorText,
                $"GPU {ordinal}'s context was broken by a kernel fault earlier in this process; CUDA works on it again only in a new process");
        }
        Name = _driver.DeviceName(_device);
        _cublas = Cublas.TryLoad(out _cublasFailure);
        // The handle and its workspace now, not at the first GEMM: that may come inside a stream
        // capture, where cublasCreate and cuMemAlloc are not allowed.
        if (_cublas is not null)
        {
            try
            {
                CreateCublasHandle(_cublas);
            }
            catch (CudaException e)
            {
                _cublasFailure = $"{_cublas.Library.Path}: {e.Message}";
            }
        }
    }

    public string Kind => "cuda";
    public string Name { get; }
    public CudaDriver Driver => _driver;
    public int DeviceHandle => _device;

    /// <summary>The GPU's number, as `laperm info` lists it.</summary>
    public int Ordinal { get; }

    public void MakeCurrent() => _driver.ContextSetCurrent(_context);

    // Setup and teardown calls make the context current first (cheap), so objects may be
    // created or disposed from any thread; the hot path (launches, copies) does not.
    public ulong Allocate(long bytes)
    {
        MakeCurrent();
        return _driver.MemAlloc(Math.Max(bytes, 1));
    }

    public void Free(ulong pointer, long bytes)
    {
        MakeCurrent();
        Release(() => _driver.MemFree(pointer));
    }

    // After a kernel fault every call on the context fails with the fault's sticky status. Releasing
    // a resource then (a using block unwinding from the fault) must not replace the fault's own
    // exception, which names the kernels, with an echo of it; the process's exit frees what is left.
    // (A fault that a release is the first to see is not lost: it is sticky, and the next
    // synchronising call reports it with the journal's suspects.)
    private static void Release(Action release)
    {
        try { release(); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { }
    }

    public nint CreateStream()
    {
        MakeCurrent();
        return _driver.StreamCreate(StreamNonBlocking);
    }

    public void DestroyStream(nint stream)
    {
        MakeCurrent();
        Release(() => _driver.StreamDestroy(stream));
    }
    public void SynchronizeStream(nint stream)
    {
        try { _driver.StreamSynchronize(stream); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { throw NameSuspects(e); }
        _journal.Clear();
    }

    // A kernel fault surfaces at the next synchronising call, not at the launch that caused it:
    // the message names the kernels launched since the last good synchronisation instead.
    private CudaException NameSuspects(CudaException fault) =>
        new(fault.ApiName, fault.ErrorCode, fault.ErrorName, fault.ErrorText, _journal.DescribeSuspects());

    // From pageable host memory the driver stages the data before returning, so the caller's
    // span may be reused at once; device-to-host waits for the stream (callers rely on it).
    public void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream) =>
        _driver.MemcpyHtoDAsync(destination, source, bytes, stream);

    public void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream)
    {
        try { _driver.MemcpyDtoHAsync(destination, source, bytes, stream); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { throw NameSuspects(e); }
        SynchronizeStream(stream);
    }

    public void CopyDeviceToHostAsync(void* destination, ulong source, long bytes, nint stream)
    {
        try { _driver.MemcpyDtoHAsync(destination, source, bytes, stream); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { throw NameSuspects(e); }
    }

    public void* AllocateHost(long bytes)
    {
        MakeCurrent();
        return _driver.MemHostAlloc(bytes);
    }

    public void FreeHost(void* pointer)
    {
        MakeCurrent();
        nint address = (nint)pointer;
        Release(() => _driver.MemFreeHost((void*)address));
    }

    public void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream) =>
        _driver.MemcpyDtoDAsync(destination, source, bytes, stream);

    public void Memset32(ulong destination, uint value, long count, nint stream) =>
        _driver.MemsetD32Async(destination, value, count, stream);

    public nint CreateEvent()
    {
        MakeCurrent();
        return _driver.EventCreate(0);
    }

    public void DestroyEvent(nint handle)
    {
        MakeCurrent();
        Release(() => _driver.EventDestroy(handle));
    }
    public void RecordEvent(nint handle, nint stream) => _driver.EventRecord(handle, stream);
    public void SynchronizeEvent(nint handle)
    {
        // Not a full synchronisation (other streams may still run), so the journal stays.
        try { _driver.EventSynchronize(handle); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { throw NameSuspects(e); }
    }
    public bool QueryEvent(nint handle)
    {
        try { return _driver.EventQuery(handle); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { throw NameSuspects(e); }
    }

    public float ElapsedMilliseconds(nint start, nint end) => _driver.EventElapsedMilliseconds(start, end);

    public nint LoadModule(string fileName, ReadOnlySpan<byte> ptx, IReadOnlyList<string> kernelNames)
    {
        if (ptx.IsEmpty)
            throw new InvalidOperationException($"no PTX embedded for {fileName}: the native build did not compile it (see `laperm info`)");
        MakeCurrent();
        return _driver.ModuleLoadData(ptx, fileName, out _);
    }

    public void UnloadModule(nint module)
    {
        MakeCurrent();
        Release(() => _driver.ModuleUnload(module));
    }
    public nint GetFunction(nint module, string kernelName) => _driver.ModuleGetFunction(module, kernelName);

    public void SetMaxDynamicSharedBytes(nint function, int bytes, string kernelName) =>
        _driver.FuncSetMaxDynamicSharedBytes(function, bytes, kernelName);

    public void Launch(nint function, byte* nameUtf8, string name, Dim3 grid, Dim3 block, uint sharedBytes, nint stream,
        void** args, int* argSizes, int argCount)
    {
        int result = _driver.LaunchKernelRaw(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, stream, args);
        if (result != CudaDriver.Success)
        {
            // Under CUDA_LAUNCH_BLOCKING=1 a fault of this very kernel comes back here.
            string context = LaunchJournal.Describe(name, grid, block, sharedBytes);
            if (LaunchJournal.IsKernelFault(result) && _journal.Count > 0) context += "; " + _journal.DescribeSuspects();
            throw _driver.Error(result, "cuLaunchKernel", context);
        }
        // Only launches that run are suspects of a later fault; a captured one runs as its graph's replay.
        if (_capturingStreams.Count == 0 || !_capturingStreams.Contains(stream)) _journal.RecordKernel(name, grid, block, sharedBytes);
        else _capturedKernels[stream].Add(name);
    }

    public void BeginCapture(nint stream)
    {
        _driver.StreamBeginCapture(stream, CaptureModeThreadLocal);
        _capturingStreams.Add(stream);
        _capturedKernels[stream] = [];
    }

    public nint EndCapture(nint stream)
    {
        // The stream leaves capture mode whether or not ending it succeeds.
        _capturingStreams.Remove(stream);
        _capturedKernels.Remove(stream, out var kernels);
        nint graph = _driver.StreamEndCapture(stream);
        if (graph != 0) _graphContents[graph] = LaunchJournal.DescribeGraph(kernels ?? []);
        return graph;
    }
    public nint Instantiate(nint graph)
    {
        nint exec = _driver.GraphInstantiate(graph);
        _execContents[exec] = _graphContents.GetValueOrDefault(graph, "CUDA graph replay");
        return exec;
    }
    public void LaunchGraph(nint exec, nint stream)
    {
        _driver.GraphLaunch(exec, stream);
        _journal.RecordGraph(_execContents.GetValueOrDefault(exec, "CUDA graph replay"));
    }
    public bool UpdateGraph(nint exec, nint graph)
    {
        bool updated = _driver.GraphExecUpdate(exec, graph);
        if (updated) _execContents[exec] = _graphContents.GetValueOrDefault(graph, "CUDA graph replay");
        return updated;
    }
    public int GraphNodeCount(nint graph) => _driver.GraphNodeCount(graph);
    public void DestroyGraph(nint graph)
    {
        _graphContents.Remove(graph);
        Release(() => _driver.GraphDestroy(graph));
    }
    public void DestroyGraphExec(nint exec)
    {
        _execContents.Remove(exec);
        Release(() => _driver.GraphExecDestroy(exec));
    }

    public (long Free, long Total) MemoryInfo() => _driver.MemGetInfo();

    /// <summary>The cuBLAS handle and its explicit workspace (bound with each stream, so capture-safe), made when the runtime opens.</summary>
    private nint CublasHandle() =>
        _cublasHandle != 0 ? _cublasHandle : throw new InvalidOperationException($"cuBLAS unavailable: {_cublasFailure}.");

    private void CreateCublasHandle(Cublas cublas)
    {
        nint handle = cublas.Create();
        try
        {
            // Pedantic FP32, as the training GEMMs (DeviceGemm): no TF32, no reduced-precision reductions.
            cublas.SetMathMode(handle, CublasMath.Pedantic);
            _cublasWorkspace = _driver.MemAlloc(CublasWorkspaceBytes);
        }
        catch
        {
            cublas.Destroy(handle);
            throw;
        }
        _cublasHandle = handle;
    }

    public void Gemm(nint stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batchCount)
    {
        nint handle = CublasHandle();
        _cublas!.BindStream(handle, stream, _cublasWorkspace, CublasWorkspaceBytes);
        var g = RowMajorGemm.Of(transposeA, transposeB, m, n, k);
        if (batchCount == 1)
            _cublas.Sgemm(handle, g.OpB, g.OpA, n, m, k, alpha, b, g.Ldb, a, g.Lda, beta, c, g.Ldc);
        else
            _cublas.SgemmStridedBatched(handle, g.OpB, g.OpA, n, m, k, alpha, b, g.Ldb, strideB, a, g.Lda, strideA, beta, c, g.Ldc, strideC, batchCount);
    }

    /// <summary>cuDNN, loaded on first use: it is large, and many runs never need it.</summary>
    public long WorkspaceGeneration => _cudnn?.WorkspaceGeneration ?? 0;

    private CudnnOperations Dnn()
    {
        if (_cudnn is not null) return _cudnn;
        if (_cudnnFailure is not null) throw new InvalidOperationException($"cuDNN unavailable: {_cudnnFailure}.");
        Cudnn? cudnn = Cudnn.TryLoad(out _cudnnFailure);
        if (cudnn is null) throw new InvalidOperationException($"cuDNN unavailable: {_cudnnFailure}.");
        return _cudnn = new CudnnOperations(_driver, cudnn, Name);
    }

    public string? LibraryUnavailableReason()
    {
        try
        {
            MakeCurrent();
            Dnn();
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or CudaException)
        {
            return e.Message;   // not installed, or installed but cudnnCreate failed
        }
    }

    public void Convolution(nint stream, ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output) =>
        Dnn().Convolution(stream, direction, g, first, second, output);

    public void PoolingForward(nint stream, PoolingWindow window, ulong x, ulong y) => Dnn().PoolingForward(stream, window, x, y);

    public void PoolingBackward(nint stream, PoolingWindow window, ulong x, ulong y, ulong dy, ulong dx) =>
        Dnn().PoolingBackward(stream, window, x, y, dy, dx);

    public void BatchNormForwardTraining(nint stream, BatchNormShape shape, float epsilon, float momentum, ulong x, ulong gamma, ulong beta,
        ulong runningMean, ulong runningVariance, ulong savedMean, ulong savedInvStd, ulong y) =>
        Dnn().BatchNormForwardTraining(stream, shape, epsilon, momentum, x, gamma, beta, runningMean, runningVariance, savedMean, savedInvStd, y);

    public void BatchNormForwardInference(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong gamma, ulong beta,
        ulong mean, ulong variance, ulong y) =>
        Dnn().BatchNormForwardInference(stream, shape, epsilon, x, gamma, beta, mean, variance, y);

    public void BatchNormBackward(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong dy, ulong gamma, ulong savedMean, ulong savedInvStd,
        ulong dx, ulong dGamma, ulong dBeta) =>
        Dnn().BatchNormBackward(stream, shape, epsilon, x, dy, gamma, savedMean, savedInvStd, dx, dGamma, dBeta);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _driver.ContextSetCurrent(_context);
        // After a kernel fault the libraries' teardown would fail too (and hide the fault): leave
        // their handles to the process's exit.
        bool healthy = true;
        try { _driver.ContextSynchronize(); }
        catch (CudaException e) when (LaunchJournal.IsKernelFault(e.ErrorCode)) { healthy = false; }
        if (healthy && _cudnn is not null)
        {
            _cudnn.Dispose();
        }
        if (healthy && _cublasHandle != 0)
        {
            // The handle's stream may already be destroyed (the device's stream goes first): unbind it.
            _cublas!.BindStream(_cublasHandle, 0, _cublasWorkspace, CublasWorkspaceBytes);
            _cublas.Destroy(_cublasHandle);
            _driver.MemFree(_cublasWorkspace);
        }
        Release(() => _driver.PrimaryContextRelease(_device));
    }
}
