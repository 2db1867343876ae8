namespace LaPerm.Cuda.Interop;

/// <summary>
/// A failed native call (driver, cuBLAS, cuDNN or the host emulator): carries the API that
/// failed, the numeric status, its symbolic name and its description.
/// </summary>
public sealed class CudaException : Exception
{
    public CudaException(string apiName, int errorCode, string errorName, string errorText, string? context = null)
        : base(Format(apiName, errorCode, errorName, errorText, context))
    {
        ApiName = apiName;
        ErrorCode = errorCode;
        ErrorName = errorName;
        ErrorText = errorText;
        Context = context;
    }

    /// <summary>The native function that returned the error, e.g. "cuMemAlloc_v2".</summary>
    public string ApiName { get; }

    /// <summary>The raw status (CUresult, cublasStatus_t, cudnnStatus_t or the emulator's code).</summary>
    public int ErrorCode { get; }

    /// <summary>The symbolic name, e.g. "CUDA_ERROR_OUT_OF_MEMORY".</summary>
    public string ErrorName { get; }

    /// <summary>The library's description of the error.</summary>
    public string ErrorText { get; }

    /// <summary>What the call was doing (kernel name, module file, ...), when known.</summary>
    public string? Context { get; }

    internal static string Format(string apiName, int errorCode, string errorName, string errorText, string? context)
    {
        string where = context is null ? "" : $" ({context})";
        return $"{apiName} failed{where}: {errorName} ({errorCode}): {errorText}";
    }
}
