using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// cuDNN convolutions for <see cref="CudaRuntime"/>: one plan (descriptors, chosen algorithms,
/// workspace sizes) per geometry, made on first use, and one shared workspace that grows to
/// the largest need. FMA math only (no TF32), so results are FP32 like the CPU's.
/// Plans and the workspace are made outside the hot path: run one warm-up step before
/// capturing a graph.
/// </summary>
internal sealed class CudnnConvolutions : IDisposable
{
    private readonly CudaDriver _driver;
    private readonly Cudnn _cudnn;
    private readonly nint _handle;
    private readonly Dictionary<ConvGeometry, Plan> _plans = [];
    private ulong _workspace;
    private long _workspaceBytes;

    private sealed record Plan(nint X, nint W, nint Y, nint Convolution, int[] Algorithms, long[] WorkspaceBytes);

    public CudnnConvolutions(CudaDriver driver, Cudnn cudnn)
    {
        _driver = driver;
        _cudnn = cudnn;
        _handle = cudnn.Create();
    }

    public void Run(nint stream, ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output)
    {
        Plan plan = PlanFor(g);
        int d = (int)direction;
        EnsureWorkspace(plan.WorkspaceBytes[d]);
        _cudnn.SetStream(_handle, stream);
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
        nint x = _cudnn.CreateTensor4d(g.Batch, g.InChannels, g.InHeight, g.InWidth);
        nint w = _cudnn.CreateFilter4d(g.OutChannels, g.InChannels, g.KernelHeight, g.KernelWidth);
        nint convolution = _cudnn.CreateConvolution2d(g.PadTop, g.PadLeft, g.Stride, g.Stride, Cudnn.FmaMath);
        // cuDNN pads symmetrically. Its output size equals the geometry's exactly when the
        // extra bottom/right padding of TF "same" is not needed; then the results are the same.
        var (n, c, h, wOut) = _cudnn.ForwardOutputDim(convolution, x, w);
        if ((n, c, h, wOut) != (g.Batch, g.OutChannels, g.OutHeight, g.OutWidth))
        {
            _cudnn.DestroyConvolution(convolution);
            _cudnn.DestroyFilter(w);
            _cudnn.DestroyTensor(x);
            throw new NotSupportedException(
                $"cuDNN pads symmetrically, so it cannot run {g}: it would produce {h}x{wOut} outputs instead of {g.OutHeight}x{g.OutWidth} (asymmetric 'same' padding needs another path)");
        }
        nint y = _cudnn.CreateTensor4d(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth);
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
            int count = _cudnn.GetAlgorithms(direction, _handle, first, second, convolution, result, results);
            int chosen = -1;
            for (int i = 0; i < count && chosen < 0; i++)
                if (results[i].Status == 0) chosen = i;   // heuristics order: first supported is the pick
            if (chosen < 0)
                throw new NotSupportedException($"cuDNN offers no {direction} algorithm for {g}");
            algorithms[(int)direction] = results[chosen].Algorithm;
            workspace[(int)direction] = _cudnn.WorkspaceSize(direction, _handle, first, second, convolution, result, results[chosen].Algorithm);
        }
        plan = new Plan(x, w, y, convolution, algorithms, workspace);
        _plans[g] = plan;
        return plan;
    }

    private void EnsureWorkspace(long bytes)
    {
        if (bytes <= _workspaceBytes) return;
        if (_workspace != 0)
        {
            _driver.ContextSynchronize();   // the old workspace may still be in use by queued work
            _driver.MemFree(_workspace);
        }
        _workspace = _driver.MemAlloc(bytes);
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
        if (_workspace != 0) _driver.MemFree(_workspace);
        _cudnn.Destroy(_handle);
    }
}
