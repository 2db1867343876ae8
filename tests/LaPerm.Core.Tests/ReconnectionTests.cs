using LaPerm.Core.Backend;

namespace LaPerm.Core.Tests;

public sealed class ReconnectionTests
{
    [Fact]
    public void OrderKeyIsMonotoneOverTheTotalOrder()
    {
        // The documented total order: a NaN with the sign bit set first, one without it last.
        float negativeNaN = BitConverter.UInt32BitsToSingle(0xFFC00000u), positiveNaN = BitConverter.UInt32BitsToSingle(0x7FC00001u);
        float[] ascending = [negativeNaN, float.NegativeInfinity, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 2f, float.PositiveInfinity, positiveNaN];
        for (int i = 1; i < ascending.Length; i++)
            Assert.True(Reconnection.OrderKey(ascending[i - 1]) < Reconnection.OrderKey(ascending[i]), $"{ascending[i - 1]} !< {ascending[i]}");
        foreach (var v in ascending)
            Assert.Equal(BitConverter.SingleToUInt32Bits(v), BitConverter.SingleToUInt32Bits(Reconnection.FromOrderKey(Reconnection.OrderKey(v))));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(7, 3)]
    [InlineData(64, 5)]
    [InlineData(257, 40)]
    [InlineData(1500, 100)]
    public void SyncRowMatchesBruteForceOnRowsWithTiesAndSignedZeros(int length, int distinct)
    {
        var rng = new Random(length * 31 + distinct);
        for (int trial = 0; trial < 20; trial++)
        {
            // Values drawn from a small pool so ties are common; the pool holds -0.0 and +0.0.
            float[] pool = [.. Enumerable.Range(0, distinct).Select(_ => (float)(rng.NextDouble() * 2 - 1)), -0.0f, 0.0f];
            var initial = Enumerable.Range(0, length).Select(_ => pool[rng.Next(pool.Length)]).ToArray();
            var sorted0 = new float[length];
            Reconnection.SortRow(initial, sorted0);
            var current = Enumerable.Range(0, length).Select(_ => rng.Next(4) == 0 ? pool[rng.Next(pool.Length)] : (float)rng.NextDouble()).ToArray();

            var fast = current.ToArray();
            Reconnection.SyncRow(fast, sorted0, new ulong[length]);
            var slow = current.ToArray();
            Reconnection.SyncRowBruteForce(slow, sorted0);

            Assert.Equal(slow.Select(BitConverter.SingleToUInt32Bits), fast.Select(BitConverter.SingleToUInt32Bits));
            Assert.True(Reconnection.IsPermutationOf(fast, sorted0));
        }
    }

    [Fact]
    public void IsPermutationOfComparesBitPatternsNotFloatValues()
    {
        float[] sorted0 = [-0.0f, 1f];
        Assert.True(Reconnection.IsPermutationOf([1f, -0.0f], sorted0));
        Assert.False(Reconnection.IsPermutationOf([1f, 0.0f], sorted0));   // +0.0 == -0.0 as floats, not as bits
        float nan = BitConverter.UInt32BitsToSingle(0x7FC00000u), otherNaN = BitConverter.UInt32BitsToSingle(0x7FC00001u);
        Assert.False(Reconnection.IsPermutationOf([otherNaN], [nan]));
    }

    [Fact]
    public void SyncedRowKeepsTheOptimizersRankOrder()
    {
        var rng = new Random(5);
        var initial = Enumerable.Range(0, 300).Select(_ => (float)rng.NextDouble()).ToArray();
        var sorted0 = new float[300];
        Reconnection.SortRow(initial, sorted0);
        var current = Enumerable.Range(0, 300).Select(_ => (float)(rng.NextDouble() * 10)).ToArray();
        var synced = current.ToArray();
        Reconnection.SyncRow(synced, sorted0, new ulong[300]);
        Assert.True(Reconnection.IsPermutationOf(synced, sorted0));
        // Distinct values on both sides: the synced row has exactly the optimizer's rank order.
        Assert.Equal(300, current.Distinct().Count());
        Assert.Equal(300, initial.Distinct().Count());
        for (int i = 0; i < 300; i++)
            for (int j = 0; j < 300; j++)
                if (current[i] < current[j]) Assert.True(synced[i] < synced[j], $"{i}, {j}");
    }
}
