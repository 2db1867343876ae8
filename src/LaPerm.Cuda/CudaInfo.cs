using System.Globalization;
using System.Text;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda;

/// <summary>One GPU as the driver reports it; <paramref name="ClockKHz"/> is its peak SM clock (null when the driver does not say).</summary>
public sealed record GpuInfo(int Ordinal, string Name, int Multiprocessors, long TotalMemoryBytes, int ComputeMajor, int ComputeMinor, int? ClockKHz = null)
{
    public string ComputeCapability => $"{ComputeMajor}.{ComputeMinor}";

    /// <summary>The compute capability the kernels' PTX is written for; the driver JIT-compiles it for this one and every newer one, not for older GPUs.</summary>
    public const int KernelComputeMajor = 8;

    /// <summary>Why this GPU cannot run the kernels (older than <see cref="KernelComputeMajor"/>.0), or null.</summary>
    public string? UnsupportedReason => Unsupported(Ordinal, Name, ComputeMajor, ComputeMinor);

    public static string? Unsupported(int ordinal, string name, int major, int minor) => major >= KernelComputeMajor ? null
        : $"GPU {ordinal} ({name}) has compute capability {major}.{minor}, and the kernels are PTX for {KernelComputeMajor}.0, which runs on {KernelComputeMajor}.0 and newer"
          + " (--device cuda:N chooses another GPU)";

    /// <summary>FP32 lanes (CUDA cores) per SM of this compute capability; null for one this build does not know.</summary>
    public int? Fp32LanesPerSm => Fp32Lanes(ComputeMajor, ComputeMinor);

    /// <summary>
    /// The FP32 peak of the CUDA cores, one fused multiply-add (2 FLOP) per lane per clock at
    /// the peak clock: what dense FP32 arithmetic cannot exceed. Tensor cores (TF32) are not in it.
    /// </summary>
    public double? Fp32PeakGflops => ClockKHz is { } clock && Fp32LanesPerSm is { } lanes ? 2.0 * Multiprocessors * lanes * clock / 1e6 : null;

    /// <summary>"132 SMs x 128 lanes x 2 x 1980 MHz", how <see cref="Fp32PeakGflops"/> is made.</summary>
    public string Fp32PeakFormula => $"{Multiprocessors} SMs x {Fp32LanesPerSm} lanes x 2 x {ClockKHz / 1000} MHz";

    /// <summary>From NVIDIA's CUDA C Programming Guide, "Arithmetic Instructions" (32-bit floating-point add, multiply, multiply-add per clock per SM).</summary>
    public static int? Fp32Lanes(int major, int minor) => (major, minor) switch
    {
        (5, _) => 128,
        (6, 0) => 64,
        (6, _) => 128,
        (7, _) => 64,
        (8, 0) => 64,
        (8, _) => 128,
        (9 or 10 or 11 or 12, _) => 128,
        _ => null,
    };
}

/// <summary>A native library that was found (with its version) or not (with the reason).</summary>
public sealed record LibraryInfo(string Name, string? Path, string? Version, string? Problem)
{
    public bool Found => Problem is null;
}

