using LaPerm.Core.Backend;
using LaPerm.Cuda.Interop;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Backend;

// Pooling (pool.cu): forward one thread per output, backward one thread per input (gather);
// with CudnnScope.Pooling, cuDNN (which finds the maxima again from x and y, so argmax is unused).
public sealed partial class CudaBackend
{
    private static (long Inputs, long Outputs) Extents(PoolGeometry g)
    {
        long planes = (long)g.Batch * g.Channels;
        return (planes * g.InHeight * g.InWidth, planes * g.OutHeight * g.OutWidth);
    }

    public void MaxPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<int> argmax)
    {
        Begin();
        PoolGeometry.Validate(g);
        var (inputs, outputs) = Extents(g);
        ulong pX = Pointer(x, nameof(x), inputs), pY = Pointer(y, nameof(y), outputs), pArgmax = Pointer(argmax, nameof(argmax), outputs);
        if (TryCudnnPoolingForward(PoolingWindow.From(g, CudnnPoolingMode.MaxDeterministic), x, y)) return;
        _kernels.MaxPoolForward.Launch(Grid(outputs), BlockSize, 0, Stream, PoolShape.From(g), pX, pY, pArgmax);
    }

    public void MaxPoolBackward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<float> dy, Tensor<int> argmax, Tensor<float> dx)
    {
        Begin();
        PoolGeometry.Validate(g);
        var (inputs, outputs) = Extents(g);
        Pointer(x, nameof(x), inputs);
        Pointer(y, nameof(y), outputs);
        ulong pDy = Pointer(dy, nameof(dy), outputs), pArgmax = Pointer(argmax, nameof(argmax), outputs), pDx = Pointer(dx, nameof(dx), inputs);
        if (TryCudnnPoolingBackward(PoolingWindow.From(g, CudnnPoolingMode.MaxDeterministic), x, y, dy, dx)) return;
        _kernels.MaxPoolBackward.Launch(Grid(inputs), BlockSize, 0, Stream, PoolShape.From(g), pDy, pArgmax, pDx);
    }

    public void AvgPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y)
    {
        Begin();
        PoolGeometry.Validate(g);
        var (inputs, outputs) = Extents(g);
        ulong pX = Pointer(x, nameof(x), inputs), pY = Pointer(y, nameof(y), outputs);
        if (TryCudnnPoolingForward(PoolingWindow.From(g, CudnnPoolingMode.Average), x, y)) return;
        _kernels.AvgPoolForward.Launch(Grid(outputs), BlockSize, 0, Stream, PoolShape.From(g), pX, pY);
    }

    public void AvgPoolBackward(PoolGeometry g, Tensor<float> dy, Tensor<float> dx)
    {
        Begin();
        PoolGeometry.Validate(g);
        var (inputs, outputs) = Extents(g);
        ulong pDy = Pointer(dy, nameof(dy), outputs), pDx = Pointer(dx, nameof(dx), inputs);
        // An average's gradient depends on neither x nor y, which cuDNN's call still takes: dx and dy stand in.
        if (TryCudnnPoolingBackward(PoolingWindow.From(g, CudnnPoolingMode.Average), dx, dy, dy, dx)) return;
        _kernels.AvgPoolBackward.Launch(Grid(inputs), BlockSize, 0, Stream, PoolShape.From(g), pDy, pDx);
    }

    public void GlobalAvgPoolForward(int batch, int channels, int spatial, Tensor<float> x, Tensor<float> y)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        int planes = batch * channels;
        ulong pX = Pointer(x, nameof(x), (long)planes * spatial), pY = Pointer(y, nameof(y), planes);
        if (TryCudnnPoolingForward(PoolingWindow.Global(batch, channels, spatial), x, y)) return;
        _kernels.GlobalAvgPoolForward.Launch(Grid(planes), BlockSize, 0, Stream, planes, spatial, pX, pY);
    }

    public void GlobalAvgPoolBackward(int batch, int channels, int spatial, Tensor<float> dy, Tensor<float> dx)
    {
        Begin();
        CheckSizes(batch, channels, spatial);
        int planes = batch * channels;
        ulong pDy = Pointer(dy, nameof(dy), planes), pDx = Pointer(dx, nameof(dx), (long)planes * spatial);
        if (TryCudnnPoolingBackward(PoolingWindow.Global(batch, channels, spatial), dx, dy, dy, dx)) return;
        _kernels.GlobalAvgPoolBackward.Launch(Grid((long)planes * spatial), BlockSize, 0, Stream, planes, FastDivisor.Of(spatial), pDy, pDx);
    }

    private static void CheckSizes(int batch, int channels, int spatial)
    {
        if (batch <= 0 || channels <= 0 || spatial <= 0)
            throw new ArgumentException($"batch, channels and spatial must be positive, got {batch}, {channels}, {spatial}");
    }
}
