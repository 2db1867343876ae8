using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Interop;

/// <summary>
/// NVTX v3 without a C shim. NVTX v3 is header-only: each call goes through a function-pointer
/// slot that the tool's injection library (named by NVTX_INJECTION64_PATH, set by Nsight) fills
/// in. This class plays the header's part of the handshake: it loads the injection library,
/// calls its InitializeInjectionNvtx2 with a GetExportTable callback that answers
/// NVTX_ETID_CALLBACKS (module function tables) and NVTX_ETID_VERSIONINFO, and then calls the
/// CORE slots the tool filled. Without the variable nothing is loaded and every call is a no-op.
/// </summary>
public sealed unsafe class NvtxInjection
{
    // NvtxCallbackIdCore slots (nvtxTypes.h); slot 0 is invalid.
    internal const int SlotMarkA = 2;
    internal const int SlotRangePushA = 9;
    internal const int SlotRangePop = 11;
    internal const int SlotNameOsThreadA = 14;
    private const int CoreSlots = 16;
    private const uint EtidCallbacks = 1;
    private const uint EtidVersionInfo = 3;
    private const uint NvtxVersion = 3;

    // Number of callback ids per module (NVTX_CB_MODULE_CORE .. SYNC), without the trailing null.
    private static readonly int[] ModuleSlotCounts = [0, CoreSlots, 9, 15, 7, 16, 7];

    // The callback has no context argument, so the tables of the one handshake in progress are
    // reachable only through a static; it is written once per handshake (once per process).
    private static NvtxInjection? s_handshake;

    private readonly nint _memory;             // one block, never freed: the tool keeps pointers into it
    private readonly nint*[] _moduleTables;    // per module: pointer to [count + 1] slot pointers
    private readonly nint* _coreSlots;         // the CORE implementation pointers the tool writes
    private readonly nint* _callbacksTable;    // NvtxExportTableCallbacks
    private readonly nint* _versionTable;      // NvtxExportTableVersionInfo

    private NvtxInjection()
    {
        int totalSlots = ModuleSlotCounts.Sum() + ModuleSlotCounts.Length;
        int bytes = (totalSlots * 2 + 8) * sizeof(nint);
        _memory = (nint)NativeMemory.AllocZeroed((nuint)bytes);
        nint* cursor = (nint*)_memory;
        _callbacksTable = cursor; cursor += 2;
        _versionTable = cursor; cursor += 3;
        _callbacksTable[0] = 2 * sizeof(nint);
        _callbacksTable[1] = (nint)(delegate* unmanaged<int, nint**, uint*, int>)&GetModuleFunctionTable;
        _versionTable[0] = 3 * sizeof(nint);
        ((uint*)&_versionTable[1])[0] = NvtxVersion;
        _versionTable[2] = (nint)(delegate* unmanaged<uint, void>)&SetInjectionNvtxVersion;

        _moduleTables = new nint*[ModuleSlotCounts.Length];
        for (int module = 1; module < ModuleSlotCounts.Length; module++)
        {
            int count = ModuleSlotCounts[module];
            nint* slots = cursor; cursor += count + 1;      // implementation pointers, index 0 unused
            nint* table = cursor; cursor += count + 1;      // pointers to those, null first and last
            for (int i = 1; i < count; i++) table[i] = (nint)(slots + i);
            _moduleTables[module] = table;
            if (module == 1) _coreSlots = slots;
        }
    }

    /// <summary>Null when no tool is attached (NVTX_INJECTION64_PATH unset) or the handshake failed.</summary>
    public static NvtxInjection? TryAttach(out string? failureReason)
    {
        string? path = Environment.GetEnvironmentVariable("NVTX_INJECTION64_PATH");
        if (string.IsNullOrEmpty(path))
        {
            failureReason = "NVTX_INJECTION64_PATH is not set (no profiler attached)";
            return null;
        }
        if (!NativeLibrary.TryLoad(path, out nint library))
        {
            failureReason = $"the NVTX injection library {path} could not be loaded";
            return null;
        }
        if (!NativeLibrary.TryGetExport(library, "InitializeInjectionNvtx2", out nint initialize))
        {
            failureReason = $"{path} does not export InitializeInjectionNvtx2";
            return null;
        }
        return Attach((delegate* unmanaged<delegate* unmanaged<uint, void*>, int>)initialize, out failureReason);
    }

    /// <summary>Runs the handshake with an injection entry point (the real tool's, or a test's).</summary>
    internal static NvtxInjection? Attach(delegate* unmanaged<delegate* unmanaged<uint, void*>, int> initialize, out string? failureReason)
    {
        var injection = new NvtxInjection();
        s_handshake = injection;
        int ok = initialize(&GetExportTable);
        if (ok == 0)
        {
            failureReason = "the NVTX injection library refused initialisation";
            return null;
        }
        failureReason = null;
        return injection;
    }

