using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>cudnnConvolutionFwdAlgoPerf_t / BwdData / BwdFilter (identical layout): algo, status, time, memory, determinism, mathType, reserved[3].</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CudnnAlgorithmPerformance
{
    public int Algorithm;
    public int Status;
    public float Milliseconds;
    public nuint MemoryBytes;
    public int Determinism;
    public int MathType;
    private int _reserved0, _reserved1, _reserved2;
}

/// <summary>The three convolution directions (each has its own algorithm enum and calls).</summary>
public enum ConvolutionDirection { Forward, BackwardData, BackwardFilter }

/// <summary>cudnnPoolingMode_t values we use.</summary>
public enum CudnnPoolingMode
{
    /// <summary>CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING (we never pad, so the plain window mean).</summary>
    Average = 2,

    /// <summary>CUDNN_POOLING_MAX_DETERMINISTIC: the backward pass is deterministic.</summary>
    MaxDeterministic = 3,
}

/// <summary>What a failed cuDNN call means for the op that made it (<see cref="Cudnn.Classify"/>).</summary>
public enum CudnnFailure
{
    /// <summary>The case (a shape, a layout) is one cuDNN does not run: our kernels run it.</summary>
    RefusesTheCase,
    /// <summary>cuDNN cannot run on this machine at all (a sub-library, the driver, the GPU): our kernels from now on.</summary>
    Unusable,
    /// <summary>A failure to report: an allocation, a kernel fault surfacing in cuDNN, a mistake in our call.</summary>
    Error,
}

/// <summary>
/// cuDNN 9 (libcudnn.so.9), legacy convolution, pooling and batch-normalisation API. Every export is probed with TryGetExport
/// when loading: if one is missing, <see cref="TryLoad"/> returns null with the missing name,
/// so cuDNN is an accelerator that can be absent, never a crash.
/// </summary>
public sealed unsafe class Cudnn
{
    // cudnnTensorFormat_t / cudnnDataType_t / cudnnConvolutionMode_t / cudnnMathType_t.
    public const int TensorNchw = 0;
    public const int DataFloat = 0;
    public const int CrossCorrelation = 1;
    public const int DefaultMath = 0;
    public const int FmaMath = 3;
    /// <summary>CUDNN_PROPAGATE_NAN (max pooling): a NaN in a window is the window's maximum, as in our kernels (pool.cu) and the CPU backend.</summary>
    public const int PropagateNan = 1;
    /// <summary>CUDNN_BATCHNORM_SPATIAL: statistics per channel over N, H, W (dense layers: H = W = 1).</summary>
    public const int BatchNormSpatial = 1;
    /// <summary>CUDNN_BN_MIN_EPSILON of cuDNN 8 and 9 (cudnn_ops.h: 0.0; it was 1e-5 up to cuDNN 7): cuDNN rejects a smaller epsilon.</summary>
    public const double BatchNormMinEpsilon = 0.0;

    private readonly delegate* unmanaged<nint*, int> _create;
    private readonly delegate* unmanaged<nint, int> _destroy;
    private readonly delegate* unmanaged<nint, nint, int> _setStream;
    private readonly delegate* unmanaged<nuint> _getVersion;
    private readonly delegate* unmanaged<int, byte*> _getErrorString;
    private readonly delegate* unmanaged<byte*, nuint, void> _getLastErrorString;
    private readonly delegate* unmanaged<nint*, int> _createTensor;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, int, int> _setTensor4d;
    private readonly delegate* unmanaged<nint, int> _destroyTensor;
    private readonly delegate* unmanaged<nint*, int> _createFilter;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, int, int> _setFilter4d;
    private readonly delegate* unmanaged<nint, int> _destroyFilter;
    private readonly delegate* unmanaged<nint*, int> _createConvolution;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, int, int, int, int> _setConvolution2d;
    private readonly delegate* unmanaged<nint, int, int> _setConvolutionMathType;
    private readonly delegate* unmanaged<nint, int> _destroyConvolution;
    private readonly delegate* unmanaged<nint, nint, nint, int*, int*, int*, int*, int> _getForwardOutputDim;
    private readonly delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int> _convolutionForward;
    private readonly delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int> _convolutionBackwardData;
    private readonly delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int> _convolutionBackwardFilter;
    private readonly delegate* unmanaged<nint*, int> _createPooling;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, int, int, int, int> _setPooling2d;
    private readonly delegate* unmanaged<nint, int> _destroyPooling;
    private readonly delegate* unmanaged<nint, nint, float*, nint, ulong, float*, nint, ulong, int> _poolingForward;
    private readonly delegate* unmanaged<nint, nint, float*, nint, ulong, nint, ulong, nint, ulong, float*, nint, ulong, int> _poolingBackward;
    private readonly delegate* unmanaged<nint, int, float*, float*, nint, ulong, nint, ulong, nint, ulong, ulong, double, ulong, ulong, double, ulong, ulong, int> _batchNormTraining;
    private readonly delegate* unmanaged<nint, int, float*, float*, nint, ulong, nint, ulong, nint, ulong, ulong, ulong, ulong, double, int> _batchNormInference;
    private readonly delegate* unmanaged<nint, int, float*, float*, float*, float*, nint, ulong, nint, ulong, nint, ulong, nint, ulong, ulong, ulong, double, ulong, ulong, int> _batchNormBackward;
    private readonly delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>[] _getAlgorithm;
    private readonly delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>[] _findAlgorithm;
    private readonly delegate* unmanaged<nint, nint, nint, nint, nint, int, nuint*, int>[] _workspaceSize;

