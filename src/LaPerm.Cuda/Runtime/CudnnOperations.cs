using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// cuDNN for <see cref="CudaRuntime"/>, on one handle. Convolutions: one plan (descriptors,
/// algorithms measured by cuDNN's Find, workspace sizes) per geometry, made on first use, and one
/// shared workspace that grows to the largest need; FMA math only (no TF32), so results are FP32
/// like the CPU's, and deterministic algorithms only, so the same plans repeat bit for bit. Find
/// times the candidates, so another process (or another device object) may choose another
/// algorithm, with other rounding. Pooling and batch-norm: descriptors per shape, made on first use, no workspace.
/// Plans and the workspace are made outside the hot path: run one warm-up step before
/// capturing a graph.
/// </summary>
internal sealed class CudnnOperations : IDisposable
{
    private readonly CudaDriver _driver;
    private readonly Cudnn _cudnn;
    private readonly nint _handle;
    private readonly Dictionary<ConvGeometry, Plan> _plans = [];
    private readonly Dictionary<PoolingWindow, PoolingPlan> _poolings = [];
    private readonly Dictionary<BatchNormShape, BatchNormPlan> _batchNorms = [];
    private ulong _workspace;
    private long _workspaceBytes;

    private sealed record Plan(nint X, nint W, nint Y, nint Convolution, int[] Algorithms, long[] WorkspaceBytes);
    private sealed record PoolingPlan(nint X, nint Y, nint Pooling);
    private sealed record BatchNormPlan(nint X, nint Channels);

    private readonly string _deviceName;

    public CudnnOperations(CudaDriver driver, Cudnn cudnn, string deviceName)
    {
        _driver = driver;
        _deviceName = deviceName;
        _cudnn = cudnn;
        _handle = cudnn.Create();
    }

    public void PoolingForward(nint stream, PoolingWindow window, ulong x, ulong y)
    {
        PoolingPlan plan = PoolingPlanFor(window);
        _cudnn.SetStream(_handle, stream);
        _cudnn.PoolingForward(_handle, plan.Pooling, plan.X, x, plan.Y, y);
    }

    public void PoolingBackward(nint stream, PoolingWindow window, ulong x, ulong y, ulong dy, ulong dx)
    {
        PoolingPlan plan = PoolingPlanFor(window);
        _cudnn.SetStream(_handle, stream);
        _cudnn.PoolingBackward(_handle, plan.Pooling, plan.Y, y, dy, plan.X, x, dx);
    }

    private PoolingPlan PoolingPlanFor(PoolingWindow w)
    {
        if (_poolings.TryGetValue(w, out PoolingPlan? plan)) return plan;
        nint x = _cudnn.CreateTensor4d(w.Batch, w.Channels, w.InHeight, w.InWidth);
        nint y = _cudnn.CreateTensor4d(w.Batch, w.Channels, w.OutHeight, w.OutWidth);
        nint pooling = _cudnn.CreatePooling2d(w.Mode, w.WindowHeight, w.WindowWidth, w.StrideHeight, w.StrideWidth);
        plan = new PoolingPlan(x, y, pooling);
        _poolings[w] = plan;
        return plan;
    }

    /// <summary>Keras' momentum m becomes cuDNN's exponential average factor 1 - m.</summary>
    public void BatchNormForwardTraining(nint stream, BatchNormShape shape, float epsilon, float momentum, ulong x, ulong gamma, ulong beta,
        ulong runningMean, ulong runningVariance, ulong savedMean, ulong savedInvStd, ulong y)
    {
        RequireDefinedRunningVariance(shape);
        BatchNormPlan plan = BatchNormPlanFor(shape, epsilon);
        _cudnn.SetStream(_handle, stream);
        _cudnn.BatchNormForwardTraining(_handle, plan.X, x, y, plan.Channels, gamma, beta, 1.0 - momentum,
            runningMean, runningVariance, epsilon, savedMean, savedInvStd);
    }

    public void BatchNormForwardInference(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong gamma, ulong beta,
        ulong mean, ulong variance, ulong y)
    {
        BatchNormPlan plan = BatchNormPlanFor(shape, epsilon);
        _cudnn.SetStream(_handle, stream);
        _cudnn.BatchNormForwardInference(_handle, plan.X, x, y, plan.Channels, gamma, beta, mean, variance, epsilon);
    }

    /// <summary>cuDNN reads the saved statistics; its documentation asks for the forward's epsilon all the same.</summary>
    public void BatchNormBackward(nint stream, BatchNormShape shape, float epsilon, ulong x, ulong dy, ulong gamma, ulong savedMean, ulong savedInvStd,
        ulong dx, ulong dGamma, ulong dBeta)
    {
        BatchNormPlan plan = BatchNormPlanFor(shape, epsilon);
        _cudnn.SetStream(_handle, stream);
        _cudnn.BatchNormBackward(_handle, plan.X, x, dy, dx, plan.Channels, gamma, dGamma, dBeta, epsilon, savedMean, savedInvStd);
    }

