using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

using System.Runtime.InteropServices;

namespace LaPerm.Cuda.Kernels;

/// <summary>One entry of adam_multi_v1's table (struct AdamTensor in adam.cu: four pointers, then a 64-bit length).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct AdamTensorRecord(ulong Weights, ulong Gradients, ulong FirstMoments, ulong SecondMoments, long Length);

/// <summary>One tensor of a multi-tensor momentum-SGD launch (optimizer.cu's SgdTensor, 32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct SgdTensorRecord(ulong Weights, ulong Gradients, ulong Velocity, long Length);

/// <summary>
/// The first kernels (axpy, block reduction, warp-shuffle scan, Adam) with their launch
/// shapes, written once for both devices. No call allocates: scratch buffers are the caller's.
/// </summary>
public sealed class PrimitiveKernels : IDisposable
{
    public const int BlockSize = 256;
    /// <summary>Most tiles a scan can combine: the tile totals are scanned by one block.</summary>
    public const int MaxScanTiles = 1024;
    /// <summary>Blocks of the first reduction stage (the second stage reduces them in one block).</summary>
    public const int ReductionBlocks = 256;

    private readonly DeviceModule _axpyModule, _reduceModule, _scanModule, _adamModule;
    private readonly Kernel[] _axpy, _reduce;
    private readonly Kernel _scan, _scanAddOffsets, _adam, _adamMulti;

    public PrimitiveKernels(Device device)
    {
        _axpyModule = device.LoadModule("axpy.ptx");
        _reduceModule = device.LoadModule("reduce.ptx");
        _scanModule = device.LoadModule("scan.ptx");
        _adamModule = device.LoadModule("adam.ptx");
        _axpy = [_axpyModule.GetKernel("axpy_v1"), _axpyModule.GetKernel("axpy_v2")];
        _reduce = [_reduceModule.GetKernel("reduce_sum_v1"), _reduceModule.GetKernel("reduce_sum_v2")];
        _scan = _scanModule.GetKernel("scan_inclusive_v1");
        _scanAddOffsets = _scanModule.GetKernel("scan_add_offsets_v1");
        _adam = _adamModule.GetKernel("adam_v1");
        _adamMulti = _adamModule.GetKernel("adam_multi_v1");
    }

    private static uint Blocks(long n, int block) => (uint)Math.Max(1, (n + block - 1) / block);

    private static Kernel Variant(Kernel[] variants, int variant) =>
        variant >= 1 && variant <= variants.Length
            ? variants[variant - 1]
            : throw new ArgumentOutOfRangeException(nameof(variant), $"variant must be 1..{variants.Length}, got {variant}");

    /// <summary>y = a * x + y over the first <paramref name="n"/> elements.</summary>
    public void Axpy(DeviceStream stream, int n, float a, DeviceBuffer<float> x, DeviceBuffer<float> y, int variant = 1)
    {
        BackendLength(x, n, "x");
        BackendLength(y, n, "y");
        // v2 is grid-stride: a fixed grid (here at most 1024 blocks) covers any n.
        uint grid = variant == 2 ? Math.Min(Blocks(n, BlockSize), 1024u) : Blocks(n, BlockSize);
        Variant(_axpy, variant).Launch(grid, BlockSize, 0, stream, n, a, x.Pointer, y.Pointer);
    }

    /// <summary>
    /// result[0] = sum of x[0..n): <see cref="ReductionBlocks"/> block sums into
    /// <paramref name="partials"/>, then one block sums those. Deterministic for a given n.
    /// </summary>
    public void Sum(DeviceStream stream, int n, DeviceBuffer<float> x, DeviceBuffer<float> partials, DeviceBuffer<float> result, int variant = 1)
    {
        BackendLength(x, n, "x");
        BackendLength(partials, ReductionBlocks, "partials");
        BackendLength(result, 1, "result");
        Kernel kernel = Variant(_reduce, variant);
        uint blocks = Math.Min(Blocks(n, BlockSize), ReductionBlocks);
        kernel.Launch(blocks, BlockSize, 0, stream, n, x.Pointer, partials.Pointer);
        kernel.Launch(1, ReductionBlocks, 0, stream, (int)blocks, partials.Pointer, result.Pointer);
    }

