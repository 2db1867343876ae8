using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>CUdevice_attribute values used here (cuda.h).</summary>
public enum CuDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>
/// The CUDA driver API subset, bound to the versioned exports of libcuda.so.1 through
/// function pointers (no per-call marshalling). Every call is checked; a failure throws
/// <see cref="CudaException"/> with the API name, the error name and its text.
/// One instance per process is enough; it owns no GPU state.
/// </summary>
public sealed unsafe class CudaDriver
{
    public const int Success = 0;
    public const int ErrorNotReady = 600;
    public const int ErrorGraphExecUpdateFailure = 910;

    // CUjit_option values (cuda.h).
    private const int JitInfoLogBuffer = 3;
    private const int JitInfoLogBufferSizeBytes = 4;
    private const int JitErrorLogBuffer = 5;
    private const int JitErrorLogBufferSizeBytes = 6;
    private const int JitLogVerbose = 12;
    private const int FuncAttributeMaxDynamicSharedSizeBytes = 8;

    private readonly delegate* unmanaged<uint, int> _cuInit;
    private readonly delegate* unmanaged<int*, int> _cuDriverGetVersion;
    private readonly delegate* unmanaged<int*, int, int> _cuDeviceGet;
    private readonly delegate* unmanaged<int*, int> _cuDeviceGetCount;
    private readonly delegate* unmanaged<byte*, int, int, int> _cuDeviceGetName;
    private readonly delegate* unmanaged<int*, int, int, int> _cuDeviceGetAttribute;
    private readonly delegate* unmanaged<nuint*, int, int> _cuDeviceTotalMem;
    private readonly delegate* unmanaged<nint*, int, int> _cuDevicePrimaryCtxRetain;
    private readonly delegate* unmanaged<int, int> _cuDevicePrimaryCtxRelease;
    private readonly delegate* unmanaged<nint, int> _cuCtxSetCurrent;
    private readonly delegate* unmanaged<int> _cuCtxSynchronize;
    private readonly delegate* unmanaged<ulong*, nuint, int> _cuMemAlloc;
    private readonly delegate* unmanaged<ulong, int> _cuMemFree;
    private readonly delegate* unmanaged<ulong, void*, nuint, int> _cuMemcpyHtoD;
    private readonly delegate* unmanaged<void*, ulong, nuint, int> _cuMemcpyDtoH;
    private readonly delegate* unmanaged<ulong, ulong, nuint, int> _cuMemcpyDtoD;
    private readonly delegate* unmanaged<ulong, void*, nuint, nint, int> _cuMemcpyHtoDAsync;
    private readonly delegate* unmanaged<void*, ulong, nuint, nint, int> _cuMemcpyDtoHAsync;
    private readonly delegate* unmanaged<ulong, ulong, nuint, nint, int> _cuMemcpyDtoDAsync;
    private readonly delegate* unmanaged<ulong, uint, nuint, nint, int> _cuMemsetD32Async;
    private readonly delegate* unmanaged<nuint*, nuint*, int> _cuMemGetInfo;
    private readonly delegate* unmanaged<nint*, uint, int> _cuStreamCreate;
    private readonly delegate* unmanaged<nint, int> _cuStreamDestroy;
    private readonly delegate* unmanaged<nint, int> _cuStreamSynchronize;
    private readonly delegate* unmanaged<nint*, uint, int> _cuEventCreate;
    private readonly delegate* unmanaged<nint, int> _cuEventDestroy;
    private readonly delegate* unmanaged<nint, nint, int> _cuEventRecord;
    private readonly delegate* unmanaged<nint, int> _cuEventSynchronize;
    private readonly delegate* unmanaged<nint, int> _cuEventQuery;
    private readonly delegate* unmanaged<void**, nuint, uint, int> _cuMemHostAlloc;
    private readonly delegate* unmanaged<void*, int> _cuMemFreeHost;
    private readonly delegate* unmanaged<float*, nint, nint, int> _cuEventElapsedTime;
    private readonly delegate* unmanaged<nint*, void*, uint, int*, void**, int> _cuModuleLoadDataEx;
    private readonly delegate* unmanaged<nint, int> _cuModuleUnload;
    private readonly delegate* unmanaged<nint*, nint, byte*, int> _cuModuleGetFunction;
    private readonly delegate* unmanaged<nint, int, int, int> _cuFuncSetAttribute;
    private readonly delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int> _cuLaunchKernel;
    private readonly delegate* unmanaged<nint, int, int> _cuStreamBeginCapture;
    private readonly delegate* unmanaged<nint, nint*, int> _cuStreamEndCapture;
    private readonly delegate* unmanaged<nint*, nint, ulong, int> _cuGraphInstantiateWithFlags;
    private readonly delegate* unmanaged<nint, nint, int> _cuGraphLaunch;
    private readonly delegate* unmanaged<nint, nint, GraphExecUpdateResultInfo*, int> _cuGraphExecUpdate;
    private readonly delegate* unmanaged<nint, int> _cuGraphDestroy;
    private readonly delegate* unmanaged<nint, nint*, nuint*, int> _cuGraphGetNodes;
    private readonly delegate* unmanaged<nint, int> _cuGraphExecDestroy;
    private readonly delegate* unmanaged<int> _cuProfilerStart;
    private readonly delegate* unmanaged<int> _cuProfilerStop;
    private readonly delegate* unmanaged<int, byte**, int> _cuGetErrorName;
    private readonly delegate* unmanaged<int, byte**, int> _cuGetErrorString;

