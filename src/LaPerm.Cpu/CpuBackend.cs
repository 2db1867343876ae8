using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

/// <summary>
/// The CPU backend: every op runs synchronously on the calling thread, split over a fixed
/// number of threads that share the blocks of each op (see <see cref="WorkSharing"/>).
///
/// Determinism: with the same inputs and thread count every op is bit-for-bit repeatable.
/// Beyond that, every op's result is independent of the thread count: each output element
/// is computed by exactly one worker in an order that does not depend on the split
/// (GEMM tiles run the same micro-kernel with the same k blocking; reductions run per
/// channel / per row in index order; conv groups of images are sized from the geometry only).
///
/// The backend is one "stream": it is not safe to call ops on it from several threads at once.
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    private readonly WorkSharing _partition;
    private readonly ThreadScratch[] _threadScratch;
    private readonly ScratchBuffer _columns = new();
    private readonly ScratchBuffer _gathered = new();
    private readonly ScratchBuffer _packedWeights = new();
    private readonly ScratchBuffer _paddedInput = new();
    private readonly IntScratchBuffer _tapOffsets = new();
    private readonly IntScratchBuffer _pixelOffsets = new();
    private bool _disposed;

    /// <param name="threads">Worker threads; 1 runs everything sequentially on the caller.</param>
    public CpuBackend(int threads)
    {
        _partition = new WorkSharing(threads);
        _threadScratch = new ThreadScratch[threads];
        for (int i = 0; i < threads; i++) _threadScratch[i] = new ThreadScratch();
    }

    public string Name => "cpu";

    public int Threads => _partition.Threads;

    public string Description =>
        $"{CpuModel()} ({Environment.ProcessorCount} logical cores), {Threads} thread{(Threads == 1 ? "" : "s")}, " +
        (Sgemm.UsesFma ? "AVX2+FMA" : "scalar") + " GEMM";

    private static string CpuModel()
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                        return line[(line.IndexOf(':') + 1)..].Trim();
            }
        }
        catch (IOException)
        {
            // Fall through to the architecture name.
        }
        catch (UnauthorizedAccessException)
        {
            // Fall through to the architecture name.
        }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    public void Dispose()
    {
        _disposed = true;
        _partition.Dispose();
    }

    // ---- ownership ------------------------------------------------------------------------

    private CpuTensor<T> Own<T>(Tensor<T> tensor, string name) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is CpuTensor<T> cpu && ReferenceEquals(cpu.Backend, this)) return cpu;
        throw new ArgumentException($"{name} {tensor} belongs to backend '{tensor.Backend.Name}', not to this cpu backend", name);
    }

    private T[] Data<T>(Tensor<T> tensor, string name, long expectedLength) where T : unmanaged
    {
        var cpu = Own(tensor, name);
        BackendGuard.Length(tensor, expectedLength, name);
        return cpu.Data;
    }

    private T[] DataAtLeast<T>(Tensor<T> tensor, string name, long minimumLength) where T : unmanaged
    {
        var cpu = Own(tensor, name);
        BackendGuard.AtLeast(tensor, minimumLength, name);
        return cpu.Data;
    }

    // ---- memory -----------------------------------------------------------------------------

    public Tensor<T> Allocate<T>(Shape shape) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new CpuTensor<T>(this, shape);
    }

    public Tensor<T> Reshape<T>(Tensor<T> source, Shape shape) where T : unmanaged
    {
        var src = Own(source, nameof(source));
        BackendGuard.Length(source, shape.Length, nameof(source));
        return new CpuTensor<T>(this, shape, src.Data);
    }

    public void Upload<T>(ReadOnlySpan<T> source, Tensor<T> destination) where T : unmanaged
    {
        var dst = Own(destination, nameof(destination));
        if (source.Length != destination.Length)
            throw new ArgumentException($"source has {source.Length} elements, destination {destination} has {destination.Length}", nameof(source));
        source.CopyTo(dst.Data);
    }

    public void Download<T>(Tensor<T> source, Span<T> destination) where T : unmanaged
    {
        var src = Own(source, nameof(source));
        if (destination.Length != source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, source {source} has {source.Length}", nameof(destination));
        src.Data.AsSpan().CopyTo(destination);
    }

    public IAsyncReadback<T> CreateReadback<T>(int length) where T : unmanaged => new Readback<T>(this, length);

    // The CPU runs every op when it is called: a readback is complete when it starts.
    private sealed class Readback<T>(CpuBackend backend, int length) : IAsyncReadback<T> where T : unmanaged
    {
        private readonly T[] _values = new T[length];
        private bool _waiting;
        private long _tag;

        public int Length => length;

        public bool Start(Tensor<T> source, long tag)
        {
            backend.Download(source, _values);
            (_waiting, _tag) = (true, tag);
            return true;
        }

        public bool TryGet(Span<T> destination, out long tag)
        {
            tag = _tag;
            if (!_waiting) return false;
            _values.CopyTo(destination);
            _waiting = false;
            return true;
        }

        public void Dispose() { }
    }

    public void Copy<T>(Tensor<T> source, Tensor<T> destination) where T : unmanaged
    {
        var src = Own(source, nameof(source));
        var dst = Data(destination, nameof(destination), source.Length);
        src.Data.AsSpan().CopyTo(dst);
    }

    public void Fill(Tensor<float> destination, float value) => Own(destination, nameof(destination)).Data.AsSpan().Fill(value);

    /// <summary>Ops run synchronously, so there is nothing to wait for.</summary>
    public void Synchronize() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>The values of the last <see cref="BeginStep"/>, read by dropout and the optimizers.</summary>
    private StepScalars _step;

    public void BeginStep(in StepScalars scalars)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _step = scalars;
        _skip = 0;
        _skipTensor = int.MaxValue;
    }

    // The non-finite guard's record, as the device keeps it (cuda/include/laperm/step.cuh).
    private long _nonFiniteStep;   // stop: the first step whose loss was not finite (0 = none)
    private int _skip;             // this step: 0 applied, 1 loss, 2 gradient
    private int _skipTensor;
    private readonly List<SkippedStep> _skipped = [];

    /// <summary>The optimizers leave this step's update out.</summary>
    private bool StepSkipped => _skip != 0 || _nonFiniteStep != 0;

    public void GuardLoss(Tensor<float> lossAndCorrect, bool skipStep)
    {
        var totals = Data(lossAndCorrect, nameof(lossAndCorrect), 2);
        if (float.IsFinite(totals[0])) return;
        if (skipStep)
        {
            if (_skip == 0) _skip = 1;
        }
        else if (_nonFiniteStep == 0)
        {
            _nonFiniteStep = _step.Step;
        }
    }

    public void GuardGradient(Tensor<float> gradient, int index)
    {
        var values = Own(gradient, nameof(gradient)).Data;
        for (int i = 0; i < gradient.Length; i++)
        {
            if (float.IsFinite(values[i])) continue;
            if (_skip == 0) _skip = 2;
            _skipTensor = Math.Min(_skipTensor, index);
            return;
        }
    }

    public void RestoreIfSkipped(Tensor<float> backup, Tensor<float> destination)
    {
        if (_skip != 0) Copy(backup, destination);
    }

    public void CommitStepGuard()
    {
        if (_skip != 0) _skipped.Add(new SkippedStep(_step.Step, _skip == 2, _skip == 2 ? _skipTensor : -1, _step.BatchSize));
    }

    public NonFiniteReport TakeNonFinite()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var report = _nonFiniteStep == 0 && _skipped.Count == 0 ? NonFiniteReport.None : new NonFiniteReport(_nonFiniteStep, [.. _skipped], 0);
        _nonFiniteStep = 0;
        _skipped.Clear();
        return report;
    }

    /// <summary>Ops run as they are called: nothing to capture.</summary>
    public bool CanCapture => false;

    public void BeginCapture() => throw new NotSupportedException("the cpu backend runs ops as they are called and cannot capture them");

    public ICapturedOps EndCapture() => throw new NotSupportedException("the cpu backend runs ops as they are called and cannot capture them");

    /// <summary>Never capturing: nothing to give up.</summary>
    public void AbandonCapture() { }

    // ---- linear algebra ----------------------------------------------------------------------

    public void Gemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        Tensor<float> a, Tensor<float> b, float beta, Tensor<float> c)
    {
        if (m <= 0 || n <= 0 || k < 0) throw new ArgumentException($"gemm sizes must be positive, got m={m}, n={n}, k={k}");
        var aData = DataAtLeast(a, nameof(a), (long)m * k);
        var bData = DataAtLeast(b, nameof(b), (long)k * n);
        var cData = DataAtLeast(c, nameof(c), (long)m * n);
        GemmParallel(transposeA, transposeB, m, n, k, alpha, aData, 0, bData, 0, beta, cData, 0);
    }

    private readonly record struct GemmCall(bool TransposeA, int M, int N, int K, float Alpha,
        float[] A, int AOffset, float Beta, float[] C, int COffset, bool SplitColumns, int Blocks, int Chunks, float[]? PrepackedA);

    /// <summary>C (at an offset) = alpha op(A) op(B) + beta C, split over workers by output tiles (rows or columns of C).</summary>
    private unsafe void GemmParallel(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        float[] a, int aOffset, float[] b, int bOffset, float beta, float[] c, int cOffset, float[]? prepackedA = null)
    {
        GemmParallel(transposeA, m, n, k, alpha, a, aOffset, new DensePanels(transposeB, Address(b) + bOffset, n, k), beta, c, cOffset, prepackedA);
        // The panels hold B's address only: without this the JIT may end b's lifetime at the call,
        // and a GC during the GEMM (another thread allocating) can free the pinned array under it
        // when the caller keeps no other reference (seen as an access violation in DensePanels.Pack).
        GC.KeepAlive(b);
    }

    /// <summary>As above with op(B) from a panel source (implicit im2col for convolutions).</summary>
    private void GemmParallel<TPanels>(bool transposeA, int m, int n, int k, float alpha,
        float[] a, int aOffset, TPanels panels, float beta, float[] c, int cOffset, float[]? prepackedA = null) where TPanels : struct, IPanelSource
    {
        bool splitColumns = n >= m;
        int blocks = splitColumns ? (n + Sgemm.NR - 1) / Sgemm.NR : (m + Sgemm.MR - 1) / Sgemm.MR;
        // Below ~0.25 MFLOP a second thread costs more than it saves.
        int chunks = (long)m * n * Math.Max(k, 1) < (1 << 17) ? 1 : Math.Min(Threads, blocks);
        var call = new GemmCall(transposeA, m, n, k, alpha, a, aOffset, beta, c, cOffset, splitColumns, blocks, chunks, prepackedA);
        _partition.For(chunks, 1, (backend: this, call, panels), static (s, slot, start, end) =>
        {
            for (int chunk = start; chunk < end; chunk++) s.backend.GemmChunk(s.call, s.panels, chunk, slot);
        });
    }

    private unsafe void GemmChunk<TPanels>(in GemmCall g, in TPanels panels, int chunk, int slot) where TPanels : struct, IPanelSource
    {
        int i0 = 0, i1 = g.M, j0 = 0, j1 = g.N;
        int b0 = WorkSharing.ChunkStart(g.Blocks, g.Chunks, chunk), b1 = WorkSharing.ChunkStart(g.Blocks, g.Chunks, chunk + 1);
        if (g.SplitColumns)
        {
            j0 = b0 * Sgemm.NR;
            j1 = Math.Min(g.N, b1 * Sgemm.NR);
        }
        else
        {
            i0 = b0 * Sgemm.MR;
            i1 = Math.Min(g.M, b1 * Sgemm.MR);
        }
        Sgemm.ComputeBlock(g.TransposeA, g.M, g.N, g.K, g.Alpha, Address(g.A) + g.AOffset, panels,
            g.Beta, Address(g.C) + g.COffset, i0, i1, j0, j1, _threadScratch[slot].Gemm, g.PrepackedA is null ? null : Address(g.PrepackedA));
    }

    /// <summary>
    /// The address of element 0 of an array allocated on the pinned object heap (every tensor
    /// and scratch array of this backend is), so it never moves. It does not keep the array
    /// alive: a caller that uses the address after its last use of the array calls GC.KeepAlive.
    /// </summary>
    private static unsafe float* Address(float[] pinned) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));

    public void AddBias(Tensor<float> y, Tensor<float> bias, int channels)
    {
        var biasData = Data(bias, nameof(bias), channels);
        var yData = Own(y, nameof(y)).Data;
        int spatial = SpatialOf(y, channels, nameof(y));
        if (spatial == 1)
        {
            // Dense activations [N, C]: add the bias vector to each row.
            _partition.For(y.Length / channels, Math.Max(1, 16384 / channels), (yData, biasData, channels), static (s, _, start, end) =>
            {
                for (int n = start; n < end; n++) AddVector(s.yData.AsSpan(n * s.channels, s.channels), s.biasData);
            });
            return;
        }
        int planes = y.Length / spatial;
        _partition.For(planes, Math.Max(1, 16384 / spatial), (yData, biasData, channels, spatial), static (s, _, start, end) =>
        {
            for (int plane = start; plane < end; plane++) AddScalar(s.yData.AsSpan(plane * s.spatial, s.spatial), s.biasData[plane % s.channels]);
        });
    }

    private static void AddVector(Span<float> row, ReadOnlySpan<float> values)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i <= row.Length - 8; i += 8) (Vector256.Create(row.Slice(i, 8)) + Vector256.Create(values.Slice(i, 8))).CopyTo(row.Slice(i, 8));
        for (; i < row.Length; i++) row[i] += values[i];
    }

    public void BiasGradient(Tensor<float> dy, Tensor<float> dBias, int channels)
    {
        var dyData = Own(dy, nameof(dy)).Data;
        var dBiasData = Data(dBias, nameof(dBias), channels);
        int spatial = SpatialOf(dy, channels, nameof(dy));
        int batch = dy.Length / (spatial * channels);
        // One worker per channel; per channel, each (n, c) plane is summed in float (SIMD lanes in a
        // fixed order) and the plane sums are added in n order in double: independent of the split.
        _partition.For(channels, 8, (dyData, dBiasData, channels, spatial, batch), static (s, _, start, end) =>
        {
            for (int ch = start; ch < end; ch++)
            {
                double sum = 0;
                for (int n = 0; n < s.batch; n++) sum += PlaneSum(s.dyData.AsSpan((n * s.channels + ch) * s.spatial, s.spatial));
                s.dBiasData[ch] = (float)sum;
            }
        });
    }

    /// <summary>Sum of a span: four 8-lane float accumulators over blocks of 32, then the tail; a fixed order for a given length.</summary>
    private static float PlaneSum(ReadOnlySpan<float> values)
    {
        int i = 0;
        float total = 0f;
        if (Vector256.IsHardwareAccelerated && values.Length >= 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= values.Length - 32; i += 32)
            {
                a0 += Vector256.Create(values.Slice(i, 8));
                a1 += Vector256.Create(values.Slice(i + 8, 8));
                a2 += Vector256.Create(values.Slice(i + 16, 8));
                a3 += Vector256.Create(values.Slice(i + 24, 8));
            }
            total = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < values.Length; i++) total += values[i];
        return total;
    }

    private static int SpatialOf(Tensor<float> t, int channels, string name)
    {
        if (channels <= 0) throw new ArgumentException($"channels must be positive, got {channels}");
        if (t.Shape.Rank < 2 || t.Shape[1] != channels)
            throw new ArgumentException($"{name} {t} must have {channels} channels on axis 1");
        return t.Length / (t.Shape[0] * channels);
    }

    public void Scale(float alpha, Tensor<float> y)
    {
        var yData = Own(y, nameof(y)).Data;
        _partition.For(yData.Length, ElementwiseChunk, (yData, alpha), static (s, _, start, end) =>
        {
            var ys = s.yData.AsSpan(start, end - start);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var va = Vector256.Create(s.alpha);
                for (; i <= ys.Length - 8; i += 8) (va * Vector256.Create(ys.Slice(i, 8))).CopyTo(ys.Slice(i, 8));
            }
            for (; i < ys.Length; i++) ys[i] = s.alpha * ys[i];
        });
    }

    public void ScaleAdd(float alpha, Tensor<float> x, Tensor<float> y)
    {
        var yData = Own(y, nameof(y)).Data;
        var xData = Data(x, nameof(x), y.Length);
        _partition.For(yData.Length, ElementwiseChunk, (xData, yData, alpha), static (s, _, start, end) =>
        {
            var xs = s.xData.AsSpan(start, end - start);
            var ys = s.yData.AsSpan(start, end - start);
            int i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var va = Vector256.Create(s.alpha);
                for (; i <= ys.Length - 8; i += 8)
                    (Vector256.Create(xs.Slice(i, 8)) + va * Vector256.Create(ys.Slice(i, 8))).CopyTo(ys.Slice(i, 8));
            }
            for (; i < ys.Length; i++) ys[i] = xs[i] + s.alpha * ys[i];
        });
    }

    /// <summary>Elementwise ops split only above this many elements per worker.</summary>
    private const int ElementwiseChunk = 32768;

    private static void AddScalar(Span<float> row, float value)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var v = Vector256.Create(value);
            for (; i <= row.Length - 8; i += 8) (Vector256.Create(row.Slice(i, 8)) + v).CopyTo(row.Slice(i, 8));
        }
        for (; i < row.Length; i++) row[i] += value;
    }
}

