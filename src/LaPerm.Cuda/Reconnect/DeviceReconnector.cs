using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Reconnect;

/// <summary>The reconnection kernels of one device (cuda/kernels/reconnect.cu), loaded once and shared by reconnectors.</summary>
public sealed class ReconnectKernels : IDisposable
{
    private readonly DeviceModule _module;

    public ReconnectKernels(Device device, ReconnectLimits limits)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(limits);
        Device = device;
        Limits = limits;
        _module = device.LoadModule("reconnect.ptx");
        // Every kernel of the file, by name (ReconnectPlanner.KernelName says which a launch runs).
        string[] names = [
            "reconnect_warp32", "reconnect_warp64", "reconnect_warp128", "reconnect_block_bitonic", "reconnect_block_radix",
            "reconnect_argsort_rows", "reconnect_scatter_rows", "reconnect_chunk_sort", "reconnect_chunk_merge",
            .. new[] { 1, 2, 4, 8, 16, 32 }.Select(items => $"reconnect_bucket_i{items}"),
            .. new[] { 256, 512, 1024, 2048, 4096, 8192 }.Select(size => $"reconnect_bucket_staged_{size}"),
            .. new[] { 256, 512, 1024, 2048, 4096, 8192 }.Select(size => $"reconnect_bucket_narrow_{size}"),
            .. ReconnectPlanner.SizedKernels.Select(k => $"reconnect_bucket_sized_i{k.Items}"),
        ];
        _byName = names.ToDictionary(name => name, _module.GetKernel, StringComparer.Ordinal);
        // Above 48 KB a kernel must opt in before launch (Hopper allows 227 KB per block); the
        // warp kernels and the row passes use none.
        if (limits.MaxSharedBytesPerBlock > ReconnectLimits.Default.MaxSharedBytesPerBlock)
            foreach (var (name, kernel) in _byName)
                if (name is not ("reconnect_warp32" or "reconnect_warp64" or "reconnect_warp128" or "reconnect_scatter_rows" or "reconnect_chunk_merge"))
                    kernel.SetMaxDynamicSharedBytes(limits.MaxSharedBytesPerBlock);
    }

    private readonly Dictionary<string, Kernel> _byName;

    /// <summary>The names of the kernels loaded (those <see cref="ReconnectPlanner.KernelName"/> gives, and the row passes).</summary>
    public IReadOnlyCollection<string> KernelNames => _byName.Keys;

    /// <summary>The kernel of that name (reconnect.ptx's).</summary>
    internal Kernel this[string name] => _byName[name];

    public Device Device { get; }
    public ReconnectLimits Limits { get; }
    public void Dispose() => _module.Dispose();
}

/// <summary>A synchronised tensor on the device: <paramref name="Rows"/> contiguous rows of <paramref name="RowLength"/> floats starting at element <paramref name="Offset"/> of <paramref name="Weights"/>.</summary>
public sealed record DeviceReconnectTarget(string Name, DeviceBuffer<float> Weights, long Offset, int Rows, int RowLength)
{
    public long Elements => (long)Rows * RowLength;
}

/// <summary>
/// Reconnects every row of a fixed set of device tensors: w[order[i]] = sorted0[i] with order
/// the stable argsort of the row under <see cref="Reconnection.OrderKey"/>, bit-identical to
/// <see cref="Reconnection.SyncRow"/>. Built once per run: the sorted initial rows, the
/// descriptor table and the scratch are uploaded/allocated here; <see cref="Enqueue"/> then
/// only launches kernels (one per size class), so it can be captured in a CUDA graph.
/// </summary>
public sealed class DeviceReconnector : IDisposable
{
    private readonly ReconnectKernels _kernels;
    private readonly DeviceBuffer<float> _sorted0;
    private readonly DeviceBuffer<ReconnectTensor> _table;
    private readonly DeviceBuffer<ulong> _scratch;
    private readonly DeviceReconnectTarget[] _targets;
    private readonly long[] _sortedOffset;
    private readonly Kernel[] _launchKernels; // per launch of the plan, its (first) kernel

