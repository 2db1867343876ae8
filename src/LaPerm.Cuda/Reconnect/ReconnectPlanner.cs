using System.Runtime.InteropServices;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Reconnect;

/// <summary>
/// The selectable implementations (<c>--reconnect-variant N</c>). A forced variant handles the
/// rows it supports; rows it cannot hold in shared memory go to the chunked path (5).
/// </summary>
public enum ReconnectVariant
{
    /// <summary>The dispatcher: staged bucket rank up to 8192 elements (the bucket rank where its shared memory does not fit, warp per row up to 128), block radix while a row fits a block, chunked beyond.</summary>
    Auto = 0,
    /// <summary>Two-pass baseline: block bitonic argsort into a global index buffer, then a scatter kernel.</summary>
    TwoPass = 1,
    /// <summary>Warp per row (up to 128 elements, registers + shuffles); longer rows by block radix, then chunked.</summary>
    Warp = 2,
    /// <summary>Block per row, bitonic sort of (key, column) composites in shared memory.</summary>
    BlockBitonic = 3,
    /// <summary>Block per row, LSD radix sort of the 32-bit ordered keys in shared memory.</summary>
    BlockRadix = 4,
    /// <summary>Chunk sort (block per chunk) then a merge-rank pass: any row length.</summary>
    Chunked = 5,
    /// <summary>Block per row up to 8192 elements, bucket rank (linear value buckets, exact rank inside a bucket); crowded rows fall back to radix in the same block.</summary>
    BlockBucket = 6,
    /// <summary>As <see cref="BlockBucket"/> with 512-thread blocks above 2048 elements and sorted0 staged in shared memory.</summary>
    BlockBucketStaged = 7,
    /// <summary>The staged bucket kernel in narrow blocks (16 elements per thread, 32 threads up to 512 elements ... 512 up to 8192): as many rows in flight per SM as shared memory allows (32 up to 256 elements, 14 up to 1024) instead of 8.</summary>
    BlockBucketNarrow = 8,
    /// <summary>The staged bucket rank in blocks sized to the row: 8, 12 or 16 elements per thread (the fewest idle slots) and whole warps, sorted0 copied with cp.async; for the 9 * 2^k rows of 3x3 convolutions that the power-of-two classes fill to 56 %.</summary>
    BlockBucketSized = 9,
    /// <summary>The dispatcher's plan, but each of its staged size classes takes the fastest of variants 7, 8 and 9 for its rows, timed on the device when the reconnector is built (<see cref="ReconnectTuner"/>); where nothing is timed (the emulator), the dispatcher's choice.</summary>
    Tuned = 10,
}

/// <summary>Which kernel(s) reconnect a row.</summary>
public enum ReconnectPath { Warp32, Warp64, Warp128, BlockBitonic, BlockRadix, BlockBucket, BlockBucketStaged, BlockBucketNarrow, BlockBucketSized, TwoPass, Chunked }

/// <summary>What the planner needs to know about the device: the dynamic shared memory one block may use.</summary>
public sealed record ReconnectLimits(int MaxSharedBytesPerBlock)
{
    /// <summary>48 KB: what every CUDA device gives a block without opting in (also used for emu).</summary>
    public static ReconnectLimits Default { get; } = new(48 * 1024);

    /// <summary>The device's opt-in limit on cuda (227 KB on Hopper), <see cref="Default"/> on emu.</summary>
    public static ReconnectLimits For(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.Runtime is CudaRuntime cuda
            ? new ReconnectLimits(cuda.Driver.DeviceAttribute(cuda.DeviceHandle, CuDeviceAttribute.MaxSharedMemoryPerBlockOptin))
            : Default;
    }
}

/// <summary>
/// One entry of the device-resident descriptor table; mirrors <c>struct ReconnectTensor</c>
/// in cuda/kernels/reconnect.cu (40 bytes).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct ReconnectTensor
{
    public ulong Weights;
    public ulong Sorted0;
    public long ScratchOffset;
    public int Rows;
    public int RowLength;
    public int FirstRow;
    public int FirstChunk;
}

