using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Batch-norm over the [N, C, S] view, parallel over channels; every per-channel reduction
// runs in index order (n, then s) with a double accumulator, so results are independent
// of the thread count and accurate for large N*S.
public sealed partial class CpuBackend
{
    public void BatchNormForwardTraining(int batch, int channels, int spatial, float epsilon, float momentum,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance,
        Tensor<float> savedMean, Tensor<float> savedInvStd, Tensor<float> y)
    {
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        var state = new NormState(batch, channels, spatial, epsilon, momentum,
            Data(x, nameof(x), length), Data(gamma, nameof(gamma), channels), Data(beta, nameof(beta), channels),
            Data(runningMean, nameof(runningMean), channels), Data(runningVariance, nameof(runningVariance), channels),
            Data(savedMean, nameof(savedMean), channels), Data(savedInvStd, nameof(savedInvStd), channels),
            Data(y, nameof(y), length));
        _partition.For(channels, 1, state, static (s, _, start, end) =>
        {
            int count = s.Batch * s.Spatial;
            for (int c = start; c < end; c++)
            {
                double sum = 0;
                for (int n = 0; n < s.Batch; n++)
                {
                    var plane = s.X.AsSpan((n * s.Channels + c) * s.Spatial, s.Spatial);
                    for (int i = 0; i < plane.Length; i++) sum += plane[i];
                }
                double mean = sum / count;
                double squares = 0;
                for (int n = 0; n < s.Batch; n++)
                {
                    var plane = s.X.AsSpan((n * s.Channels + c) * s.Spatial, s.Spatial);
                    for (int i = 0; i < plane.Length; i++)
                    {
                        double d = plane[i] - mean;
                        squares += d * d;
                    }
                }
                double variance = squares / count;
                float meanF = (float)mean, invStd = (float)(1.0 / Math.Sqrt(variance + s.Epsilon));
                float gammaC = s.Gamma[c], betaC = s.Beta[c];
                for (int n = 0; n < s.Batch; n++)
                {
                    int offset = (n * s.Channels + c) * s.Spatial;
                    for (int i = offset; i < offset + s.Spatial; i++)
                        s.Y[i] = gammaC * (s.X[i] - meanF) * invStd + betaC;
                }
                s.SavedMean[c] = meanF;
                s.SavedInvStd[c] = invStd;
                float unbiased = (float)(count > 1 ? variance * count / (count - 1) : variance);
                s.RunningMean[c] = s.Momentum * s.RunningMean[c] + (1f - s.Momentum) * meanF;
                s.RunningVariance[c] = s.Momentum * s.RunningVariance[c] + (1f - s.Momentum) * unbiased;
            }
        });
    }

    private sealed record NormState(int Batch, int Channels, int Spatial, float Epsilon, float Momentum,
        float[] X, float[] Gamma, float[] Beta, float[] RunningMean, float[] RunningVariance,
        float[] SavedMean, float[] SavedInvStd, float[] Y);

    public void BatchNormForwardInference(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> gamma, Tensor<float> beta,
        Tensor<float> runningMean, Tensor<float> runningVariance, Tensor<float> y)
    {
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        var xData = Data(x, nameof(x), length);
        var yData = Data(y, nameof(y), length);
        var gammaData = Data(gamma, nameof(gamma), channels);
        var betaData = Data(beta, nameof(beta), channels);
        var meanData = Data(runningMean, nameof(runningMean), channels);
        var varianceData = Data(runningVariance, nameof(runningVariance), channels);
        _partition.For(batch * channels, Math.Max(1, 16384 / spatial), (xData, yData, gammaData, betaData, meanData, varianceData, channels, spatial, epsilon),
            static (s, _, start, end) =>
            {
                for (int plane = start; plane < end; plane++)
                {
                    int c = plane % s.channels;
                    float gammaC = s.gammaData[c], betaC = s.betaData[c], meanC = s.meanData[c];
                    float deviation = MathF.Sqrt(s.varianceData[c] + s.epsilon);
                    int offset = plane * s.spatial;
                    for (int i = offset; i < offset + s.spatial; i++)
                        s.yData[i] = gammaC * (s.xData[i] - meanC) / deviation + betaC;
                }
            });
    }

    public void BatchNormBackward(int batch, int channels, int spatial, float epsilon,
        Tensor<float> x, Tensor<float> dy, Tensor<float> gamma,
        Tensor<float> savedMean, Tensor<float> savedInvStd,
        Tensor<float> dx, Tensor<float> dGamma, Tensor<float> dBeta)
    {
        CheckSizes(batch, channels, spatial);
        long length = (long)batch * channels * spatial;
        var state = new NormBackwardState(batch, channels, spatial,
            Data(x, nameof(x), length), Data(dy, nameof(dy), length), Data(gamma, nameof(gamma), channels),
            Data(savedMean, nameof(savedMean), channels), Data(savedInvStd, nameof(savedInvStd), channels),
            Data(dx, nameof(dx), length), Data(dGamma, nameof(dGamma), channels), Data(dBeta, nameof(dBeta), channels));
        _partition.For(channels, 1, state, static (s, _, start, end) =>
        {
            int count = s.Batch * s.Spatial;
            for (int c = start; c < end; c++)
            {
                double mean = s.SavedMean[c], invStd = s.SavedInvStd[c];
                double sumDy = 0, sumDyXhat = 0;
                for (int n = 0; n < s.Batch; n++)
                {
                    int offset = (n * s.Channels + c) * s.Spatial;
                    for (int i = offset; i < offset + s.Spatial; i++)
                    {
                        double g = s.Dy[i];
                        sumDy += g;
                        sumDyXhat += g * (s.X[i] - mean) * invStd;
                    }
                }
                // dx = gamma * invStd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)).
                double scale = s.Gamma[c] * invStd / count;
                for (int n = 0; n < s.Batch; n++)
                {
                    int offset = (n * s.Channels + c) * s.Spatial;
                    for (int i = offset; i < offset + s.Spatial; i++)
                    {
                        double xhat = (s.X[i] - mean) * invStd;
                        s.Dx[i] = (float)(scale * (count * (double)s.Dy[i] - sumDy - xhat * sumDyXhat));
                    }
                }
                s.DGamma[c] = (float)sumDyXhat;
                s.DBeta[c] = (float)sumDy;
            }
        });
    }

    private sealed record NormBackwardState(int Batch, int Channels, int Spatial,
        float[] X, float[] Dy, float[] Gamma, float[] SavedMean, float[] SavedInvStd,
        float[] Dx, float[] DGamma, float[] DBeta);
}
