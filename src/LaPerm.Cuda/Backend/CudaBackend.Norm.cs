using LaPerm.Core.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// Batch-norm (batchnorm.cu). Training forward and backward: by default (ChannelReduction.Chunked,
// v2) each channel's elements are split into chunks (ChannelChunks, from the shape alone), one
// block per (channel, chunk) writes double partials to _channelPartials, a fixed-order combine per
// channel follows, and y / dx are a grid-stride pass over the tensor; ChannelReduction.PerChannel
// keeps v1, one block per channel. Inference is elementwise either way. With CudnnScope.BatchNorm,
// cuDNN's spatial batch-norm runs all three instead (where epsilon >= 0, cuDNN 9's CUDNN_BN_MIN_EPSILON).
public sealed partial class CudaBackend
{
    public void BatchNormForwardTraining(int batch, int channels, int spatial, float epsilon, float momentum,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance,
        Tensor<float> savedMean, Tensor<float> savedInvStd, Tensor<float> y)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        ulong pX = Pointer(x, nameof(x), length), pGamma = Pointer(gamma, nameof(gamma), channels), pBeta = Pointer(beta, nameof(beta), channels);
        ulong pRunningMean = Pointer(runningMean, nameof(runningMean), channels);
        ulong pRunningVariance = Pointer(runningVariance, nameof(runningVariance), channels);
        ulong pSavedMean = Pointer(savedMean, nameof(savedMean), channels), pSavedInvStd = Pointer(savedInvStd, nameof(savedInvStd), channels);
        ulong pY = Pointer(y, nameof(y), length);
        if (TryCudnnBatchNorm((new BatchNormShape(batch, channels, spatial), epsilon), "training", d => d.BatchNormForwardTraining(Stream,
                new BatchNormShape(batch, channels, spatial), epsilon, momentum, Buffer(x), Buffer(gamma), Buffer(beta),
                Buffer(runningMean), Buffer(runningVariance), Buffer(savedMean), Buffer(savedInvStd), Buffer(y))))
            return;
        if (_channelReduction == ChannelReduction.PerChannel)
        {
            _kernels.BatchNormTraining.Launch(channels, BlockSize, 0, Stream, batch, channels, FastDivisor.Of(spatial), epsilon, momentum,
                pX, pGamma, pBeta, pRunningMean, pRunningVariance, pSavedMean, pSavedInvStd, pY);
            return;
        }
        var (chunks, chunkLength) = ChannelChunks(channels, batch * spatial);
        long partialCount = (long)channels * chunks;
        ulong partialSum = Scratch(ref _channelPartials, 2 * partialCount).Pointer;
        ulong partialSquares = partialSum + (ulong)(partialCount * sizeof(double));
        var grid = new Dim3((uint)channels, (uint)chunks);
        _kernels.BatchNormTrainingSums.Launch(grid, BlockSize, 0, Stream, batch, channels, FastDivisor.Of(spatial), chunkLength, pX, partialSum);
        _kernels.BatchNormTrainingSquares.Launch(grid, BlockSize, 0, Stream, batch, channels, FastDivisor.Of(spatial), chunkLength,
            pX, partialSum, partialSquares);
        _kernels.BatchNormTrainingStatistics.Launch(channels, BlockSize, 0, Stream, batch, spatial, chunks, epsilon, momentum,
            partialSum, partialSquares, pRunningMean, pRunningVariance, pSavedMean, pSavedInvStd);
        _kernels.BatchNormTrainingOutput.Launch(Grid(length), BlockSize, 0, Stream, length, FastDivisor.Of(channels), FastDivisor.Of(spatial),
            pX, pGamma, pBeta, pSavedMean, pSavedInvStd, pY);
    }

    public void BatchNormForwardInference(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance, Tensor<float> y)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        if (TryCudnnBatchNorm((new BatchNormShape(batch, channels, spatial), epsilon), "inference", d => d.BatchNormForwardInference(Stream,
                new BatchNormShape(batch, channels, spatial), epsilon, Buffer(x), Buffer(gamma), Buffer(beta),
                Buffer(runningMean), Buffer(runningVariance), Buffer(y))))
            return;
        _kernels.BatchNormInference.Launch(Grid(length), BlockSize, 0, Stream, length, FastDivisor.Of(channels), FastDivisor.Of(spatial), epsilon,
            Pointer(x, nameof(x), length), Pointer(gamma, nameof(gamma), channels), Pointer(beta, nameof(beta), channels),
            Pointer(runningMean, nameof(runningMean), channels), Pointer(runningVariance, nameof(runningVariance), channels),
            Pointer(y, nameof(y), length));
    }

    public void BatchNormBackward(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> dy, Tensor<float> gamma,
        Tensor<float> savedMean, Tensor<float> savedInvStd,
        Tensor<float> dx, Tensor<float> dGamma, Tensor<float> dBeta)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        ulong pX = Pointer(x, nameof(x), length), pDy = Pointer(dy, nameof(dy), length), pGamma = Pointer(gamma, nameof(gamma), channels);
        ulong pSavedMean = Pointer(savedMean, nameof(savedMean), channels), pSavedInvStd = Pointer(savedInvStd, nameof(savedInvStd), channels);
        ulong pDx = Pointer(dx, nameof(dx), length), pDGamma = Pointer(dGamma, nameof(dGamma), channels), pDBeta = Pointer(dBeta, nameof(dBeta), channels);
        // The backward reads the saved mean and 1/sqrt(var + eps), which cuDNN and our forward
        // define alike, so it does not depend on which of them ran the forward; cuDNN still asks
        // for the forward's epsilon.
        if (TryCudnnBatchNorm((new BatchNormShape(batch, channels, spatial), epsilon), "backward", d => d.BatchNormBackward(Stream,
                new BatchNormShape(batch, channels, spatial), epsilon, Buffer(x), Buffer(dy), Buffer(gamma), Buffer(savedMean), Buffer(savedInvStd),
                Buffer(dx), Buffer(dGamma), Buffer(dBeta))))
            return;
        if (_channelReduction == ChannelReduction.PerChannel)
        {
            _kernels.BatchNormBackward.Launch(channels, BlockSize, 0, Stream, batch, channels, FastDivisor.Of(spatial),
                pX, pDy, pGamma, pSavedMean, pSavedInvStd, pDx, pDGamma, pDBeta);
            return;
        }
        int count = batch * spatial;
        var (chunks, chunkLength) = ChannelChunks(channels, count);
        long partialCount = (long)channels * chunks;
        // [sum(dy) partials | sum(dy * xhat) partials | the two totals per channel], doubles.
        ulong partialDy = Scratch(ref _channelPartials, 2 * partialCount + 2L * channels).Pointer;
        ulong partialDyXhat = partialDy + (ulong)(partialCount * sizeof(double));
        ulong totals = partialDyXhat + (ulong)(partialCount * sizeof(double));
        _kernels.BatchNormBackwardSums.Launch(new Dim3((uint)channels, (uint)chunks), BlockSize, 0, Stream,
            batch, channels, FastDivisor.Of(spatial), chunkLength, pX, pDy, pSavedMean, pSavedInvStd, partialDy, partialDyXhat);
        _kernels.BatchNormBackwardTotals.Launch(channels, BlockSize, 0, Stream, channels, chunks,
            partialDy, partialDyXhat, totals, pDGamma, pDBeta);
        _kernels.BatchNormBackwardDx.Launch(Grid(length), BlockSize, 0, Stream, length, FastDivisor.Of(channels), FastDivisor.Of(spatial), count,
            pX, pDy, pGamma, pSavedMean, pSavedInvStd, totals, pDx);
    }

    /// <summary>A tensor's buffer, for operands already checked by <see cref="Pointer{T}"/>.</summary>
    private DeviceBuffer<float> Buffer(Tensor<float> tensor) => Own(tensor, nameof(tensor)).Buffer;
}
