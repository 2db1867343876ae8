using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Reconnect;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

/// <summary>
/// <see cref="IBackend"/> on a <see cref="Device"/>: the real GPU (<c>cuda</c>) or the host
/// emulator (<c>emu</c>), through the same code. Every op is enqueued on the device's default
/// stream; only <see cref="Download{T}"/> and <see cref="Synchronize"/> wait.
///
/// Where each op runs: GEMM on cuBLAS (pedantic FP32 unless <see cref="GemmMath.Tf32"/>; the host
/// GEMM on emu); convolutions as im2col/col2im kernels plus one GEMM per group of images;
/// convolution, pooling and batch-norm on cuDNN instead for the families in <see cref="CudnnScope"/>
/// (CudaBackend.Cudnn.cs); every other op is one of our kernels in cuda/kernels (bias.cu, activation.cu, dropout.cu, loss.cu,
/// pool.cu, batchnorm.cu, elementwise.cu, optimizer.cu, adam.cu; the batch gather with its shuffle
/// and augmentation, data.cu); reconnection is
/// <see cref="DeviceReconnector"/> (reconnect.cu). Adam updates of one step are batched into one
/// multi-tensor launch (see <see cref="AdamUpdate"/>). Step-dependent values (dropout step,
/// learning rate, Adam's t) are read by the kernels from a device block that
/// <see cref="BeginStep"/> writes (CudaBackend.Step.cs), so no op waits on the host and a captured
/// step replays correctly.
///
/// Like the device, the backend is one stream: call it from one thread at a time. On cuda every
/// entry point makes the device's context current, so that thread may change between calls.
/// </summary>
public sealed partial class CudaBackend : IBackend
{
    internal const int BlockSize = 256;
    /// <summary>Grid-stride kernels use at most this many blocks (enough to fill any current GPU).</summary>
    private const long MaxGrid = 8192;

    private readonly Device _device;
    private readonly bool _ownsDevice;
    private readonly BackendKernels _kernels;
    private readonly DeviceGemm _gemm;
    private ReconnectKernels? _reconnectKernels;
    private DeviceBuffer<float>? _columns;
    private DeviceBuffer<float>? _product;
    private DeviceBuffer<float>? _perExample;
    /// <summary>Double partials and totals of the chunked per-channel reductions (batch-norm, bias gradient).</summary>
    private DeviceBuffer<double>? _channelPartials;
    private readonly ChannelReduction _channelReduction;
    private bool _disposed;

    /// <summary>Opens "cuda", "cuda:N" or "emu" and builds the backend on it (the backend owns the device).</summary>
    /// <exception cref="InvalidOperationException">The device is unavailable here; the message says why.</exception>
    public static CudaBackend Open(string kind, GemmMath math = GemmMath.Pedantic, CudnnScope cudnn = CudnnScope.None,
        ChannelReduction channelReduction = ChannelReduction.Chunked, ReconnectVariant reconnectVariant = ReconnectVariant.Auto)
    {
        Device device = Device.Open(kind);
        try
        {
            return new CudaBackend(device, ownsDevice: true, math, cudnn, channelReduction, reconnectVariant);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>A backend on a device the caller keeps owning (dispose the backend first).</summary>
    public CudaBackend(Device device, GemmMath math = GemmMath.Pedantic, CudnnScope cudnn = CudnnScope.None,
        ChannelReduction channelReduction = ChannelReduction.Chunked, ReconnectVariant reconnectVariant = ReconnectVariant.Auto)
        : this(device, ownsDevice: false, math, cudnn, channelReduction, reconnectVariant)
    {
    }

    private CudaBackend(Device device, bool ownsDevice, GemmMath math, CudnnScope cudnn, ChannelReduction channelReduction,
        ReconnectVariant reconnectVariant)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!Enum.IsDefined(channelReduction))
            throw new ArgumentOutOfRangeException(nameof(channelReduction), channelReduction, "channel reduction must be Chunked or PerChannel");
        if (!Enum.IsDefined(reconnectVariant))
            throw new ArgumentOutOfRangeException(nameof(reconnectVariant), reconnectVariant, $"reconnect variant must be 0..{(int)Enum.GetValues<ReconnectVariant>().Max()}");
        _device = device;
        ReconnectVariant = reconnectVariant;
        _ownsDevice = ownsDevice;
        _channelReduction = channelReduction;
        if ((cudnn & ~CudnnScope.All) != 0) throw new ArgumentOutOfRangeException(nameof(cudnn), cudnn, "unknown cuDNN op family");
        _cudnnScope = cudnn;
        // Asked for cuDNN: load it now, so that the description says what will really run.
        if (cudnn != CudnnScope.None && device.LibraryUnavailableReason() is { } reason)
        {
            _cudnnScope = CudnnScope.None;
            _cudnnUnavailable = reason;
        }
        device.MakeCurrent();
        _kernels = new BackendKernels(device);
        try
        {
            _gemm = new DeviceGemm(device, math);
            AllocateStepBlock();
        }
        catch
        {
            _stepBlock?.Dispose();
            _guard?.Dispose();
            _kernels.Dispose();
            throw;
        }
    }

