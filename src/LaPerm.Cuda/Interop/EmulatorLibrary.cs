using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>
/// The host emulator (liblaperm_emu.so, declared in cuda/emu/laperm_emu.h): runs the same
/// kernel sources on the CPU. Every function returns 0 on success; on error the
/// thread-local message names the kernel.
/// </summary>
public sealed unsafe class EmulatorLibrary
{
    public const string FileName = "liblaperm_emu.so";

    private readonly delegate* unmanaged<byte*> _lastError;
    private readonly delegate* unmanaged<int> _kernelCount;
    private readonly delegate* unmanaged<int, byte*> _kernelName;
    private readonly delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, uint, void**, int> _launch;
    private readonly delegate* unmanaged<void*, nuint, int> _registerBuffer;
    private readonly delegate* unmanaged<void*, int> _unregisterBuffer;
    private readonly delegate* unmanaged<byte*, int> _kernelArgCount;          // optional
    private readonly delegate* unmanaged<byte*, int, int> _kernelArgSize;      // optional
    private readonly delegate* unmanaged<byte*, uint, int> _setMaxDynamicShared; // optional
    private readonly delegate* unmanaged<void*, nuint, int> _guardBuffer;      // optional
    private readonly delegate* unmanaged<byte*> _sanitizers;                   // optional

    private EmulatorLibrary(LibraryLoadResult library)
    {
        Library = library;
        nint h = library.Handle;
        _lastError = (delegate* unmanaged<byte*>)Export(h, "laperm_emu_last_error");
        _kernelCount = (delegate* unmanaged<int>)Export(h, "laperm_emu_kernel_count");
        _kernelName = (delegate* unmanaged<int, byte*>)Export(h, "laperm_emu_kernel_name");
        _launch = (delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, uint, void**, int>)Export(h, "laperm_emu_launch");
        _registerBuffer = (delegate* unmanaged<void*, nuint, int>)Export(h, "laperm_emu_register_buffer");
        _unregisterBuffer = (delegate* unmanaged<void*, int>)Export(h, "laperm_emu_unregister_buffer");
        NativeLibrary.TryGetExport(h, "laperm_emu_kernel_arg_count", out nint argCount);
        NativeLibrary.TryGetExport(h, "laperm_emu_set_max_dynamic_shared", out nint setShared);
        NativeLibrary.TryGetExport(h, "laperm_emu_kernel_arg_size", out nint argSize);
        NativeLibrary.TryGetExport(h, "laperm_emu_guard_buffer", out nint guardBuffer);
        NativeLibrary.TryGetExport(h, "laperm_emu_sanitizers", out nint sanitizers);
        _guardBuffer = (delegate* unmanaged<void*, nuint, int>)guardBuffer;
        _sanitizers = (delegate* unmanaged<byte*>)sanitizers;
        _kernelArgCount = (delegate* unmanaged<byte*, int>)argCount;
        _kernelArgSize = (delegate* unmanaged<byte*, int, int>)argSize;
        _setMaxDynamicShared = (delegate* unmanaged<byte*, uint, int>)setShared;
        var names = new List<string>();
        for (int i = 0, n = _kernelCount(); i < n; i++)
            names.Add(Marshal.PtrToStringUTF8((nint)_kernelName(i)) ?? "");
        KernelNames = names;
    }

    public LibraryLoadResult Library { get; }

    /// <summary>Every kernel the emulator was built with.</summary>
    public IReadOnlyList<string> KernelNames { get; }

    /// <summary>
    /// The sanitizers the library was built with: "address" (a kernel's read or write outside its
    /// buffers, its dynamic shared memory or a static shared array fails the launch; `build.ps1 test`
    /// runs the kernel tests with it once) or empty.
    /// </summary>
    public string Sanitizers => _sanitizers == null ? "" : Marshal.PtrToStringUTF8((nint)_sanitizers()) ?? "";

    /// <summary>
    /// Loads the emulator: LAPERM_EMU_LIBRARY if set (and only that: a run asked for another
    /// build, e.g. the sanitized one, must not quietly get the plain one), else next to this
    /// assembly (where the build copies it), else the loader's search path.
    /// </summary>
    public static EmulatorLibrary? TryLoad(out string? failureReason) =>
        TryLoad(Environment.GetEnvironmentVariable("LAPERM_EMU_LIBRARY"), out failureReason);

