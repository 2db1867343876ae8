using LaPerm.Core.Backend;
using LaPerm.Cpu;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>
/// The emulator's stand-in for cuBLAS and cuDNN: the CPU backend's own GEMM and convolutions,
/// so emu and cpu agree bit for bit. Emulated device memory is host memory, but the CPU
/// backend owns its tensors, so each call stages its operands into CPU tensors and the
/// result back (the emulator is for correctness, not speed).
/// </summary>
internal sealed unsafe class HostLibraryOps : IDisposable
{
    private readonly CpuBackend _cpu = new(Math.Max(1, Environment.ProcessorCount));

    public void Gemm(bool transposeA, bool transposeB, int m, int n, int k, float alpha,
        ulong a, long strideA, ulong b, long strideB, float beta, ulong c, long strideC, int batchCount)
    {
        for (int batch = 0; batch < batchCount; batch++)
        {
            using var ta = StageIn(a + (ulong)(batch * strideA * sizeof(float)), (long)m * k);
            using var tb = StageIn(b + (ulong)(batch * strideB * sizeof(float)), (long)k * n);
            ulong cBatch = c + (ulong)(batch * strideC * sizeof(float));
            // With beta = 0, C is not read (cuBLAS's rule): poisoned output cannot leak in.
            using var tc = beta == 0f ? (CpuTensor<float>)_cpu.Allocate<float>(new Shape(m * n)) : StageIn(cBatch, (long)m * n);
            _cpu.Gemm(transposeA, transposeB, m, n, k, alpha, ta, tb, beta, tc);
            StageOut(tc, cBatch);
        }
    }