    /// <param name="sortedInitialRows">Every target's rows sorted by <see cref="Reconnection.SortRow"/>, concatenated in target order.</param>
    /// <param name="tunedClasses">For <see cref="ReconnectVariant.Tuned"/>: each staged class's variant (<see cref="ReconnectTuner.Measure"/>).</param>
    public DeviceReconnector(ReconnectKernels kernels, IReadOnlyList<DeviceReconnectTarget> targets, ReconnectVariant variant,
        ReadOnlySpan<float> sortedInitialRows, IReadOnlyDictionary<int, ReconnectVariant>? tunedClasses = null)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(targets);
        _kernels = kernels;
        long total = 0;
        foreach (DeviceReconnectTarget t in targets)
        {
            if (t.Weights.Device != kernels.Device)
                throw new ArgumentException($"tensor '{t.Name}' lives on another device than the reconnection kernels");
            if (t.Rows < 1 || t.RowLength < 1 || t.Offset < 0 || t.Offset + t.Elements > t.Weights.Length)
                throw new ArgumentException(
                    $"tensor '{t.Name}': {t.Rows} rows of {t.RowLength} at offset {t.Offset} do not fit its buffer of {t.Weights.Length} elements");
            total += t.Elements;
        }
        if (sortedInitialRows.Length != total)
            throw new ArgumentException($"sortedInitialRows has {sortedInitialRows.Length} elements, the targets hold {total}");