/// <summary>One launch (or launch pair) over a contiguous range of the table: a size class.</summary>
public sealed record ReconnectLaunch(ReconnectPath Path, int TableStart, int TensorCount, int Rows, int Chunks, int MaxRowLength,
    int Threads, int SharedBytes, int Chunk)
{
    /// <summary>The grid of the launch's (first) kernel: a block per row, per chunk (chunked), or per warp's row (warp kernels).</summary>
    public int Blocks => Path switch
    {
        ReconnectPath.Warp32 or ReconnectPath.Warp64 or ReconnectPath.Warp128 => (Rows + Threads / 32 - 1) / (Threads / 32),
        ReconnectPath.Chunked => Chunks,
        _ => Rows,
    };
}

/// <summary>
/// The plan for one set of tensors: table order (TableOrder[k] = index of the input shape in
/// table slot k), the descriptor entries without pointers, the launches, and the scratch the
/// two-pass and chunked paths need (8 bytes per element of the tensors they handle).
/// </summary>
public sealed record ReconnectPlan(ReconnectVariant Variant, IReadOnlyList<int> TableOrder, IReadOnlyList<ReconnectTensor> Table,
    IReadOnlyList<ReconnectLaunch> Launches, long ScratchElements)
{
    /// <summary>
    /// The paths the launches take, in launch order with counts ("BlockBucket x5, BlockRadix"): a
    /// forced variant sends rows it cannot hold to another path, and a timing or a profile should say so.
    /// </summary>
    public string DescribePaths() =>
        string.Join(", ", Launches.GroupBy(l => l.Path).Select(g => g.Count() == 1 ? $"{g.Key}" : $"{g.Key} x{g.Count()}"));
}

/// <summary>
/// Chooses a path per row length and groups tensors into size classes (path, next power of two
/// of the row length; for variant 9 its block shape), one launch per class. Pure: no device needed.
/// </summary>
public static class ReconnectPlanner
{
    /// <summary>Threads of the warp-per-row kernels' blocks (8 rows per block).</summary>
    public const int WarpKernelThreads = 256;

    /// <summary>Threads of the bucket kernels' blocks (RC_BUCKET_THREADS).</summary>
    public const int BucketThreads = 256;

    /// <summary>Threads of the scatter and merge kernels' blocks.</summary>
    public const int RowPassThreads = 256;

    public static int NextPowerOfTwo(int n)
    {
        int p = 1;
        while (p < n) p <<= 1;
        return p;
    }

    public static int RadixThreads(int rowLength) => Math.Clamp(((rowLength + 15) / 16 + 31) / 32 * 32, 32, 256);

    /// <summary>Counters (256 per warp) + 32 scan slots + two key buffers (u32) + two column buffers (u16).</summary>
    public static int RadixSharedBytes(int rowLength, int threads) => 4 * (256 * (threads / 32) + 32) + 12 * rowLength;

    /// <summary>The chunked path's chunk: as many 8-byte composites as one block's shared memory holds, a multiple of 256.</summary>
    public static int ChunkLength(ReconnectLimits limits) => limits.MaxSharedBytesPerBlock / 8 / 256 * 256;

    public static bool RadixFits(int n, ReconnectLimits limits) => n <= 65535 && RadixSharedBytes(n, 256) <= limits.MaxSharedBytesPerBlock;

    /// <summary>Elements per thread of the bucket kernel (256 threads): 1, 2, 4, ... 32.</summary>
    public static int BucketItems(int rowLength) => NextPowerOfTwo((rowLength + 255) / 256);

    /// <summary>Counters, scan slots and the placed composites, or the radix fallback's needs if larger.</summary>
    public static int BucketSharedBytes(int rowLength)
    {
        int items = BucketItems(rowLength), buckets = items == 1 ? 256 : 128 * items;
        return Math.Max(4 * (buckets + 64) + 8 * rowLength, RadixSharedBytes(rowLength, 256));
    }

    public static bool BucketFits(int n, ReconnectLimits limits) =>
        n <= 8192 && RadixFits(n, limits) && BucketSharedBytes(n) <= limits.MaxSharedBytesPerBlock;

    /// <summary>The staged bucket kernel's row-length class: reconnect_bucket_staged_{class} handles rows up to class elements.</summary>
    public static int StagedClass(int rowLength) => Math.Max(256, NextPowerOfTwo(rowLength));

    /// <summary>Threads of a staged class's blocks: 256 up to 2048 elements, 512 above.</summary>
    public static int StagedThreads(int rowLength) => StagedClass(rowLength) <= 2048 ? 256 : 512;

