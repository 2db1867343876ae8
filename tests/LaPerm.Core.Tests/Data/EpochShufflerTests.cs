using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class EpochShufflerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(13)]
    [InlineData(97)]
    [InlineData(1000)]
    [InlineData(1024)]
    [InlineData(1025)]
    [InlineData(7919)]
    [InlineData(50000)]
    [InlineData(60000)]
    public void IsAPermutationAndAPureFunctionOfSeedAndEpoch(int count)
    {
        var order = EpochShuffler.Permutation(42, 3, count);
        Assert.Equal(Enumerable.Range(0, count), order.Order());
        Assert.Equal(order, EpochShuffler.Permutation(42, 3, count));
        if (count >= 13)
        {
            Assert.NotEqual(order, EpochShuffler.Permutation(42, 4, count));
            Assert.NotEqual(order, EpochShuffler.Permutation(43, 3, count));
            Assert.NotEqual(Enumerable.Range(0, count), order);
        }
    }

    [Fact]
    public void EachPositionIsComputedOnItsOwn()
    {
        const int count = 4099;
        var order = EpochShuffler.Permutation(9, 7, count);
        var slice = new int[100];
        Array.Fill(slice, -1);
        EpochShuffler.Fill(9, 7, count, 2000, slice);
        Assert.Equal(order.AsSpan(2000, 100).ToArray(), slice);
        foreach (int position in new[] { 0, 1, 2047, 4098 })
            Assert.Equal(order[position], EpochShuffler.IndexAt(9, 7, count, position));
        Assert.Throws<ArgumentOutOfRangeException>(() => EpochShuffler.IndexAt(9, 7, count, count));
        Assert.Throws<ArgumentOutOfRangeException>(() => EpochShuffler.Fill(9, 7, count, 4000, slice));
    }

    [Fact]
    public void EpochsShareFewPositions()
    {
        // Two independent random permutations agree in about one position; a weak shuffle (a
        // rotation, a fixed stride) agrees in many or in none of a structured set.
        const int count = 60000;
        var a = EpochShuffler.Permutation(1, 0, count);
        var b = EpochShuffler.Permutation(1, 1, count);
        Assert.InRange(Enumerable.Range(0, count).Count(i => a[i] == b[i]), 0, 8);
        // Neighbouring positions do not visit neighbouring records.
        Assert.InRange(Enumerable.Range(1, count - 1).Count(i => Math.Abs(a[i] - a[i - 1]) == 1), 0, 12);
    }

    [Fact]
    public void EveryPositionIsRoughlyUniform()
    {
        // Where element 0 lands over many epochs: each of 8 slots should get about 1/8.
        var hits = new int[8];
        for (int epoch = 0; epoch < 8000; epoch++)
            hits[Array.IndexOf(EpochShuffler.Permutation(7, epoch, 8), 0)]++;
        Assert.All(hits, h => Assert.InRange(h, 850, 1150));
    }
}