    /// <summary>CUgraphExecUpdateResultInfo (cuda.h): result, errorNode, errorFromNode.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct GraphExecUpdateResultInfo
    {
        public int Result;
        public nint ErrorNode;
        public nint ErrorFromNode;
    }

    private CudaDriver(LibraryLoadResult library)
    {
        Library = library;
        nint h = library.Handle;
        _cuInit = (delegate* unmanaged<uint, int>)Export(h, "cuInit");
        _cuDriverGetVersion = (delegate* unmanaged<int*, int>)Export(h, "cuDriverGetVersion");
        _cuDeviceGet = (delegate* unmanaged<int*, int, int>)Export(h, "cuDeviceGet");
        _cuDeviceGetCount = (delegate* unmanaged<int*, int>)Export(h, "cuDeviceGetCount");
        _cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)Export(h, "cuDeviceGetName");
        _cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)Export(h, "cuDeviceGetAttribute");
        _cuDeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)Export(h, "cuDeviceTotalMem_v2");
        _cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)Export(h, "cuDevicePrimaryCtxRetain");
        _cuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)Export(h, "cuDevicePrimaryCtxRelease_v2");
        _cuCtxSetCurrent = (delegate* unmanaged<nint, int>)Export(h, "cuCtxSetCurrent");
        _cuCtxSynchronize = (delegate* unmanaged<int>)Export(h, "cuCtxSynchronize");
        _cuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)Export(h, "cuMemAlloc_v2");
        _cuMemFree = (delegate* unmanaged<ulong, int>)Export(h, "cuMemFree_v2");
        _cuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)Export(h, "cuMemcpyHtoD_v2");
        _cuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)Export(h, "cuMemcpyDtoH_v2");
        _cuMemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)Export(h, "cuMemcpyDtoD_v2");
        _cuMemcpyHtoDAsync = (delegate* unmanaged<ulong, void*, nuint, nint, int>)Export(h, "cuMemcpyHtoDAsync_v2");
        _cuMemcpyDtoHAsync = (delegate* unmanaged<void*, ulong, nuint, nint, int>)Export(h, "cuMemcpyDtoHAsync_v2");
        _cuMemcpyDtoDAsync = (delegate* unmanaged<ulong, ulong, nuint, nint, int>)Export(h, "cuMemcpyDtoDAsync_v2");
        _cuMemsetD32Async = (delegate* unmanaged<ulong, uint, nuint, nint, int>)Export(h, "cuMemsetD32Async");
        _cuMemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)Export(h, "cuMemGetInfo_v2");
        _cuStreamCreate = (delegate* unmanaged<nint*, uint, int>)Export(h, "cuStreamCreate");
        _cuStreamDestroy = (delegate* unmanaged<nint, int>)Export(h, "cuStreamDestroy_v2");
        _cuStreamSynchronize = (delegate* unmanaged<nint, int>)Export(h, "cuStreamSynchronize");
        _cuEventCreate = (delegate* unmanaged<nint*, uint, int>)Export(h, "cuEventCreate");
        _cuEventDestroy = (delegate* unmanaged<nint, int>)Export(h, "cuEventDestroy_v2");
        _cuEventRecord = (delegate* unmanaged<nint, nint, int>)Export(h, "cuEventRecord");
        _cuEventSynchronize = (delegate* unmanaged<nint, int>)Export(h, "cuEventSynchronize");
        _cuEventQuery = (delegate* unmanaged<nint, int>)Export(h, "cuEventQuery");
        _cuMemHostAlloc = (delegate* unmanaged<void**, nuint, uint, int>)Export(h, "cuMemHostAlloc");
        _cuMemFreeHost = (delegate* unmanaged<void*, int>)Export(h, "cuMemFreeHost");
        _cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, int>)Export(h, "cuEventElapsedTime");
        _cuModuleLoadDataEx = (delegate* unmanaged<nint*, void*, uint, int*, void**, int>)Export(h, "cuModuleLoadDataEx");
        _cuModuleUnload = (delegate* unmanaged<nint, int>)Export(h, "cuModuleUnload");
        _cuModuleGetFunction = (delegate* unmanaged<nint*, nint, byte*, int>)Export(h, "cuModuleGetFunction");
        _cuFuncSetAttribute = (delegate* unmanaged<nint, int, int, int>)Export(h, "cuFuncSetAttribute");
        _cuLaunchKernel = (delegate* unmanaged<nint, uint, uint, uint, uint, uint, uint, uint, nint, void**, void**, int>)Export(h, "cuLaunchKernel");
        _cuStreamBeginCapture = (delegate* unmanaged<nint, int, int>)Export(h, "cuStreamBeginCapture_v2");
        _cuStreamEndCapture = (delegate* unmanaged<nint, nint*, int>)Export(h, "cuStreamEndCapture");
        _cuGraphInstantiateWithFlags = (delegate* unmanaged<nint*, nint, ulong, int>)Export(h, "cuGraphInstantiateWithFlags");
        _cuGraphLaunch = (delegate* unmanaged<nint, nint, int>)Export(h, "cuGraphLaunch");
        _cuGraphExecUpdate = (delegate* unmanaged<nint, nint, GraphExecUpdateResultInfo*, int>)Export(h, "cuGraphExecUpdate_v2");
        _cuGraphDestroy = (delegate* unmanaged<nint, int>)Export(h, "cuGraphDestroy");
        _cuGraphGetNodes = (delegate* unmanaged<nint, nint*, nuint*, int>)Export(h, "cuGraphGetNodes");
        _cuGraphExecDestroy = (delegate* unmanaged<nint, int>)Export(h, "cuGraphExecDestroy");
        _cuProfilerStart = (delegate* unmanaged<int>)Export(h, "cuProfilerStart");
        _cuProfilerStop = (delegate* unmanaged<int>)Export(h, "cuProfilerStop");
        _cuGetErrorName = (delegate* unmanaged<int, byte**, int>)Export(h, "cuGetErrorName");
        _cuGetErrorString = (delegate* unmanaged<int, byte**, int>)Export(h, "cuGetErrorString");
    }

    /// <summary>Where libcuda was loaded from.</summary>
    public LibraryLoadResult Library { get; }

    /// <summary>
    /// Loads libcuda.so.1 and binds the subset. Returns null with a one-sentence reason when the
    /// library or one of its exports is missing (never throws for a machine without a driver).
    /// </summary>
    public static CudaDriver? TryLoad(out string? failureReason)
    {
        // libcuda.so (unversioned) is a development symlink only; the driver installs libcuda.so.1.
        LibraryLoadResult library = NativeLibrarySearch.Load("CUDA driver", ["libcuda.so.1"]);
        if (!library.Loaded)
        {
            failureReason = "libcuda.so.1 not found (no NVIDIA driver installed)";
            return null;
        }
        try
        {
            failureReason = null;
            return new CudaDriver(library);
        }
        catch (EntryPointNotFoundException e)
        {
            failureReason = $"{library.Path} lacks {e.Message} (driver too old)";
            return null;
        }
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address)
            ? address
            : throw new EntryPointNotFoundException(name);

    // ---- errors --------------------------------------------------------------------------

    public string ErrorName(int result)
    {
        byte* text = null;
        return _cuGetErrorName(result, &text) == Success && text != null
            ? Marshal.PtrToStringUTF8((nint)text) ?? $"CUresult {result}"
            : $"CUresult {result}";
    }

    public string ErrorText(int result)
    {
        byte* text = null;
        return _cuGetErrorString(result, &text) == Success && text != null
            ? Marshal.PtrToStringUTF8((nint)text) ?? "unknown error"
            : "unknown error";
    }

    public CudaException Error(int result, string api, string? context = null) =>
        new(api, result, ErrorName(result), ErrorText(result), context);

    private void Check(int result, string api, string? context = null)
    {
        if (result != Success) throw Error(result, api, context);
    }

    // ---- initialisation, devices ----------------------------------------------------------

    /// <summary>cuInit(0); returns the raw result so discovery can report it without throwing.</summary>
    public int TryInit() => _cuInit(0);

    public void Init() => Check(_cuInit(0), "cuInit");

    /// <summary>Driver version as the integer 1000*major + 10*minor (e.g. 13000).</summary>
    public int DriverVersion()
    {
        int version;
        Check(_cuDriverGetVersion(&version), "cuDriverGetVersion");
        return version;
    }

    public int DeviceCount()
    {
        int count;
        Check(_cuDeviceGetCount(&count), "cuDeviceGetCount");
        return count;
    }

    public int DeviceGet(int ordinal)
    {
        int device;
        Check(_cuDeviceGet(&device, ordinal), "cuDeviceGet", $"ordinal {ordinal}");
        return device;
    }

    public string DeviceName(int device)
    {
        byte* name = stackalloc byte[256];
        Check(_cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        return Marshal.PtrToStringUTF8((nint)name) ?? "";
    }

    public int DeviceAttribute(int device, CuDeviceAttribute attribute)
    {
        int value;
        Check(_cuDeviceGetAttribute(&value, (int)attribute, device), "cuDeviceGetAttribute", attribute.ToString());
        return value;
    }

    public long DeviceTotalMemory(int device)
    {
        nuint bytes;
        Check(_cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem_v2");
        return (long)bytes;
    }

    public nint PrimaryContextRetain(int device)
    {
        nint context;
        Check(_cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        return context;
    }

    public void PrimaryContextRelease(int device) => Check(_cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease_v2");

    public void ContextSetCurrent(nint context) => Check(_cuCtxSetCurrent(context), "cuCtxSetCurrent");

    public void ContextSynchronize() => Check(_cuCtxSynchronize(), "cuCtxSynchronize");

    // ---- memory ------------------------------------------------------------------------------

    public ulong MemAlloc(long bytes)
    {
        ulong pointer;
        Check(_cuMemAlloc(&pointer, (nuint)bytes), "cuMemAlloc_v2", $"{bytes} bytes");
        return pointer;
    }

    public void MemFree(ulong pointer) => Check(_cuMemFree(pointer), "cuMemFree_v2");

    public void MemcpyHtoD(ulong destination, void* source, long bytes) =>
        Check(_cuMemcpyHtoD(destination, source, (nuint)bytes), "cuMemcpyHtoD_v2");

    public void MemcpyDtoH(void* destination, ulong source, long bytes) =>
        Check(_cuMemcpyDtoH(destination, source, (nuint)bytes), "cuMemcpyDtoH_v2");

    public void MemcpyDtoD(ulong destination, ulong source, long bytes) =>
        Check(_cuMemcpyDtoD(destination, source, (nuint)bytes), "cuMemcpyDtoD_v2");

    public void MemcpyHtoDAsync(ulong destination, void* source, long bytes, nint stream) =>
        Check(_cuMemcpyHtoDAsync(destination, source, (nuint)bytes, stream), "cuMemcpyHtoDAsync_v2");

    public void MemcpyDtoHAsync(void* destination, ulong source, long bytes, nint stream) =>
        Check(_cuMemcpyDtoHAsync(destination, source, (nuint)bytes, stream), "cuMemcpyDtoHAsync_v2");

    public void MemcpyDtoDAsync(ulong destination, ulong source, long bytes, nint stream) =>
        Check(_cuMemcpyDtoDAsync(destination, source, (nuint)bytes, stream), "cuMemcpyDtoDAsync_v2");

    public void MemsetD32Async(ulong destination, uint value, long count, nint stream) =>
        Check(_cuMemsetD32Async(destination, value, (nuint)count, stream), "cuMemsetD32Async");

    public (long Free, long Total) MemGetInfo()
    {
        nuint free, total;
        Check(_cuMemGetInfo(&free, &total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    // ---- streams, events ------------------------------------------------------------------------

    /// <summary>Flags: 0 default, 1 CU_STREAM_NON_BLOCKING (does not synchronise with the legacy stream).</summary>
    public nint StreamCreate(uint flags)
    {
        nint stream;
        Check(_cuStreamCreate(&stream, flags), "cuStreamCreate");
        return stream;
    }

    public void StreamDestroy(nint stream) => Check(_cuStreamDestroy(stream), "cuStreamDestroy_v2");

    public void StreamSynchronize(nint stream) => Check(_cuStreamSynchronize(stream), "cuStreamSynchronize");

    public nint EventCreate(uint flags)
    {
        nint handle;
        Check(_cuEventCreate(&handle, flags), "cuEventCreate");
        return handle;
    }

    public void EventDestroy(nint handle) => Check(_cuEventDestroy(handle), "cuEventDestroy_v2");

    public void EventRecord(nint handle, nint stream) => Check(_cuEventRecord(handle, stream), "cuEventRecord");

    public void EventSynchronize(nint handle) => Check(_cuEventSynchronize(handle), "cuEventSynchronize");

    /// <summary>cuEventQuery: true when the work before the event has completed, false while it has not (never waits).</summary>
    public bool EventQuery(nint handle)
    {
        int result = _cuEventQuery(handle);
        if (result == ErrorNotReady) return false;
        Check(result, "cuEventQuery");
        return true;
    }

    /// <summary>Page-locked host memory (cuMemHostAlloc, no flags): device copies to it run asynchronously.</summary>
    public void* MemHostAlloc(long bytes)
    {
        void* pointer;
        Check(_cuMemHostAlloc(&pointer, (nuint)Math.Max(bytes, 1), 0), "cuMemHostAlloc", $"{bytes} bytes");
        return pointer;
    }

    public void MemFreeHost(void* pointer) => Check(_cuMemFreeHost(pointer), "cuMemFreeHost");

    public float EventElapsedMilliseconds(nint start, nint end)
    {
        float ms;
        Check(_cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    // ---- modules, kernels --------------------------------------------------------------------------

    /// <summary>
    /// Loads NUL-terminated PTX (or a cubin/fatbin). The JIT's error and info logs are captured
    /// and put into the exception, so a PTX that does not compile says why.
    /// </summary>
    public nint ModuleLoadData(ReadOnlySpan<byte> image, string moduleName, out string infoLog)
    {
        const int logBytes = 16 * 1024;
        byte[] imageWithNul = new byte[image.Length + 1];
        image.CopyTo(imageWithNul);
        byte* errorLog = stackalloc byte[logBytes];
        byte* info = stackalloc byte[logBytes];
        errorLog[0] = 0;
        info[0] = 0;
        int* options = stackalloc int[5] { JitErrorLogBuffer, JitErrorLogBufferSizeBytes, JitInfoLogBuffer, JitInfoLogBufferSizeBytes, JitLogVerbose };
        void** values = stackalloc void*[5] { errorLog, (void*)(nint)logBytes, info, (void*)(nint)logBytes, (void*)(nint)1 };
        nint module;
        int result;
        fixed (byte* data = imageWithNul)
            result = _cuModuleLoadDataEx(&module, data, 5, options, values);
        infoLog = Marshal.PtrToStringUTF8((nint)info) ?? "";
        if (result != Success)
        {
            string log = (Marshal.PtrToStringUTF8((nint)errorLog) ?? "").Trim();
            throw new CudaException("cuModuleLoadDataEx", result, ErrorName(result),
                log.Length == 0 ? ErrorText(result) : $"{ErrorText(result)}; JIT log: {log}", moduleName);
        }
        return module;
    }

    public void ModuleUnload(nint module) => Check(_cuModuleUnload(module), "cuModuleUnload");

    public nint ModuleGetFunction(nint module, string name)
    {
        byte[] utf8 = NulTerminated(name);
        nint function;
        int result;
        fixed (byte* p = utf8)
            result = _cuModuleGetFunction(&function, module, p);
        Check(result, "cuModuleGetFunction", $"kernel {name}");
        return function;
    }

    public void FuncSetMaxDynamicSharedBytes(nint function, int bytes, string kernelName) =>
        Check(_cuFuncSetAttribute(function, FuncAttributeMaxDynamicSharedSizeBytes, bytes), "cuFuncSetAttribute", $"kernel {kernelName}");

    /// <summary>kernelParams form only: <paramref name="args"/>[i] points at the i-th argument value.</summary>
    public int LaunchKernelRaw(nint function, uint gx, uint gy, uint gz, uint bx, uint by, uint bz, uint sharedBytes, nint stream, void** args) =>
        _cuLaunchKernel(function, gx, gy, gz, bx, by, bz, sharedBytes, stream, args, null);

    // ---- graphs --------------------------------------------------------------------------------------

    /// <summary>Mode: 0 global, 1 thread-local, 2 relaxed (CUstreamCaptureMode).</summary>
    public void StreamBeginCapture(nint stream, int mode) => Check(_cuStreamBeginCapture(stream, mode), "cuStreamBeginCapture_v2");

    public nint StreamEndCapture(nint stream)
    {
        nint graph;
        Check(_cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
        return graph;
    }

    public nint GraphInstantiate(nint graph)
    {
        nint exec;
        Check(_cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags");
        return exec;
    }

    public void GraphLaunch(nint exec, nint stream) => Check(_cuGraphLaunch(exec, stream), "cuGraphLaunch");

    /// <summary>Updates an instantiated graph in place; false when the topology differs (then re-instantiate).</summary>
    public bool GraphExecUpdate(nint exec, nint graph)
    {
        GraphExecUpdateResultInfo info = default;
        int result = _cuGraphExecUpdate(exec, graph, &info);
        if (result == ErrorGraphExecUpdateFailure) return false;
        Check(result, "cuGraphExecUpdate_v2");
        return true;
    }

    public void GraphDestroy(nint graph) => Check(_cuGraphDestroy(graph), "cuGraphDestroy");

    /// <summary>The graph's node count (cuGraphGetNodes with no array: kernels, copies, memsets, event nodes).</summary>
    public int GraphNodeCount(nint graph)
    {
        nuint count = 0;
        Check(_cuGraphGetNodes(graph, null, &count), "cuGraphGetNodes");
        return checked((int)count);
    }

    public void GraphExecDestroy(nint exec) => Check(_cuGraphExecDestroy(exec), "cuGraphExecDestroy");

    // ---- profiler ------------------------------------------------------------------------------------

    public void ProfilerStart() => Check(_cuProfilerStart(), "cuProfilerStart");

    public void ProfilerStop() => Check(_cuProfilerStop(), "cuProfilerStop");

    internal static byte[] NulTerminated(string text)
    {
        byte[] bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(text) + 1];
        System.Text.Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