    internal static EmulatorLibrary? TryLoad(string? overridePath, out string? failureReason)
    {
        if (overridePath is { Length: > 0 })
        {
            if (!File.Exists(overridePath))
            {
                failureReason = $"LAPERM_EMU_LIBRARY names '{overridePath}', which does not exist";
                return null;
            }
            try
            {
                return Bind(new LibraryLoadResult("LaPerm emulator", NativeLibrary.Load(overridePath), overridePath, null), out failureReason);
            }
            catch (DllNotFoundException e)
            {
                failureReason = $"LAPERM_EMU_LIBRARY names '{overridePath}', which cannot be loaded: {e.Message}";
                return null;
            }
        }
        var candidates = new List<string>();
        string here = Path.GetDirectoryName(typeof(EmulatorLibrary).Assembly.Location) is { Length: > 0 } dir ? dir : AppContext.BaseDirectory;
        candidates.Add(Path.Combine(here, FileName));
        candidates.Add(Path.Combine(here, "runtimes", "linux-x64", "native", FileName));
        candidates.Add(Path.Combine(AppContext.BaseDirectory, FileName));
        foreach (string path in candidates)
            if (File.Exists(path) && NativeLibrary.TryLoad(path, out nint handle))
                return Bind(new LibraryLoadResult("LaPerm emulator", handle, path, null), out failureReason);
        if (NativeLibrary.TryLoad(FileName, out nint fallback))
            return Bind(new LibraryLoadResult("LaPerm emulator", fallback, FileName, null), out failureReason);
        failureReason = $"{FileName} not found next to {typeof(EmulatorLibrary).Assembly.GetName().Name}.dll (the native build did not produce it: no C++ compiler or CMake?)";
        return null;
    }

    private static EmulatorLibrary? Bind(LibraryLoadResult library, out string? failureReason)
    {
        try
        {
            failureReason = null;
            return new EmulatorLibrary(library);
        }
        catch (EntryPointNotFoundException e)
        {
            failureReason = $"{library.Path} lacks {e.Message}";
            return null;
        }
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint address) ? address : throw new EntryPointNotFoundException(name);

    private string LastError() => Marshal.PtrToStringUTF8((nint)_lastError()) ?? "no message";

    /// <summary>Runs a kernel to completion. <paramref name="kernelNameUtf8"/> is NUL-terminated.</summary>
    public void Launch(byte* kernelNameUtf8, string kernelName, uint gx, uint gy, uint gz, uint bx, uint by, uint bz, uint sharedBytes, void** args)
    {
        int result = _launch(kernelNameUtf8, gx, gy, gz, bx, by, bz, sharedBytes, args);
        if (result != 0)
            throw new CudaException("laperm_emu_launch", result, "LAPERM_EMU_LAUNCH_FAILED", LastError(),
                Runtime.LaunchJournal.Describe(kernelName, new Runtime.Dim3(gx, gy, gz), new Runtime.Dim3(bx, by, bz), sharedBytes));
    }

    /// <summary>The kernel's parameter count, or -1 when the emulator cannot say.</summary>
    public int KernelArgCount(byte* kernelNameUtf8) => _kernelArgCount == null ? -1 : _kernelArgCount(kernelNameUtf8);

    /// <summary>sizeof the kernel's parameter <paramref name="index"/>, or -1 when the emulator cannot say.</summary>
    public int KernelArgSize(byte* kernelNameUtf8, int index) => _kernelArgSize == null ? -1 : _kernelArgSize(kernelNameUtf8, index);

    /// <summary>The emulator's cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES), when it has one.</summary>
    public void SetMaxDynamicShared(byte* kernelNameUtf8, string kernelName, uint bytes)
    {
        if (_setMaxDynamicShared == null) return;
        int result = _setMaxDynamicShared(kernelNameUtf8, bytes);
        if (result != 0)
            throw new CudaException("laperm_emu_set_max_dynamic_shared", result, "LAPERM_EMU_ERROR", LastError(), $"kernel {kernelName}");
    }

    public void RegisterBuffer(void* basePointer, long bytes)
    {
        int result = _registerBuffer(basePointer, (nuint)bytes);
        if (result != 0) throw new CudaException("laperm_emu_register_buffer", result, "LAPERM_EMU_ERROR", LastError());
    }

    /// <summary>
    /// <paramref name="guardBytes"/> allocated after a registered buffer's end become a guard that
    /// every launch checks (a write past the end fails the launch); nothing when the library predates it.
    /// </summary>
    public void GuardBuffer(void* basePointer, long guardBytes)
    {
        if (_guardBuffer == null) return;
        int result = _guardBuffer(basePointer, (nuint)guardBytes);
        if (result != 0) throw new CudaException("laperm_emu_guard_buffer", result, "LAPERM_EMU_ERROR", LastError());
    }

    public void UnregisterBuffer(void* basePointer)
    {
        int result = _unregisterBuffer(basePointer);
        if (result != 0) throw new CudaException("laperm_emu_unregister_buffer", result, "LAPERM_EMU_ERROR", LastError());
    }
}
