using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// The ops that cuDNN may run instead of our kernels (CudnnScope): convolution, pooling and
// batch-norm. Each TryCudnn* returns false to send the caller to our kernels: when its family is
// not in the scope, when cuDNN refuses the case (remembered per shape, listed in CudnnRefusals),
// or when the library cannot be loaded (then cuDNN stays off for the backend's lifetime).
// Convolutions with TF's asymmetric "same" padding, which cuDNN cannot express, run on an
// explicitly padded input (ExplicitlyPadded). On emu the same calls run through the emulator's
// stand-in for cuDNN (the CPU backend), which refuses what cuDNN refuses.
public sealed partial class CudaBackend
{
    private CudnnScope _cudnnScope;

    /// <summary>Scratch for a convolution's input padded explicitly for cuDNN (see <see cref="ExplicitlyPadded"/>).</summary>
    private DeviceBuffer<float>? _paddedImages;

    /// <summary>Why cuDNN could not be loaded when it was asked for (then the scope is None).</summary>
    private string? _cudnnUnavailable;

    /// <summary>Why cuDNN is off although it was asked for (not loadable, or failed as a whole at first use); null while it is on.</summary>
    public string? CudnnUnavailableReason => _cudnnUnavailable;

    /// <summary>Shapes cuDNN refused (epsilon below its minimum, a status error when first planned): our kernels run them.</summary>
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
        if (ExplicitlyPadded(g) is { } padded) return TryCudnnPaddedConvolution(direction, g, padded, a, b, c);
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

    /// <summary>
    /// The geometry on an input padded explicitly when cuDNN's symmetric padding cannot express
    /// <paramref name="g"/> (TF "same" at stride 2 pads one more row and column at the bottom and
    /// right): the padded input holds every tap, so the convolution needs no padding at all.
    /// Null when cuDNN can run <paramref name="g"/> as it is.
    /// </summary>
    internal static ConvGeometry? ExplicitlyPadded(ConvGeometry g)
    {
        int symmetricH = (g.InHeight + 2 * g.PadTop - g.KernelHeight) / g.Stride + 1;
        int symmetricW = (g.InWidth + 2 * g.PadLeft - g.KernelWidth) / g.Stride + 1;
        if (symmetricH == g.OutHeight && symmetricW == g.OutWidth) return null;
        return g with
        {
            InHeight = (g.OutHeight - 1) * g.Stride + g.KernelHeight,
            InWidth = (g.OutWidth - 1) * g.Stride + g.KernelWidth,
            PadTop = 0,
            PadLeft = 0,
        };
    }

    /// <summary>
    /// cuDNN on the padded geometry: forward and filter gradient read x copied into a zero-padded
    /// scratch image (conv_pad_images_v1); the data gradient of the padded input is cropped back
    /// to x's window (conv_crop_images_v1; the padding's gradient is dropped). The sums are those
    /// of the unpadded convolution plus exact zero terms.
    /// </summary>
    private bool TryCudnnPaddedConvolution(ConvolutionDirection direction, ConvGeometry g, ConvGeometry padded,
        DeviceBuffer<float> first, DeviceBuffer<float> second, DeviceBuffer<float> output)
    {
        int planes = g.Batch * g.InChannels;
        return TryCudnn((direction, g), g, () =>
        {
            DeviceBuffer<float> image = Scratch(ref _paddedImages, padded.InputLength);
            switch (direction)
            {
                case ConvolutionDirection.Forward:
                    PadImages(g, padded, first, image, planes);
                    _device.ConvForward(Stream, padded, image, second, output);
                    break;
                case ConvolutionDirection.BackwardData:
                    _device.ConvBackwardData(Stream, padded, first, second, image);
                    _kernels.ConvCropImages.Launch(Grid(g.InputLength), BlockSize, 0, Stream, planes, FastDivisor.Of(g.InHeight), FastDivisor.Of(g.InWidth),
                        padded.InHeight, padded.InWidth, g.PadTop, g.PadLeft, image.Pointer, output.Pointer);
                    break;
                default:
                    PadImages(g, padded, first, image, planes);
                    _device.ConvBackwardFilter(Stream, padded, image, second, output);
                    break;
            }
        });
    }

    private void PadImages(ConvGeometry g, ConvGeometry padded, DeviceBuffer<float> x, DeviceBuffer<float> image, int planes) =>
        _kernels.ConvPadImages.Launch(Grid(padded.InputLength), BlockSize, 0, Stream, planes, g.InHeight, g.InWidth,
            FastDivisor.Of(padded.InHeight), FastDivisor.Of(padded.InWidth), g.PadTop, g.PadLeft, x.Pointer, image.Pointer);

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

    /// <summary>Every pass is refused per (shape, epsilon), since cuDNN needs epsilon >= CUDNN_BN_MIN_EPSILON.</summary>
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
        _ => planKey.ToString() ?? "",
    };

    private bool UsesCudnn(CudnnScope family, object shape) => (_cudnnScope & family) != 0 && !_cudnnRejected.Contains(shape);

    private bool TryCudnn(object planKey, object shape, Action run)
    {
        bool firstMeeting = !_cudnnPlanned.Contains(planKey);
        if (firstMeeting)
        {
            // Planning runs cuDNN's algorithm search and may replace its workspace: never inside a
            // capture. A replaced workspace makes earlier captures stale through the device's
            // WorkspaceGeneration (only then: a new shape whose workspace fits keeps them).
            if (_capturing) throw new InvalidOperationException($"cuDNN meets {planKey} for the first time while capturing; run the same step once before capturing it");
        }
        try
        {
            run();
            // Planned once it ran: a first meeting that failed is met again (and planned again) outside any capture.
            _cudnnPlanned.Add(planKey);
            return true;
        }
        catch (NotSupportedException e)
        {
            Refuse(planKey, shape, e.Message);
            return false;
        }
        catch (CudaException e) when (firstMeeting && e.ApiName.StartsWith("cudnn", StringComparison.Ordinal) && Cudnn.Classify(e.ErrorCode) == CudnnFailure.RefusesTheCase)
        {
            // cuDNN reports a shape it cannot run as a status (NOT_SUPPORTED, BAD_PARAM) when it
            // first plans or runs it, eagerly (never while capturing): our kernels take the shape.
            // Its other failures (an allocation, a kernel fault surfacing in Find, a mistake in our
            // call) are errors, not refusals.
            Refuse(planKey, shape, e.Message);
            return false;
        }
        catch (CudaException e) when (firstMeeting && e.ApiName.StartsWith("cudnn", StringComparison.Ordinal) && Cudnn.Classify(e.ErrorCode) == CudnnFailure.Unusable)
        {
            // A sub-library, the driver or the GPU that this cuDNN cannot work with: as a library that cannot be loaded.
            return CudnnOff(e.Message);
        }
        catch (InvalidOperationException e) when (!_capturing)
        {
            // The library could not be loaded.
            return CudnnOff(e.Message);
        }
    }

    /// <summary>
    /// cuDNN cannot run here: our kernels from now on, and the reason is kept (the run's
    /// description shows it; a silent switch would hide a broken installation).
    /// </summary>
    private bool CudnnOff(string reason)
    {
        _cudnnScope = CudnnScope.None;
        _cudnnUnavailable = reason;
        return false;
    }
}
