namespace LaPerm.Cpu.Tests;

public sealed class GemmTests
{
    public static TheoryData<bool, bool, int, int, int> Shapes()
    {
        var data = new TheoryData<bool, bool, int, int, int>();
        // Edge sizes around the 6x16 register tile, k beyond one 256 block, n beyond one 1024 block,
        // and the dense-layer shapes the trainer uses.
        int[][] shapes = [[1, 1, 1], [5, 7, 3], [6, 16, 8], [13, 33, 257], [37, 1030, 19], [128, 128, 784], [7, 300, 600]];
        foreach (var s in shapes)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    data.Add(ta, tb, s[0], s[1], s[2]);
        return data;
    }

    /// <summary>
    /// Tolerance: the classic bound for a k-term float dot product, |error| &lt;= gamma_(k+2) * sum |a_i b_i|
    /// (+ |beta c|), gamma_j = j u / (1 - j u), u = 2^-24. It holds for any summation order, so it checks the
    /// kernel without assuming one, while an indexing error gives an error of the order of the result itself.
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesDoubleReferenceWithinTheFloatErrorBound(bool transposeA, bool transposeB, int m, int n, int k)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        using var rig = new TestRig();
        var a = Data.Uniform(rng, m * k);
        var b = Data.Uniform(rng, k * n);
        var c0 = Data.Uniform(rng, m * n);
        foreach (var (alpha, beta) in new[] { (1f, 0f), (0.75f, 1f), (-1.5f, 0.25f) })
        {
            var ta = rig.Input(a, m * k);
            var tb = rig.Input(b, k * n);
            var tc = beta == 0 ? rig.Poisoned(m * n) : rig.Input(c0, m * n);   // beta = 0 must not read C
            rig.Backend.Gemm(transposeA, transposeB, m, n, k, alpha, ta, tb, beta, tc);
            var got = rig.Get(tc);
            var da = Data.ToDouble(a);
            var db = Data.ToDouble(b);
            var dc = Data.ToDouble(c0);
            var expected = Reference.Gemm(transposeA, transposeB, m, n, k, alpha, da, db, beta, dc);
            var magnitude = Reference.GemmMagnitude(transposeA, transposeB, m, n, k, alpha, da, db, beta, dc);
            double u = Math.Pow(2, -24), gamma = (k + 3) * u / (1 - (k + 3) * u);
            for (int i = 0; i < got.Length; i++)
            {
                double error = Math.Abs(got[i] - expected[i]);
                Assert.True(error <= gamma * magnitude[i] + 1e-30,
                    $"alpha {alpha} beta {beta}: C[{i}] = {got[i]:R}, expected {expected[i]:R}, error {error:E2} > bound {gamma * magnitude[i]:E2}");
            }
        }
    }

    [Fact]
    public void ZeroKScalesCByBeta()
    {
        using var rig = new TestRig();
        var rng = new Random(5);
        var c0 = Data.Uniform(rng, 12);
        var c = rig.Input(c0, 12);
        rig.Backend.Gemm(false, false, 3, 4, 0, 1f, rig.Input(Data.Uniform(rng, 1), 1), rig.Input(Data.Uniform(rng, 1), 1), 0.5f, c);
        var got = rig.Get(c);
        for (int i = 0; i < 12; i++) Assert.Equal(0.5f * c0[i], got[i]);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void ResultIsBitIdenticalForAnyThreadCount(bool transposeA, bool transposeB)
    {
        const int m = 97, n = 531, k = 300;
        var rng = new Random(17);
        var a = Data.Uniform(rng, m * k);
        var b = Data.Uniform(rng, k * n);
        var c0 = Data.Uniform(rng, m * n);
        float[]? first = null;
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            using var rig = new TestRig(threads);
            var tc = rig.Input(c0, m * n);
            rig.Backend.Gemm(transposeA, transposeB, m, n, k, 0.5f, rig.Input(a, m * k), rig.Input(b, k * n), 0.25f, tc);
            var got = rig.Get(tc);
            if (first is null) first = got;
            else Check.BitIdentical(first, got, $"C with {threads} threads vs 1");
        }
    }

    [Fact]
    public void RejectsTooSmallOperands()
    {
        using var rig = new TestRig();
        var small = rig.Poisoned(5);
        var ex = Assert.Throws<ArgumentException>(() => rig.Backend.Gemm(false, false, 2, 3, 4, 1f, small, rig.Poisoned(12), 0f, rig.Poisoned(6)));
        Assert.Contains("a has 5 elements", ex.Message);
    }
}