    private Cudnn(LibraryLoadResult library)
    {
        Library = library;
        nint h = library.Handle;
        _create = (delegate* unmanaged<nint*, int>)Export(h, "cudnnCreate");
        _destroy = (delegate* unmanaged<nint, int>)Export(h, "cudnnDestroy");
        _setStream = (delegate* unmanaged<nint, nint, int>)Export(h, "cudnnSetStream");
        _getVersion = (delegate* unmanaged<nuint>)Export(h, "cudnnGetVersion");
        _getErrorString = (delegate* unmanaged<int, byte*>)Export(h, "cudnnGetErrorString");
        NativeLibrary.TryGetExport(h, "cudnnGetLastErrorString", out nint last);
        _getLastErrorString = (delegate* unmanaged<byte*, nuint, void>)last;
        _createTensor = (delegate* unmanaged<nint*, int>)Export(h, "cudnnCreateTensorDescriptor");
        _setTensor4d = (delegate* unmanaged<nint, int, int, int, int, int, int, int>)Export(h, "cudnnSetTensor4dDescriptor");
        _destroyTensor = (delegate* unmanaged<nint, int>)Export(h, "cudnnDestroyTensorDescriptor");
        _createFilter = (delegate* unmanaged<nint*, int>)Export(h, "cudnnCreateFilterDescriptor");
        _setFilter4d = (delegate* unmanaged<nint, int, int, int, int, int, int, int>)Export(h, "cudnnSetFilter4dDescriptor");
        _destroyFilter = (delegate* unmanaged<nint, int>)Export(h, "cudnnDestroyFilterDescriptor");
        _createConvolution = (delegate* unmanaged<nint*, int>)Export(h, "cudnnCreateConvolutionDescriptor");
        _setConvolution2d = (delegate* unmanaged<nint, int, int, int, int, int, int, int, int, int>)Export(h, "cudnnSetConvolution2dDescriptor");
        _setConvolutionMathType = (delegate* unmanaged<nint, int, int>)Export(h, "cudnnSetConvolutionMathType");
        _destroyConvolution = (delegate* unmanaged<nint, int>)Export(h, "cudnnDestroyConvolutionDescriptor");
        _getForwardOutputDim = (delegate* unmanaged<nint, nint, nint, int*, int*, int*, int*, int>)Export(h, "cudnnGetConvolution2dForwardOutputDim");
        _convolutionForward = (delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int>)Export(h, "cudnnConvolutionForward");
        _convolutionBackwardData = (delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int>)Export(h, "cudnnConvolutionBackwardData");
        _convolutionBackwardFilter = (delegate* unmanaged<nint, float*, nint, ulong, nint, ulong, nint, int, ulong, nuint, float*, nint, ulong, int>)Export(h, "cudnnConvolutionBackwardFilter");
        // Pooling and batch-norm are deprecated in cuDNN 9 and may go in a later version: without
        // them cuDNN still runs convolutions, and those ops fall back to our kernels.
        _createPooling = (delegate* unmanaged<nint*, int>)OptionalExport(h, "cudnnCreatePoolingDescriptor", _missing);
        _setPooling2d = (delegate* unmanaged<nint, int, int, int, int, int, int, int, int, int>)OptionalExport(h, "cudnnSetPooling2dDescriptor", _missing);
        _destroyPooling = (delegate* unmanaged<nint, int>)OptionalExport(h, "cudnnDestroyPoolingDescriptor", _missing);
        _poolingForward = (delegate* unmanaged<nint, nint, float*, nint, ulong, float*, nint, ulong, int>)OptionalExport(h, "cudnnPoolingForward", _missing);
        _poolingBackward = (delegate* unmanaged<nint, nint, float*, nint, ulong, nint, ulong, nint, ulong, float*, nint, ulong, int>)
            OptionalExport(h, "cudnnPoolingBackward", _missing);
        _batchNormTraining = (delegate* unmanaged<nint, int, float*, float*, nint, ulong, nint, ulong, nint, ulong, ulong, double, ulong, ulong, double, ulong, ulong, int>)
            OptionalExport(h, "cudnnBatchNormalizationForwardTraining", _missing);
        _batchNormInference = (delegate* unmanaged<nint, int, float*, float*, nint, ulong, nint, ulong, nint, ulong, ulong, ulong, ulong, double, int>)
            OptionalExport(h, "cudnnBatchNormalizationForwardInference", _missing);
        _batchNormBackward = (delegate* unmanaged<nint, int, float*, float*, float*, float*, nint, ulong, nint, ulong, nint, ulong, nint, ulong, ulong, ulong, double, ulong, ulong, int>)
            OptionalExport(h, "cudnnBatchNormalizationBackward", _missing);
        _getAlgorithm =
        [
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnGetConvolutionForwardAlgorithm_v7"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnGetConvolutionBackwardDataAlgorithm_v7"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnGetConvolutionBackwardFilterAlgorithm_v7"),
        ];
        _findAlgorithm =
        [
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnFindConvolutionForwardAlgorithm"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnFindConvolutionBackwardDataAlgorithm"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, int*, CudnnAlgorithmPerformance*, int>)Export(h, "cudnnFindConvolutionBackwardFilterAlgorithm"),
        ];
        _workspaceSize =
        [
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, nuint*, int>)Export(h, "cudnnGetConvolutionForwardWorkspaceSize"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, nuint*, int>)Export(h, "cudnnGetConvolutionBackwardDataWorkspaceSize"),
            (delegate* unmanaged<nint, nint, nint, nint, nint, int, nuint*, int>)Export(h, "cudnnGetConvolutionBackwardFilterWorkspaceSize"),
        ];
    }

    public LibraryLoadResult Library { get; }

    /// <summary>
    /// Loads libcudnn.so.9 and probes every export used. The cuDNN 9 shim dlopens its
    /// sub-libraries by soname at run time, so those in the same folder are loaded first.
    /// </summary>
    public static Cudnn? TryLoad(out string? failureReason)
    {
        var directories = NativeLibrarySearch.CandidateDirectories();
        string? folder = directories.FirstOrDefault(d => File.Exists(Path.Combine(d, "libcudnn.so.9")));
        foreach (string part in new[] { "graph", "engines_precompiled", "engines_runtime_compiled", "heuristic", "ops", "cnn", "adv" })
            NativeLibrarySearch.PreloadFrom(folder, $"libcudnn_{part}.so.9");
        LibraryLoadResult library = NativeLibrarySearch.Load("cuDNN", ["libcudnn.so.9"], directories, folder);
        if (!library.Loaded)
        {
            failureReason = library.FailureReason;
            return null;
        }
        try
        {
            // cuDNN 9 ships one soname per CUDA major (cu12 and cu13 builds): a build for a newer
            // CUDA than the driver supports loads, then fails in cudnnCreate.
            if (NativeLibrary.TryGetExport(library.Handle, "cudnnGetCudartVersion", out nint cudart)
                && NativeLibrarySearch.DriverCudaMajor() is int driverMajor
                && (int)(((delegate* unmanaged<nuint>)cudart)() / 1000) is var built && built > driverMajor)
            {
                failureReason = $"{library.Path} is built for CUDA {built} and this driver supports CUDA {driverMajor}, so cuDNN is disabled";
                return null;
            }
            failureReason = null;
            return new Cudnn(library);
        }
        catch (EntryPointNotFoundException e)
        {
            failureReason = $"{library.Path} lacks {e.Message}, so cuDNN is disabled";
            return null;
        }
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address) ? address : throw new EntryPointNotFoundException(name);

    private static nint OptionalExport(nint library, string name, List<string> missing)
    {
        if (NativeLibrary.TryGetExport(library, name, out nint address)) return address;
        missing.Add(name);
        return 0;
    }

    private readonly List<string> _missing = [];

    /// <summary>Optional exports this library lacks (the pooling and batch-norm calls); empty for cuDNN 9.</summary>
    public IReadOnlyList<string> MissingExports => _missing;

    /// <summary>Pooling and batch-norm calls go through here: a missing one is an op cuDNN cannot run, so our kernels do.</summary>
    private static void Require(void* function, string name)
    {
        if (function == null) throw new NotSupportedException($"this cuDNN lacks {name}");
    }

    /// <summary>cudnnGetVersion: major*10000 + minor*100 + patch for cuDNN 9 (e.g. 90100).</summary>
    public long Version() => (long)_getVersion();

    public string StatusName(int status)
    {
        byte* p = _getErrorString(status);
        return p == null ? $"cudnnStatus {status}" : Marshal.PtrToStringUTF8((nint)p) ?? $"cudnnStatus {status}";
    }

    /// <summary>cuDNN 9's detailed message of the last failure on this thread, when the export exists.</summary>
    public string LastErrorText()
    {
        if (_getLastErrorString == null) return "no details";
        byte* buffer = stackalloc byte[1024];
        buffer[0] = 0;
        _getLastErrorString(buffer, 1024);
        string text = (Marshal.PtrToStringUTF8((nint)buffer) ?? "").Trim();
        return text.Length == 0 ? "no details" : text;
    }

    /// <summary>
    /// What a failed cuDNN 9 call's status says. Statuses group by thousands (1xxx library and
    /// version, 2xxx BAD_PARAM_*, 3xxx NOT_SUPPORTED_*, 4xxx INTERNAL_ERROR_*, 5xxx
    /// EXECUTION_FAILED_*), but within a group they differ: a NULL or misaligned pointer, a stream
    /// or graph mismatch, a workspace too small are our binding's mistakes, and must be seen.
    /// </summary>
    public static CudnnFailure Classify(int status) => status switch
    {
        // BAD_PARAM, OUT_OF_BOUND, SHAPE_MISMATCH; NOT_SUPPORTED, GRAPH_PATTERN, SHAPE, DATA_TYPE,
        // LAYOUT, SHARED_MEMORY_INSUFFICIENT, PADDING, BAD_LAUNCH_PARAM, CUDA_GRAPH_NATIVE_API:
        // this call's case is one the library does not run.
        2000 or 2005 or 2008 or (>= 3000 and <= 3004) or (>= 3010 and <= 3999) => CudnnFailure.RefusesTheCase,
        // SUBLIBRARY_VERSION_MISMATCH, SUBLIBRARY_LOADING_FAILED; INCOMPATIBLE_CUDA_DRIVER,
        // INCOMPATIBLE_CUDART, ARCH_MISMATCH, RUNTIME_PREREQUISITE_MISSING, SUBLIBRARY_UNAVAILABLE:
        // the library cannot run here at all, as when it cannot be loaded.
        1002 or 1008 or (>= 3005 and <= 3009) => CudnnFailure.Unusable,
        _ => CudnnFailure.Error,
    };

    private void Check(int status, string api)
    {
        if (status != 0) throw new CudaException(api, status, StatusName(status), LastErrorText());
    }

    public nint Create()
    {
        nint handle;
        Check(_create(&handle), "cudnnCreate");
        return handle;
    }

    public void Destroy(nint handle) => Check(_destroy(handle), "cudnnDestroy");

    public void SetStream(nint handle, nint stream) => Check(_setStream(handle, stream), "cudnnSetStream");

    public nint CreateTensor4d(int n, int c, int h, int w)
    {
        nint desc;
        Check(_createTensor(&desc), "cudnnCreateTensorDescriptor");
        Check(_setTensor4d(desc, TensorNchw, DataFloat, n, c, h, w), "cudnnSetTensor4dDescriptor");
        return desc;
    }

    public void DestroyTensor(nint desc) => Check(_destroyTensor(desc), "cudnnDestroyTensorDescriptor");

    public nint CreateFilter4d(int k, int c, int h, int w)
    {
        nint desc;
        Check(_createFilter(&desc), "cudnnCreateFilterDescriptor");
        Check(_setFilter4d(desc, DataFloat, TensorNchw, k, c, h, w), "cudnnSetFilter4dDescriptor");
        return desc;
    }

    public void DestroyFilter(nint desc) => Check(_destroyFilter(desc), "cudnnDestroyFilterDescriptor");

    /// <summary>Symmetric padding only (cuDNN's limit); asymmetric 'same' padding needs a padded input or another path.</summary>
    public nint CreateConvolution2d(int padH, int padW, int strideH, int strideW, int mathType = FmaMath)
    {
        nint desc;
        Check(_createConvolution(&desc), "cudnnCreateConvolutionDescriptor");
        Check(_setConvolution2d(desc, padH, padW, strideH, strideW, 1, 1, CrossCorrelation, DataFloat), "cudnnSetConvolution2dDescriptor");
        Check(_setConvolutionMathType(desc, mathType), "cudnnSetConvolutionMathType");
        return desc;
    }

    public void DestroyConvolution(nint desc) => Check(_destroyConvolution(desc), "cudnnDestroyConvolutionDescriptor");

    public (int N, int C, int H, int W) ForwardOutputDim(nint convolution, nint input, nint filter)
    {
        int n, c, h, w;
        Check(_getForwardOutputDim(convolution, input, filter, &n, &c, &h, &w), "cudnnGetConvolution2dForwardOutputDim");
        return (n, c, h, w);
    }

    /// <summary>
    /// The descriptors in cuDNN's order for <paramref name="direction"/>: forward (x, w, conv, y),
    /// backward data (w, dy, conv, dx), backward filter (x, dy, conv, dw).
    /// </summary>
    public int GetAlgorithms(ConvolutionDirection direction, nint handle, nint first, nint second, nint convolution, nint result, Span<CudnnAlgorithmPerformance> results)
    {
        int returned;
        fixed (CudnnAlgorithmPerformance* p = results)
            Check(_getAlgorithm[(int)direction](handle, first, second, convolution, result, results.Length, &returned, p), $"cudnnGetConvolution{direction}Algorithm_v7");
        return returned;
    }

    /// <summary>Benchmarks the algorithms on the device (allocates its own scratch); same descriptor order as <see cref="GetAlgorithms"/>.</summary>
    public int FindAlgorithms(ConvolutionDirection direction, nint handle, nint first, nint second, nint convolution, nint result, Span<CudnnAlgorithmPerformance> results)
    {
        int returned;
        fixed (CudnnAlgorithmPerformance* p = results)
            Check(_findAlgorithm[(int)direction](handle, first, second, convolution, result, results.Length, &returned, p), $"cudnnFindConvolution{direction}Algorithm");
        return returned;
    }

    public long WorkspaceSize(ConvolutionDirection direction, nint handle, nint first, nint second, nint convolution, nint result, int algorithm)
    {
        nuint bytes;
        Check(_workspaceSize[(int)direction](handle, first, second, convolution, result, algorithm, &bytes), $"cudnnGetConvolution{direction}WorkspaceSize");
        return (long)bytes;
    }

    public void ConvolutionForward(nint handle, float alpha, nint xDesc, ulong x, nint wDesc, ulong w, nint convolution, int algorithm,
        ulong workspace, long workspaceBytes, float beta, nint yDesc, ulong y) =>
        Check(_convolutionForward(handle, &alpha, xDesc, x, wDesc, w, convolution, algorithm, workspace, (nuint)workspaceBytes, &beta, yDesc, y), "cudnnConvolutionForward");

    public void ConvolutionBackwardData(nint handle, float alpha, nint wDesc, ulong w, nint dyDesc, ulong dy, nint convolution, int algorithm,
        ulong workspace, long workspaceBytes, float beta, nint dxDesc, ulong dx) =>
        Check(_convolutionBackwardData(handle, &alpha, wDesc, w, dyDesc, dy, convolution, algorithm, workspace, (nuint)workspaceBytes, &beta, dxDesc, dx), "cudnnConvolutionBackwardData");

    public void ConvolutionBackwardFilter(nint handle, float alpha, nint xDesc, ulong x, nint dyDesc, ulong dy, nint convolution, int algorithm,
        ulong workspace, long workspaceBytes, float beta, nint dwDesc, ulong dw) =>
        Check(_convolutionBackwardFilter(handle, &alpha, xDesc, x, dyDesc, dy, convolution, algorithm, workspace, (nuint)workspaceBytes, &beta, dwDesc, dw), "cudnnConvolutionBackwardFilter");

    public nint CreatePooling2d(CudnnPoolingMode mode, int windowH, int windowW, int strideH, int strideW)
    {
        Require(_createPooling, "cudnnCreatePoolingDescriptor");
        Require(_setPooling2d, "cudnnSetPooling2dDescriptor");
        Require(_destroyPooling, "cudnnDestroyPoolingDescriptor");
        nint desc;
        Check(_createPooling(&desc), "cudnnCreatePoolingDescriptor");
        Check(_setPooling2d(desc, (int)mode, PropagateNan, windowH, windowW, 0, 0, strideH, strideW), "cudnnSetPooling2dDescriptor");
        return desc;
    }

    public void DestroyPooling(nint desc) => Check(_destroyPooling(desc), "cudnnDestroyPoolingDescriptor");

    /// <summary>y = pool(x) (alpha 1, beta 0: y overwritten).</summary>
    public void PoolingForward(nint handle, nint pooling, nint xDesc, ulong x, nint yDesc, ulong y)
    {
        Require(_poolingForward, "cudnnPoolingForward");
        float alpha = 1f, beta = 0f;
        Check(_poolingForward(handle, pooling, &alpha, xDesc, x, &beta, yDesc, y), "cudnnPoolingForward");
    }

    /// <summary>dx from x, the forward output y and dy (alpha 1, beta 0: dx overwritten).</summary>
    public void PoolingBackward(nint handle, nint pooling, nint yDesc, ulong y, ulong dy, nint xDesc, ulong x, ulong dx)
    {
        Require(_poolingBackward, "cudnnPoolingBackward");
        float alpha = 1f, beta = 0f;
        Check(_poolingBackward(handle, pooling, &alpha, yDesc, y, yDesc, dy, xDesc, x, &beta, xDesc, dx), "cudnnPoolingBackward");
    }

    /// <summary>
    /// Spatial batch-norm, training: y overwritten; running = (1 - factor) running + factor batch
    /// (cuDNN applies Bessel's correction to the running variance); saves mean and 1/sqrt(var + eps).
    /// </summary>
    public void BatchNormForwardTraining(nint handle, nint xDesc, ulong x, ulong y, nint channelDesc, ulong gamma, ulong beta,
        double averageFactor, ulong runningMean, ulong runningVariance, double epsilon, ulong savedMean, ulong savedInvStd)
    {
        Require(_batchNormTraining, "cudnnBatchNormalizationForwardTraining");
        float alpha = 1f, blend = 0f;
        Check(_batchNormTraining(handle, BatchNormSpatial, &alpha, &blend, xDesc, x, xDesc, y, channelDesc, gamma, beta,
            averageFactor, runningMean, runningVariance, epsilon, savedMean, savedInvStd), "cudnnBatchNormalizationForwardTraining");
    }

    /// <summary>y = gamma (x - mean) / sqrt(variance + eps) + beta, y overwritten.</summary>
    public void BatchNormForwardInference(nint handle, nint xDesc, ulong x, ulong y, nint channelDesc, ulong gamma, ulong beta,
        ulong mean, ulong variance, double epsilon)
    {
        Require(_batchNormInference, "cudnnBatchNormalizationForwardInference");
        float alpha = 1f, blend = 0f;
        Check(_batchNormInference(handle, BatchNormSpatial, &alpha, &blend, xDesc, x, xDesc, y, channelDesc, gamma, beta, mean, variance, epsilon),
            "cudnnBatchNormalizationForwardInference");
    }

    /// <summary>dx, dGamma, dBeta overwritten, from the mean and 1/sqrt(var + eps) saved by the training forward.</summary>
    public void BatchNormBackward(nint handle, nint xDesc, ulong x, ulong dy, ulong dx, nint channelDesc, ulong gamma,
        ulong dGamma, ulong dBeta, double epsilon, ulong savedMean, ulong savedInvStd)
    {
        Require(_batchNormBackward, "cudnnBatchNormalizationBackward");
        float one = 1f, zero = 0f;
        Check(_batchNormBackward(handle, BatchNormSpatial, &one, &zero, &one, &zero, xDesc, x, xDesc, dy, xDesc, dx,
            channelDesc, gamma, dGamma, dBeta, epsilon, savedMean, savedInvStd), "cudnnBatchNormalizationBackward");
    }
}
