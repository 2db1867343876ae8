using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>A shared library that was loaded, or the reason none was.</summary>
public sealed record LibraryLoadResult(string Library, nint Handle, string? Path, string? FailureReason)
{
    public bool Loaded => Handle != 0;
}

/// <summary>
/// Finds NVIDIA shared libraries by their versioned sonames. Search order: a preferred folder
/// when the caller gives one (cuBLAS and cuDNN: the first candidate folder holding the library,
/// whose companion libraries were just preloaded, so all parts come from one installation), the
/// loader's own rules (LD_LIBRARY_PATH, ldconfig cache, RUNPATH), then LD_LIBRARY_PATH entries and
/// the CUDA toolkit folders explicitly, then the <c>nvidia/*/lib</c> folders of Python
/// site-packages, where pip-installed cuBLAS/cuDNN live on machines that have PyTorch.
/// </summary>
public static class NativeLibrarySearch
{
    /// <summary>Folders searched after the loader's default search, in order, existing ones only.</summary>
    public static IReadOnlyList<string> CandidateDirectories()
    {
        var result = new List<string>();
        void Add(string? dir)
        {
            if (!string.IsNullOrWhiteSpace(dir) && Directory.Exists(dir) && !result.Contains(dir))
                result.Add(dir);
        }

        foreach (string dir in (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':'))
            Add(dir);
        string? cudaHome = Environment.GetEnvironmentVariable("CUDA_HOME") ?? Environment.GetEnvironmentVariable("CUDA_PATH");
        if (cudaHome is not null)
        {
            Add(System.IO.Path.Combine(cudaHome, "lib64"));
            Add(System.IO.Path.Combine(cudaHome, "lib"));
        }
        Add("/usr/local/cuda/lib64");
        Add("/usr/local/cuda/targets/x86_64-linux/lib");
        Add("/usr/local/cuda/targets/sbsa-linux/lib");
        Add("/usr/lib/x86_64-linux-gnu");
        Add("/usr/lib/aarch64-linux-gnu");
        Add("/usr/lib/wsl/lib");
        foreach (string sitePackages in PythonSitePackages())
            foreach (string dir in NvidiaWheelLibraryDirectories(sitePackages))
                Add(dir);
        return result;
    }

    /// <summary>
    /// Python site-packages folders found by globbing the usual install roots (system Python,
    /// /opt/*/ virtual environments, the active VIRTUAL_ENV / CONDA_PREFIX, the user site).
    /// </summary>
    public static IEnumerable<string> PythonSitePackages()
    {
        var roots = new List<string>();
        foreach (string variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } prefix)
                roots.Add(System.IO.Path.Combine(prefix, "lib"));
        roots.Add("/usr/local/lib");
        roots.Add("/usr/lib");
        roots.Add("/opt/conda/lib");
        if (Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home)
            roots.Add(System.IO.Path.Combine(home, ".local", "lib"));
        foreach (string opt in SafeDirectories("/opt"))
        {
            roots.Add(System.IO.Path.Combine(opt, "lib"));
            roots.Add(System.IO.Path.Combine(opt, ".venv", "lib"));
            roots.Add(System.IO.Path.Combine(opt, "venv", "lib"));
        }

        foreach (string root in roots)
            foreach (string python in SafeDirectories(root).Where(d => System.IO.Path.GetFileName(d).StartsWith("python3", StringComparison.Ordinal)))
                foreach (string leaf in new[] { "site-packages", "dist-packages" })
                {
                    string candidate = System.IO.Path.Combine(python, leaf);
                    if (Directory.Exists(candidate)) yield return candidate;
                }
    }

    /// <summary>The lib folders of the pip wheels under site-packages/nvidia (cublas, cudnn, cu13, ...).</summary>
    public static IEnumerable<string> NvidiaWheelLibraryDirectories(string sitePackages)
    {
        string nvidia = System.IO.Path.Combine(sitePackages, "nvidia");
        foreach (string package in SafeDirectories(nvidia).Order(StringComparer.Ordinal))
            foreach (string leaf in new[] { "lib", "lib64" })
            {
                string candidate = System.IO.Path.Combine(package, leaf);
                if (Directory.Exists(candidate)) yield return candidate;
            }
    }

    /// <summary>
    /// Loads the first of <paramref name="sonames"/> that can be found: first from
    /// <paramref name="preferredDirectory"/> (the folder whose companion libraries were just
    /// preloaded, so a library and its parts come from one installation), then through the
    /// loader's default search, then in each candidate folder.
    /// </summary>
    public static LibraryLoadResult Load(string library, IReadOnlyList<string> sonames, IReadOnlyList<string>? directories = null,
        string? preferredDirectory = null)
    {
        if (preferredDirectory is not null)
            foreach (string soname in sonames)
            {
                string path = System.IO.Path.Combine(preferredDirectory, soname);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out nint handle))
                    return new LibraryLoadResult(library, handle, path, null);
            }
        foreach (string soname in sonames)
            if (NativeLibrary.TryLoad(soname, out nint handle))
                return new LibraryLoadResult(library, handle, soname, null);

        directories ??= CandidateDirectories();
        foreach (string dir in directories)
            foreach (string soname in sonames)
            {
                string path = System.IO.Path.Combine(dir, soname);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out nint handle))
                    return new LibraryLoadResult(library, handle, path, null);
            }

        string names = string.Join(" or ", sonames);
        return new LibraryLoadResult(library, 0, null,
            $"{names} not found (searched the loader path, LD_LIBRARY_PATH, the CUDA toolkit and Python nvidia/*/lib folders)");
    }

    /// <summary>
    /// The CUDA major version the installed driver supports (cuDriverGetVersion / 1000), or null
    /// without a driver. A CUDA 13 library needs an R580 driver; on an older one it loads and
    /// then fails in its first call, so the loaders skip libraries of a newer major.
    /// </summary>
    public static int? DriverCudaMajor()
    {
        CudaDriver? driver = CudaDriver.TryLoad(out _);
        if (driver is null) return null;
        try
        {
            return driver.DriverVersion() / 1000;
        }
        catch (CudaException)
        {
            return null;
        }
    }

    /// <summary>Loads <paramref name="soname"/> from <paramref name="directory"/> if it is there, best effort.</summary>
    internal static void PreloadFrom(string? directory, string soname)
    {
        if (directory is null) return;
        string path = System.IO.Path.Combine(directory, soname);
        if (File.Exists(path)) NativeLibrary.TryLoad(path, out _);
    }

    private static IEnumerable<string> SafeDirectories(string path)
    {
        try
        {
            return Directory.Exists(path) ? Directory.GetDirectories(path) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