    /// <summary>"cuda" ("cuda:N" on GPU N > 0, as --device names it) or "emu".</summary>
    public string Name => _device.GpuOrdinal is int gpu and > 0 ? $"cuda:{gpu}" : _device.Kind;

    /// <summary>What runs the ops: the GPU (its number when not GPU 0, as on a machine with several), cuBLAS, cuDNN, the variants.</summary>
    public string Description => (_device.GpuOrdinal is int gpu and > 0 ? $"GPU {gpu}: " : "") + $"{_device.Name}, {_gemm.Description}, {DescribeCudnn(_cudnnScope)}"
        + (_cudnnUnavailable is null ? "" : $" ({_cudnnUnavailable})")
        + (PtxCatalog.Active.Source is { } ptx ? $", {ptx}" : "")
        + (_channelReduction == ChannelReduction.PerChannel ? ", per-channel reductions v1 (one block per channel)" : "")
        + (ReconnectVariant == ReconnectVariant.Auto ? "" : $", reconnection variant {(int)ReconnectVariant} ({ReconnectVariant})")
        + (ReconnectPaths is null ? "" : ReconnectVariant == ReconnectVariant.Auto ? $", reconnection [{ReconnectPaths}]" : $" [{ReconnectPaths}]");

    /// <summary>
    /// The paths the latest reconnection plan's launches take ("BlockRadix, Chunked"), null before
    /// one is prepared: a forced variant sends rows it cannot hold elsewhere, and a profile should say so.
    /// </summary>
    public string? ReconnectPaths { get; private set; }

    /// <summary>The reconnection kernels every plan of this backend uses (<see cref="ReconnectVariant.Auto"/>: the dispatcher; all give the same bits).</summary>
    public ReconnectVariant ReconnectVariant { get; }

    /// <summary>"cuDNN for convolution, pooling (our kernels where it cannot)" or "our kernels only".</summary>
    public static string DescribeCudnn(CudnnScope scope)
    {
        if (scope == CudnnScope.None) return "our kernels only";
        var families = new List<string>();
        if (scope.HasFlag(CudnnScope.Convolution)) families.Add("convolution");
        if (scope.HasFlag(CudnnScope.Pooling)) families.Add("pooling");
        if (scope.HasFlag(CudnnScope.BatchNorm)) families.Add("batch-norm");
        return $"cuDNN for {string.Join(", ", families)} (our kernels where it cannot)";
    }

    /// <summary>The device the backend runs on (its default stream carries every op).</summary>
    public Device Device => _device;

    public GemmMath GemmMath => _gemm.Math;

    /// <summary>How batch-norm statistics and bias gradients are reduced per channel (v2 chunked by default).</summary>
    public ChannelReduction ChannelReduction => _channelReduction;