    /// <summary>Counters, scan slots, placed composites and staged sorted0, or the radix fallback's needs if larger.</summary>
    public static int StagedSharedBytes(int rowLength)
    {
        int buckets = Math.Max(StagedThreads(rowLength), StagedClass(rowLength) / 2);
        return Math.Max(4 * (buckets + 64) + 12 * rowLength, RadixSharedBytes(rowLength, StagedThreads(rowLength)));
    }

    public static bool StagedFits(int n, ReconnectLimits limits) => n <= 8192 && StagedSharedBytes(n) <= limits.MaxSharedBytesPerBlock;

    /// <summary>Threads of a narrow class's blocks (reconnect_bucket_narrow_{class}): 16 elements per thread, at least one warp.</summary>
    public static int NarrowThreads(int rowLength) => Math.Max(32, StagedClass(rowLength) / 16);

    /// <summary>The staged kernel's needs with <see cref="NarrowThreads"/> threads: class / 2 buckets.</summary>
    public static int NarrowSharedBytes(int rowLength) =>
        Math.Max(4 * (StagedClass(rowLength) / 2 + 64) + 12 * rowLength, RadixSharedBytes(rowLength, NarrowThreads(rowLength)));

    public static bool NarrowFits(int n, ReconnectLimits limits) => n <= 8192 && NarrowSharedBytes(n) <= limits.MaxSharedBytesPerBlock;

    /// <summary>The sized kernels, reconnect_bucket_sized_i{Items}, and the most threads their launch bounds allow.</summary>
    public static IReadOnlyList<(int Items, int MaxThreads)> SizedKernels { get; } = [(8, 512), (12, 384), (16, 512)];

    /// <summary>The longest row a sized block holds (16 elements x 512 threads).</summary>
    public const int SizedMaxRowLength = 8192;

    /// <summary>
    /// Variant 9's block for a row: the sized kernel with the fewest idle slots (elements per thread
    /// x whole warps), ties to fewer elements per thread (more threads). 4608 elements: 384 threads x 12;
    /// 2304: 288 x 8; 1152: 96 x 12; 256: 32 x 8.
    /// </summary>
    public static (int Items, int Threads) SizedBlock(int rowLength)
    {
        if (rowLength < 1 || rowLength > SizedMaxRowLength)
            throw new ArgumentOutOfRangeException(nameof(rowLength), $"a sized block holds 1..{SizedMaxRowLength} elements, got {rowLength}");
        (int Items, int Threads) best = (0, 0);
        long bestSlots = long.MaxValue;
        foreach (var (items, maxThreads) in SizedKernels)
        {
            int warps = (rowLength + 32 * items - 1) / (32 * items);
            long slots = 32L * warps * items;
            if (32 * warps <= maxThreads && slots < bestSlots) (best, bestSlots) = ((items, 32 * warps), slots);
        }
        return best;
    }

    /// <summary>A sized block as one number (items in the high half, threads in the low), the planner's class of a row.</summary>
    private static int SizedKey(int rowLength) => SizedBlock(rowLength) is var (items, threads) ? items << 16 | threads : 0;

    /// <summary>Counters (threads x items / 2), scan slots, row range, placed composites and staged sorted0, or the radix fallback's needs if larger.</summary>
    public static int SizedSharedBytes(int rowLength)
    {
        var (items, threads) = SizedBlock(rowLength);
        return Math.Max(4 * (threads * items / 2 + 68) + 12 * rowLength, RadixSharedBytes(rowLength, threads));
    }

    public static bool SizedFits(int n, ReconnectLimits limits) => n <= SizedMaxRowLength && SizedSharedBytes(n) <= limits.MaxSharedBytesPerBlock;

    public static bool BitonicFits(int n, ReconnectLimits limits) => 12L * n <= limits.MaxSharedBytesPerBlock;

    public static bool ArgsortFits(int n, ReconnectLimits limits) => 8L * n <= limits.MaxSharedBytesPerBlock;