/// <summary>What `laperm info` reports about CUDA, the libraries, the kernels and the emulator.</summary>
public sealed record CudaInfoReport(
    string? CudaUnavailableReason,
    string? DriverVersion,
    string? DriverPath,
    IReadOnlyList<GpuInfo> Gpus,
    LibraryInfo Cublas,
    LibraryInfo Cudnn,
    IReadOnlyList<PtxFile> PtxFiles,
    string? PtxProblem,
    LibraryInfo Emulator,
    IReadOnlyList<string> EmulatorKernels,
    bool NvtxAttached,
    string? PtxAssembler = null)
{
    public bool CudaAvailable => CudaUnavailableReason is null;

    /// <summary>
    /// Why a run cannot open GPU 0 (what <c>--device cuda</c> and auto open; CUDA_VISIBLE_DEVICES
    /// chooses which that is): CUDA unavailable, or that GPU older than the kernels' PTX; null when it can.
    /// </summary>
    public string? GpuUnusableReason => GpuUnusableReasonFor(0);

    /// <summary>The same for GPU <paramref name="ordinal"/> (<c>--device cuda:N</c>), also when there is no such GPU.</summary>
    public string? GpuUnusableReasonFor(int ordinal) =>
        CudaUnavailableReason
        ?? (Gpus.Count == 0 ? "the driver reports no GPU"
            : Gpus.FirstOrDefault(g => g.Ordinal == ordinal) is { } gpu ? gpu.UnsupportedReason
            : $"GPU {ordinal} was asked for and the driver reports {Gpus.Count} GPU{(Gpus.Count == 1 ? "" : "s")} (numbered from 0; laperm info lists them)");

    public string ToText()
    {
        var text = new StringBuilder();
        if (CudaAvailable)
        {
            text.AppendLine($"CUDA driver {DriverVersion} ({DriverPath})");
            foreach (GpuInfo gpu in Gpus)
                text.AppendLine($"  GPU {gpu.Ordinal}: {gpu.Name}, {gpu.Multiprocessors} SMs, {gpu.TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, compute capability {gpu.ComputeCapability}"
                                + (gpu.Fp32PeakGflops is { } peak ? $", FP32 peak {peak / 1000:F1} TFLOP/s ({gpu.Fp32PeakFormula})" : "")
                                + (gpu.UnsupportedReason is null ? "" : $" (too old for the kernels: PTX for {GpuInfo.KernelComputeMajor}.0)"));
        }
        else
        {
            text.AppendLine(CudaUnavailableReason);
        }
        text.AppendLine(Line(Cublas));
        text.AppendLine(Line(Cudnn));
        if (PtxFiles.Count == 0)
            text.AppendLine($"PTX kernels: none ({PtxProblem})");
        else
        {
            text.AppendLine($"PTX kernels: {PtxFiles.Sum(f => f.Kernels.Count)} in {PtxFiles.Count} file(s)"
                + (PtxAssembler is null ? "" : $", assembled at build time by {PtxAssembler}")
                + (PtxProblem is null ? "" : $" ({PtxProblem})"));
            foreach (PtxFile file in PtxFiles)
                text.AppendLine($"  {file.FileName} [{file.Compiler}]: {string.Join(", ", file.Kernels)}");
        }
        text.AppendLine(Emulator.Found
            ? $"Emulator: {EmulatorKernels.Count} kernel(s){(Emulator.Version is null ? "" : $", {Emulator.Version}")} ({Emulator.Path})"
            : $"Emulator unavailable: {Emulator.Problem}");
        text.Append($"NVTX: {(NvtxAttached ? "profiler attached" : "no profiler attached (ranges are no-ops)")}");
        return text.ToString();
    }

    private static string Line(LibraryInfo library) => library.Found
        ? $"{library.Name} {library.Version} ({library.Path})"
        : $"{library.Name} unavailable: {library.Problem}";
}

/// <summary>Library discovery and the device report for `laperm info`.</summary>
public static class CudaInfo
{
    /// <summary>The report as text, one fact per line; on a machine without a GPU the first line says why.</summary>
    public static string Describe() => Collect().ToText();

    /// <summary>
    /// One line per PTX kernel: its file, registers per thread and spilled bytes (ptxas's, when the
    /// build assembled the PTX), static shared memory and launch bounds; `laperm info --kernels`.
    /// </summary>
    public static string KernelTable(PtxCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var text = new StringBuilder();
        if (catalog.Files.Count == 0)
            return $"PTX kernels: none ({catalog.Problem}){Environment.NewLine}";
        text.AppendLine(catalog.Assembler is { } assembler
            ? $"PTX kernels (registers and spilled bytes: {assembler}):"
            : catalog.Directory is not null
                ? $"PTX kernels, {catalog.Source} (registers unknown: the build assembled the embedded files):"
                : "PTX kernels (registers unknown: the build found no ptxas to assemble them):");
        var rows = catalog.Files.SelectMany(f => f.Kernels.Select(k => (Kernel: k, File: f.FileName, R: f.Resources.GetValueOrDefault(k)))).ToList();
        int width = Math.Max("kernel".Length, rows.Max(r => r.Kernel.Length));
        int fileWidth = Math.Max("file".Length, rows.Max(r => r.File.Length));
        static string Or(int? value, string suffix = "") => value is int v ? v.ToString(CultureInfo.InvariantCulture) + suffix : "-";
        text.AppendLine($"  {"kernel".PadRight(width)}  {"file".PadRight(fileWidth)}  regs    spill  static smem  bounds");
        foreach (var (kernel, file, r) in rows)
            text.AppendLine($"  {kernel.PadRight(width)}  {file.PadRight(fileWidth)}  {Or(r?.Registers),4}  {Or(r?.SpillStoreBytes, " B"),7}  "
                + $"{Or(r?.StaticSharedBytes, " B"),11}  {(r is null ? "-" : r.MaxThreads == 0 ? "none" : r.MaxThreads.ToString(CultureInfo.InvariantCulture)),6}");
        return text.ToString();
    }

