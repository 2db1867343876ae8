using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Backend;

// Convolution as im2col + GEMM, as the CPU backend: images are processed in groups whose size
// depends on the geometry and ColumnBudget only; a group's columns form one [K, G*P] matrix
// (K = cin*kh*kw, P = outH*outW), so one cuBLAS GEMM covers G images even when P is tiny.
// The GEMM's [cout, G*P] result is moved to/from NCHW by conv.cu's gather/scatter kernels.
// With CudnnScope.Convolution, cuDNN runs every geometry it can (CudaBackend.Cudnn.cs).
public sealed partial class CudaBackend
{
    private int GroupSize(ConvGeometry g)
    {
        long perImage = (long)g.InChannels * g.KernelHeight * g.KernelWidth * g.OutHeight * g.OutWidth;
        return (int)Math.Clamp(ColumnBudget / Math.Max(perImage, 1), 1, g.Batch);
    }

    private static (int K, int P) Sizes(ConvGeometry g) => (g.InChannels * g.KernelHeight * g.KernelWidth, g.OutHeight * g.OutWidth);

    public void ConvForward(ConvGeometry g, Tensor<float> x, Tensor<float> w, Tensor<float> y)
    {
        Begin();
        ConvGeometry.Validate(g);
        ulong pX = Pointer(x, nameof(x), g.InputLength), pW = Pointer(w, nameof(w), g.WeightLength), pY = Pointer(y, nameof(y), g.OutputLength);
        if (TryCudnnConvolution(ConvolutionDirection.Forward, g, x, w, y)) return;
        var (k, p) = Sizes(g);
        int group = GroupSize(g);
        ulong columns = Scratch(ref _columns, (long)k * group * p).Pointer;
        ulong product = Scratch(ref _product, (long)g.OutChannels * group * p).Pointer;
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            long width = (long)count * p;
            Im2Col(g, n0, count, pX, columns);
            // y[cout, G*P] = W[cout, K] * col[K, G*P]
            _gemm.Run(Stream, false, false, g.OutChannels, (int)width, k, 1f, pW, columns, 0f, product);
            long total = width * g.OutChannels;
            _kernels.ConvScatterOutput.Launch(Grid(total), BlockSize, 0, Stream, n0, count, FastDivisor.Of(g.OutChannels), FastDivisor.Of(p), product, pY);
        }
    }

    public void ConvBackwardData(ConvGeometry g, Tensor<float> dy, Tensor<float> w, Tensor<float> dx)
    {
        Begin();
        ConvGeometry.Validate(g);
        ulong pDy = Pointer(dy, nameof(dy), g.OutputLength), pW = Pointer(w, nameof(w), g.WeightLength), pDx = Pointer(dx, nameof(dx), g.InputLength);
        if (TryCudnnConvolution(ConvolutionDirection.BackwardData, g, dy, w, dx)) return;
        var (k, p) = Sizes(g);
        int group = GroupSize(g);
        ulong columns = Scratch(ref _columns, (long)k * group * p).Pointer;
        ulong product = Scratch(ref _product, (long)g.OutChannels * group * p).Pointer;
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            long width = (long)count * p;
            GatherOutput(g, n0, count, pDy, product);
            // dcol[K, G*P] = W^T[K, cout] * dy[cout, G*P]; W is stored [cout, K].
            _gemm.Run(Stream, true, false, k, (int)width, g.OutChannels, 1f, pW, product, 0f, columns);
            var shape = ConvShape.From(g, n0, count);
            long inputs = (long)count * g.InChannels * g.InHeight * g.InWidth;
            _kernels.Col2Im.Launch(Grid(inputs), BlockSize, 0, Stream, shape, columns, pDx, width, (long)p);
        }
    }

    public void ConvBackwardFilter(ConvGeometry g, Tensor<float> x, Tensor<float> dy, Tensor<float> dw)
    {
        Begin();
        ConvGeometry.Validate(g);
        ulong pX = Pointer(x, nameof(x), g.InputLength), pDy = Pointer(dy, nameof(dy), g.OutputLength), pDw = Pointer(dw, nameof(dw), g.WeightLength);
        if (TryCudnnConvolution(ConvolutionDirection.BackwardFilter, g, x, dy, dw)) return;
        var (k, p) = Sizes(g);
        int group = GroupSize(g);
        ulong columns = Scratch(ref _columns, (long)k * group * p).Pointer;
        ulong product = Scratch(ref _product, (long)g.OutChannels * group * p).Pointer;
        for (int n0 = 0; n0 < g.Batch; n0 += group)
        {
            int count = Math.Min(group, g.Batch - n0);
            long width = (long)count * p;
            Im2Col(g, n0, count, pX, columns);
            GatherOutput(g, n0, count, pDy, product);
            // dW[cout, K] (+)= dy[cout, G*P] * col[K, G*P]^T
            _gemm.Run(Stream, false, true, g.OutChannels, k, (int)width, 1f, product, columns, n0 == 0 ? 0f : 1f, pDw);
        }
    }

    /// <summary>Columns of images [n0, n0 + count) as the [K, count*P] matrix.</summary>
    private void Im2Col(ConvGeometry g, int n0, int count, ulong x, ulong columns)
    {
        var (k, p) = Sizes(g);
        long width = (long)count * p;
        _kernels.Im2Col.Launch(Grid(k * width), BlockSize, 0, Stream, ConvShape.From(g, n0, count), x, columns, width, (long)p);
    }

    /// <summary>dy of images [n0, n0 + count) as the [cout, count*P] matrix.</summary>
    private void GatherOutput(ConvGeometry g, int n0, int count, ulong dy, ulong product)
    {
        int p = g.OutHeight * g.OutWidth;
        long total = (long)count * p * g.OutChannels;
        _kernels.ConvGatherOutput.Launch(Grid(total), BlockSize, 0, Stream, n0, count, FastDivisor.Of(g.OutChannels), FastDivisor.Of(p), dy, product);
    }
}