    /// <summary>
    /// Upper bound on one convolution group's column matrix, in floats (default 16 Mi = 64 MiB).
    /// Group sizes follow from it and the geometry only; tests lower it to exercise several groups.
    /// </summary>
    internal long ColumnBudget { get; set; } = 16L << 20;

    private DeviceStream Stream => _device.Stream;

    /// <summary>
    /// Every op starts here: the backend is alive, its context current on this thread, and batched
    /// Adam updates recorded before this op are launched first (stream order = call order).
    /// </summary>
    private void Begin()
    {
        BeginWithoutFlush();
        FlushUpdates();
    }

    private void BeginWithoutFlush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.MakeCurrent();
    }

    internal bool IsDisposed => _disposed;

    /// <summary>
    /// Called by what owns device memory (a tensor, a data set, a reconnection plan) before it
    /// frees it: false when the backend is gone (its device released all memory; nothing is left
    /// to free), else true once the memory may go (a batched update may still have referred to it).
    /// </summary>
    internal bool BeforeFree()
    {
        if (_disposed) return false;
        _device.MakeCurrent();
        FlushUpdates();
        // A graph captured before may use this memory, and the next allocation may get its address:
        // captures made before are stale from here on.
        _bufferGeneration++;
        return true;
    }

    private DeviceTensor<T> Own<T>(Tensor<T> tensor, string name) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is DeviceTensor<T> device && ReferenceEquals(device.Backend, this)) return device;
        throw new ArgumentException($"{name} {tensor} belongs to backend '{tensor.Backend.Name}', not to this {Name} backend", name);
    }

    private ulong Pointer<T>(Tensor<T> tensor, string name, long expectedLength) where T : unmanaged
    {
        var device = Own(tensor, name);
        BackendGuard.Length(tensor, expectedLength, name);
        return device.Pointer;
    }

    private ulong PointerAtLeast<T>(Tensor<T> tensor, string name, long minimumLength) where T : unmanaged
    {
        var device = Own(tensor, name);
        BackendGuard.AtLeast(tensor, minimumLength, name);
        return device.Pointer;
    }

    /// <summary>Blocks for a grid-stride kernel over <paramref name="n"/> elements.</summary>
    private static uint Grid(long n) => (uint)Math.Clamp((n + BlockSize - 1) / BlockSize, 1, MaxGrid);

    // ---- memory -----------------------------------------------------------------------------

    public Tensor<T> Allocate<T>(Shape shape) where T : unmanaged
    {
        Begin();
        // Pad to whole 32-bit words so one memset zeroes the tensor (byte masks).
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        long bytes = ((long)shape.Length * size + 3) / 4 * 4;
        DeviceBuffer<T> buffer = AllocateBuffer<T>((bytes + size - 1) / size);
        _device.Runtime.Memset32(buffer.Pointer, 0, buffer.ByteLength / 4, Stream.Handle);
        return new DeviceTensor<T>(this, shape, buffer);
    }

    public Tensor<T> Reshape<T>(Tensor<T> source, Shape shape) where T : unmanaged
    {
        var src = Own(source, nameof(source));
        BackendGuard.Length(source, shape.Length, nameof(source));
        return new DeviceTensor<T>(this, shape, src.Buffer, ownsBuffer: false);
    }

    /// <summary>A device allocation (out of memory: a <see cref="DeviceMemoryException"/> with the sizes, from <see cref="Device.Allocate{T}"/>).</summary>
    private DeviceBuffer<T> AllocateBuffer<T>(long length) where T : unmanaged
    {
        // cuMemAlloc is not allowed on a thread that is capturing a stream.
        if (_capturing)
            throw new InvalidOperationException($"{length:N0} elements of device memory requested while capturing; run the same step once before capturing it");
        return _device.Allocate<T>(length);
    }

    /// <summary>A scratch buffer of at least <paramref name="length"/> elements, grown (never shrunk) on demand.</summary>
    private DeviceBuffer<T> Scratch<T>(ref DeviceBuffer<T>? buffer, long length) where T : unmanaged
    {
        if (buffer is not null && buffer.Length >= length) return buffer;
        // Growing syncs, frees and allocates, none of which a stream capture allows.
        if (_capturing)
            throw new InvalidOperationException($"a scratch buffer must grow to {length:N0} elements while capturing; run the same step once before capturing it");
        if (buffer is not null)
        {
            // Work already enqueued may still read the old buffer.
            _device.Synchronize();
            buffer.Dispose();
            buffer = null;
            _bufferGeneration++;   // captured ops that refer to the old buffer are stale
        }
        buffer = AllocateBuffer<T>(Math.Max(length, 1));
        return buffer;
    }

    public void Upload<T>(ReadOnlySpan<T> source, Tensor<T> destination) where T : unmanaged
    {
        Begin();
        var dst = Own(destination, nameof(destination));
        if (source.Length != destination.Length)
            throw new ArgumentException($"source has {source.Length} elements, destination {destination} has {destination.Length}", nameof(source));
        dst.Buffer.CopyFrom(source, Stream);
    }

    public void Download<T>(Tensor<T> source, Span<T> destination) where T : unmanaged
    {
        Begin();
        var src = Own(source, nameof(source));
        if (destination.Length != source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, source {source} has {source.Length}", nameof(destination));
        src.Buffer.CopyTo(destination, Stream);
    }

    public IAsyncReadback<T> CreateReadback<T>(int length) where T : unmanaged
    {
        Begin();
        return new Readback<T>(this, length);
    }

    // A ring of slots, each a page-locked host buffer, an event and the caller's tag. Start enqueues
    // the copy into a free slot and records its event; TryGet asks the events (cuEventQuery, never
    // waiting) and hands over the newest completed slot, which frees every slot started before it
    // (one stream: their copies are complete too). With graphs the host queues steps far ahead of
    // the device, so the newest copy is rarely done when asked; the older ones in the ring are.
    private sealed class Readback<T> : IAsyncReadback<T> where T : unmanaged
    {
        private const int Slots = 4;
        private readonly CudaBackend _backend;
        private readonly HostBuffer<T>[] _host = new HostBuffer<T>[Slots];
        private readonly DeviceEvent[] _done = new DeviceEvent[Slots];
        private readonly long[] _tags = new long[Slots];
        private readonly long[] _started = new long[Slots];   // start number of a slot in flight, 0 when free
        private long _starts;

        public Readback(CudaBackend backend, int length)
        {
            _backend = backend;
            for (int i = 0; i < Slots; i++)
            {
                _host[i] = backend._device.AllocateHost<T>(length);
                _done[i] = backend._device.CreateEvent();
            }
        }

        public int Length => _host[0].Length;

        public bool Start(Tensor<T> source, long tag)
        {
            _backend.Begin();
            if (_backend._capturing) throw new InvalidOperationException("a readback cannot be captured into a graph");
            var src = _backend.Own(source, nameof(source));
            if (source.Length != Length)
                throw new ArgumentException($"the readback holds {Length} elements, source {source} has {source.Length}", nameof(source));
            int slot = Array.IndexOf(_started, 0L);
            if (slot < 0)
            {
                // All in flight: the completed ones but the newest are superseded already.
                int newest = NewestComplete();
                if (newest >= 0) FreeStartedBefore(_started[newest]);
                slot = Array.IndexOf(_started, 0L);
                if (slot < 0) return false;   // the device is Slots copies behind: skip this one
            }
            _host[slot].CopyFromDeviceAsync(src.Pointer, _backend.Stream);
            _done[slot].Record(_backend.Stream);
            _tags[slot] = tag;
            _started[slot] = ++_starts;
            return true;
        }

        public bool TryGet(Span<T> destination, out long tag)
        {
            // Queries events: the context must be current, as for every entry point (without
            // flushing the batched updates: asking must not launch work).
            _backend.BeginWithoutFlush();
            int newest = NewestComplete();
            if (newest < 0)
            {
                tag = 0;
                return false;
            }
            _host[newest].Span.CopyTo(destination);
            tag = _tags[newest];
            FreeStartedBefore(_started[newest] + 1);
            return true;
        }

        private int NewestComplete()
        {
            int newest = -1;
            for (int i = 0; i < Slots; i++)
                if (_started[i] != 0 && (newest < 0 || _started[i] > _started[newest]) && _done[i].IsComplete) newest = i;
            return newest;
        }

        private void FreeStartedBefore(long start)
        {
            for (int i = 0; i < Slots; i++)
                if (_started[i] != 0 && _started[i] < start) _started[i] = 0;
        }

        public void Dispose()
        {
            for (int i = 0; i < Slots; i++)
            {
                _done[i].Dispose();
                _host[i].Dispose();
            }
        }
    }

    public void Copy<T>(Tensor<T> source, Tensor<T> destination) where T : unmanaged
    {
        Begin();
        var src = Own(source, nameof(source));
        var dst = Own(destination, nameof(destination));
        BackendGuard.Length(destination, source.Length, nameof(destination));
        src.Buffer.CopyTo(dst.Buffer, source.Length, stream: Stream);
    }

    public void Fill(Tensor<float> destination, float value)
    {
        Begin();
        Own(destination, nameof(destination)).Buffer.Fill(value, Stream);
    }

    public void Synchronize()
    {
        Begin();
        _device.Synchronize();
    }

    // ---- linear algebra ----------------------------------------------------------------------

    public void Gemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        Tensor<float> a, Tensor<float> b, float beta, Tensor<float> c)
    {
        Begin();
        if (m <= 0 || n <= 0 || k < 0) throw new ArgumentException($"gemm sizes must be positive, got m={m}, n={n}, k={k}");
        ulong pa = PointerAtLeast(a, nameof(a), (long)m * k);
        ulong pb = PointerAtLeast(b, nameof(b), (long)k * n);
        ulong pc = PointerAtLeast(c, nameof(c), (long)m * n);
        _gemm.Run(Stream, transposeA, transposeB, m, n, k, alpha, pa, pb, beta, pc);
    }

    public void AddBias(Tensor<float> y, Tensor<float> bias, int channels)
    {
        Begin();
        ulong pBias = Pointer(bias, nameof(bias), channels);
        ulong pY = Own(y, nameof(y)).Pointer;
        int spatial = SpatialOf(y, channels, nameof(y));
        _kernels.BiasAdd.Launch(Grid(y.Length), BlockSize, 0, Stream, (long)y.Length, FastDivisor.Of(channels), FastDivisor.Of(spatial), pY, pBias);
    }

    public void BiasGradient(Tensor<float> dy, Tensor<float> dBias, int channels)
    {
        Begin();
        ulong pDy = Own(dy, nameof(dy)).Pointer;
        ulong pBias = Pointer(dBias, nameof(dBias), channels);
        int spatial = SpatialOf(dy, channels, nameof(dy));
        int batch = dy.Length / (spatial * channels);
        if (_channelReduction == ChannelReduction.PerChannel)
        {
            _kernels.BiasGradient.Launch(channels, BlockSize, 0, Stream, batch, channels, FastDivisor.Of(spatial), pDy, pBias);
            return;
        }
        var (chunks, chunkLength) = ChannelChunks(channels, batch * spatial);
        ulong partials = Scratch(ref _channelPartials, (long)channels * chunks).Pointer;
        _kernels.BiasGradientSums.Launch(new Dim3((uint)channels, (uint)chunks), BlockSize, 0, Stream,
            batch, channels, FastDivisor.Of(spatial), chunkLength, pDy, partials);
        _kernels.BiasGradientTotal.Launch(channels, BlockSize, 0, Stream, chunks, partials, pBias);
    }

    /// <summary>Blocks that fill an H100/H200 (132 SMs) about four times over: the aim of a chunked per-channel reduction.</summary>
    private const int ChannelReductionBlocks = 4 * 132;

    /// <summary>A chunk is at least this many elements (four per thread), so small channels stay one block.</summary>
    private const int MinimumChunk = 4 * BlockSize;

    /// <summary>
    /// How the chunked reductions split each channel's <paramref name="count"/> elements: enough
    /// (channel, chunk) blocks to reach <see cref="ChannelReductionBlocks"/> where the channel is
    /// big enough, no chunk empty. A function of the shape alone, so the order of the double
    /// additions, hence the result, is the same on every run and every GPU.
    /// </summary>
    internal static (int Chunks, int ChunkLength) ChannelChunks(int channels, int count)
    {
        int wanted = Math.Max(1, Math.Min((ChannelReductionBlocks + channels - 1) / channels, (count + MinimumChunk - 1) / MinimumChunk));
        int chunkLength = (count + wanted - 1) / wanted;
        return ((count + chunkLength - 1) / chunkLength, chunkLength);
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
        Begin();
        _kernels.Scale.Launch(Grid(y.Length), BlockSize, 0, Stream, (long)y.Length, alpha, Own(y, nameof(y)).Pointer);
    }

    public void ScaleAdd(float alpha, Tensor<float> x, Tensor<float> y)
    {
        Begin();
        ulong pY = Own(y, nameof(y)).Pointer;
        ulong pX = Pointer(x, nameof(x), y.Length);
        _kernels.ScaleAdd.Launch(Grid(y.Length), BlockSize, 0, Stream, (long)y.Length, alpha, pX, pY);
    }

    // ---- LaPerm ------------------------------------------------------------------------------

    public IReconnectPlan PrepareReconnect(IReadOnlyList<ReconnectTarget> targets)
    {
        Begin();
        ArgumentNullException.ThrowIfNull(targets);
        var deviceTargets = new DeviceReconnectTarget[targets.Count];
        for (int t = 0; t < targets.Count; t++)
        {
            targets[t].Validate();
            var weights = Own(targets[t].Weights, $"reconnect target '{targets[t].Name}'");
            deviceTargets[t] = new DeviceReconnectTarget(targets[t].Name, weights.Buffer, 0, targets[t].Rows, targets[t].RowLength);
        }
        _reconnectKernels ??= new ReconnectKernels(_device, ReconnectLimits.For(_device));
        var reconnector = DeviceReconnector.FromInitialWeights(_reconnectKernels, deviceTargets, ReconnectVariant);
        ReconnectPaths = reconnector.Plan.DescribePaths();
        return new DeviceReconnectPlan(this, [.. targets], reconnector);
    }

    public void Reconnect(IReconnectPlan plan)
    {
        Begin();
        if (plan is not DeviceReconnectPlan devicePlan || !ReferenceEquals(devicePlan.Backend, this))
            throw new ArgumentException($"the reconnect plan was not prepared by this {Name} backend", nameof(plan));
        devicePlan.Reconnector.Enqueue(Stream);
    }

    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            _device.MakeCurrent();
            FlushUpdates();
            _device.Synchronize();
        }
        catch (CudaException)
        {
            // A sticky fault (an illegal address, say) leaves the context unusable and every later
            // call fails the same way. The fault was reported where it happened (that exception is
            // unwinding through this Dispose now): releasing more would only replace it.
            _disposed = true;
            if (_ownsDevice)
            {
                try { _device.Dispose(); }
                catch (CudaException) { }
            }
            return;
        }
        _disposed = true;
        _adam.Table?.Dispose();
        _sgd.Table?.Dispose();
        _stepBlock?.Dispose();
        _guard?.Dispose();
        foreach (var start in _stepStarts ?? []) start.Dispose();
        _perExample?.Dispose();
        _channelPartials?.Dispose();
        _product?.Dispose();
        _columns?.Dispose();
        _paddedImages?.Dispose();
        _reconnectKernels?.Dispose();
        _dataKernels?.Dispose();
        _gemm.Dispose();
        _kernels.Dispose();
        if (_ownsDevice) _device.Dispose();
    }

    public override string ToString() => $"{Name}: {Description}";
}