    public static ReconnectPath ChoosePath(ReconnectVariant variant, int rowLength, ReconnectLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (rowLength < 1) throw new ArgumentOutOfRangeException(nameof(rowLength), $"row length must be at least 1, got {rowLength}");
        return variant switch
        {
            ReconnectVariant.Auto or ReconnectVariant.Tuned => AutoPath(rowLength, limits),
            ReconnectVariant.Warp => rowLength <= 32 ? ReconnectPath.Warp32 : rowLength <= 64 ? ReconnectPath.Warp64
                : rowLength <= 128 ? ReconnectPath.Warp128 : RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            ReconnectVariant.TwoPass => ArgsortFits(rowLength, limits) ? ReconnectPath.TwoPass : ReconnectPath.Chunked,
            ReconnectVariant.BlockBitonic => BitonicFits(rowLength, limits) ? ReconnectPath.BlockBitonic : ReconnectPath.Chunked,
            ReconnectVariant.BlockRadix => RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            ReconnectVariant.Chunked => ReconnectPath.Chunked,
            ReconnectVariant.BlockBucket => BucketFits(rowLength, limits) ? ReconnectPath.BlockBucket
                : RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            ReconnectVariant.BlockBucketStaged => StagedFits(rowLength, limits) ? ReconnectPath.BlockBucketStaged
                : RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            ReconnectVariant.BlockBucketNarrow => NarrowFits(rowLength, limits) ? ReconnectPath.BlockBucketNarrow
                : RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            ReconnectVariant.BlockBucketSized => SizedFits(rowLength, limits) ? ReconnectPath.BlockBucketSized
                : RadixFits(rowLength, limits) ? ReconnectPath.BlockRadix : ReconnectPath.Chunked,
            _ => throw new ArgumentOutOfRangeException(nameof(variant),
                $"reconnect variant {(int)variant} is unknown; expected 0..{(int)Enum.GetValues<ReconnectVariant>().Max()}"),
        };
    }

    // Measured on an H200 (perf/results): the bucket rank beat the block radix 2.5x on ResNet-50
    // and on every model set; then (2026-11-29-h200-check) the staged bucket kernel beat the plain
    // one on every set, rows of at most 32 included: ResNet-50 ImageNet 542.8 us against 782.5,
    // conv13 435.6 against 769.4, conv7 29.4 against 38.1 (with warp rows), resnet50c 29.2 against
    // 38.2. The narrow variant was faster still on the two large sets (511.9, 384.9 us) and 2x
    // slower on the small ones (60.3, 41.3 us), so staged is the choice by row length; Plan then
    // gives the classes where narrow won, when crowded, to narrow (NarrowPays). The radix covers
    // rows between 8192 and the shared-memory limit, chunks beyond.
    private static ReconnectPath AutoPath(int n, ReconnectLimits limits) =>
        StagedFits(n, limits) ? ReconnectPath.BlockBucketStaged
        : n <= 32 ? ReconnectPath.Warp32
        : BucketFits(n, limits) ? ReconnectPath.BlockBucket
        : n <= 64 ? ReconnectPath.Warp64
        : n <= 128 ? ReconnectPath.Warp128
        : RadixFits(n, limits) ? ReconnectPath.BlockRadix
        : ReconnectPath.Chunked;

    /// <summary>
    /// Whether the dispatcher gives a staged class with this many rows to the narrow kernel instead.
    /// Per class, on an H200 (Nsight Compute durations, ResNet-50 ImageNet, 2026-11-29-h200-check):
    /// narrow beat staged at class 256 over 10,174 rows (30.8 against 60.4 us) and at class 8192
    /// over 1,536 rows (162.6 against 216.0 us; staged's 95 registers leave one 512-thread block per
    /// SM); staged won classes 1024 to 4096 and tied at 512. With few rows per class (conv7,
    /// resnet50c: at most a few hundred) narrow was 2x slower overall, its fewer threads per row
    /// being latency; so it takes a class only with rows enough to fill the GPU several times over.
    /// </summary>
    public static bool NarrowPays(int stagedClass, long rows) => stagedClass switch
    {
        256 => rows >= 8192,
        8192 => rows >= 1024,
        _ => false,
    };

