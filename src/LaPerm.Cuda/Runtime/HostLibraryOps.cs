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

    /// <summary>Forward (x, w -> y), backward data (dy, w -> dx), backward filter (x, dy -> dw); outputs overwritten.</summary>
    public void Convolution(ConvolutionDirection direction, ConvGeometry g, ulong first, ulong second, ulong output)
    {
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
