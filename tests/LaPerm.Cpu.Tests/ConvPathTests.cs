using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

/// <summary>
/// The convolutions have several implementations (implicit-im2col GEMM, direct kernels for
/// suitable geometries); each must give exactly what the GEMM formulation gives: the forward
/// pass y[n] = W[cout, K] * col(x[n])[K, P] and the filter gradient dW = dy[cout, N*P] *
/// col(x)^T, computed here with an explicit column matrix and the backend's plain GEMM, bit
/// for bit and on 1, 2 and 3 threads.
/// </summary>
public sealed class ConvPathTests
{
    public static TheoryData<int, int, int, int, int, int, bool> Geometries() => new()
    {
        // batch, cin, size, cout, kernel, stride, same
        { 3, 1, 28, 8, 3, 1, false },    // conv7's first layer shape: rows of 26 (overlapping last segment)
        { 2, 30, 26, 7, 3, 1, false },   // K = 270: two k blocks; cout 7: a 1-row channel tile
        { 3, 2, 25, 3, 3, 1, false },    // 23 x 23 outputs: an odd number of 8-pixel segments
        { 2, 3, 10, 13, 3, 1, false },   // rows of exactly 8
        { 2, 3, 12, 17, 3, 1, false },   // cout 17: a full 16-channel panel (vector transpose of dy, 100 pixels: 4 left over) and a partial one
        { 2, 3, 12, 5, 3, 1, false },    // rows of 10, K = 27: direct (the overlapping segment wastes little)
        { 2, 4, 12, 6, 5, 2, true },     // strided, padded
        { 2, 2, 20, 3, 3, 1, true },     // stride 1, padded
        { 2, 3, 24, 5, 5, 2, true },     // conv7's strided 'same' layers: rows of 12, pads 1 top/left, 2 bottom/right
        { 2, 2, 33, 3, 3, 2, false },    // strided 'valid'
        { 2, 2, 32, 3, 4, 2, true },     // even kernel, stride 2
        { 2, 32, 12, 20, 3, 1, false },  // rows of 10, K = 288 (two k blocks): tap broadcast; cout 20: a partial second panel; 200 pixels: a partial last tile
        { 3, 8, 4, 18, 4, 1, false },    // 1x1 output (conv7's last layer): tap broadcast
        { 2, 40, 12, 5, 5, 2, true },    // rows of 6, K = 1000 (four k blocks), strided and padded: tap broadcast
    };

