using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>cublasOperation_t.</summary>
public enum CublasOperation { None = 0, Transpose = 1 }

/// <summary>
/// A row-major C[m,n] = op(A) op(B) as cuBLAS's column-major call: that C is the column-major
/// C^T[n,m] = op(B)^T op(A)^T, so the operands swap (B first; the call's sizes are n, m, k) and
/// each keeps its own transpose flag. Leading dimensions are at least 1: cuBLAS refuses 0
/// (INVALID_VALUE) even where k = 0 leaves nothing to read.
/// </summary>
public readonly record struct RowMajorGemm(CublasOperation OpB, CublasOperation OpA, int Ldb, int Lda, int Ldc)
{
    public static RowMajorGemm Of(bool transposeA, bool transposeB, int m, int n, int k) => new(
        transposeB ? CublasOperation.Transpose : CublasOperation.None,
        transposeA ? CublasOperation.Transpose : CublasOperation.None,
        Math.Max(1, transposeB ? k : n),
        Math.Max(1, transposeA ? m : k),
        Math.Max(1, n));
}

/// <summary>cublasMath_t: Pedantic keeps FP32 bit-comparable with the CPU; TF32 must be chosen explicitly.</summary>
public enum CublasMath { Default = 0, Pedantic = 2, Tf32TensorOp = 3 }

/// <summary>cudaDataType_t values used here.</summary>
public enum CudaDataType { R32F = 0, R16F = 2, R16BF = 14 }

/// <summary>cublasComputeType_t values used here.</summary>
public enum CublasComputeType { Compute32F = 68, Compute32FPedantic = 69, Compute32FFastTf32 = 77 }

/// <summary>
/// cuBLAS bound through function pointers to libcublas.so.13 (else .12), with libcublasLt
/// from the same folder loaded first so the dependency resolves outside LD_LIBRARY_PATH.
/// Column-major, as cuBLAS itself; the row-major facade is <see cref="Runtime.Blas"/>.
/// </summary>
public sealed unsafe class Cublas
{
    public const int GemmDefault = -1;

    private readonly delegate* unmanaged<nint*, int> _create;
    private readonly delegate* unmanaged<nint, int> _destroy;
    private readonly delegate* unmanaged<nint, nint, int> _setStream;
    private readonly delegate* unmanaged<nint, void*, nuint, int> _setWorkspace;
    private readonly delegate* unmanaged<nint, int, int> _setMathMode;
    private readonly delegate* unmanaged<nint, int*, int> _getVersion;
    private readonly delegate* unmanaged<int, int*, int> _getProperty;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, int> _sgemm;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, long, ulong, int, long, float*, ulong, int, long, int, int> _sgemmStridedBatched;
    private readonly delegate* unmanaged<nint, int, int, int, int, int, void*, ulong, int, int, ulong, int, int, void*, ulong, int, int, int, int, int> _gemmEx;
    private readonly delegate* unmanaged<int, byte*> _getStatusName;
    private readonly delegate* unmanaged<int, byte*> _getStatusString;

    private Cublas(LibraryLoadResult library)
    {
        Library = library;
        nint h = library.Handle;
        _create = (delegate* unmanaged<nint*, int>)Export(h, "cublasCreate_v2");
        _destroy = (delegate* unmanaged<nint, int>)Export(h, "cublasDestroy_v2");
        _setStream = (delegate* unmanaged<nint, nint, int>)Export(h, "cublasSetStream_v2");
        _setWorkspace = (delegate* unmanaged<nint, void*, nuint, int>)Export(h, "cublasSetWorkspace_v2");
        _setMathMode = (delegate* unmanaged<nint, int, int>)Export(h, "cublasSetMathMode");
        _getVersion = (delegate* unmanaged<nint, int*, int>)Export(h, "cublasGetVersion_v2");
        _getProperty = (delegate* unmanaged<int, int*, int>)Export(h, "cublasGetProperty");
        _sgemm = (delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, ulong, int, float*, ulong, int, int>)Export(h, "cublasSgemm_v2");
        _sgemmStridedBatched = (delegate* unmanaged<nint, int, int, int, int, int, float*, ulong, int, long, ulong, int, long, float*, ulong, int, long, int, int>)Export(h, "cublasSgemmStridedBatched");
        _gemmEx = (delegate* unmanaged<nint, int, int, int, int, int, void*, ulong, int, int, ulong, int, int, void*, ulong, int, int, int, int, int>)Export(h, "cublasGemmEx");
        // Status names/strings exist since CUDA 11.4; optional so an older library still works.
        NativeLibrary.TryGetExport(h, "cublasGetStatusName", out nint name);
        NativeLibrary.TryGetExport(h, "cublasGetStatusString", out nint text);
        _getStatusName = (delegate* unmanaged<int, byte*>)name;
        _getStatusString = (delegate* unmanaged<int, byte*>)text;
    }

    public LibraryLoadResult Library { get; }

