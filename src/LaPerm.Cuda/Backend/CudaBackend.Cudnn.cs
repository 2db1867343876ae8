using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The ops that cuDNN may run instead of our kernels (CudnnScope): convolution, pooling and
// batch-norm. Each TryCudnn* returns false to send the caller to our kernels: when its family is
// not in the scope, when cuDNN cannot express the case (remembered per shape), or when the library
// cannot be loaded (then cuDNN stays off for the backend's lifetime). On emu the same calls run
// through the emulator's stand-in for cuDNN (the CPU backend), which refuses what cuDNN refuses.
public sealed partial class CudaBackend
{
    private CudnnScope _cudnnScope;

    /// <summary>Why cuDNN could not be loaded when it was asked for (then the scope is None).</summary>
    private string? _cudnnUnavailable;

    /// <summary>Shapes cuDNN refused (asymmetric padding, epsilon below its minimum): our kernels run them.</summary>
    private readonly HashSet<object> _cudnnRejected = [];

    /// <summary>Shapes cuDNN has met (planning may allocate and is not capture-safe).</summary>
    private readonly HashSet<object> _cudnnPlanned = [];

    private readonly List<string> _cudnnRefusals = [];

    /// <summary>The op families cuDNN runs on this backend (None once the library failed to load).</summary>
    public CudnnScope CudnnScope => _cudnnScope;

    /// <summary>Why cuDNN refused each shape it met (that shape then runs on our kernels), in the order met.</summary>
    public IReadOnlyList<string> CudnnRefusals => _cudnnRefusals;

    private bool TryCudnnConvolution(ConvolutionDirection direction, ConvGeometry g, Tensor<float> first, Tensor<float> second, Tensor<float> output)
    {
        if (!UsesCudnn(CudnnScope.Convolution, g)) return false;
        var a = Own(first, nameof(first)).Buffer;
        var b = Own(second, nameof(second)).Buffer;
        var c = Own(output, nameof(output)).Buffer;
        return TryCudnn((direction, g), g, () =>
        {
            switch (direction)
            {
                case ConvolutionDirection.Forward: _device.ConvForward(Stream, g, a, b, c); break;
                case ConvolutionDirection.BackwardData: _device.ConvBackwardData(Stream, g, a, b, c); break;
                default: _device.ConvBackwardFilter(Stream, g, a, b, c); break;
            }
        });
    }

    private bool TryCudnnPoolingForward(PoolingWindow window, Tensor<float> x, Tensor<float> y)
    {
        if (!UsesCudnn(CudnnScope.Pooling, window)) return false;
        var bx = Own(x, nameof(x)).Buffer;
        var by = Own(y, nameof(y)).Buffer;
        return TryCudnn((window, "forward"), window, () => _device.PoolingForward(Stream, window, bx, by));
    }

    private bool TryCudnnPoolingBackward(PoolingWindow window, Tensor<float> x, Tensor<float> y, Tensor<float> dy, Tensor<float> dx)
    {
        if (!UsesCudnn(CudnnScope.Pooling, window)) return false;
        var bx = Own(x, nameof(x)).Buffer;
        var by = Own(y, nameof(y)).Buffer;
        var bdy = Own(dy, nameof(dy)).Buffer;
        var bdx = Own(dx, nameof(dx)).Buffer;
        return TryCudnn((window, "backward"), window, () => _device.PoolingBackward(Stream, window, bx, by, bdy, bdx));
    }

    /// <summary>The forward passes are refused per (shape, epsilon), since cuDNN needs epsilon >= 1e-5; the backward per shape.</summary>
    private bool TryCudnnBatchNorm(object key, string pass, Action<Device> run) =>
        UsesCudnn(CudnnScope.BatchNorm, key) && TryCudnn((key, pass), key, () => run(_device));

    private void Refuse(object planKey, object shape, string reason)
    {
        _cudnnRejected.Add(shape);
        _cudnnRefusals.Add($"{Describe(planKey)}: {reason}");
    }

    /// <summary>A plan key in a line: "conv Forward 32->32 5x5/2 on 24x24 (batch 4)", "pooling ...", "batch-norm ...".</summary>
    private static string Describe(object planKey) => planKey switch
    {
        (ConvolutionDirection d, ConvGeometry g) =>
            $"conv {d} {g.InChannels}->{g.OutChannels} {g.KernelHeight}x{g.KernelWidth}/{g.Stride} on {g.InHeight}x{g.InWidth} (batch {g.Batch})",
        (PoolingWindow w, string pass) =>
            $"pooling {pass} {w.Mode} {w.WindowHeight}x{w.WindowWidth}/{w.StrideHeight} on {w.InHeight}x{w.InWidth} (batch {w.Batch}, {w.Channels} channels)",
        ((BatchNormShape s, float epsilon), string pass) => $"batch-norm {pass} {s.Channels} channels x {s.Spatial} (batch {s.Batch}, epsilon {epsilon})",
        (BatchNormShape s, string pass) => $"batch-norm {pass} {s.Channels} channels x {s.Spatial} (batch {s.Batch})",
        _ => planKey.ToString() ?? "",
    };

    private bool UsesCudnn(CudnnScope family, object shape) => (_cudnnScope & family) != 0 && !_cudnnRejected.Contains(shape);

    private bool TryCudnn(object planKey, object shape, Action run)
    {
        bool firstMeeting = !_cudnnPlanned.Contains(planKey);
        if (firstMeeting)
        {
            // Planning may run cuDNN's algorithm search, replace its workspace or load the library:
            // never inside a capture, and graphs captured before may refer to the old workspace.
            if (_capturing) throw new InvalidOperationException($"cuDNN meets {planKey} for the first time while capturing; run the same step once before capturing it");
            _cudnnPlanned.Add(planKey);
            _bufferGeneration++;
        }
        try
        {
            run();
            return true;
        }
        catch (NotSupportedException e)
        {
            Refuse(planKey, shape, e.Message);
            return false;
        }
        catch (CudaException e) when (firstMeeting && e.ApiName.StartsWith("cudnn", StringComparison.Ordinal))
        {
            // cuDNN reports a shape it cannot run as a status (NOT_SUPPORTED, BAD_PARAM) when it
            // first plans or runs it, eagerly (never while capturing): our kernels take the shape.
            Refuse(planKey, shape, e.Message);
            return false;
        }
        catch (InvalidOperationException) when (!_capturing)
        {
            // The library could not be loaded: our kernels from now on.
            _cudnnScope = CudnnScope.None;
            return false;
        }
    }
}