    /// <summary>True when the tool filled the range slots.</summary>
    public bool RangesSupported => _coreSlots[SlotRangePushA] != 0 && _coreSlots[SlotRangePop] != 0;

    /// <summary>Pushes a range; <paramref name="message"/> must be NUL-terminated.</summary>
    public void RangePush(byte* message)
    {
        nint push = Volatile.Read(ref _coreSlots[SlotRangePushA]);
        if (push != 0) ((delegate* unmanaged<byte*, int>)push)(message);
    }

    public void RangePop()
    {
        nint pop = Volatile.Read(ref _coreSlots[SlotRangePop]);
        if (pop != 0) ((delegate* unmanaged<int>)pop)();
    }

    public void Mark(byte* message)
    {
        nint mark = Volatile.Read(ref _coreSlots[SlotMarkA]);
        if (mark != 0) ((delegate* unmanaged<byte*, void>)mark)(message);
    }

    public void NameOsThread(uint threadId, byte* name)
    {
        nint function = Volatile.Read(ref _coreSlots[SlotNameOsThreadA]);
        if (function != 0) ((delegate* unmanaged<uint, byte*, void>)function)(threadId, name);
    }

    [UnmanagedCallersOnly]
    private static void* GetExportTable(uint exportTableId)
    {
        NvtxInjection? injection = s_handshake;
        if (injection is null) return null;
        return exportTableId switch
        {
            EtidCallbacks => injection._callbacksTable,
            EtidVersionInfo => injection._versionTable,
            _ => null,
        };
    }

    [UnmanagedCallersOnly]
    private static int GetModuleFunctionTable(int module, nint** outTable, uint* outSize)
    {
        NvtxInjection? injection = s_handshake;
        if (injection is null || module <= 0 || module >= ModuleSlotCounts.Length) return 0;
        if (outSize != null) *outSize = (uint)ModuleSlotCounts[module];
        if (outTable != null) *outTable = injection._moduleTables[module];
        return 1;
    }

    [UnmanagedCallersOnly]
    private static void SetInjectionNvtxVersion(uint version)
    {
        // Reserved by NVTX for tools to announce their version; nothing to do.
    }
}

/// <summary>
/// NVTX ranges and marks by name, e.g. <c>using var _ = Nvtx.Range("forward");</c>.
/// Allocation-free; a no-op costing one null check when no profiler is attached.
/// </summary>
public static class Nvtx
{
    // Attached once per process on first use: the injection library is process-wide by nature.
    private static readonly NvtxInjection? Injection = NvtxInjection.TryAttach(out _);

    /// <summary>True when a profiler's injection library is attached and records ranges.</summary>
    public static bool Enabled => Injection is { RangesSupported: true };

    public static NvtxRange Range(string name)
    {
        NvtxInjection? injection = Injection;
        if (injection is null) return default;
        Push(injection, name);
        return new NvtxRange(injection);
    }

    /// <summary>Opens a range without a handle (for callers that pair it with <see cref="Pop"/>).</summary>
    public static void Push(string name)
    {
        NvtxInjection? injection = Injection;
        if (injection is null) return;
        Push(injection, name);
    }

    public static void Pop() => Injection?.RangePop();

    public static void Mark(string name)
    {
        NvtxInjection? injection = Injection;
        if (injection is null) return;
        unsafe
        {
            byte* text = stackalloc byte[MaxBytes + 1];
            injection.Mark(Encode(name, text));
        }
    }

    private const int MaxBytes = 255;

    private static unsafe void Push(NvtxInjection injection, string name)
    {
        byte* text = stackalloc byte[MaxBytes + 1];
        injection.RangePush(Encode(name, text));
    }

    /// <summary>UTF-8, truncated to fit, NUL-terminated; the tool copies the text during the call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe byte* Encode(string name, byte* buffer)
    {
        ReadOnlySpan<char> chars = name.AsSpan(0, Math.Min(name.Length, MaxBytes / 3));
        int written = System.Text.Encoding.UTF8.GetBytes(chars, new Span<byte>(buffer, MaxBytes));
        buffer[written] = 0;
        return buffer;
    }
}

/// <summary>The range names of the training loop's phases, so profiles read like the loop.</summary>
public static class NvtxPhase
{
    public const string Forward = "forward";
    public const string Backward = "backward";
    public const string Optimizer = "optimizer";
    public const string Reconnect = "reconnect";
    public const string Evaluate = "eval";
    public const string Step = "step";
}

/// <summary>An open NVTX range; disposing pops it. Default (no profiler) does nothing.</summary>
public readonly struct NvtxRange : IDisposable
{
    private readonly NvtxInjection? _injection;

    internal NvtxRange(NvtxInjection injection) => _injection = injection;

    public void Dispose() => _injection?.RangePop();
}
