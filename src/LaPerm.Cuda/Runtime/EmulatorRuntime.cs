using System.Diagnostics;
using System.Runtime.InteropServices;
using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// The host emulator: "device memory" is host memory aligned to 256 bytes and registered with
/// the emulator (so it can check pointer arguments, and writes past each allocation's end through a guard after it), kernels run to completion inside
/// laperm_emu_launch, and library calls (cuBLAS's GEMM; cuDNN's convolution, pooling and batch-norm) run on the CPU backend. Every stream is executed in order at
/// enqueue time, which is one valid schedule of CUDA's stream semantics. While a stream is
/// being captured, its work is recorded instead and replayed by the graph.
/// </summary>
internal sealed unsafe class EmulatorRuntime : IDeviceRuntime
{
    private const int Alignment = 256;

    /// <summary>Bytes after each allocation that every launch checks for writes past its end (see laperm_emu_guard_buffer).</summary>
    private const int GuardBytes = 256;

    private readonly EmulatorLibrary _emulator;
    private readonly Dictionary<string, int> _kernelIndex;
    private readonly int[] _argCounts;          // per kernel, -1 when unknown
    private readonly int[][] _argSizes;         // per kernel, per parameter: its sizeof (-1 when unknown)
    private readonly Dictionary<nint, StreamCapture?> _streams = [];
    private readonly Dictionary<nint, List<RecordedOperation>> _graphs = [];
    private readonly Dictionary<nint, List<RecordedOperation>> _executables = [];
    private readonly Dictionary<nint, long> _events = [];
    private readonly Dictionary<ulong, long> _allocations = [];   // address -> bytes
    private long _allocatedBytes;
    private readonly HostLibraryOps _library = new();
    private nint _nextHandle = 1;
    private bool _disposed;
    private readonly InjectedFault? _fault = InjectedFault.FromEnvironment();