    /// <summary>
    /// Forward (x, w -> y), backward data (dy, w -> dx), backward filter (x, dy -> dw); outputs
    /// overwritten. Geometries that cuDNN cannot express are refused as cuDNN refuses them, so
    /// the backend's fallback to our kernels runs in CI too.
    /// </summary>
    public void Convolution(ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output)
    {
        // cuDNN pads symmetrically (PadTop on both sides of H, PadLeft on both sides of W).
        int outH = (g.InHeight + 2 * g.PadTop - g.KernelHeight) / g.Stride + 1, outW = (g.InWidth + 2 * g.PadLeft - g.KernelWidth) / g.Stride + 1;
        if (outH != g.OutHeight || outW != g.OutWidth)
            throw new NotSupportedException(
                $"cuDNN pads symmetrically, so it cannot run a {g.KernelHeight}x{g.KernelWidth}/{g.Stride} convolution of {g.InHeight}x{g.InWidth} with this padding: it would produce {outH}x{outW} outputs instead of {g.OutHeight}x{g.OutWidth} (emulated)");
        switch (direction)
        {
            case ConvolutionDirection.Forward:
            {
                using var x = StageIn(first, g.InputLength);
                using var w = StageIn(second, g.WeightLength);
                using var y = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(g.OutputLength));
                _cpu.ConvForward(g, x, w, y);
                StageOut(y, output);
                break;
            }
            case ConvolutionDirection.BackwardData:
            {
                using var dy = StageIn(first, g.OutputLength);
                using var w = StageIn(second, g.WeightLength);
                using var dx = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(g.InputLength));
                _cpu.ConvBackwardData(g, dy, w, dx);
                StageOut(dx, output);
                break;
            }
            case ConvolutionDirection.BackwardFilter:
            {
                using var x = StageIn(first, g.InputLength);
                using var dy = StageIn(second, g.OutputLength);
                using var dw = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(g.WeightLength));
                _cpu.ConvBackwardFilter(g, x, dy, dw);
                StageOut(dw, output);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(direction), direction, "unknown convolution direction");
        }
    }

    public void PoolingForward(PoolingWindow window, ulong x, ulong y)
    {
        using var tx = StageIn(x, window.InputLength);
        using var ty = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)window.OutputLength)));
        if (window.IsGlobal)
            _cpu.GlobalAvgPoolForward(window.Batch, window.Channels, window.InWidth, tx, ty);
        else if (window.Mode == CudnnPoolingMode.Average)
            _cpu.AvgPoolForward(window.ToGeometry(), tx, ty);
        else
        {
            using var argmax = _cpu.Allocate<int>(new Shape(checked((int)window.OutputLength)));
            _cpu.MaxPoolForward(window.ToGeometry(), tx, ty, argmax);
        }
        StageOut(ty, y);
    }

    /// <summary>As cuDNN: max pooling takes its maxima from x again (the CPU's first-max rule), y is not needed here.</summary>
    public void PoolingBackward(PoolingWindow window, ulong x, ulong dy, ulong dx)
    {
        using var tdy = StageIn(dy, window.OutputLength);
        using var tdx = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)window.InputLength)));
        if (window.IsGlobal)
            _cpu.GlobalAvgPoolBackward(window.Batch, window.Channels, window.InWidth, tdy, tdx);
        else if (window.Mode == CudnnPoolingMode.Average)
            _cpu.AvgPoolBackward(window.ToGeometry(), tdy, tdx);
        else
        {
            var g = window.ToGeometry();
            using var tx = StageIn(x, window.InputLength);
            using var ty = _cpu.Allocate<float>(new Shape(checked((int)window.OutputLength)));
            using var argmax = _cpu.Allocate<int>(new Shape(checked((int)window.OutputLength)));
            _cpu.MaxPoolForward(g, tx, ty, argmax);
            _cpu.MaxPoolBackward(g, tx, ty, tdy, argmax, tdx);
        }
        StageOut(tdx, dx);
    }

    public void BatchNormForwardTraining(BatchNormShape shape, float epsilon, float momentum, ulong x, ulong gamma, ulong beta,
        ulong runningMean, ulong runningVariance, ulong savedMean, ulong savedInvStd, ulong y)
    {
        CudnnOperations.RequireCudnnEpsilon(epsilon);
        CudnnOperations.RequireDefinedRunningVariance(shape);
        int c = shape.Channels;
        using var tx = StageIn(x, shape.Length);
        using var tGamma = StageIn(gamma, c);
        using var tBeta = StageIn(beta, c);
        using var tMean = StageIn(runningMean, c);
        using var tVariance = StageIn(runningVariance, c);
        using var tSavedMean = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(c));
        using var tSavedInvStd = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(c));
        using var ty = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)shape.Length)));
        _cpu.BatchNormForwardTraining(shape.Batch, c, shape.Spatial, epsilon, momentum, tx, tGamma, tBeta, tMean, tVariance, tSavedMean, tSavedInvStd, ty);
        StageOut(ty, y);
        StageOut(tMean, runningMean);
        StageOut(tVariance, runningVariance);
        StageOut(tSavedMean, savedMean);
        StageOut(tSavedInvStd, savedInvStd);
    }

    public void BatchNormForwardInference(BatchNormShape shape, float epsilon, ulong x, ulong gamma, ulong beta, ulong mean, ulong variance, ulong y)
    {
        CudnnOperations.RequireCudnnEpsilon(epsilon);
        int c = shape.Channels;
        using var tx = StageIn(x, shape.Length);
        using var tGamma = StageIn(gamma, c);
        using var tBeta = StageIn(beta, c);
        using var tMean = StageIn(mean, c);
        using var tVariance = StageIn(variance, c);
        using var ty = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)shape.Length)));
        _cpu.BatchNormForwardInference(shape.Batch, c, shape.Spatial, epsilon, tx, tGamma, tBeta, tMean, tVariance, ty);
        StageOut(ty, y);
    }

    public void BatchNormBackward(BatchNormShape shape, float epsilon, ulong x, ulong dy, ulong gamma, ulong savedMean, ulong savedInvStd,
        ulong dx, ulong dGamma, ulong dBeta)
    {
        int c = shape.Channels;
        using var tx = StageIn(x, shape.Length);
        using var tdy = StageIn(dy, shape.Length);
        using var tGamma = StageIn(gamma, c);
        using var tSavedMean = StageIn(savedMean, c);
        using var tSavedInvStd = StageIn(savedInvStd, c);
        using var tdx = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)shape.Length)));
        using var tdGamma = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(c));
        using var tdBeta = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(c));
        CudnnOperations.RequireCudnnEpsilon(epsilon);
        _cpu.BatchNormBackward(shape.Batch, c, shape.Spatial, epsilon, tx, tdy, tGamma, tSavedMean, tSavedInvStd, tdx, tdGamma, tdBeta);
        StageOut(tdx, dx);
        StageOut(tdGamma, dGamma);
        StageOut(tdBeta, dBeta);
    }

    private CpuTensor<float> StageIn(ulong pointer, long length)
    {
        var tensor = (CpuTensor<float>)_cpu.Allocate<float>(new Shape(checked((int)length)));
        new ReadOnlySpan<float>((void*)pointer, (int)length).CopyTo(tensor.Span);
        return tensor;
    }

    private static void StageOut(CpuTensor<float> tensor, ulong pointer) =>
        tensor.Span.CopyTo(new Span<float>((void*)pointer, tensor.Length));

    public void Dispose() => _cpu.Dispose();
}