        Plan = ReconnectPlanner.Plan(variant, Shapes(targets), kernels.Limits, tunedClasses);
        _launchKernels = [.. Plan.Launches.Select(l => kernels[ReconnectPlanner.KernelName(l)])];
        Elements = total;
        var sortedOffset = new long[targets.Count];
        for (int i = 1; i < targets.Count; i++) sortedOffset[i] = sortedOffset[i - 1] + targets[i - 1].Elements;
        _targets = [.. targets];
        _sortedOffset = sortedOffset;
        // Out of device memory part way (a reported, expected outcome) must not leak what was allocated.
        DeviceBuffer<float>? sorted0 = null;
        DeviceBuffer<ReconnectTensor>? deviceTable = null;
        try
        {
            sorted0 = kernels.Device.Allocate<float>(Math.Max(total, 1));
            sorted0.CopyFrom(sortedInitialRows);
            var table = new ReconnectTensor[Plan.Table.Count];
            for (int k = 0; k < table.Length; k++)
            {
                int target = Plan.TableOrder[k];
                table[k] = Plan.Table[k];
                table[k].Weights = targets[target].Weights.PointerAt(targets[target].Offset);
                table[k].Sorted0 = sorted0.PointerAt(sortedOffset[target]);
            }
            deviceTable = kernels.Device.Allocate<ReconnectTensor>(Math.Max(table.Length, 1));
            deviceTable.CopyFrom(table);
            _scratch = kernels.Device.Allocate<ulong>(Math.Max(Plan.ScratchElements, 1));
        }
        catch
        {
            deviceTable?.Dispose();
            sorted0?.Dispose();
            throw;
        }
        _sorted0 = sorted0;
        _table = deviceTable;
    }

    /// <summary>Downloads the targets' current weights (taken as the initial ones), sorts each row on the host and builds the reconnector.</summary>
    /// <summary>One target per shape, laid out one after another from the start of <paramref name="weights"/> (the bench's and the tuner's buffers).</summary>
    public static List<DeviceReconnectTarget> TargetsOver(IReadOnlyList<ReconnectShape> shapes, DeviceBuffer<float> weights)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        var targets = new List<DeviceReconnectTarget>(shapes.Count);
        long offset = 0;
        foreach (ReconnectShape s in shapes)
        {
            targets.Add(new DeviceReconnectTarget(s.Name, weights, offset, s.Rows, s.RowLength));
            offset += s.Elements;
        }
        return targets;
    }

    /// <summary>The targets' shapes, as the planner takes them.</summary>
    public static IReadOnlyList<ReconnectShape> Shapes(IReadOnlyList<DeviceReconnectTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return [.. targets.Select(t => new ReconnectShape(t.Name, t.Rows, t.RowLength))];
    }

    /// <summary>
    /// A reconnector whose sorted initial rows are the targets' current weights, sorted. With
    /// <see cref="ReconnectVariant.Tuned"/> the classes are timed first (<see cref="ReconnectTuner.Measure"/>, on buffers of its own).
    /// </summary>
    public static DeviceReconnector FromInitialWeights(ReconnectKernels kernels, IReadOnlyList<DeviceReconnectTarget> targets, ReconnectVariant variant)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(targets);
        var sorted = new float[targets.Sum(t => t.Elements)];
        long at = 0;
        foreach (DeviceReconnectTarget t in targets)
        {
            var initial = new float[t.Elements];
            t.Weights.CopyTo(t.Offset, initial);
            for (int r = 0; r < t.Rows; r++)
                Reconnection.SortRow(initial.AsSpan(r * t.RowLength, t.RowLength), sorted.AsSpan((int)(at + (long)r * t.RowLength), t.RowLength));
            at += t.Elements;
        }
        var tuned = variant == ReconnectVariant.Tuned ? ReconnectTuner.Measure(kernels, Shapes(targets)) : null;
        return new DeviceReconnector(kernels, targets, variant, sorted, tuned);
    }

    public ReconnectPlan Plan { get; }

    public IReadOnlyList<DeviceReconnectTarget> Targets => _targets;

    /// <summary>Downloads target <paramref name="index"/>'s sorted initial rows (checkpoints, tests).</summary>
    public void DownloadSortedInitial(int index, Span<float> destination)
    {
        if ((uint)index >= (uint)_targets.Length) throw new ArgumentOutOfRangeException(nameof(index), $"target {index} does not exist; there are {_targets.Length}");
        if (destination.Length != _targets[index].Elements)
            throw new ArgumentException($"destination has {destination.Length} elements, target '{_targets[index].Name}' holds {_targets[index].Elements}");
        _sorted0.CopyTo(_sortedOffset[index], destination);
    }

    public long Elements { get; }

    /// <summary>Enqueues the reconnection of every target on <paramref name="stream"/>: kernel launches only, no allocation, no host wait.</summary>
    public void Enqueue(DeviceStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        for (int i = 0; i < Plan.Launches.Count; i++) EnqueueLaunch(i, stream);
    }

    /// <summary>Enqueues launch <paramref name="index"/> of <see cref="Plan"/> alone (a size class: the bench times each).</summary>
    public void EnqueueLaunch(int index, DeviceStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if ((uint)index >= (uint)Plan.Launches.Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"launch {index} does not exist; the plan has {Plan.Launches.Count}");
        ulong scratch = _scratch.Pointer;
        ReconnectLaunch l = Plan.Launches[index];
        ulong table = _table.PointerAt(l.TableStart);
        int n = l.TensorCount;
        Kernel kernel = _launchKernels[index];
        switch (l.Path)
        {
            case ReconnectPath.TwoPass:
                kernel.Launch(l.Blocks, l.Threads, (uint)l.SharedBytes, stream, table, n, l.Rows, scratch);
                _kernels["reconnect_scatter_rows"].Launch(l.Rows, ReconnectPlanner.RowPassThreads, 0, stream, table, n, l.Rows, scratch);
                break;
            case ReconnectPath.Chunked:
                kernel.Launch(l.Blocks, l.Threads, (uint)l.SharedBytes, stream, table, n, l.Chunks, l.Chunk, scratch);
                _kernels["reconnect_chunk_merge"].Launch(l.Rows, ReconnectPlanner.RowPassThreads, 0, stream, table, n, l.Rows, l.Chunk, scratch);
                break;
            default: // a block per row (bitonic, radix, the bucket kernels) or per warp's row (warp kernels)
                kernel.Launch(l.Blocks, l.Threads, (uint)l.SharedBytes, stream, table, n, l.Rows);
                break;
        }
    }

    public void Dispose()
    {
        _scratch.Dispose();
        _table.Dispose();
        _sorted0.Dispose();
    }
}
