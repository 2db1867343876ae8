using LaPerm.Core.Backend;

namespace LaPerm.Cuda.Backend;

// Batch-norm (batchnorm.cu): training forward and backward one block per channel, inference elementwise.
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
        _kernels.BatchNormTraining.Launch(channels, BlockSize, 0, Stream, batch, channels, spatial, epsilon, momentum,
            Pointer(x, nameof(x), length), Pointer(gamma, nameof(gamma), channels), Pointer(beta, nameof(beta), channels),
            Pointer(runningMean, nameof(runningMean), channels), Pointer(runningVariance, nameof(runningVariance), channels),
            Pointer(savedMean, nameof(savedMean), channels), Pointer(savedInvStd, nameof(savedInvStd), channels),
            Pointer(y, nameof(y), length));
    }

    public void BatchNormForwardInference(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance, Tensor<float> y)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        _kernels.BatchNormInference.Launch(Grid(length), BlockSize, 0, Stream, length, channels, spatial, epsilon,
            Pointer(x, nameof(x), length), Pointer(gamma, nameof(gamma), channels), Pointer(beta, nameof(beta), channels),
            Pointer(runningMean, nameof(runningMean), channels), Pointer(runningVariance, nameof(runningVariance), channels),
            Pointer(y, nameof(y), length));
    }

    public void BatchNormBackward(int batch, int channels, int spatial,
        Tensor<float> x, Tensor<float> dy, Tensor<float> gamma,
        Tensor<float> savedMean, Tensor<float> savedInvStd,
        Tensor<float> dx, Tensor<float> dGamma, Tensor<float> dBeta)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        _kernels.BatchNormBackward.Launch(channels, BlockSize, 0, Stream, batch, channels, spatial,
            Pointer(x, nameof(x), length), Pointer(dy, nameof(dy), length), Pointer(gamma, nameof(gamma), channels),
            Pointer(savedMean, nameof(savedMean), channels), Pointer(savedInvStd, nameof(savedInvStd), channels),
            Pointer(dx, nameof(dx), length), Pointer(dGamma, nameof(dGamma), channels), Pointer(dBeta, nameof(dBeta), channels));
    }
}