    /// <summary>cuDNN refuses an epsilon below CUDNN_BN_MIN_EPSILON (its emulated stand-in too).</summary>
    internal static void RequireCudnnEpsilon(double epsilon)
    {
        if (epsilon < Cudnn.BatchNormMinEpsilon)
            throw new NotSupportedException($"cuDNN batch-norm needs epsilon >= {Cudnn.BatchNormMinEpsilon}, got {epsilon}");
    }

    /// <summary>
    /// cuDNN's running variance is Bessel-corrected, the batch variance times M / (M - 1) for the
    /// M = batch x spatial values of a channel: with M = 1 (a dense batch-norm's last batch of one)
    /// that is 0 / 0, where the CPU and our kernels take the biased 0. Refused (its emulated
    /// stand-in too), so our kernels run that shape and every backend agrees.
    /// </summary>
    internal static void RequireDefinedRunningVariance(BatchNormShape shape)
    {
        if ((long)shape.Batch * shape.Spatial < 2)
            throw new NotSupportedException(
                $"cuDNN's running variance divides by batch x spatial - 1, undefined for {shape.Batch} x {shape.Spatial} value per channel");
    }

    private BatchNormPlan BatchNormPlanFor(BatchNormShape shape, double epsilon)
    {
        RequireCudnnEpsilon(epsilon);
        if (_batchNorms.TryGetValue(shape, out BatchNormPlan? plan)) return plan;
        // [N, C, S] as NCHW with H = S, W = 1; gamma, beta and the statistics are 1 x C x 1 x 1.
        plan = new BatchNormPlan(_cudnn.CreateTensor4d(shape.Batch, shape.Channels, shape.Spatial, 1), _cudnn.CreateTensor4d(1, shape.Channels, 1, 1));
        _batchNorms[shape] = plan;
        return plan;
    }