    public EmulatorRuntime()
    {
        _emulator = EmulatorLibrary.TryLoad(out string? reason)
            ?? throw new InvalidOperationException($"emulator unavailable: {reason}.");
        _kernelIndex = _emulator.KernelNames.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i, StringComparer.Ordinal);
        _argCounts = new int[_emulator.KernelNames.Count];
        _argSizes = new int[_argCounts.Length][];
        for (int i = 0; i < _argCounts.Length; i++)
        {
            byte[] name = CudaDriver.NulTerminated(_emulator.KernelNames[i]);
            fixed (byte* p = name)
            {
                _argCounts[i] = _emulator.KernelArgCount(p);
                _argSizes[i] = new int[Math.Max(_argCounts[i], 0)];
                for (int a = 0; a < _argSizes[i].Length; a++) _argSizes[i][a] = _emulator.KernelArgSize(p, a);
            }
        }
        _streams[0] = null;
    }

    public string Kind => "emu";
    public string Name => $"host emulator ({_emulator.KernelNames.Count} kernels)";
    public EmulatorLibrary Library => _emulator;

    public void MakeCurrent() { }

    /// <summary>The stand-in needs no workspace.</summary>
    public long WorkspaceGeneration => 0;

    private nint NewHandle() => _nextHandle++;

    /// <summary>
    /// The emulated device's memory, in bytes: allocations beyond it fail as cuMemAlloc does
    /// (CUDA_ERROR_OUT_OF_MEMORY) and <see cref="MemoryInfo"/> reports it. LAPERM_EMU_MEMORY=BYTES
    /// sets it when the runtime opens; unset, the host's memory is the limit.
    /// </summary>
    internal long MemoryCapacity { get; set; } = MemoryCapacityFromEnvironment();

    private static long MemoryCapacityFromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable("LAPERM_EMU_MEMORY");
        if (string.IsNullOrEmpty(text)) return long.MaxValue;
        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long bytes) && bytes > 0
            ? bytes
            : throw new InvalidOperationException($"LAPERM_EMU_MEMORY is '{text}'; expected a number of bytes");
    }

    public ulong Allocate(long bytes)
    {
        NoCaptureActive("a device allocation");
        nuint size = (nuint)Math.Max(bytes, 1);
        if ((long)size > MemoryCapacity - _allocatedBytes)
            throw new CudaException("emulated cuMemAlloc", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory",
                $"{(long)size:N0} bytes requested, {MemoryCapacity - _allocatedBytes:N0} of {MemoryCapacity:N0} free");
        void* memory = NativeMemory.AlignedAlloc(size + GuardBytes, Alignment);
        // Fresh device memory is not zeroed on a GPU either; filling it with 0xFF (NaN for
        // floats, -1 for ints) makes reads of never-written memory visible in tests.
        NativeMemory.Fill(memory, size, 0xFF);
        _emulator.RegisterBuffer(memory, (long)size);
        try
        {
            _emulator.GuardBuffer(memory, GuardBytes);
        }
        catch
        {
            _emulator.UnregisterBuffer(memory);
            NativeMemory.AlignedFree(memory);
            throw;
        }
        _allocations.Add((ulong)memory, (long)size);
        _allocatedBytes += (long)size;
        return (ulong)memory;
    }

    public void Free(ulong pointer, long bytes)
    {
        NoCaptureActive("freeing device memory");
        if (!_allocations.Remove(pointer, out long size))
            throw new InvalidOperationException($"emulator: free of 0x{pointer:x}, which is not a live allocation");
        _allocatedBytes -= size;
        _emulator.UnregisterBuffer((void*)pointer);
        NativeMemory.AlignedFree((void*)pointer);
    }

    public nint CreateStream()
    {
        nint handle = NewHandle();
        _streams[handle] = null;
        return handle;
    }

    public void DestroyStream(nint stream)
    {
        if (State(stream) is not null) throw new InvalidOperationException("emulator: a stream cannot be destroyed while it is being captured");
        _streams.Remove(stream);
    }

    public void SynchronizeStream(nint stream)
    {
        NotCapturing(stream, "synchronising the stream");
        _fault?.ThrowIfFaulted("emulated cuStreamSynchronize");
        _eventQueriesLeft.Clear();   // one stream per device here: every event recorded is reached
    }

    // A stream's capture, with the driver's rules (cuStreamBeginCapture, thread-local mode): a call
    // the capture refuses fails with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and invalidates the
    // capture; from then on every call on the stream fails with CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
    // and ending the capture ends it without a graph. Only the thread that began it may end it.
    private sealed class StreamCapture(int threadId)
    {
        public List<RecordedOperation> Operations { get; } = [];
        public int ThreadId { get; } = threadId;
        public string? InvalidatedBy { get; set; }
    }

    private const int CaptureUnsupported = 900, CaptureInvalidated = 901, CaptureWrongThread = 908;

    private StreamCapture? State(nint stream) =>
        _streams.TryGetValue(stream, out var capture) ? capture : throw new InvalidOperationException($"emulator: unknown stream {stream}");

    /// <summary>Where an operation on the stream goes: null (run it now) or the capture's recording.</summary>
    private List<RecordedOperation>? Capture(nint stream)
    {
        var capture = State(stream);
        if (capture?.InvalidatedBy is { } cause) throw Invalidated(cause);
        return capture?.Operations;
    }

    private static CudaException Invalidated(string cause) =>
        new("emulated stream capture", CaptureInvalidated, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
            "operation failed due to a previous error during capture", $"the capture was invalidated by {cause}");

    private static CudaException Unsupported(string operation) =>
        new("emulated stream capture", CaptureUnsupported, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
            "operation not permitted when stream is capturing",
            $"emulator: {operation} cannot be captured into a graph (only kernels, device-to-device copies, memsets and library calls can); the capture is invalidated");

    private void NotCapturing(nint stream, string operation)
    {
        if (Capture(stream) is null) return;
        State(stream)!.InvalidatedBy = operation;
        throw Unsupported(operation);
    }

    public void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream)
    {
        NotCapturing(stream, "a host-to-device copy");
        Buffer.MemoryCopy(source, (void*)destination, bytes, bytes);
    }

    public void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream)
    {
        NotCapturing(stream, "a device-to-host copy");
        _fault?.ThrowIfFaulted("emulated cuMemcpyDtoHAsync");
        Buffer.MemoryCopy((void*)source, destination, bytes, bytes);
    }

    // The emulator runs work when it is enqueued, so an "asynchronous" copy is complete at once.
    public void CopyDeviceToHostAsync(void* destination, ulong source, long bytes, nint stream)
    {
        NotCapturing(stream, "a device-to-host copy");
        _fault?.ThrowIfFaulted("emulated cuMemcpyDtoHAsync");
        Buffer.MemoryCopy((void*)source, destination, bytes, bytes);
    }

    public void* AllocateHost(long bytes)
    {
        NoCaptureActive("a page-locked host allocation");
        return NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
    }

    public void FreeHost(void* pointer)
    {
        NoCaptureActive("freeing page-locked host memory");
        NativeMemory.AlignedFree(pointer);
    }

    /// <summary>
    /// What the driver refuses on a thread that is capturing (thread-local capture mode): memory
    /// allocation and release, waiting for or querying events, loading modules. The refusal
    /// invalidates that thread's captures; other threads are not affected.
    /// </summary>
    private void NoCaptureActive(string operation)
    {
        int thread = Environment.CurrentManagedThreadId;
        var captures = _streams.Values.Where(c => c is not null && c.ThreadId == thread).ToList();
        if (captures.Count == 0) return;
        foreach (var capture in captures) capture!.InvalidatedBy ??= operation;
        throw Unsupported(operation);
    }

    // Each operation runs now, or is recorded when its stream is capturing. The recording
    // closures live in separate methods so the direct path allocates nothing.
    public void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream)
    {
        var capture = Capture(stream);
        if (capture is null) Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes);
        else capture.Add(RecordCopy(destination, source, bytes));
    }

    private static RecordedOperation RecordCopy(ulong destination, ulong source, long bytes) =>
        new("memcpy", () => Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes));

    public void Memset32(ulong destination, uint value, long count, nint stream)
    {
        var capture = Capture(stream);
        if (capture is null) Fill32(destination, value, count);
        else capture.Add(RecordFill(destination, value, count));
    }

    private static void Fill32(ulong destination, uint value, long count)
    {
        for (long done = 0; done < count; done += int.MaxValue)
            new Span<uint>((uint*)destination + done, (int)Math.Min(count - done, int.MaxValue)).Fill(value);
    }

    private static RecordedOperation RecordFill(ulong destination, uint value, long count) =>
        new("memset", () => Fill32(destination, value, count));

    public nint CreateEvent()
    {
        nint handle = NewHandle();
        _events[handle] = 0;
        return handle;
    }

    public void DestroyEvent(nint handle)
    {
        _events.Remove(handle);
        _eventQueriesLeft.Remove(handle);
    }

    /// <summary>
    /// How many queries an event answers "not ready" after each record before it reports complete
    /// (0, the default: at once, since work runs when it is enqueued). A test sets it to see what a
    /// host that runs ahead of a real GPU sees; waiting for the event or the stream completes it.
    /// </summary>
    internal int EventQueriesUntilComplete { get; set; }

    private readonly Dictionary<nint, int> _eventQueriesLeft = [];

    public void RecordEvent(nint handle, nint stream)
    {
        NotCapturing(stream, "an event record");
        // Work is already complete when enqueued, so "now" is when the stream reaches the event.
        _events[handle] = Stopwatch.GetTimestamp();
        if (EventQueriesUntilComplete > 0) _eventQueriesLeft[handle] = EventQueriesUntilComplete;
    }

    public void SynchronizeEvent(nint handle)
    {
        NoCaptureActive("waiting for an event");
        _fault?.ThrowIfFaulted("emulated cuEventSynchronize");
        _eventQueriesLeft.Remove(handle);
        EventWaits.Add(handle);
    }

    /// <summary>Sees each launch (captured ones too): the kernel and its 4- and 8-byte arguments as words (larger ones 0).</summary>
    internal Action<string, ulong[]>? LaunchObserver { get; set; }

    /// <summary>Every event waited for, in order (a test sees when the host would have waited for a GPU).</summary>
    internal List<nint> EventWaits { get; } = [];

    public bool QueryEvent(nint handle)
    {
        NoCaptureActive("querying an event");
        _fault?.ThrowIfFaulted("emulated cuEventQuery");
        if (!_eventQueriesLeft.TryGetValue(handle, out int left) || left == 0) return true;
        _eventQueriesLeft[handle] = left - 1;
        return false;
    }

    public float ElapsedMilliseconds(nint start, nint end) =>
        (float)Stopwatch.GetElapsedTime(_events[start], _events[end]).TotalMilliseconds;

    public nint LoadModule(string fileName, ReadOnlySpan<byte> ptx, IReadOnlyList<string> kernelNames)
    {
        NoCaptureActive("loading a module");
        foreach (string kernel in kernelNames)
            if (!_kernelIndex.ContainsKey(kernel))
                throw new CudaException("laperm_emu_kernel_name", 500, "CUDA_ERROR_NOT_FOUND",
                    $"kernel {kernel} of {fileName} is not built into {EmulatorLibrary.FileName}", fileName);
        return NewHandle();
    }

    public void UnloadModule(nint module) => NoCaptureActive("unloading a module");

    public nint GetFunction(nint module, string kernelName) =>
        _kernelIndex.TryGetValue(kernelName, out int index)
            ? index + 1
            : throw new CudaException("laperm_emu_kernel_name", 500, "CUDA_ERROR_NOT_FOUND",
                $"kernel {kernelName} is not built into {EmulatorLibrary.FileName} (it has: {string.Join(", ", _emulator.KernelNames)})", $"kernel {kernelName}");

    public void SetMaxDynamicSharedBytes(nint function, int bytes, string kernelName)
    {
        byte[] name = CudaDriver.NulTerminated(kernelName);
        fixed (byte* p = name) _emulator.SetMaxDynamicShared(p, kernelName, checked((uint)bytes));
    }

    public void Launch(nint function, byte* nameUtf8, string name, Dim3 grid, Dim3 block, uint sharedBytes, nint stream,
        void** args, int* argSizes, int argCount)
    {
        // The GPU cannot tell a wrong argument count; the emulator can, so it says so.
        int expected = _argCounts[function - 1];
        if (expected >= 0 && expected != argCount)
            throw new CudaException("laperm_emu_launch", 1, "CUDA_ERROR_INVALID_VALUE",
                $"kernel {name} takes {expected} argument(s), the launch passed {argCount}", $"kernel {name}");
        // Nor a wrong argument size: cuLaunchKernel reads each parameter's size from args[i], so an
        // int where the kernel takes a long long would read four bytes past the value on a GPU.
        int[] sizes = _argSizes[function - 1];
        for (int i = 0; i < Math.Min(argCount, sizes.Length); i++)
            if (sizes[i] >= 0 && sizes[i] != argSizes[i])
                throw new CudaException("laperm_emu_launch", 1, "CUDA_ERROR_INVALID_VALUE",
                    $"kernel {name}: parameter {i} is {sizes[i]} bytes, the launch passed {argSizes[i]}", $"kernel {name}");
        if (LaunchObserver is { } observe)
        {
            var values = new ulong[argCount];
            for (int i = 0; i < argCount; i++)
                values[i] = argSizes[i] switch { 8 => *(ulong*)args[i], 4 => *(uint*)args[i], _ => 0 };
            observe(name, values);
        }
        var capture = Capture(stream);
        if (capture is null)
        {
            _fault?.Check(name, grid, block, sharedBytes);
            _emulator.Launch(nameUtf8, name, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, args);
        }
        else
        {
            capture.Add(RecordLaunch(name, grid, block, sharedBytes, args, argSizes, argCount));
        }
    }

    /// <summary>
    /// LAPERM_EMU_FAULT=KERNEL:N makes the N-th run of KERNEL (counting graph replays) fail as a
    /// faulting kernel does on a GPU (CUDA_ERROR_ILLEGAL_ADDRESS), and sticky as there: every later
    /// launch, synchronisation, event wait and device-to-host copy fails the same way, so the
    /// unwinding after a fault (which must not replace its message) runs as on a GPU. Frees still
    /// succeed, as CudaRuntime's do after a fault (it drops their echo of it). Read once per
    /// runtime; unset: no fault.
    /// </summary>
    private sealed class InjectedFault(string kernel, int occurrence)
    {
        private int _runs;
        private bool _faulted;

        public static InjectedFault? FromEnvironment()
        {
            string? spec = Environment.GetEnvironmentVariable("LAPERM_EMU_FAULT");
            if (string.IsNullOrEmpty(spec)) return null;
            int colon = spec.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(spec.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) || n < 1)
                throw new InvalidOperationException($"LAPERM_EMU_FAULT is '{spec}'; expected KERNEL:N with N >= 1");
            return new InjectedFault(spec[..colon], n);
        }

        public void ThrowIfFaulted(string api)
        {
            if (_faulted)
                throw new CudaException(api, 700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered (sticky, after the injected fault)");
        }

        public void Check(string name, Dim3 grid, Dim3 block, uint sharedBytes)
        {
            if (!_faulted && (name != kernel || ++_runs < occurrence)) return;
            _faulted = true;
            throw new CudaException("laperm_emu_launch", 700, "CUDA_ERROR_ILLEGAL_ADDRESS",
                $"an illegal memory access was encountered (injected by LAPERM_EMU_FAULT={kernel}:{occurrence})",
                LaunchJournal.Describe(name, grid, block, sharedBytes));
        }
    }

    private RecordedOperation RecordLaunch(string name, Dim3 grid, Dim3 block, uint sharedBytes,
        void** args, int* argSizes, int argCount)
    {
        EmulatorLibrary emulator = _emulator;
        InjectedFault? fault = _fault;
        // Capture copies the argument values now, as cuLaunchKernel does into a graph node.
        var offsets = new int[argCount];
        int total = 0;
        for (int i = 0; i < argCount; i++)
        {
            offsets[i] = total;
            total += (argSizes[i] + 7) & ~7;
        }
        byte[] values = new byte[Math.Max(total, 1)];
        for (int i = 0; i < argCount; i++)
            new ReadOnlySpan<byte>(args[i], argSizes[i]).CopyTo(values.AsSpan(offsets[i]));
        byte[] nameBytes = CudaDriver.NulTerminated(name);
        return new RecordedOperation($"kernel {name}", () =>
        {
            fault?.Check(name, grid, block, sharedBytes);
            fixed (byte* v = values)
            fixed (byte* n = nameBytes)
            {
                void** pointers = stackalloc void*[Math.Max(offsets.Length, 1)];
                for (int i = 0; i < offsets.Length; i++) pointers[i] = v + offsets[i];
                emulator.Launch(n, name, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, pointers);
            }
        });
    }

    public void BeginCapture(nint stream)
    {
        if (State(stream) is not null) throw new InvalidOperationException("emulator: the stream is already being captured");
        _streams[stream] = new StreamCapture(Environment.CurrentManagedThreadId);
    }

    public nint EndCapture(nint stream)
    {
        var capture = State(stream) ?? throw new InvalidOperationException("emulator: the stream is not being captured");
        if (capture.ThreadId != Environment.CurrentManagedThreadId)
            throw new CudaException("emulated stream capture", CaptureWrongThread, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
                "attempt to terminate a thread-local capture sequence from another thread");
        _streams[stream] = null;
        if (capture.InvalidatedBy is { } cause) throw Invalidated(cause);
        nint graph = NewHandle();
        _graphs[graph] = capture.Operations;
        return graph;
    }

    public nint Instantiate(nint graph)
    {
        nint exec = NewHandle();
        _executables[exec] = [.. _graphs[graph]];
        return exec;
    }

    public void LaunchGraph(nint exec, nint stream)
    {
        NotCapturing(stream, "a graph launch");
        foreach (var operation in _executables[exec]) operation.Execute();
    }

    /// <summary>Like cuGraphExecUpdate: succeeds only when the same operations come in the same order.</summary>
    public bool UpdateGraph(nint exec, nint graph)
    {
        var current = _executables[exec];
        var next = _graphs[graph];
        if (current.Count != next.Count) return false;
        for (int i = 0; i < next.Count; i++)
            if (current[i].Description != next[i].Description) return false;
        _executables[exec] = [.. next];
        return true;
    }

    public int GraphNodeCount(nint graph) => _graphs[graph].Count;
    public void DestroyGraph(nint graph) => _graphs.Remove(graph);
    public void DestroyGraphExec(nint exec) => _executables.Remove(exec);

    public void Gemm(nint stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batchCount) =>
        RunOrRecord(stream, "gemm", () => _library.Gemm(transposeA, transposeB, m, n, k, alpha, a, strideA, b, strideB, beta, c, strideC, batchCount));

    public void Convolution(nint stream, ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output) =>
        RunOrRecord(stream, $"conv {direction}", () => _library.Convolution(direction, g, first, second, output));

    public void PoolingForward(nint stream, PoolingWindow window, ulong x, ulong y) =>
        RunOrRecord(stream, "pooling forward", () => _library.PoolingForward(window, x, y));

    public void PoolingBackward(nint stream, PoolingWindow window, ulong x, ulong y, ulong dy, ulong dx) =>
        RunOrRecord(stream, "pooling backward", () => _library.PoolingBackward(window, x, dy, dx));

    public void BatchNormForwardTraining(nint stream, BatchNormShape shape, float epsilon, float momentum, ulong x, ulong gamma, ulong beta,
        ulong runningMean, ulong runningVariance, ulong savedMean, ulong savedInvStd, ulong y) =>
        RunOrRecord(stream, "batch-norm forward (training)", () =>
            _library.BatchNormForwardTraining(shape, epsilon, momentum, x, gamma, beta, runningMean, runningVariance, savedMean, savedInvStd, y));

    public void BatchNormForwardInference(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong gamma, ulong beta,
        ulong mean, ulong variance, ulong y) =>
        RunOrRecord(stream, "batch-norm forward (inference)", () => _library.BatchNormForwardInference(shape, epsilon, x, gamma, beta, mean, variance, y));

    public void BatchNormBackward(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong dy, ulong gamma, ulong savedMean, ulong savedInvStd,
        ulong dx, ulong dGamma, ulong dBeta) =>
        RunOrRecord(stream, "batch-norm backward", () => _library.BatchNormBackward(shape, epsilon, x, dy, gamma, savedMean, savedInvStd, dx, dGamma, dBeta));

    /// <summary>A library call runs now, or is recorded while its stream is being captured.</summary>
    private void RunOrRecord(nint stream, string description, Action call)
    {
        var capture = Capture(stream);
        if (capture is null) call();
        else capture.Add(new RecordedOperation(description, call));
    }

    /// <summary>
    /// The stand-in (the CPU backend) is always there, unless LAPERM_EMU_CUDNN=missing (read when
    /// asked) makes it unavailable as cuDNN is on a GPU machine without it: a backend asked for
    /// cuDNN then runs our kernels and says why, which is tested without such a machine.
    /// </summary>
    public string? LibraryUnavailableReason() => Environment.GetEnvironmentVariable("LAPERM_EMU_CUDNN") switch
    {
        null or "" => null,
        "missing" => "cuDNN unavailable: libcudnn.so.9 not found (emulated by LAPERM_EMU_CUDNN=missing)",
        var other => throw new InvalidOperationException($"LAPERM_EMU_CUDNN is '{other}'; expected missing (or unset)"),
    };

    public (long Free, long Total) MemoryInfo()
    {
        if (MemoryCapacity != long.MaxValue) return (MemoryCapacity - _allocatedBytes, MemoryCapacity);
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return (total, total);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Buffers are owned by their DeviceBuffer objects; any left are leaks we still release.
        foreach (ulong pointer in _allocations.Keys.ToArray()) Free(pointer, 0);
        _library.Dispose();
    }

    private sealed record RecordedOperation(string Description, Action Execute);
}
