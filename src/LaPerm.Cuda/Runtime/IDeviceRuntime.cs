using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// What a device kind implements: the real driver (<see cref="CudaRuntime"/>) or the host
/// emulator (<see cref="EmulatorRuntime"/>). The public types (Device, DeviceStream,
/// DeviceBuffer, Kernel, DeviceGraph, ...) are written once on top of it, so orchestration
/// code cannot tell the two apart. Handles are opaque integers; in emu device pointers are
/// host addresses.
/// </summary>
internal unsafe interface IDeviceRuntime : IDisposable
{
    string Kind { get; }
    string Name { get; }

    /// <summary>Makes the device's context current on the calling thread (no-op in emu).</summary>
    void MakeCurrent();

    ulong Allocate(long bytes);
    void Free(ulong pointer, long bytes);

    /// <summary>Counts replacements of the libraries' workspace (cuDNN's grows on demand): a graph captured before one refers to freed memory.</summary>
    long WorkspaceGeneration { get; }

    nint CreateStream();
    void DestroyStream(nint stream);
    void SynchronizeStream(nint stream);

    void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream);
    /// <summary>Device to host; waits for the stream.</summary>
    void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream);

    /// <summary>Device to page-locked host memory (<see cref="AllocateHost"/>), without waiting: an event recorded after it says when it is there.</summary>
    void CopyDeviceToHostAsync(void* destination, ulong source, long bytes, nint stream);

    /// <summary>Page-locked host memory, which device copies reach asynchronously.</summary>
    void* AllocateHost(long bytes);
    void FreeHost(void* pointer);
    void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream);
    void Memset32(ulong destination, uint value, long count, nint stream);

    nint CreateEvent();
    void DestroyEvent(nint handle);
    void RecordEvent(nint handle, nint stream);
    void SynchronizeEvent(nint handle);

    /// <summary>True when the work before the event has completed; never waits.</summary>
    bool QueryEvent(nint handle);
    float ElapsedMilliseconds(nint start, nint end);

    nint LoadModule(string fileName, ReadOnlySpan<byte> ptx, IReadOnlyList<string> kernelNames);
    void UnloadModule(nint module);
    nint GetFunction(nint module, string kernelName);
    void SetMaxDynamicSharedBytes(nint function, int bytes, string kernelName);

    /// <summary>args[i] points at the i-th value (argSizes[i] bytes), as cuLaunchKernel's kernelParams.</summary>
    void Launch(nint function, byte* nameUtf8, string name, Dim3 grid, Dim3 block, uint sharedBytes, nint stream,
        void** args, int* argSizes, int argCount);

    void BeginCapture(nint stream);
    nint EndCapture(nint stream);
    nint Instantiate(nint graph);
    void LaunchGraph(nint exec, nint stream);
    bool UpdateGraph(nint exec, nint graph);
    void DestroyGraph(nint graph);
    /// <summary>How many nodes a captured graph has: each kernel launch (ours and the libraries'), copy and memset is one.</summary>
    int GraphNodeCount(nint graph);
    void DestroyGraphExec(nint exec);

    /// <summary>Row-major C[m,n] = alpha op(A) op(B) + beta C (IBackend.Gemm's semantics), batched by stride.</summary>
    void Gemm(nint stream, bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batchCount);

    /// <summary>
    /// NCHW/OIHW cross-correlation (IBackend's conv semantics), output overwritten: forward
    /// (x, w -> y), backward data (dy, w -> dx), backward filter (x, dy -> dw).
    /// </summary>
    void Convolution(nint stream, ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output);

    /// <summary>y = pool(x), overwritten (cuDNN's pooling; the CPU backend on emu).</summary>
    void PoolingForward(nint stream, PoolingWindow window, ulong x, ulong y);

    /// <summary>dx from the forward's x and y and dy, overwritten (max pooling finds its maxima again in x).</summary>
    void PoolingBackward(nint stream, PoolingWindow window, ulong x, ulong y, ulong dy, ulong dx);

    /// <summary>IBackend.BatchNormForwardTraining's semantics (Keras momentum; unbiased running variance).</summary>
    void BatchNormForwardTraining(nint stream, BatchNormShape shape, float epsilon, float momentum, ulong x, ulong gamma, ulong beta,
        ulong runningMean, ulong runningVariance, ulong savedMean, ulong savedInvStd, ulong y);

    void BatchNormForwardInference(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong gamma, ulong beta,
        ulong mean, ulong variance, ulong y);

    void BatchNormBackward(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong dy, ulong gamma, ulong savedMean, ulong savedInvStd,
        ulong dx, ulong dGamma, ulong dBeta);

    (long Free, long Total) MemoryInfo();

    /// <summary>Loads cuDNN (or the emulator's stand-in) if it is not yet loaded; null when it is usable, else why not.</summary>
    string? LibraryUnavailableReason();
}

/// <summary>Grid or block dimensions.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);
    public static implicit operator Dim3(int x) => new(checked((uint)x));
    public ulong Count => (ulong)X * Y * Z;
}
