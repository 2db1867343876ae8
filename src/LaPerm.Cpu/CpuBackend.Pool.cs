using LaPerm.Core.Backend;

namespace LaPerm.Cpu;

// Pooling runs in parallel over (n, c) planes: every output and every input a window
// touches lie in the same plane, so backward accumulation has one writer per plane.
public sealed partial class CpuBackend
{
    public void MaxPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<int> argmax)
    {
        PoolGeometry.Validate(g);
        int planes = g.Batch * g.Channels, inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
        var xData = Data(x, nameof(x), (long)planes * inPlane);
        var yData = Data(y, nameof(y), (long)planes * outPlane);
        var argmaxData = Data(argmax, nameof(argmax), (long)planes * outPlane);
        _partition.For(planes, 4, (g, xData, yData, argmaxData), static (s, _, start, end) =>
        {
            var g = s.g;
            int inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
            for (int plane = start; plane < end; plane++)
            {
                int inBase = plane * inPlane, outIndex = plane * outPlane;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++, outIndex++)
                    {
                        int first = inBase + oy * g.Stride * g.InWidth + ox * g.Stride;
                        int best = first;
                        float bestValue = s.xData[first];
                        for (int wy = 0; wy < g.Window; wy++)
                        {
                            int rowStart = first + wy * g.InWidth;
                            for (int wx = 0; wx < g.Window; wx++)
                            {
                                float v = s.xData[rowStart + wx];
                                // Strictly greater: the first max (row-major) wins; the first NaN wins over any
                                // number (a NaN anywhere in the window propagates, not only in its first cell).
                                if (v > bestValue || (float.IsNaN(v) && !float.IsNaN(bestValue)))
                                {
                                    bestValue = v;
                                    best = rowStart + wx;
                                }
                            }
                        }
                        s.yData[outIndex] = bestValue;
                        s.argmaxData[outIndex] = best;
                    }
            }
        });
    }

    /// <summary>Reads argmax only (x and y are for library poolings).</summary>
    public void MaxPoolBackward(PoolGeometry g, Tensor<float> x, Tensor<float> y, Tensor<float> dy, Tensor<int> argmax, Tensor<float> dx)
    {
        PoolGeometry.Validate(g);
        int planes = g.Batch * g.Channels, inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
        var dyData = Data(dy, nameof(dy), (long)planes * outPlane);
        var argmaxData = Data(argmax, nameof(argmax), (long)planes * outPlane);
        var dxData = Data(dx, nameof(dx), (long)planes * inPlane);
        _partition.For(planes, 4, (g, dyData, argmaxData, dxData), static (s, _, start, end) =>
        {
            int inPlane = s.g.InHeight * s.g.InWidth, outPlane = s.g.OutHeight * s.g.OutWidth;
            s.dxData.AsSpan(start * inPlane, (end - start) * inPlane).Clear();
            for (int i = start * outPlane; i < end * outPlane; i++)
            {
                int target = s.argmaxData[i];
                if ((uint)(target - start * inPlane) >= (uint)((end - start) * inPlane))
                    throw new ArgumentException($"argmax[{i}] = {target} is outside the input plane of output {i}");
                s.dxData[target] += s.dyData[i];
            }
        });
    }

    public void AvgPoolForward(PoolGeometry g, Tensor<float> x, Tensor<float> y)
    {
        PoolGeometry.Validate(g);
        int planes = g.Batch * g.Channels, inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
        var xData = Data(x, nameof(x), (long)planes * inPlane);
        var yData = Data(y, nameof(y), (long)planes * outPlane);
        _partition.For(planes, 4, (g, xData, yData), static (s, _, start, end) =>
        {
            var g = s.g;
            int inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
            float count = g.Window * g.Window;
            for (int plane = start; plane < end; plane++)
            {
                int inBase = plane * inPlane, outIndex = plane * outPlane;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++, outIndex++)
                    {
                        int first = inBase + oy * g.Stride * g.InWidth + ox * g.Stride;
                        float sum = 0f;
                        for (int wy = 0; wy < g.Window; wy++)
                            for (int wx = 0; wx < g.Window; wx++) sum += s.xData[first + wy * g.InWidth + wx];
                        s.yData[outIndex] = sum / count;
                    }
            }
        });
    }

    public void AvgPoolBackward(PoolGeometry g, Tensor<float> dy, Tensor<float> dx)
    {
        PoolGeometry.Validate(g);
        int planes = g.Batch * g.Channels, inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
        var dyData = Data(dy, nameof(dy), (long)planes * outPlane);
        var dxData = Data(dx, nameof(dx), (long)planes * inPlane);
        _partition.For(planes, 4, (g, dyData, dxData), static (s, _, start, end) =>
        {
            var g = s.g;
            int inPlane = g.InHeight * g.InWidth, outPlane = g.OutHeight * g.OutWidth;
            float count = g.Window * g.Window;
            s.dxData.AsSpan(start * inPlane, (end - start) * inPlane).Clear();
            for (int plane = start; plane < end; plane++)
            {
                int inBase = plane * inPlane, outIndex = plane * outPlane;
                for (int oy = 0; oy < g.OutHeight; oy++)
                    for (int ox = 0; ox < g.OutWidth; ox++, outIndex++)
                    {
                        int first = inBase + oy * g.Stride * g.InWidth + ox * g.Stride;
                        float share = s.dyData[outIndex] / count;
                        for (int wy = 0; wy < g.Window; wy++)
                            for (int wx = 0; wx < g.Window; wx++) s.dxData[first + wy * g.InWidth + wx] += share;
                    }
            }
        });
    }

    public void GlobalAvgPoolForward(int batch, int channels, int spatial, Tensor<float> x, Tensor<float> y)
    {
        CheckSizes(batch, channels, spatial);
        var xData = Data(x, nameof(x), (long)batch * channels * spatial);
        var yData = Data(y, nameof(y), (long)batch * channels);
        _partition.For(batch * channels, 16, (xData, yData, spatial), static (s, _, start, end) =>
        {
                        for (int plane = start; plane < end; plane++)
            {
                float sum = 0f;
                int offset = plane * s.spatial;
                for (int i = 0; i < s.spatial; i++) sum += s.xData[offset + i];
                s.yData[plane] = sum / s.spatial;
            }
        });
    }

    public void GlobalAvgPoolBackward(int batch, int channels, int spatial, Tensor<float> dy, Tensor<float> dx)
    {
        CheckSizes(batch, channels, spatial);
        var dyData = Data(dy, nameof(dy), (long)batch * channels);
        var dxData = Data(dx, nameof(dx), (long)batch * channels * spatial);
        _partition.For(batch * channels, 16, (dyData, dxData, spatial), static (s, _, start, end) =>
        {
                        for (int plane = start; plane < end; plane++)
                s.dxData.AsSpan(plane * s.spatial, s.spatial).Fill(s.dyData[plane] / s.spatial);
        });
    }

    private static void CheckSizes(int batch, int channels, int spatial)
    {
        if (batch <= 0 || channels <= 0 || spatial <= 0)
            throw new ArgumentException($"batch, channels and spatial must be positive, got {batch}, {channels}, {spatial}");
    }
}