    private static void PreferNarrowForCrowdedClasses(List<(int Shape, ReconnectPath Path, int Bucket)> items, IReadOnlyList<ReconnectShape> shapes,
        ReconnectLimits limits)
    {
        var rowsPerClass = items.Where(x => x.Path == ReconnectPath.BlockBucketStaged).GroupBy(x => x.Bucket)
            .ToDictionary(g => g.Key, g => g.Sum(x => (long)shapes[x.Shape].Rows));
        for (int i = 0; i < items.Count; i++)
        {
            var (shape, path, bucket) = items[i];
            if (path == ReconnectPath.BlockBucketStaged && NarrowPays(bucket, rowsPerClass[bucket]) && NarrowFits(shapes[shape].RowLength, limits))
                items[i] = (shape, ReconnectPath.BlockBucketNarrow, bucket);
        }
    }

    /// <summary>
    /// The kernel a launch runs (for the two-kernel paths, the first: the sort; its companion,
    /// reconnect_scatter_rows or reconnect_chunk_merge, is a plain row pass).
    /// </summary>
    public static string KernelName(ReconnectLaunch launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        return launch.Path switch
        {
            ReconnectPath.Warp32 => "reconnect_warp32",
            ReconnectPath.Warp64 => "reconnect_warp64",
            ReconnectPath.Warp128 => "reconnect_warp128",
            ReconnectPath.BlockBitonic => "reconnect_block_bitonic",
            ReconnectPath.BlockRadix => "reconnect_block_radix",
            ReconnectPath.BlockBucket => $"reconnect_bucket_i{BucketItems(launch.MaxRowLength)}",
            ReconnectPath.BlockBucketStaged => $"reconnect_bucket_staged_{StagedClass(launch.MaxRowLength)}",
            ReconnectPath.BlockBucketNarrow => $"reconnect_bucket_narrow_{StagedClass(launch.MaxRowLength)}",
            ReconnectPath.BlockBucketSized => $"reconnect_bucket_sized_i{SizedBlock(launch.MaxRowLength).Items}",
            ReconnectPath.TwoPass => "reconnect_argsort_rows",
            ReconnectPath.Chunked => "reconnect_chunk_sort",
            _ => throw new ArgumentOutOfRangeException(nameof(launch), $"unknown path {launch.Path}"),
        };
    }

    /// <summary>The variants a tuned plan times for each of the dispatcher's staged classes.</summary>
    public static IReadOnlyList<ReconnectVariant> TunedCandidates { get; } =
        [ReconnectVariant.BlockBucketStaged, ReconnectVariant.BlockBucketNarrow, ReconnectVariant.BlockBucketSized];