    /// <summary>Probes the driver, GPUs, cuBLAS, cuDNN, the embedded PTX and the emulator. Never throws.</summary>
    public static CudaInfoReport Collect()
    {
        string? reason = null, driverVersion = null, driverPath = null;
        var gpus = new List<GpuInfo>();
        CudaDriver? driver = CudaDriver.TryLoad(out string? loadFailure);
        if (driver is null)
            reason = $"CUDA unavailable: {loadFailure}.";
        else
        {
            driverPath = driver.Library.Path;
            int init = driver.TryInit();
            try
            {
                driverVersion = FormatDriverVersion(driver.DriverVersion());
                if (init != CudaDriver.Success)
                    reason = $"CUDA unavailable: cuInit failed with {driver.ErrorName(init)} ({driver.ErrorText(init)}).";
                else
                {
                    int count = driver.DeviceCount();
                    if (count == 0) reason = "CUDA unavailable: the driver reports no GPU.";
                    for (int ordinal = 0; ordinal < count; ordinal++)
                    {
                        int device = driver.DeviceGet(ordinal);
                        gpus.Add(new GpuInfo(ordinal, driver.DeviceName(device),
                            driver.DeviceAttribute(device, CuDeviceAttribute.MultiprocessorCount),
                            driver.DeviceTotalMemory(device),
                            driver.DeviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMajor),
                            driver.DeviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMinor),
                            PeakClockKHz(driver, device)));
                    }
                }
            }
            catch (CudaException e)
            {
                reason = $"CUDA unavailable: {e.Message}.";
            }
        }

        Cublas? cublas = Interop.Cublas.TryLoad(out string? cublasProblem);
        LibraryInfo cublasInfo = cublas is null
            ? new LibraryInfo("cuBLAS", null, null, cublasProblem)
            : Probe("cuBLAS", cublas.Library, () => FormatLibraryVersion(cublas.LibraryVersion()));
        Cudnn? cudnn = Interop.Cudnn.TryLoad(out string? cudnnProblem);
        LibraryInfo cudnnInfo = cudnn is null
            ? new LibraryInfo("cuDNN", null, null, cudnnProblem)
            : Probe("cuDNN", cudnn.Library, () => FormatLibraryVersion(cudnn.Version()) + (cudnn.MissingExports.Count == 0 ? ""
                : $" (without {string.Join(", ", cudnn.MissingExports)}: our kernels run those ops)"));

        EmulatorLibrary? emulator = EmulatorLibrary.TryLoad(out string? emulatorProblem);
        var emulatorInfo = new LibraryInfo("Emulator", emulator?.Library.Path,
            emulator?.Sanitizers is { Length: > 0 } sanitizers ? $"built with sanitizer: {sanitizers}" : null, emulator is null ? emulatorProblem : null);

        PtxCatalog ptx = PtxCatalog.Active;
        return new CudaInfoReport(reason, driverVersion, driverPath, gpus, cublasInfo, cudnnInfo, ptx.Files, ptx.Problem,
            emulatorInfo, emulator?.KernelNames ?? [], Nvtx.Enabled, ptx.Assembler);
    }

    /// <summary>
    /// The peak SM clock in kHz (CU_DEVICE_ATTRIBUTE_CLOCK_RATE), or null: it only feeds the FP32
    /// peak, so a driver that does not answer it must not make the GPU look unusable.
    /// </summary>
    private static int? PeakClockKHz(CudaDriver driver, int device)
    {
        try
        {
            return driver.DeviceAttribute(device, CuDeviceAttribute.ClockRate) is > 0 and var clock ? clock : null;
        }
        catch (CudaException)
        {
            return null;
        }
    }

    private static LibraryInfo Probe(string name, LibraryLoadResult library, Func<string> version)
    {
        try
        {
            return new LibraryInfo(name, library.Path, version(), null);
        }
        catch (CudaException e)
        {
            return new LibraryInfo(name, library.Path, null, $"found but its version query failed: {e.Message}");
        }
    }

    /// <summary>cuDriverGetVersion's 1000*major + 10*minor as "major.minor".</summary>
    public static string FormatDriverVersion(int version) => $"{version / 1000}.{version % 1000 / 10}";

    /// <summary>major*10000 + minor*100 + patch (cuBLAS properties, cuDNN 9) as "major.minor.patch".</summary>
    public static string FormatLibraryVersion(long version) => $"{version / 10000}.{version % 10000 / 100}.{version % 100}";
}
