using LaPerm.Core.Backend;

namespace LaPerm.Cuda.Backend;

// Activations, dropout, loss and momentum SGD: one kernel launch each (two for the loss).
// Adam is batched across tensors: CudaBackend.Adam.cs.
public sealed partial class CudaBackend
{
    public void ReluForward(Tensor<float> x, Tensor<float> y)
    {
        Begin();
        ulong pY = Own(y, nameof(y)).Pointer;
        ulong pX = Pointer(x, nameof(x), y.Length);
        _kernels.ReluForward.Launch(Grid(y.Length), BlockSize, 0, Stream, (long)y.Length, pX, pY);
    }

    public void ReluBackward(Tensor<float> y, Tensor<float> dy, Tensor<float> dx)
    {
        Begin();
        ulong pDx = Own(dx, nameof(dx)).Pointer;
        ulong pY = Pointer(y, nameof(y), dx.Length);
        ulong pDy = Pointer(dy, nameof(dy), dx.Length);
        _kernels.ReluBackward.Launch(Grid(dx.Length), BlockSize, 0, Stream, (long)dx.Length, pY, pDy, pDx);
    }

    public void DropoutForward(float rate, ulong seed, Tensor<float> x, Tensor<float> y, Tensor<byte> mask)
    {
        Begin();
        CheckRate(rate);
        ulong pY = Own(y, nameof(y)).Pointer;
        ulong pX = Pointer(x, nameof(x), y.Length);
        ulong pMask = Pointer(mask, nameof(mask), y.Length);
        float scale = 1f / (1f - rate);   // in float, as the CPU backend
        _kernels.DropoutForward.Launch(Grid(y.Length), BlockSize, 0, Stream, (long)y.Length, rate, scale, seed, StepBlock.Pointer, pX, pY, pMask);
    }

    public void DropoutBackward(float rate, Tensor<float> dy, Tensor<byte> mask, Tensor<float> dx)
    {
        Begin();
        CheckRate(rate);
        ulong pDx = Own(dx, nameof(dx)).Pointer;
        ulong pDy = Pointer(dy, nameof(dy), dx.Length);
        ulong pMask = Pointer(mask, nameof(mask), dx.Length);
        float scale = 1f / (1f - rate);
        _kernels.DropoutBackward.Launch(Grid(dx.Length), BlockSize, 0, Stream, (long)dx.Length, scale, pDy, pMask, pDx);
    }

    private static void CheckRate(float rate)
    {
        if (!(rate >= 0f && rate < 1f)) throw new ArgumentOutOfRangeException(nameof(rate), $"dropout rate must be in [0, 1), got {rate}");
    }

    /// <remarks>
    /// Labels live on the device, so a label outside [0, classes) is not an exception here (that
    /// would need a host round trip): it makes the example's loss NaN, visible at the next download.
    /// </remarks>
    public void SoftmaxCrossEntropy(int batch, int classes, Tensor<float> logits, Tensor<int> labels,
        Tensor<float> dLogits, Tensor<float> lossAndCorrect)
    {
        Begin();
        if (batch <= 0 || classes <= 0) throw new ArgumentException($"batch and classes must be positive, got {batch}, {classes}");
        ulong pLogits = Pointer(logits, nameof(logits), (long)batch * classes);
        ulong pLabels = PointerAtLeast(labels, nameof(labels), batch);
        ulong pGradient = Pointer(dLogits, nameof(dLogits), (long)batch * classes);
        ulong pTotals = PointerAtLeast(lossAndCorrect, nameof(lossAndCorrect), 2);
        var perExample = Scratch(ref _perExample, 2L * batch);
        _kernels.SoftmaxRows.Launch((uint)((batch + BlockSize - 1) / BlockSize), BlockSize, 0, Stream,
            batch, classes, pLogits, pLabels, pGradient, perExample.Pointer);
        _kernels.SoftmaxTotal.Launch(1, BlockSize, 0, Stream, batch, perExample.Pointer, pTotals);
    }
}
