using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests;

public sealed class CudaExceptionTests
{
    [Fact]
    public void MessageNamesApiErrorNameCodeAndText()
    {
        var e = new CudaException("cuMemAlloc_v2", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory", "1048576 bytes");
        Assert.Equal("cuMemAlloc_v2 failed (1048576 bytes): CUDA_ERROR_OUT_OF_MEMORY (2): out of memory", e.Message);
        Assert.Equal("cuMemAlloc_v2", e.ApiName);
        Assert.Equal(2, e.ErrorCode);
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", e.ErrorName);
        Assert.Equal("out of memory", e.ErrorText);
        Assert.Equal("1048576 bytes", e.Context);
    }

    [Fact]
    public void MessageWithoutContextHasNoEmptyParentheses()
    {
        var e = new CudaException("cublasSgemm_v2", 7, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument");
        Assert.Equal("cublasSgemm_v2 failed: CUBLAS_STATUS_INVALID_VALUE (7): an invalid numeric value was used as an argument", e.Message);
        Assert.Null(e.Context);
    }
}

public sealed class CudnnAlgorithmChoiceTests
{
    private static CudnnAlgorithmPerformance Candidate(int algorithm, int status = 0, int determinism = 1, int mathType = 3, long memory = 1024) =>
        new() { Algorithm = algorithm, Status = status, Milliseconds = algorithm, MemoryBytes = (nuint)memory, Determinism = determinism, MathType = mathType };

    [Fact]
    public void TheFastestDeterministicFmaAlgorithmWithinTheCapIsChosen()
    {
        CudnnAlgorithmPerformance[] measured =
        [
            Candidate(0, determinism: 0),                              // fastest, but atomics: not reproducible
            Candidate(1, mathType: 1),                                 // tensor cores (TF32)
            Candidate(2, mathType: 2),                                 // tensor cores with conversion
            Candidate(3, status: 3000),                                // did not run
            Candidate(4, memory: CudnnOperations.MaxWorkspaceBytes + 1),
            Candidate(5, mathType: 0),                                 // default math on FP32 data: FMA
            Candidate(6),
        ];
        Assert.Equal(5, CudnnOperations.ChooseAlgorithm(measured, CudnnOperations.MaxWorkspaceBytes));
    }

    [Theory]
    [InlineData(2000, CudnnFailure.RefusesTheCase)]   // CUDNN_STATUS_BAD_PARAM
    [InlineData(2005, CudnnFailure.RefusesTheCase)]   // BAD_PARAM_OUT_OF_BOUND
    [InlineData(2008, CudnnFailure.RefusesTheCase)]   // BAD_PARAM_SHAPE_MISMATCH
    [InlineData(3000, CudnnFailure.RefusesTheCase)]   // NOT_SUPPORTED
    [InlineData(3002, CudnnFailure.RefusesTheCase)]   // NOT_SUPPORTED_SHAPE
    [InlineData(3010, CudnnFailure.RefusesTheCase)]   // NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT
    [InlineData(2002, CudnnFailure.Error)]            // BAD_PARAM_NULL_POINTER: our call's mistake
    [InlineData(2003, CudnnFailure.Error)]            // BAD_PARAM_MISALIGNED_POINTER
    [InlineData(2006, CudnnFailure.Error)]            // BAD_PARAM_SIZE_INSUFFICIENT (a workspace too small)
    [InlineData(2007, CudnnFailure.Error)]            // BAD_PARAM_STREAM_MISMATCH
    [InlineData(2011, CudnnFailure.Error)]            // BAD_PARAM_CUDA_GRAPH_MISMATCH
    [InlineData(1001, CudnnFailure.Error)]            // NOT_INITIALIZED
    [InlineData(4000, CudnnFailure.Error)]            // INTERNAL_ERROR
    [InlineData(4004, CudnnFailure.Error)]            // INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
    [InlineData(5000, CudnnFailure.Error)]            // EXECUTION_FAILED
    [InlineData(5001, CudnnFailure.Error)]            // EXECUTION_FAILED_CUDA_DRIVER
    [InlineData(1002, CudnnFailure.Unusable)]         // SUBLIBRARY_VERSION_MISMATCH
    [InlineData(1008, CudnnFailure.Unusable)]         // SUBLIBRARY_LOADING_FAILED
    [InlineData(3005, CudnnFailure.Unusable)]         // NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER
    [InlineData(3007, CudnnFailure.Unusable)]         // NOT_SUPPORTED_ARCH_MISMATCH
    [InlineData(3009, CudnnFailure.Unusable)]         // NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE
    public void ACudnnStatusSaysWhetherTheCaseIsRefusedCudnnIsUnusableOrSomethingFailed(int status, CudnnFailure expected)
    {
        // A refusal sends the shape to our kernels for the rest of the run; an allocation, a kernel
        // fault or a mistake in our own call surfacing in cuDNN must stop the run as the failure it is.
        Assert.Equal(expected, Cudnn.Classify(status));
    }

    [Theory]
    // cublasSgemm(opB, opA, n, m, k, B, ldb, A, lda, C, ldc) for a row-major C[m,n] = op(A) op(B):
    // B is n x k column-major (k x n transposed), A is k x m (m x k transposed); each leading
    // dimension is its rows, at least 1. k = 0 gave 0, which cuBLAS refuses (the host GEMM on emu did not).
    [InlineData(false, false, 3, 5, 7, 5, 7)]
    [InlineData(true, false, 3, 5, 7, 5, 3)]
    [InlineData(false, true, 3, 5, 7, 7, 7)]
    [InlineData(true, true, 3, 5, 7, 7, 3)]
    [InlineData(false, false, 4, 6, 0, 6, 1)]
    [InlineData(false, true, 4, 6, 0, 1, 1)]
    [InlineData(true, true, 4, 6, 0, 1, 4)]
    public void RowMajorGemmPassesCublasTheLeadingDimensionsItAccepts(bool transposeA, bool transposeB, int m, int n, int k, int ldb, int lda)
    {
        var g = RowMajorGemm.Of(transposeA, transposeB, m, n, k);
        Assert.Equal(new RowMajorGemm(transposeB ? CublasOperation.Transpose : CublasOperation.None,
            transposeA ? CublasOperation.Transpose : CublasOperation.None, ldb, lda, n), g);
    }

    [Fact]
    public void NoQualifyingAlgorithmIsMinusOne()
    {
        Assert.Equal(-1, CudnnOperations.ChooseAlgorithm([Candidate(0, determinism: 0), Candidate(1, mathType: 1)], CudnnOperations.MaxWorkspaceBytes));
        Assert.Equal(-1, CudnnOperations.ChooseAlgorithm([], CudnnOperations.MaxWorkspaceBytes));
    }
}

public sealed class LibraryDiscoveryTests
{
    private static bool DriverInstalled => NativeLibrary.TryLoad("libcuda.so.1", out _);

    [Fact]
    public void MissingLibraryReportsWhatWasSearched()
    {
        var result = NativeLibrarySearch.Load("nothing", ["liblaperm_does_not_exist.so.7"], []);
        Assert.False(result.Loaded);
        Assert.Null(result.Path);
        Assert.Contains("liblaperm_does_not_exist.so.7 not found", result.FailureReason);
    }

    /// <summary>
    /// A library whose companions were preloaded from one folder is loaded from that folder too,
    /// ahead of the candidates' order (mixing two installations' cuDNN parts fails at run time).
    /// </summary>
    [Fact]
    public void ThePreferredFolderWinsOverTheCandidatesOrder()
    {
        // Any real shared library will do: the runtime's own System.Native, copied twice.
        string original = Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "libSystem.Native.so");
        string root = Path.Combine(Path.GetTempPath(), "laperm-libs-" + Guid.NewGuid().ToString("N"));
        try
        {
            string first = Directory.CreateDirectory(Path.Combine(root, "first")).FullName;
            string second = Directory.CreateDirectory(Path.Combine(root, "second")).FullName;
            const string soname = "liblaperm_search_probe.so.1";
            File.Copy(original, Path.Combine(first, soname));
            File.Copy(original, Path.Combine(second, soname));
            Assert.Equal(Path.Combine(first, soname), NativeLibrarySearch.Load("probe", [soname], [first, second]).Path);
            var preferred = NativeLibrarySearch.Load("probe", [soname], [first, second], preferredDirectory: second);
            Assert.True(preferred.Loaded, preferred.FailureReason);
            Assert.Equal(Path.Combine(second, soname), preferred.Path);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void PipWheelLibraryFoldersAreDiscoveredByGlobbing()
    {
        string root = Path.Combine(Path.GetTempPath(), "laperm-site-" + Guid.NewGuid().ToString("N"));
        try
        {
            string cublas = Directory.CreateDirectory(Path.Combine(root, "nvidia", "cublas", "lib")).FullName;
            string cudnn = Directory.CreateDirectory(Path.Combine(root, "nvidia", "cudnn", "lib")).FullName;
            Directory.CreateDirectory(Path.Combine(root, "nvidia", "no_lib_here", "include"));
            var found = NativeLibrarySearch.NvidiaWheelLibraryDirectories(root).ToList();
            Assert.Equal([cublas, cudnn], found);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void CandidateDirectoriesExistAndAreDistinct()
    {
        var directories = NativeLibrarySearch.CandidateDirectories();
        Assert.All(directories, d => Assert.True(Directory.Exists(d), d));
        Assert.Equal(directories.Count, directories.Distinct().Count());
    }

    [Fact]
    public void WithoutDriverTheReportSaysWhyInOneSentence()
    {
        if (DriverInstalled) Assert.Skip("an NVIDIA driver is installed here; this test covers machines without one");
        CudaInfoReport report = CudaInfo.Collect();
        Assert.False(report.CudaAvailable);
        Assert.Empty(report.Gpus);
        Assert.Null(report.DriverVersion);
        Assert.Equal("CUDA unavailable: libcuda.so.1 not found (no NVIDIA driver installed).", report.CudaUnavailableReason);
        // One sentence: exactly one full stop, at the end.
        Assert.Single(report.CudaUnavailableReason!.Split(". "));
        string text = CudaInfo.Describe();
        Assert.StartsWith(report.CudaUnavailableReason, text);
        Assert.DoesNotContain("GPU 0", text);
    }

    [Fact]
    public void OpeningCudaWithoutDriverFailsWithTheSameSentence()
    {
        if (DriverInstalled) Assert.Skip("an NVIDIA driver is installed here; this test covers machines without one");
        var e = Assert.Throws<InvalidOperationException>(() => Device.Open("cuda"));
        Assert.Equal(CudaInfo.Collect().CudaUnavailableReason, e.Message);
    }

    [Fact]
    public void UnknownDeviceKindIsRejectedWithTheExpectedValues()
    {
        var e = Assert.Throws<ArgumentException>(() => Device.Open("opencl"));
        Assert.Contains("'opencl'", e.Message);
        Assert.Contains("\"emu\"", e.Message);
    }

    [Fact]
    public void ReportTextListsGpusLibrariesAndKernels()
    {
        var report = new CudaInfoReport(null, "13.0", "libcuda.so.1",
            [new GpuInfo(0, "NVIDIA H100 80GB HBM3", 132, 85_520_809_984, 9, 0, 1_980_000), new GpuInfo(1, "A future GPU", 100, 85_520_809_984, 99, 0, 2_000_000)],
            new LibraryInfo("cuBLAS", "/x/libcublas.so.13", "13.0.2", null),
            new LibraryInfo("cuDNN", null, null, "libcudnn.so.9 not found"),
            [new PtxFile("axpy.ptx", ["axpy_v1"], "clang 14.0.6")], null,
            new LibraryInfo("Emulator", "/x/liblaperm_emu.so", null, null), ["axpy_v1"], false, "ptxas release 11.8, V11.8.89 for sm_90");
        string text = report.ToText();
        Assert.Contains("CUDA driver 13.0", text);
        Assert.Contains("PTX kernels: 1 in 1 file(s), assembled at build time by ptxas release 11.8, V11.8.89 for sm_90" + Environment.NewLine, text);
        Assert.Contains("GPU 0: NVIDIA H100 80GB HBM3, 132 SMs, 79.6 GiB, compute capability 9.0, FP32 peak 66.9 TFLOP/s (132 SMs x 128 lanes x 2 x 1980 MHz)", text);
        // A compute capability this build does not know has no peak rather than a guessed one.
        Assert.Contains("GPU 1: A future GPU, 100 SMs, 79.6 GiB, compute capability 99.0" + Environment.NewLine, text);
        Assert.Contains("cuBLAS 13.0.2 (/x/libcublas.so.13)", text);
        Assert.Contains("cuDNN unavailable: libcudnn.so.9 not found", text);
        Assert.Contains("axpy.ptx [clang 14.0.6]: axpy_v1", text);
        Assert.DoesNotContain("CUDA unavailable", text);
    }

    /// <summary>NVIDIA's published FP32 peaks (boost clock): V100 SXM2 15.7, A100 19.5, A10 31.2, H100 SXM 66.9 TFLOP/s.</summary>
    [Theory]
    [InlineData(80, 7, 0, 1_530_000, 15.7)]
    [InlineData(108, 8, 0, 1_410_000, 19.5)]
    [InlineData(72, 8, 6, 1_695_000, 31.2)]
    [InlineData(132, 9, 0, 1_980_000, 66.9)]
    public void Fp32PeakMatchesThePublishedOnes(int sms, int major, int minor, int clockKHz, double teraflops)
    {
        var gpu = new GpuInfo(0, "GPU", sms, 1L << 34, major, minor, clockKHz);
        Assert.Equal(teraflops, Math.Round(gpu.Fp32PeakGflops!.Value / 1000, 1));
    }

    /// <summary>The kernels are PTX for compute capability 8.0: an older GPU is named, with why, before any kernel fails to load.</summary>
    [Fact]
    public void AGpuOlderThanThePtxIsUnsupportedAndSaysWhy()
    {
        var t4 = new GpuInfo(0, "Tesla T4", 40, 1L << 34, 7, 5, 1_590_000);
        Assert.Equal("GPU 0 (Tesla T4) has compute capability 7.5, and the kernels are PTX for 8.0, which runs on 8.0 and newer (--device cuda:N chooses another GPU)", t4.UnsupportedReason);
        Assert.Null(new GpuInfo(0, "NVIDIA A100", 108, 1L << 34, 8, 0).UnsupportedReason);
        Assert.Null(new GpuInfo(1, "NVIDIA H200", 132, 1L << 34, 9, 0).UnsupportedReason);
        var report = new CudaInfoReport(null, "12.8", "libcuda.so.1", [t4],
            new LibraryInfo("cuBLAS", null, null, "missing"), new LibraryInfo("cuDNN", null, null, "missing"), [], "none",
            new LibraryInfo("Emulator", null, null, "missing"), [], false);
        Assert.Contains("GPU 0: Tesla T4, 40 SMs, 16.0 GiB, compute capability 7.5, FP32 peak 8.1 TFLOP/s (40 SMs x 64 lanes x 2 x 1590 MHz) (too old for the kernels: PTX for 8.0)", report.ToText());
        // --device cuda (auto too) opens GPU 0, --device cuda:N GPU N: each has its own answer.
        Assert.Equal(t4.UnsupportedReason, report.GpuUnusableReason);
        Assert.Equal(t4.UnsupportedReason, report.GpuUnusableReasonFor(0));
        Assert.Equal("GPU 1 was asked for and the driver reports 1 GPU (numbered from 0; laperm info lists them)", report.GpuUnusableReasonFor(1));
        var two = report with { Gpus = [t4, new GpuInfo(1, "NVIDIA H200", 132, 1L << 34, 9, 0)] };
        Assert.Null(two.GpuUnusableReasonFor(1));
        Assert.Equal("GPU 2 was asked for and the driver reports 2 GPUs (numbered from 0; laperm info lists them)", two.GpuUnusableReasonFor(2));
    }

    [Fact]
    public void Fp32PeakIsUnknownWithoutAClockOrForAnUnknownArchitecture()
    {
        Assert.Null(new GpuInfo(0, "GPU", 132, 1L << 34, 9, 0).Fp32PeakGflops);
        Assert.Null(new GpuInfo(0, "GPU", 132, 1L << 34, 3, 5, 1_000_000).Fp32PeakGflops);
    }

    [Theory]
    [InlineData(13000, "13.0")]
    [InlineData(12080, "12.8")]
    [InlineData(12040, "12.4")]
    public void DriverVersionFormatting(int version, string expected) => Assert.Equal(expected, CudaInfo.FormatDriverVersion(version));

    [Theory]
    [InlineData(90100L, "9.1.0")]
    [InlineData(91002L, "9.10.2")]
    [InlineData(130001L, "13.0.1")]
    public void LibraryVersionFormatting(long version, string expected) => Assert.Equal(expected, CudaInfo.FormatLibraryVersion(version));
}

public sealed class PtxCatalogTests
{
    [Fact]
    public void ParsesFilesKernelsAndCompiler()
    {
        var json = JsonDocument.Parse("""
            { "available": true, "compiler": "clang", "compilerVersion": "clang 14.0.6", "arch": "sm_80",
              "files": [ { "file": "axpy.ptx", "kernels": ["axpy_v1", "axpy_v2"],
                           "staticSharedBytes": { "axpy_v1": 0, "axpy_v2": 2048 }, "maxThreads": { "axpy_v1": 0, "axpy_v2": 512 },
                           "registers": { "axpy_v1": 10, "axpy_v2": 80 }, "spillStoreBytes": { "axpy_v1": 0, "axpy_v2": 56 } },
                         { "file": "ptx/scan.ptx", "kernels": ["scan_v1"], "compiler": "nvcc 13.0",
                           "staticSharedBytes": { "scan_v1": 128 }, "maxThreads": { "scan_v1": 1024 } } ] }
            """);
        var files = PtxCatalog.Parse(json.RootElement);
        Assert.Equal(2, files.Count);
        Assert.Equal(new[] { "axpy_v1", "axpy_v2" }, files[0].Kernels);
        Assert.Equal("clang 14.0.6, sm_80", files[0].Compiler);
        Assert.Equal("scan.ptx", files[1].FileName);
        Assert.Equal("nvcc 13.0", files[1].Compiler);
        Assert.Equal(new PtxKernelResources(0, 0, 10, 0), files[0].Resources["axpy_v1"]);
        Assert.Equal(new PtxKernelResources(2048, 512, 80, 56), files[0].Resources["axpy_v2"]);
        Assert.Equal(new PtxKernelResources(128, 1024, null, null), files[1].Resources["scan_v1"]);   // not assembled
    }

    [Fact]
    public void EmbeddedCatalogIsConsistent()
    {
        PtxCatalog catalog = PtxCatalog.Embedded;
        if (catalog.Files.Count == 0)
        {
            // Only a build without a PTX compiler may embed nothing (CI installs clang-14).
            bool compilerOnPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
                .Any(dir => dir.Length > 0 && (File.Exists(Path.Combine(dir, "clang-14")) || File.Exists(Path.Combine(dir, "nvcc"))));
            Assert.False(compilerOnPath, $"clang-14 or nvcc is on PATH, yet no PTX is embedded: {catalog.Problem}");
            Assert.False(string.IsNullOrWhiteSpace(catalog.Problem));
            return;
        }
        Assert.Contains(catalog.Files, f => f.Kernels.Contains("reconnect_warp32"));
        foreach (PtxFile file in catalog.Files)
        {
            byte[] ptx = catalog.ReadPtx(file.FileName);
            string text = System.Text.Encoding.UTF8.GetString(ptx);
            Assert.Contains(".version", text);
            foreach (string kernel in file.Kernels)
                Assert.Contains($".entry {kernel}", text);
        }
    }

    /// <summary>
    /// `laperm info --kernels`: a line per kernel with what the build read of it, registers only
    /// where ptxas assembled the PTX; a directory's files (LAPERM_PTX_DIR) are not the build's.
    /// </summary>
    [Fact]
    public void KernelTableListsEveryKernelWithItsResources()
    {
        PtxCatalog catalog = PtxCatalog.Embedded;
        if (catalog.Files.Count == 0) return;   // EmbeddedCatalogIsConsistent says whether that is allowed here
        string[] lines = CudaInfo.KernelTable(catalog).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(catalog.Files.Sum(f => f.Kernels.Count) + 2, lines.Length);
        string Row(string kernel) => Assert.Single(lines, l => l.StartsWith($"  {kernel} ", StringComparison.Ordinal));
        // gather_batch_v1: an int and six floats of static shared memory; narrow_256: 32 threads at most.
        Assert.Matches(@"^  gather_batch_v1 +data\.ptx +(\d+|-) +(\d+ B|-) +28 B +none$", Row("gather_batch_v1"));
        Assert.Matches(@" 32$", Row("reconnect_bucket_narrow_256"));
        if (catalog.Assembler is null)
            Assert.Contains("registers unknown", lines[0]);
        else
        {
            Assert.Contains(catalog.Assembler, lines[0]);
            Assert.Matches(@"^  gather_batch_v1 +data\.ptx +[1-9]\d* +\d+ B ", Row("gather_batch_v1"));
        }
        foreach (PtxFile file in catalog.Files)
            foreach (string kernel in file.Kernels)
                Assert.Contains(file.FileName, Row(kernel));
    }

    /// <summary>
    /// Where the build could find ptxas (.ci/fetch-ptxas's, LAPERM_PTXAS, PATH), it assembled every
    /// file for sm_90 and the manifest says so; the emulator then knows each kernel's registers.
    /// </summary>
    [Fact]
    public void EmbeddedCatalogWasAssembledWherePtxasIsAvailable()
    {
        string root = Backend.StepScalarsTests.RepositoryRoot();
        string? ptxas = new[] { Environment.GetEnvironmentVariable("LAPERM_PTXAS"), Path.Combine(root, ".tools", "ptxas", "ptxas") }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Where(d => d.Length > 0).Select(d => Path.Combine(d, "ptxas")))
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && p != "none" && File.Exists(p));
        if (ptxas is null) Assert.Skip("no ptxas here (.ci/fetch-ptxas fetches one): the build left the PTX unassembled");
        PtxCatalog catalog = PtxCatalog.Embedded;
        Assert.NotEmpty(catalog.Files);
        Assert.NotNull(catalog.Assembler);
        Assert.Matches(@"^ptxas release \d+\.\d+, V[\d.]+ for sm_90$", catalog.Assembler);
    }
}

public sealed class PtxDirectoryTests
{
    [Fact]
    public void CompilerIsReadFromTheHeader()
    {
        string[] nvcc = ["//", "// Generated by NVIDIA NVVM Compiler", "//", "// Compiler Build ID: CL-36037853",
            "// Cuda compilation tools, release 13.0, V13.0.88", "// Based on NVVM 20.0.0", "//", "", ".version 9.0", ".target sm_80", ".address_size 64"];
        Assert.Equal("nvcc 13.0, sm_80", PtxCatalog.CompilerOf(nvcc));
        Assert.Equal("clang (LLVM NVPTX), sm_80", PtxCatalog.CompilerOf(["//", "// Generated by LLVM NVPTX Back-End", "//", "", ".version 7.5", ".target sm_80"]));
        Assert.Equal("unknown compiler", PtxCatalog.CompilerOf([".version 8.0"]));
    }

    [Fact]
    public void FilesAreReadFromTheDirectoryAndAMissingOneIsNamed()
    {
        PtxCatalog embedded = PtxCatalog.Embedded;
        if (embedded.Files.Count < 2) return;   // PtxCatalogTests says whether that is allowed here
        string directory = Directory.CreateTempSubdirectory("laperm-ptx-").FullName;
        try
        {
            PtxFile first = embedded.Files[0], second = embedded.Files[1];
            string replaced = "//\n// Generated by NVIDIA NVVM Compiler\n// Cuda compilation tools, release 13.0, V13.0.88\n.version 9.0\n.target sm_90\n";
            File.WriteAllText(Path.Combine(directory, first.FileName), replaced);
            foreach (PtxFile file in embedded.Files.Skip(2))
                File.WriteAllBytes(Path.Combine(directory, file.FileName), embedded.ReadPtx(file.FileName));

            PtxCatalog catalog = PtxCatalog.FromDirectory(directory, embedded);
            Assert.Equal(directory, catalog.Directory);
            Assert.Equal(embedded.Files.Select(f => (f.FileName, f.Kernels.Count)), catalog.Files.Select(f => (f.FileName, f.Kernels.Count)));
            Assert.Equal(replaced, System.Text.Encoding.UTF8.GetString(catalog.ReadPtx(first.FileName)));
            Assert.Equal("nvcc 13.0, sm_90, LAPERM_PTX_DIR", catalog.Find(first.FileName)!.Compiler);
            Assert.Equal($"LAPERM_PTX_DIR={directory} lacks {second.FileName}", catalog.Problem);
            var missing = Assert.Throws<FileNotFoundException>(() => catalog.ReadPtx(second.FileName));
            Assert.Contains($"has no {second.FileName}", missing.Message);
            Assert.StartsWith("PTX from LAPERM_PTX_DIR (nvcc 13.0, sm_90; missing; ", catalog.Source);
            // What the build read of its own files says nothing of these.
            string table = CudaInfo.KernelTable(catalog);
            Assert.StartsWith($"PTX kernels, {catalog.Source} (registers unknown", table);
            Assert.All(table.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries).Skip(2),
                line => Assert.Matches(@" +- +- +- +-$", line));
            Assert.Null(embedded.Source);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

public sealed class ProfileStepsTests
{
    [Fact]
    public void ParsesInclusiveRange()
    {
        var steps = ProfileSteps.Parse("10:20");
        Assert.Equal(new ProfileSteps(10, 20), steps);
        Assert.True(steps.Contains(10));
        Assert.True(steps.Contains(20));
        Assert.False(steps.Contains(21));
    }

    [Theory]
    [InlineData("10")]
    [InlineData("20:10")]
    [InlineData("0:3")]
    [InlineData("a:b")]
    [InlineData("1:2:3")]
    public void RejectsBadRangesNamingTheOption(string text)
    {
        var e = Assert.Throws<FormatException>(() => ProfileSteps.Parse(text));
        Assert.Contains("--profile-steps", e.Message);
        Assert.Contains($"'{text}'", e.Message);
    }
}

public sealed unsafe class NvtxTests
{
    [Fact]
    public void WithoutProfilerRangesAreAllocationFreeNoOps()
    {
        if (Environment.GetEnvironmentVariable("NVTX_INJECTION64_PATH") is { Length: > 0 })
            Assert.Skip("a profiler is attached");
        Assert.False(Nvtx.Enabled);
        using (Nvtx.Range("warm-up")) { }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            using var range = Nvtx.Range("forward");
            Nvtx.Mark("step");
        }
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    // A stand-in for a profiler's injection library, written against the NVTX v3 protocol:
    // it asks for the export tables, checks the CORE table's size and fills the range slots.
    private static int s_pushes, s_pops;
    private static string? s_lastMessage;
    private static uint s_coreSize;

    [UnmanagedCallersOnly]
    private static int FakeInitializeInjection(delegate* unmanaged<uint, void*> getExportTable)
    {
        nint* callbacks = (nint*)getExportTable(1);
        nint* version = (nint*)getExportTable(3);
        if (callbacks == null || version == null || getExportTable(2) != null) return 0;
        if (callbacks[0] != 2 * sizeof(nint) || *(uint*)&version[1] != 3) return 0;
        var getModule = (delegate* unmanaged<int, nint**, uint*, int>)callbacks[1];
        nint* table;
        uint size;
        if (getModule(1, &table, &size) != 1) return 0;
        if (getModule(99, &table, &size) != 0) return 0;
        getModule(1, &table, &size);
        s_coreSize = size;
        if (table[0] != 0 || table[size] != 0) return 0;
        *(nint*)table[9] = (nint)(delegate* unmanaged<byte*, int>)&FakePush;
        *(nint*)table[11] = (nint)(delegate* unmanaged<int>)&FakePop;
        return 1;
    }

    [UnmanagedCallersOnly]
    private static int FakePush(byte* message)
    {
        s_pushes++;
        s_lastMessage = Marshal.PtrToStringUTF8((nint)message);
        return 0;
    }

    [UnmanagedCallersOnly]
    private static int FakePop()
    {
        s_pops++;
        return 0;
    }

    [Fact]
    public void HandshakeFillsCoreSlotsThatRangesThenCall()
    {
        var injection = NvtxInjection.Attach(&FakeInitializeInjection, out string? failure);
        Assert.Null(failure);
        Assert.NotNull(injection);
        Assert.Equal(16u, s_coreSize);
        Assert.True(injection.RangesSupported);
        byte* text = stackalloc byte[] { (byte)'f', (byte)'w', (byte)'d', 0 };
        injection.RangePush(text);
        injection.RangePop();
        injection.Mark(text);   // slot not filled by the tool: must be a no-op
        Assert.Equal(1, s_pushes);
        Assert.Equal(1, s_pops);
        Assert.Equal("fwd", s_lastMessage);
    }
}