    public void Convolution(nint stream, ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output)
    {
        // The stream first: planning runs cuDNN's algorithm search, which should time on this stream.
        _cudnn.SetStream(_handle, stream);
        Plan plan = PlanFor(g);
        int d = (int)direction;
        EnsureWorkspace(plan.WorkspaceBytes[d]);
        switch (direction)
        {
            case ConvolutionDirection.Forward:
                _cudnn.ConvolutionForward(_handle, 1f, plan.X, first, plan.W, second, plan.Convolution, plan.Algorithms[d],
                    _workspace, plan.WorkspaceBytes[d], 0f, plan.Y, output);
                break;
            case ConvolutionDirection.BackwardData:
                _cudnn.ConvolutionBackwardData(_handle, 1f, plan.W, second, plan.Y, first, plan.Convolution, plan.Algorithms[d],
                    _workspace, plan.WorkspaceBytes[d], 0f, plan.X, output);
                break;
            case ConvolutionDirection.BackwardFilter:
                _cudnn.ConvolutionBackwardFilter(_handle, 1f, plan.X, first, plan.Y, second, plan.Convolution, plan.Algorithms[d],
                    _workspace, plan.WorkspaceBytes[d], 0f, plan.W, output);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(direction), direction, "unknown convolution direction");
        }
    }

    private Plan PlanFor(ConvGeometry g)
    {
        if (_plans.TryGetValue(g, out Plan? plan)) return plan;
        nint x = 0, w = 0, convolution = 0, y = 0;
        try
        {
            x = _cudnn.CreateTensor4d(g.Batch, g.InChannels, g.InHeight, g.InWidth);
            w = _cudnn.CreateFilter4d(g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth);
            convolution = _cudnn.CreateConvolution2d(g.PadTop, g.PadLeft, g.Stride, g.Stride, Cudnn.FmaMath);
            // cuDNN pads symmetrically. Its output size equals the geometry's exactly when the
            // extra bottom/right padding of TF "same" is not needed; then the results are the same.
            var (n, c, h, wOut) = _cudnn.ForwardOutputDim(convolution, x, w);
            if ((n, c, h, wOut) != (g.Batch, g.OutChannels, g.OutHeight, g.OutWidth))
                throw new NotSupportedException(
                    $"cuDNN pads symmetrically, so it cannot run a {g.KernelHeight}x{g.KernelWidth}/{g.Stride} convolution of {g.InHeight}x{g.InWidth} with this padding: it would produce {h}x{wOut} outputs instead of {g.OutHeight}x{g.OutWidth}");
            y = _cudnn.CreateTensor4d(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth);
            var algorithms = new int[3];
            var workspace = new long[3];
            Span<CudnnAlgorithmPerformance> results = stackalloc CudnnAlgorithmPerformance[16];
            foreach (ConvolutionDirection direction in Enum.GetValues<ConvolutionDirection>())
            {
                var (first, second, result) = direction switch
                {
                    ConvolutionDirection.Forward => (x, w, y),
                    ConvolutionDirection.BackwardData => (w, y, x),
                    _ => (x, y, w),
                };
                // Measured on the device (cuDNN's Find, as PyTorch's cudnn.benchmark), fastest first;
                // the heuristics' order when nothing measured qualifies.
                int count = _cudnn.FindAlgorithms(direction, _handle, first, second, convolution, result, results);
                int chosen = ChooseAlgorithm(results[..count], MaxWorkspaceBytes);
                if (chosen < 0)
                {
                    count = _cudnn.GetAlgorithms(direction, _handle, first, second, convolution, result, results);
                    chosen = ChooseAlgorithm(results[..count], MaxWorkspaceBytes);
                }
                if (chosen < 0)
                    throw new NotSupportedException($"cuDNN offers no deterministic FMA {direction} algorithm for {g} within {MaxWorkspaceBytes >> 20} MiB of workspace");
                algorithms[(int)direction] = results[chosen].Algorithm;
                workspace[(int)direction] = _cudnn.WorkspaceSize(direction, _handle, first, second, convolution, result, results[chosen].Algorithm);
            }
            plan = new Plan(x, w, y, convolution, algorithms, workspace);
        }
        catch
        {
            // A shape cuDNN refuses is run by our kernels from then on: its descriptors are not kept.
            if (y != 0) _cudnn.DestroyTensor(y);
            if (convolution != 0) _cudnn.DestroyConvolution(convolution);
            if (w != 0) _cudnn.DestroyFilter(w);
            if (x != 0) _cudnn.DestroyTensor(x);
            throw;
        }
        _plans[g] = plan;
        return plan;
    }

    /// <summary>The most workspace one convolution algorithm may take.</summary>
    internal const long MaxWorkspaceBytes = 512L << 20;

    // cudnnDeterminism_t / cudnnMathType_t values the choice looks at.
    private const int Deterministic = 1, TensorOpMath = 1, TensorOpMathAllowConversion = 2;

    /// <summary>
    /// The first of <paramref name="candidates"/> (cuDNN's order: fastest measured, or the
    /// heuristics' preference) that ran, is deterministic (same seed, same bits from run to run),
    /// uses no tensor-core math (FP32 like the CPU, no TF32) and fits the workspace cap; -1 if none.
    /// </summary>
    internal static int ChooseAlgorithm(ReadOnlySpan<CudnnAlgorithmPerformance> candidates, long maxWorkspaceBytes)
    {
        for (int i = 0; i < candidates.Length; i++)
        {
            var c = candidates[i];
            if (c.Status == 0 && c.Determinism == Deterministic && c.MathType != TensorOpMath && c.MathType != TensorOpMathAllowConversion
                && (long)c.MemoryBytes <= maxWorkspaceBytes)
                return i;
        }
        return -1;
    }

    /// <summary>Counts frees of a workspace (see <see cref="IDeviceRuntime.WorkspaceGeneration"/>).</summary>
    public long WorkspaceGeneration { get; private set; }

    private void EnsureWorkspace(long bytes)
    {
        if (bytes <= _workspaceBytes) return;
        if (_workspace != 0)
        {
            _driver.ContextSynchronize();   // the old workspace may still be in use by queued work
            _driver.MemFree(_workspace);
            WorkspaceGeneration++;          // graphs captured before refer to it
        }
        try
        {
            _workspace = _driver.MemAlloc(bytes);
        }
        catch (CudaException e) when (DeviceMemoryException.IsOutOfMemory(e))
        {
            _workspace = 0;
            _workspaceBytes = 0;
            var (free, total) = _driver.MemGetInfo();
            throw new DeviceMemoryException(_deviceName, bytes, free, total, e, "cuDNN's workspace");
        }
        _workspaceBytes = bytes;
    }

    public void Dispose()
    {
        foreach (Plan plan in _plans.Values)
        {
            _cudnn.DestroyTensor(plan.X);
            _cudnn.DestroyTensor(plan.Y);
            _cudnn.DestroyFilter(plan.W);
            _cudnn.DestroyConvolution(plan.Convolution);
        }
        _plans.Clear();
        foreach (PoolingPlan plan in _poolings.Values)
        {
            _cudnn.DestroyTensor(plan.X);
            _cudnn.DestroyTensor(plan.Y);
            _cudnn.DestroyPooling(plan.Pooling);
        }
        _poolings.Clear();
        foreach (BatchNormPlan plan in _batchNorms.Values)
        {
            _cudnn.DestroyTensor(plan.X);
            _cudnn.DestroyTensor(plan.Channels);
        }
        _batchNorms.Clear();
        if (_workspace != 0) _driver.MemFree(_workspace);
        // The handle's stream may already be destroyed (the device's stream goes first): unbind it.
        _cudnn.SetStream(_handle, 0);
        _cudnn.Destroy(_handle);
    }
}