/// <summary>A grow-only pinned float buffer held by the backend, so hot paths do not allocate.</summary>
internal sealed class ScratchBuffer
{
    private float[] _data = [];

    public float[] Get(int length)
    {
        // A negative length (a size that wrapped) would return the old, smaller buffer.
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (_data.Length < length) _data = GC.AllocateArray<float>(length, pinned: true);
        return _data;
    }
}

/// <summary>What one thread (a slot of <see cref="WorkSharing"/>) uses alone: GEMM packing buffers, convolution scratch.</summary>
internal sealed class ThreadScratch
{
    public GemmWorkspace Gemm { get; } = new();

    /// <summary>Column gradients of a group of images (data gradient).</summary>
    public ScratchBuffer Columns { get; } = new();

    /// <summary>dy of a group of images as one matrix (data gradient).</summary>
    public ScratchBuffer Gathered { get; } = new();

    /// <summary>One image in the direct convolution's phase-split layout (forward).</summary>
    public ScratchBuffer Image { get; } = new();
}

/// <summary>A grow-only int buffer held by the backend (offset tables of the direct convolutions).</summary>
internal sealed class IntScratchBuffer
{
    private int[] _data = [];

    public int[] Get(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (_data.Length < length) _data = new int[length];
        return _data;
    }
}
