using System.Text;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda;

/// <summary>One GPU as the driver reports it.</summary>
public sealed record GpuInfo(int Ordinal, string Name, int Multiprocessors, long TotalMemoryBytes, int ComputeMajor, int ComputeMinor)
{
    public string ComputeCapability => $"{ComputeMajor}.{ComputeMinor}";
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
    bool NvtxAttached)
{
    public bool CudaAvailable => CudaUnavailableReason is null;

    public string ToText()
    {
        var text = new StringBuilder();
        if (CudaAvailable)
        {
            text.AppendLine($"CUDA driver {DriverVersion} ({DriverPath})");
            foreach (GpuInfo gpu in Gpus)
                text.AppendLine($"  GPU {gpu.Ordinal}: {gpu.Name}, {gpu.Multiprocessors} SMs, {gpu.TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, compute capability {gpu.ComputeCapability}");
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
            text.AppendLine($"PTX kernels: {PtxFiles.Sum(f => f.Kernels.Count)} in {PtxFiles.Count} file(s){(PtxProblem is null ? "" : $" ({PtxProblem})")}");
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
                            driver.DeviceAttribute(device, CuDeviceAttribute.ComputeCapabilityMinor)));
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

        PtxCatalog ptx = PtxCatalog.Embedded;
        return new CudaInfoReport(reason, driverVersion, driverPath, gpus, cublasInfo, cudnnInfo, ptx.Files, ptx.Problem,
            emulatorInfo, emulator?.KernelNames ?? [], Nvtx.Enabled);
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
