namespace LaPerm.Cuda.Backend;

/// <summary>
/// How the per-channel reductions of batch-norm (training forward, backward) and the bias
/// gradient are laid out on the device (batchnorm.cu, bias.cu). Both give the same results up
/// to the order of double additions; the choice is kept for comparing their speed.
/// </summary>
public enum ChannelReduction
{
    /// <summary>
    /// v2 (default): each channel split into chunks fixed by the shape, one block per
    /// (channel, chunk) writing double partials, a fixed-order combine per channel, then a
    /// grid-stride elementwise kernel. Fills the GPU when there are few channels.
    /// </summary>
    Chunked,

    /// <summary>v1: one block per channel does the whole channel (few blocks when there are few channels).</summary>
    PerChannel,
}
