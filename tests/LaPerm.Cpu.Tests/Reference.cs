using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// Naive double-precision forward passes, written from the IBackend contract and nothing
/// else: the oracle for forward results and, through central differences, for backward ones.
/// </summary>
internal static class Reference
{
    public static double[] Gemm(bool transposeA, bool transposeB, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[]? c)
    {
        var result = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j]);
                result[i * n + j] = alpha * sum + (beta == 0 ? 0 : beta * c![i * n + j]);
            }
        return result;
    }

    /// <summary>Sum over k of |alpha op(A)_ik op(B)_kj| + |beta C_ij|: the scale of a GEMM's rounding error.</summary>
    public static double[] GemmMagnitude(bool transposeA, bool transposeB, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[]? c)
    {
        var abs = (double[] v) => Array.ConvertAll(v, Math.Abs);
        return Gemm(transposeA, transposeB, m, n, k, Math.Abs(alpha), abs(a), abs(b), Math.Abs(beta), c is null ? null : abs(c));
    }

    /// <summary>Dense layer: y[N, out] = x[N, in] W[out, in]^T + b.</summary>
    public static double[] Dense(int batch, int inputs, int outputs, double[] x, double[] w, double[] b)
    {
        var y = new double[batch * outputs];
        for (int n = 0; n < batch; n++)
            for (int o = 0; o < outputs; o++)
            {
                double sum = b[o];
                for (int i = 0; i < inputs; i++) sum += x[n * inputs + i] * w[o * inputs + i];
                y[n * outputs + o] = sum;
            }
        return y;
    }

    public static double[] Conv(ConvGeometry g, double[] x, double[] w)
    {
        var y = new double[g.OutputLength];
        for (int n = 0; n < g.Batch; n++)
            for (int co = 0; co < g.OutChannels; co++)
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        double sum = 0;
                        for (int ci = 0; ci < g.InChannels; ci++)
                            for (int ky = 0; ky < g.KernelHeight; ky++)
                                for (int kx = 0; kx < g.KernelWidth; kx++)
                                {
                                    int iy = oy * g.Stride - g.PadTop + ky, ix = ox * g.Stride - g.PadLeft + kx;
                                    if (iy < 0 || iy >= g.InHeight || ix < 0 || ix >= g.InWidth) continue;
                                    sum += x[((n * g.InChannels + ci) * g.InHeight + iy) * g.InWidth + ix] *
                                           w[((co * g.InChannels + ci) * g.KernelHeight + ky) * g.KernelWidth + kx];
                                }
                        y[((n * g.OutChannels + co) * g.OutHeight + oy) * g.OutWidth + ox] = sum;
                    }
        return y;
    }

    public static (double[] Y, int[] Argmax) MaxPool(PoolGeometry g, double[] x)
    {
        int outputs = g.Batch * g.Channels * g.OutHeight * g.OutWidth;
        var y = new double[outputs];
        var argmax = new int[outputs];
        int o = 0;
        for (int plane = 0; plane < g.Batch * g.Channels; plane++)
            for (int oy = 0; oy < g.OutHeight; oy++)
                for (int ox = 0; ox < g.OutWidth; ox++, o++)
                {
                    int best = -1;
                    for (int wy = 0; wy < g.Window; wy++)
                        for (int wx = 0; wx < g.Window; wx++)
                        {
                            int i = (plane * g.InHeight + oy * g.Stride + wy) * g.InWidth + ox * g.Stride + wx;
                            if (best < 0 || x[i] > x[best]) best = i;
                        }
                    y[o] = x[best];
                    argmax[o] = best;
                }
        return (y, argmax);
    }

    public static double[] AvgPool(PoolGeometry g, double[] x)
    {
        var y = new double[g.Batch * g.Channels * g.OutHeight * g.OutWidth];
        int o = 0;
        for (int plane = 0; plane < g.Batch * g.Channels; plane++)
            for (int oy = 0; oy < g.OutHeight; oy++)
                for (int ox = 0; ox < g.OutWidth; ox++, o++)
                {
                    double sum = 0;
                    for (int wy = 0; wy < g.Window; wy++)
                        for (int wx = 0; wx < g.Window; wx++)
                            sum += x[(plane * g.InHeight + oy * g.Stride + wy) * g.InWidth + ox * g.Stride + wx];
                    y[o] = sum / (g.Window * g.Window);
                }
        return y;
    }

    public static double[] GlobalAvgPool(int batch, int channels, int spatial, double[] x)
    {
        var y = new double[batch * channels];
        for (int plane = 0; plane < y.Length; plane++)
        {
            double sum = 0;
            for (int s = 0; s < spatial; s++) sum += x[plane * spatial + s];
            y[plane] = sum / spatial;
        }
        return y;
    }

    /// <summary>Training-mode batch-norm; returns y, the batch mean and the biased batch variance.</summary>
    public static (double[] Y, double[] Mean, double[] Variance) BatchNormTraining(int batch, int channels, int spatial, double epsilon,
        double[] x, double[] gamma, double[] beta)
    {
        var y = new double[x.Length];
        var mean = new double[channels];
        var variance = new double[channels];
        int count = batch * spatial;
        for (int c = 0; c < channels; c++)
        {
            double sum = 0;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++) sum += x[(n * channels + c) * spatial + s];
            mean[c] = sum / count;
            double squares = 0;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++)
                {
                    double d = x[(n * channels + c) * spatial + s] - mean[c];
                    squares += d * d;
                }
            variance[c] = squares / count;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++)
                {
                    int i = (n * channels + c) * spatial + s;
                    y[i] = gamma[c] * (x[i] - mean[c]) / Math.Sqrt(variance[c] + epsilon) + beta[c];
                }
        }
        return (y, mean, variance);
    }

    public static double[] BatchNormInference(int batch, int channels, int spatial, double epsilon,
        double[] x, double[] gamma, double[] beta, double[] mean, double[] variance)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = i / spatial % channels;
            y[i] = gamma[c] * (x[i] - mean[c]) / Math.Sqrt(variance[c] + epsilon) + beta[c];
        }
        return y;
    }

    public static double[] Relu(double[] x) => Array.ConvertAll(x, v => v > 0 ? v : 0);

    /// <summary>Mean softmax cross-entropy and the number of first-max arg-max hits.</summary>
    public static (double MeanLoss, int Correct) SoftmaxCrossEntropy(int batch, int classes, double[] logits, int[] labels)
    {
        double total = 0;
        int correct = 0;
        for (int n = 0; n < batch; n++)
        {
            double max = double.NegativeInfinity;
            int best = 0;
            for (int j = 0; j < classes; j++)
                if (logits[n * classes + j] > max)
                {
                    max = logits[n * classes + j];
                    best = j;
                }
            double sum = 0;
            for (int j = 0; j < classes; j++) sum += Math.Exp(logits[n * classes + j] - max);
            total += (max - logits[n * classes + labels[n]]) + Math.Log(sum);
            if (best == labels[n]) correct++;
        }
        return (total / batch, correct);
    }

    /// <summary>Central differences of a scalar function, in double: error O(h^2) + O(eps_double / h).</summary>
    public static double[] NumericGradient(double[] x, Func<double[], double> loss, double h = 1e-5)
    {
        var gradient = new double[x.Length];
        var probe = (double[])x.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            probe[i] = x[i] + h;
            double plus = loss(probe);
            probe[i] = x[i] - h;
            double minus = loss(probe);
            probe[i] = x[i];
            gradient[i] = (plus - minus) / (2 * h);
        }
        return gradient;
    }

    /// <summary>sum_i r_i y_i: contracting with a random upstream gradient r makes any op's vector-Jacobian product a plain gradient.</summary>
    public static double Dot(double[] r, double[] y)
    {
        double sum = 0;
        for (int i = 0; i < y.Length; i++) sum += r[i] * y[i];
        return sum;
    }
}