    /// <summary>
    /// Inclusive prefix sum y[i] = x[0] + ... + x[i] for n up to BlockSize * MaxScanTiles;
    /// <paramref name="tileTotals"/> needs ceil(n / BlockSize) elements.
    /// </summary>
    public void InclusiveScan(DeviceStream stream, int n, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<float> tileTotals)
    {
        BackendLength(x, n, "x");
        BackendLength(y, n, "y");
        uint tiles = Blocks(n, BlockSize);
        if (tiles > MaxScanTiles)
            throw new ArgumentOutOfRangeException(nameof(n), $"scan of {n} elements needs {tiles} tiles, at most {MaxScanTiles} are supported");
        BackendLength(tileTotals, tiles, "tileTotals");
        _scan.Launch(tiles, BlockSize, 0, stream, n, x.Pointer, y.Pointer, tileTotals.Pointer);
        if (tiles == 1) return;
        uint totalsBlock = (tiles + 31) / 32 * 32;   // a multiple of 32 covering every tile
        _scan.Launch(1, totalsBlock, 0, stream, (int)tiles, tileTotals.Pointer, tileTotals.Pointer, 0UL);
        _scanAddOffsets.Launch(tiles, BlockSize, 0, stream, n, y.Pointer, tileTotals.Pointer);
    }

    /// <summary>One Adam step (IBackend.AdamUpdate's Keras form, lr and t passed by value) over n elements of w, g, m, v.</summary>
    public void Adam(DeviceStream stream, AdamParameters step, float learningRate, long t, int n, DeviceBuffer<float> w, DeviceBuffer<float> g, DeviceBuffer<float> m, DeviceBuffer<float> v)
    {
        BackendLength(w, n, "w");
        BackendLength(g, n, "g");
        BackendLength(m, n, "m");
        BackendLength(v, n, "v");
        float learningRateT = step.LearningRateAt(learningRate, t);
        uint grid = Math.Min(Blocks(n, BlockSize), 4096u);
        _adam.Launch(grid, BlockSize, 0, stream, n, learningRateT, step.Beta1, step.Beta2, step.Epsilon, w.Pointer, g.Pointer, m.Pointer, v.Pointer);
    }

    /// <summary>
    /// One Adam step over every tensor listed in <paramref name="table"/> (device-resident,
    /// <paramref name="tensorCount"/> records) with one launch: blockIdx.y picks the tensor.
    /// </summary>
    public void AdamMulti(DeviceStream stream, AdamParameters step, float learningRate, long t, DeviceBuffer<AdamTensorRecord> table, int tensorCount, uint blocksPerTensor = 64)
    {
        BackendLength(table, tensorCount, "table");
        if (tensorCount <= 0 || tensorCount > 65535)
            throw new ArgumentOutOfRangeException(nameof(tensorCount), $"tensor count must be 1..65535 (grid y), got {tensorCount}");
        _adamMulti.Launch(new Dim3(blocksPerTensor, (uint)tensorCount), BlockSize, 0, stream,
            tensorCount, step.LearningRateAt(learningRate, t), step.Beta1, step.Beta2, step.Epsilon, table.Pointer);
    }

    private static void BackendLength<T>(DeviceBuffer<T> buffer, long needed, string name) where T : unmanaged
    {
        if (buffer.Length < needed)
            throw new ArgumentException($"{name} has {buffer.Length} elements, expected at least {needed}");
    }

    public void Dispose()
    {
        _axpyModule.Dispose();
        _reduceModule.Dispose();
        _scanModule.Dispose();
        _adamModule.Dispose();
    }
}