    [Theory]
    [MemberData(nameof(Geometries))]
    public void ForwardAndFilterGradientEqualTheGemmFormulation(int batch, int cin, int size, int cout, int kernel, int stride, bool same)
    {
        var g = ConvGeometry.Create(batch, cin, size, size, cout, kernel, kernel, stride, same);
        var rng = new Random(batch * 1000 + cin * 100 + size * 10 + kernel);
        var x = Data.Uniform(rng, g.InputLength);
        var w = Data.Uniform(rng, g.WeightLength);
        var dy = Data.Uniform(rng, g.OutputLength);
        int k = cin * kernel * kernel, p = g.OutHeight * g.OutWidth;
        var columns = Columns(g, x);   // [K, N*P]

        float[] expectedY = new float[g.OutputLength];
        float[] expectedDw;
        using (var rig = new TestRig(1))
        {
            var tw = rig.Input(w, cout, k);
            for (int n = 0; n < batch; n++)
            {
                var image = new float[k * p];
                for (int row = 0; row < k; row++) Array.Copy(columns, row * batch * p + n * p, image, row * p, p);
                var ty = rig.Poisoned(cout, p);
                rig.Backend.Gemm(false, false, cout, p, k, 1f, tw, rig.Input(image, k, p), 0f, ty);
                Array.Copy(rig.Get(ty), 0, expectedY, n * cout * p, cout * p);
            }
            var gathered = new float[cout * batch * p];   // dy as [cout, N*P]
            for (int n = 0; n < batch; n++)
                for (int co = 0; co < cout; co++)
                    Array.Copy(dy, (n * cout + co) * p, gathered, co * batch * p + n * p, p);
            var tdw = rig.Poisoned(cout, k);
            rig.Backend.Gemm(false, true, cout, k, batch * p, 1f, rig.Input(gathered, cout, batch * p), rig.Input(columns, k, batch * p), 0f, tdw);
            expectedDw = rig.Get(tdw);
        }

        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var rig = new TestRig(threads);
            var tx = rig.Input(x, batch, cin, size, size);
            var tw = rig.Input(w, cout, cin, kernel, kernel);
            var ty = rig.Poisoned(batch, cout, g.OutHeight, g.OutWidth);
            rig.Backend.ConvForward(g, tx, tw, ty);
            Check.BitIdentical(rig.Get(ty), expectedY, $"y ({threads} threads)");
            var tdw = rig.Poisoned(cout, cin, kernel, kernel);
            rig.Backend.ConvBackwardFilter(g, tx, rig.Input(dy, batch, cout, g.OutHeight, g.OutWidth), tdw);
            Check.BitIdentical(rig.Get(tdw), expectedDw, $"dW ({threads} threads)");
        }
    }

    public static TheoryData<int, int, int, int, int, int, bool, int> DataGradientGeometries() => new()
    {
        // batch, cin, size, cout, kernel, stride, same, images per group (from ColumnBudget; capped at an eighth of the batch)
        { 19, 3, 12, 5, 3, 1, false, 1 },    // one image per group: dy read in place
        { 19, 3, 12, 5, 3, 1, false, 2 },    // groups of 2 (+ a last one of 1): dy gathered per group
        { 17, 4, 12, 7, 5, 2, true, 3 },     // strided, asymmetric padding; groups of 2 (the cap) on 17 images
        { 16, 30, 10, 6, 3, 1, true, 1 },    // K = 270 rows of column gradients, stride-1 padded
        { 9, 2, 24, 3, 5, 2, true, 1 },      // conv7's strided 'same' layers: rows of 12 (the vector stride-2 col2im and a scalar tail)
        { 5, 2, 37, 3, 3, 2, false, 2 },     // strided 'valid', rows of 18: two vector steps
        { 24, 8, 4, 13, 4, 1, false, 64 },   // 1x1 output (conv7's last layer): groups of 3 (the cap)
    };

    /// <summary>
    /// The data gradient runs its groups of images on whichever thread claims them; dx must equal
    /// the GEMM formulation dcol[K, P] = W^T * dy[n] followed by col2im (each dx element summing its
    /// taps in (ci, ky, kx) order from zero) bit for bit, on 1, 2 and 3 threads.
    /// </summary>
    [Theory]
    [MemberData(nameof(DataGradientGeometries))]
    public void DataGradientEqualsTheGemmFormulation(int batch, int cin, int size, int cout, int kernel, int stride, bool same, int groupImages)
    {
        var g = ConvGeometry.Create(batch, cin, size, size, cout, kernel, kernel, stride, same);
        var rng = new Random(batch * 1000 + cin * 100 + size * 10 + kernel);
        var w = Data.Uniform(rng, g.WeightLength);
        var dy = Data.Uniform(rng, g.OutputLength);
        int k = cin * kernel * kernel, p = g.OutHeight * g.OutWidth;

        var expected = new float[g.InputLength];
        using (var rig = new TestRig(1))
        {
            var tw = rig.Input(w, cout, k);
            for (int n = 0; n < batch; n++)
            {
                var image = new float[cout * p];
                Array.Copy(dy, n * cout * p, image, 0, cout * p);
                var tcol = rig.Poisoned(k, p);
                rig.Backend.Gemm(true, false, k, p, cout, 1f, tw, rig.Input(image, cout, p), 0f, tcol);
                var col = rig.Get(tcol);
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < kernel; ky++)
                        for (int kx = 0; kx < kernel; kx++)
                        {
                            int row = (ci * kernel + ky) * kernel + kx;
                            for (int oy = 0; oy < g.OutHeight; oy++)
                                for (int ox = 0; ox < g.OutWidth; ox++)
                                {
                                    int iy = oy * stride - g.PadTop + ky, ix = ox * stride - g.PadLeft + kx;
                                    if (iy >= 0 && iy < size && ix >= 0 && ix < size)
                                        expected[((n * cin + ci) * size + iy) * size + ix] += col[row * p + oy * g.OutWidth + ox];
                                }
                        }
            }
        }

        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var rig = new TestRig(threads);
            rig.Backend.ColumnBudget = groupImages * k * p;
            var tdx = rig.Poisoned(batch, cin, size, size);
            rig.Backend.ConvBackwardData(g, rig.Input(dy, batch, cout, g.OutHeight, g.OutWidth), rig.Input(w, cout, cin, kernel, kernel), tdx);
            Check.BitIdentical(rig.Get(tdx), expected, $"dx ({threads} threads, groups of up to {groupImages})");
        }
    }

    /// <summary>The explicit column matrix [K = (ci, ky, kx), N*P = (n, oy, ox)], zeros for padding taps.</summary>
    private static float[] Columns(ConvGeometry g, float[] x)
    {
        int k = g.InChannels * g.KernelHeight * g.KernelWidth, p = g.OutHeight * g.OutWidth, width = g.Batch * p;
        var columns = new float[k * width];
        for (int ci = 0; ci < g.InChannels; ci++)
            for (int ky = 0; ky < g.KernelHeight; ky++)
                for (int kx = 0; kx < g.KernelWidth; kx++)
                {
                    int row = (ci * g.KernelHeight + ky) * g.KernelWidth + kx;
                    for (int n = 0; n < g.Batch; n++)
                        for (int oy = 0; oy < g.OutHeight; oy++)
                            for (int ox = 0; ox < g.OutWidth; ox++)
                            {
                                int iy = oy * g.Stride - g.PadTop + ky, ix = ox * g.Stride - g.PadLeft + kx;
                                bool inside = iy >= 0 && iy < g.InHeight && ix >= 0 && ix < g.InWidth;
                                columns[row * width + n * p + oy * g.OutWidth + ox] =
                                    inside ? x[((n * g.InChannels + ci) * g.InHeight + iy) * g.InWidth + ix] : 0f;
                            }
                }
        return columns;
    }
}
