using LaPerm.Core.Data;

namespace LaPerm.Core.Tests.Data;

public sealed class EpochShufflerTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(1000)]
    [InlineData(60000)]
    public void IsAPermutationAndAPureFunctionOfSeedAndEpoch(int count)
    {
        var order = EpochShuffler.Permutation(42, 3, count);
        Assert.Equal(Enumerable.Range(0, count), order.Order());
        Assert.Equal(order, EpochShuffler.Permutation(42, 3, count));
        if (count >= 1000)
        {
            Assert.NotEqual(order, EpochShuffler.Permutation(42, 4, count));
            Assert.NotEqual(order, EpochShuffler.Permutation(43, 3, count));
            Assert.NotEqual(Enumerable.Range(0, count), order);
        }
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
