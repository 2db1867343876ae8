using System.Globalization;
using System.Text;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// The kernels launched since the last successful synchronisation, so that a fault that the
/// GPU reports later (an illegal address surfaces at the next synchronise or copy, not at the
/// launch) can be pinned to the kernels that may have caused it, with their launch
/// configurations. A fixed ring of the most recent launches: recording allocates nothing.
/// Used from the thread that launches (one per runtime).
/// </summary>
public sealed class LaunchJournal
{
    /// <summary>How many launches are kept for the message (the count of all is kept too).</summary>
    public const int Capacity = 8;

    private readonly Entry[] _ring = new Entry[Capacity];
    private long _count;

    private readonly record struct Entry(string Name, Dim3 Grid, Dim3 Block, uint SharedBytes, bool IsGraph);

    /// <summary>Launches recorded since the last <see cref="Clear"/>.</summary>
    public long Count => _count;

    public void RecordKernel(string name, Dim3 grid, Dim3 block, uint sharedBytes) =>
        _ring[_count++ % Capacity] = new Entry(name, grid, block, sharedBytes, false);

    /// <summary>A graph replay; <paramref name="contents"/> from <see cref="DescribeGraph"/>, made when the graph was instantiated.</summary>
    public void RecordGraph(string contents) => _ring[_count++ % Capacity] = new Entry(contents, default, default, 0, true);

    /// <summary>How many distinct kernel names a graph's description lists before "...".</summary>
    public const int GraphNamesShown = 12;

    /// <summary>
    /// A captured graph as a fault message names it: "CUDA graph replay of N kernel launches (a x3, b, ...)",
    /// distinct names in the order of their first launch, with counts; library calls (cuBLAS,
    /// cuDNN) inside the graph are not among them.
    /// </summary>
    public static string DescribeGraph(IReadOnlyList<string> kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        if (kernels.Count == 0) return "CUDA graph replay (no kernel of ours in it)";
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (string name in kernels)
        {
            if (counts.TryGetValue(name, out int n)) counts[name] = n + 1;
            else
            {
                counts[name] = 1;
                order.Add(name);
            }
        }
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"CUDA graph replay of {kernels.Count} kernel launch{(kernels.Count == 1 ? "" : "es")} (");
        for (int i = 0; i < Math.Min(order.Count, GraphNamesShown); i++)
        {
            if (i > 0) text.Append(", ");
            text.Append(order[i]);
            if (counts[order[i]] > 1) text.Append(CultureInfo.InvariantCulture, $" x{counts[order[i]]}");
        }
        if (order.Count > GraphNamesShown) text.Append(CultureInfo.InvariantCulture, $", ... {order.Count - GraphNamesShown} more");
        return text.Append(')').ToString();
    }

    /// <summary>Everything recorded so far has completed without a fault.</summary>
    public void Clear() => _count = 0;

    /// <summary>One kernel's launch configuration, as messages print it.</summary>
    public static string Describe(string name, Dim3 grid, Dim3 block, uint sharedBytes) =>
        string.Create(CultureInfo.InvariantCulture, $"kernel {name} grid ({grid.X},{grid.Y},{grid.Z}) block ({block.X},{block.Y},{block.Z}) shared {sharedBytes} B");

    /// <summary>
    /// The sentence a fault message carries: the last launch first, then the others still in
    /// the ring, and how to pin the fault to one kernel.
    /// </summary>
    public string DescribeSuspects()
    {
        if (_count == 0) return "no kernel was launched since the last successful synchronisation";
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{_count} launch(es) since the last successful synchronisation; the last was ");
        int shown = (int)Math.Min(_count, Capacity);
        for (int i = 0; i < shown; i++)
        {
            Entry e = _ring[(_count - 1 - i) % Capacity];
            if (i == 1) text.Append("; before it: ");
            else if (i > 1) text.Append(", ");
            text.Append(e.IsGraph ? e.Name : Describe(e.Name, e.Grid, e.Block, e.SharedBytes));
        }
        if (_count > shown) text.Append(", ...");
        text.Append(". Rerun with CUDA_LAUNCH_BLOCKING=1 (and --no-graphs) to stop at the faulting kernel itself");
        return text.ToString();
    }

    /// <summary>
    /// The driver statuses that report a fault of a kernel that already ran (sticky errors),
    /// as opposed to a bad call: CUDA_ERROR_ILLEGAL_ADDRESS (700), LAUNCH_TIMEOUT (702),
    /// ASSERT (710), HARDWARE_STACK_ERROR (714), ILLEGAL_INSTRUCTION (715),
    /// MISALIGNED_ADDRESS (716), INVALID_ADDRESS_SPACE (717), INVALID_PC (718), LAUNCH_FAILED (719).
    /// </summary>
    public static bool IsKernelFault(int status) => status is 700 or 702 or 710 or (>= 714 and <= 719);
}