    /// <summary>Loads cuBLAS; null with a reason when it is not installed.</summary>
    public static Cublas? TryLoad(out string? failureReason)
    {
        var directories = NativeLibrarySearch.CandidateDirectories();
        int? driverMajor = NativeLibrarySearch.DriverCudaMajor();
        string? skipped = null;
        foreach (int major in new[] { 13, 12 })
        {
            if (driverMajor is int supported && major > supported)
            {
                skipped = $"libcublas.so.{major} skipped: it needs a CUDA {major} driver and this one supports CUDA {supported}";
                continue;
            }
            // Load libcublasLt first from the folder that holds libcublas, so libcublas's
            // DT_NEEDED entry is satisfied by the already loaded soname, then libcublas from there.
            string? folder = directories.FirstOrDefault(d => File.Exists(Path.Combine(d, $"libcublas.so.{major}")));
            NativeLibrarySearch.PreloadFrom(folder, $"libcublasLt.so.{major}");
            LibraryLoadResult library = NativeLibrarySearch.Load("cuBLAS", [$"libcublas.so.{major}"], directories, folder);
            if (!library.Loaded) continue;
            try
            {
                failureReason = null;
                return new Cublas(library);
            }
            catch (EntryPointNotFoundException e)
            {
                failureReason = $"{library.Path} lacks {e.Message}";
                return null;
            }
        }
        failureReason = (skipped is null ? "" : skipped + "; ")
            + "libcublas.so.13 or libcublas.so.12 not found (searched the loader path, LD_LIBRARY_PATH, the CUDA toolkit and Python nvidia/*/lib folders)";
        return null;
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address) ? address : throw new EntryPointNotFoundException(name);

    /// <summary>The library version as major*10000 + minor*100 + patch, read without a handle or GPU.</summary>
    public int LibraryVersion()
    {
        int major, minor, patch;
        Check(_getProperty(0, &major), "cublasGetProperty");
        Check(_getProperty(1, &minor), "cublasGetProperty");
        Check(_getProperty(2, &patch), "cublasGetProperty");
        return major * 10000 + minor * 100 + patch;
    }

    public string StatusName(int status) =>
        _getStatusName != null && _getStatusName(status) is var p && p != null
            ? Marshal.PtrToStringUTF8((nint)p) ?? $"cublasStatus {status}"
            : status switch
            {
                1 => "CUBLAS_STATUS_NOT_INITIALIZED",
                3 => "CUBLAS_STATUS_ALLOC_FAILED",
                7 => "CUBLAS_STATUS_INVALID_VALUE",
                8 => "CUBLAS_STATUS_ARCH_MISMATCH",
                11 => "CUBLAS_STATUS_MAPPING_ERROR",
                13 => "CUBLAS_STATUS_EXECUTION_FAILED",
                14 => "CUBLAS_STATUS_INTERNAL_ERROR",
                15 => "CUBLAS_STATUS_NOT_SUPPORTED",
                16 => "CUBLAS_STATUS_LICENSE_ERROR",
                _ => $"cublasStatus {status}",
            };

    public string StatusText(int status) =>
        _getStatusString != null && _getStatusString(status) is var p && p != null
            ? Marshal.PtrToStringUTF8((nint)p) ?? "unknown error"
            : "unknown error";

    private void Check(int status, string api)
    {
        if (status != 0) throw new CudaException(api, status, StatusName(status), StatusText(status));
    }

    public nint Create()
    {
        nint handle;
        Check(_create(&handle), "cublasCreate_v2");
        return handle;
    }

    public void Destroy(nint handle) => Check(_destroy(handle), "cublasDestroy_v2");

    /// <summary>
    /// Puts the handle's work on <paramref name="stream"/> with <paramref name="workspace"/> as its
    /// workspace. cublasSetStream resets the workspace to cuBLAS's default pool (which allocates,
    /// also inside a graph capture), so the explicit workspace is set again right after it, every time.
    /// </summary>
    public void BindStream(nint handle, nint stream, ulong workspace, long bytes)
    {
        Check(_setStream(handle, stream), "cublasSetStream_v2");
        Check(_setWorkspace(handle, (void*)workspace, (nuint)bytes), "cublasSetWorkspace_v2");
    }

    public void SetMathMode(nint handle, CublasMath mode) => Check(_setMathMode(handle, (int)mode), "cublasSetMathMode");

    public int Version(nint handle)
    {
        int version;
        Check(_getVersion(handle, &version), "cublasGetVersion_v2");
        return version;
    }

    /// <summary>Column-major C = alpha op(A) op(B) + beta C; alpha/beta in host memory.</summary>
    public void Sgemm(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float alpha, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc) =>
        Check(_sgemm(handle, (int)transA, (int)transB, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc), "cublasSgemm_v2");

    public void SgemmStridedBatched(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float beta, ulong c, int ldc, long strideC, int batchCount) =>
        Check(_sgemmStridedBatched(handle, (int)transA, (int)transB, m, n, k, &alpha, a, lda, strideA, b, ldb, strideB, &beta, c, ldc, strideC, batchCount),
            "cublasSgemmStridedBatched");

    /// <summary>cublasGemmEx with FP32 alpha/beta (valid for the 32F compute types).</summary>
    public void GemmEx(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float alpha, ulong a, CudaDataType aType, int lda, ulong b, CudaDataType bType, int ldb,
        float beta, ulong c, CudaDataType cType, int ldc, CublasComputeType computeType, int algorithm = GemmDefault) =>
        Check(_gemmEx(handle, (int)transA, (int)transB, m, n, k, &alpha, a, (int)aType, lda, b, (int)bType, ldb,
            &beta, c, (int)cType, ldc, (int)computeType, algorithm), "cublasGemmEx");
}