    /// <summary>The dispatcher's staged classes (<see cref="StagedClass"/>) and the shapes in each: what a tuned plan chooses a variant for.</summary>
    public static IReadOnlyDictionary<int, IReadOnlyList<int>> TunedClasses(IReadOnlyList<ReconnectShape> shapes, ReconnectLimits limits)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(limits);
        return Enumerable.Range(0, shapes.Count).Where(i => AutoPath(shapes[i].RowLength, limits) == ReconnectPath.BlockBucketStaged)
            .GroupBy(i => StagedClass(shapes[i].RowLength)).OrderBy(g => g.Key)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<int>)[.. g]);
    }

    private static int BucketOf(ReconnectPath path, int rowLength, int chunk) => path switch
    {
        ReconnectPath.Warp32 or ReconnectPath.Warp64 or ReconnectPath.Warp128 => 0,
        ReconnectPath.Chunked => NextPowerOfTwo(Math.Min(rowLength, chunk)),
        ReconnectPath.BlockBucketStaged or ReconnectPath.BlockBucketNarrow => StagedClass(rowLength),
        ReconnectPath.BlockBucketSized => SizedKey(rowLength),
        _ => NextPowerOfTwo(rowLength),
    };

    /// <param name="tunedClasses">For <see cref="ReconnectVariant.Tuned"/>: the variant each staged class takes (<see cref="ReconnectTuner"/>); a class not in it keeps the dispatcher's path.</param>
    public static ReconnectPlan Plan(ReconnectVariant variant, IReadOnlyList<ReconnectShape> shapes, ReconnectLimits limits,
        IReadOnlyDictionary<int, ReconnectVariant>? tunedClasses = null)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(limits);
        int chunk = ChunkLength(limits);
        if (chunk < 256) throw new ArgumentException($"reconnection needs at least 2 KB of shared memory per block, the limit is {limits.MaxSharedBytesPerBlock} bytes");
        var items = new List<(int Shape, ReconnectPath Path, int Bucket)>(shapes.Count);
        for (int i = 0; i < shapes.Count; i++)
        {
            ReconnectShape s = shapes[i];
            if (s.Rows < 1 || s.RowLength < 1)
                throw new ArgumentException($"tensor '{s.Name}' has {s.Rows} rows of {s.RowLength}; both must be at least 1");
            ReconnectPath path = ChoosePath(variant, s.RowLength, limits);
            items.Add((i, path, BucketOf(path, s.RowLength, chunk)));
        }
        if (variant is ReconnectVariant.Auto or ReconnectVariant.Tuned) PreferNarrowForCrowdedClasses(items, shapes, limits);
        if (variant == ReconnectVariant.Tuned && tunedClasses is not null)
            for (int i = 0; i < items.Count; i++)
            {
                var (shape, path, bucket) = items[i];
                if (path is ReconnectPath.BlockBucketStaged or ReconnectPath.BlockBucketNarrow && tunedClasses.TryGetValue(bucket, out ReconnectVariant chosen))
                {
                    ReconnectPath tuned = ChoosePath(chosen, shapes[shape].RowLength, limits);
                    items[i] = (shape, tuned, BucketOf(tuned, shapes[shape].RowLength, chunk));
                }
            }
        // Stable: tensors of one class keep their model order.
        var ordered = items.Select((item, index) => (item, index))
            .OrderBy(x => x.item.Path).ThenBy(x => x.item.Bucket).ThenBy(x => x.index).Select(x => x.item).ToList();

        var order = new List<int>(ordered.Count);
        var table = new List<ReconnectTensor>(ordered.Count);
        var launches = new List<ReconnectLaunch>();
        long scratch = 0;
        int start = 0;
        while (start < ordered.Count)
        {
            ReconnectPath path = ordered[start].Path;
            int bucket = ordered[start].Bucket;
            int end = start, rows = 0, chunks = 0, maxLength = 0;
            while (end < ordered.Count && ordered[end].Path == path && ordered[end].Bucket == bucket)
            {
                ReconnectShape s = shapes[ordered[end].Shape];
                bool needsScratch = path is ReconnectPath.TwoPass or ReconnectPath.Chunked;
                table.Add(new ReconnectTensor
                {
                    Rows = s.Rows, RowLength = s.RowLength, FirstRow = rows, FirstChunk = chunks,
                    ScratchOffset = needsScratch ? scratch : 0,
                });
                if (needsScratch) scratch += s.Elements;
                order.Add(ordered[end].Shape);
                rows = checked(rows + s.Rows);
                chunks = checked(chunks + s.Rows * ((s.RowLength + chunk - 1) / chunk));
                maxLength = Math.Max(maxLength, s.RowLength);
                end++;
            }
            (int threads, int shared) = path switch
            {
                ReconnectPath.Warp32 or ReconnectPath.Warp64 or ReconnectPath.Warp128 => (WarpKernelThreads, 0),
                ReconnectPath.BlockBitonic => (Math.Clamp(NextPowerOfTwo(maxLength) / 2, 32, 512), 12 * maxLength),
                ReconnectPath.BlockRadix => (RadixThreads(maxLength), RadixSharedBytes(maxLength, RadixThreads(maxLength))),
                ReconnectPath.BlockBucket => (BucketThreads, BucketSharedBytes(maxLength)),
                ReconnectPath.BlockBucketStaged => (StagedThreads(maxLength), StagedSharedBytes(maxLength)),
                ReconnectPath.BlockBucketNarrow => (NarrowThreads(maxLength), NarrowSharedBytes(maxLength)),
                ReconnectPath.BlockBucketSized => (SizedBlock(maxLength).Threads, SizedSharedBytes(maxLength)),
                ReconnectPath.TwoPass => (Math.Clamp(NextPowerOfTwo(maxLength) / 2, 32, 512), 8 * maxLength),
                _ => (Math.Clamp(NextPowerOfTwo(Math.Min(maxLength, chunk)) / 2, 32, 1024), 8 * Math.Min(maxLength, chunk)),
            };
            launches.Add(new ReconnectLaunch(path, start, end - start, rows, chunks, maxLength, threads, shared, chunk));
            start = end;
        }
        return new ReconnectPlan(variant, order, table, launches, scratch);
    }
}
