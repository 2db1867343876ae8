namespace LaPerm.Core.Backend;

/// <summary>
/// One 2-D convolution, NCHW activations and OIHW kernels ([cout, cin, kh, kw], so each
/// output filter is one contiguous LaPerm row of cin*kh*kw weights).
/// Padding is explicit and may be asymmetric: TensorFlow's "same" with stride 2 pads
/// the extra row/column at the bottom/right, and the published models use it.
/// </summary>
public sealed record ConvGeometry(
    int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int KernelHeight, int KernelWidth,
    int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth)
{
    /// <summary>TensorFlow/Keras semantics for "same" and "valid".</summary>
    public static ConvGeometry Create(int batch, int inC, int inH, int inW, int outC, int kh, int kw, int stride, bool samePadding)
    {
        if (stride <= 0) throw new ArgumentOutOfRangeException(nameof(stride), $"stride must be positive, got {stride}");
        if (kh <= 0 || kw <= 0) throw new ArgumentException($"the kernel must be at least 1x1, got {kh}x{kw}");
        if (!samePadding && (kh > inH || kw > inW))
            throw new ArgumentException($"a {kh}x{kw} kernel does not fit a {inH}x{inW} input with 'valid' padding");
        int outH, outW, padTop, padLeft;
        if (samePadding)
        {
            outH = (inH + stride - 1) / stride;
            outW = (inW + stride - 1) / stride;
            int padH = Math.Max((outH - 1) * stride + kh - inH, 0);
            int padW = Math.Max((outW - 1) * stride + kw - inW, 0);
            padTop = padH / 2;
            padLeft = padW / 2;
        }
        else
        {
            outH = (inH - kh) / stride + 1;
            outW = (inW - kw) / stride + 1;
            padTop = padLeft = 0;
        }
        if (outH <= 0 || outW <= 0)
            throw new ArgumentException($"a {kh}x{kw} kernel does not fit a {inH}x{inW} input with 'valid' padding");
        return new ConvGeometry(batch, inC, inH, inW, outC, kh, kw, stride, padTop, padLeft, outH, outW);
    }

    public ConvGeometry WithBatch(int batch) => this with { Batch = batch };

    /// <summary>
    /// What every backend checks before it convolves: positive sizes, non-negative padding, and
    /// tensors that fit the int lengths below (a wrapped length would pass a backend's tensor-length
    /// checks and send its raw-pointer kernels out of bounds).
    /// </summary>
    public static void Validate(ConvGeometry g)
    {
        ArgumentNullException.ThrowIfNull(g);
        if (g.Batch <= 0 || g.InChannels <= 0 || g.OutChannels <= 0 || g.KernelHeight <= 0 || g.KernelWidth <= 0 ||
            g.Stride <= 0 || g.OutHeight <= 0 || g.OutWidth <= 0 || g.PadTop < 0 || g.PadLeft < 0)
            throw new ArgumentException($"invalid convolution geometry {g}");
        long input = (long)g.Batch * g.InChannels * g.InHeight * g.InWidth, output = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
        long weights = (long)g.OutChannels * g.InChannels * g.KernelHeight * g.KernelWidth;
        if (input > int.MaxValue || output > int.MaxValue || weights > int.MaxValue)
            throw new ArgumentException($"convolution {g} has a tensor of more than {int.MaxValue:N0} elements ({input:N0} in, {output:N0} out, {weights:N0} weights)");
    }

    public int InputLength => Batch * InChannels * InHeight * InWidth;
    public int OutputLength => Batch * OutChannels * OutHeight * OutWidth;
    public int WeightLength => OutChannels * InChannels * KernelHeight * KernelWidth;
}

/// <summary>2-D pooling window over NCHW input; padding is always "valid" (as Keras' default).</summary>
public sealed record PoolGeometry(int Batch, int Channels, int InHeight, int InWidth, int Window, int Stride, int OutHeight, int OutWidth)
{
    public static PoolGeometry Create(int batch, int channels, int inH, int inW, int window, int stride)
    {
        if (window <= 0 || stride <= 0) throw new ArgumentException($"pool size and stride must be positive, got {window} and {stride}");
        // Checked before dividing: (inH - window) / stride rounds a small negative up to 0 (output 1).
        if (window > inH || window > inW) throw new ArgumentException($"a {window}x{window} pool does not fit a {inH}x{inW} input");
        int outH = (inH - window) / stride + 1, outW = (inW - window) / stride + 1;
        return new PoolGeometry(batch, channels, inH, inW, window, stride, outH, outW);
    }
    public PoolGeometry WithBatch(int batch) => this with { Batch = batch };

    /// <summary>What every backend checks before it pools: positive sizes and every window inside the input.</summary>
    public static void Validate(PoolGeometry g)
    {
        ArgumentNullException.ThrowIfNull(g);
        if (g.Batch <= 0 || g.Channels <= 0 || g.Window <= 0 || g.Stride <= 0 || g.OutHeight <= 0 || g.OutWidth <= 0 ||
            (g.OutHeight - 1) * g.Stride + g.Window > g.InHeight || (g.OutWidth - 1) * g.Stride + g.Window > g.InWidth)
            throw new ArgumentException($"invalid pooling geometry {g}");
    }
}
