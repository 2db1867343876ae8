using LaPerm.Core.Backend;

namespace LaPerm.Cpu.Tests;

public sealed class ReconnectTests
{
    private static readonly float[] Specials = [-0.0f, 0.0f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity];

    /// <summary>Rows mixing a small pool (ties), signed zeros, NaNs of both signs and infinities.</summary>
    private static float[] AwkwardValues(Random rng, int count)
    {
        var pool = Data.Uniform(rng, 5);
        var result = new float[count];
        for (int i = 0; i < count; i++)
        {
            int kind = rng.Next(10);
            result[i] = kind < 3 ? pool[rng.Next(pool.Length)] : kind < 5 ? Specials[rng.Next(Specials.Length)] : (float)(rng.NextDouble() * 2 - 1);
        }
        return result;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void MatchesBruteForceOnRowsWithTiesSignedZerosAndNaN(int threads)
    {
        var rng = new Random(11);
        using var rig = new TestRig(threads);
        (int Rows, int Length)[] layout = [(1, 1), (7, 1), (1, 9), (13, 29), (40, 3), (3, 300), (128, 64)];
        var initial = layout.Select(l => AwkwardValues(rng, l.Rows * l.Length)).ToArray();
        var tensors = layout.Select((l, t) => rig.Input(initial[t], l.Rows, l.Length)).ToArray();
        var targets = layout.Select((l, t) => new ReconnectTarget($"t{t}", tensors[t], l.Rows, l.Length)).ToArray();
        using var plan = rig.Backend.PrepareReconnect(targets);

        for (int t = 0; t < layout.Length; t++)
        {
            var sorted = new float[initial[t].Length];
            plan.DownloadSortedInitial(t, sorted);
            for (int r = 0; r < layout[t].Rows; r++)
            {
                var expected = new float[layout[t].Length];
                Reconnection.SortRow(initial[t].AsSpan(r * layout[t].Length, layout[t].Length), expected);
                Check.BitIdentical(sorted.AsSpan(r * layout[t].Length, layout[t].Length), expected, $"sorted0 of t{t} row {r}");
            }
        }

        for (int round = 0; round < 3; round++)
        {
            var current = layout.Select(l => AwkwardValues(rng, l.Rows * l.Length)).ToArray();
            for (int t = 0; t < layout.Length; t++) rig.Backend.Upload<float>(current[t], tensors[t]);
            rig.Backend.Reconnect(plan);
            for (int t = 0; t < layout.Length; t++)
            {
                var got = rig.Get(tensors[t]);
                int length = layout[t].Length;
                for (int r = 0; r < layout[t].Rows; r++)
                {
                    var expected = current[t].AsSpan(r * length, length).ToArray();
                    var sorted0 = new float[length];
                    Reconnection.SortRow(initial[t].AsSpan(r * length, length), sorted0);
                    Reconnection.SyncRowBruteForce(expected, sorted0);
                    Check.BitIdentical(got.AsSpan(r * length, length), expected, $"round {round}, t{t} row {r}");
                    Assert.True(Reconnection.IsPermutationOf(got.AsSpan(r * length, length), sorted0));
                }
            }
        }
    }

    [Fact]
    public void RejectsATargetWhoseRowsDoNotCoverTheTensor()
    {
        using var rig = new TestRig();
        var w = rig.Input(Data.Uniform(new Random(1), 12), 12);
        var ex = Assert.Throws<ArgumentException>(() => rig.Backend.PrepareReconnect([new ReconnectTarget("w", w, 5, 2)]));
        Assert.Contains("'w'", ex.Message);
    }
}
