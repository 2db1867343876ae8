namespace LaPerm.Cpu.Tests;

/// <summary>
/// WorkSharing hands blocks of an index range to whichever thread claims them; every op relies on
/// each index being run exactly once, on slots never being shared by blocks running at the same
/// time, on failures reaching the caller and on workers coming back after they idled out.
/// </summary>
public sealed class WorkSharingTests
{
    [Theory]
    [InlineData(1, 1000, 1)]
    [InlineData(2, 1000, 1)]
    [InlineData(3, 1001, 7)]
    [InlineData(2, 3, 1)]
    [InlineData(2, 5, 100)]
    public void EveryIndexRunsExactlyOnceAndSlotsAreNeverShared(int threads, int count, int minPerBlock)
    {
        using var sharing = new WorkSharing(threads);
        for (int repeat = 0; repeat < 20; repeat++)
        {
            var hits = new int[count];
            var busy = new int[threads];
            int collisions = 0, tooSmall = 0;
            sharing.For(count, minPerBlock, 0, (_, slot, start, end) =>
            {
                if (Interlocked.Exchange(ref busy[slot], 1) != 0) Interlocked.Increment(ref collisions);
                if (end - start < Math.Min(minPerBlock, count) && end != count) Interlocked.Increment(ref tooSmall);
                for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
                Thread.SpinWait(200);
                Volatile.Write(ref busy[slot], 0);
            });
            Assert.All(hits, h => Assert.Equal(1, h));
            Assert.Equal(0, collisions);
            Assert.Equal(0, tooSmall);
        }
    }

    [Fact]
    public void AFailingBlockReachesTheCallerAndTheOthersStillRun()
    {
        using var sharing = new WorkSharing(2);
        var hits = new int[64];
        var e = Assert.Throws<InvalidOperationException>(() => sharing.For(64, 1, 0, (_, _, start, end) =>
        {
            for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
            if (start == 0) throw new InvalidOperationException("block 0");
        }));
        Assert.Equal("block 0", e.Message);
        Assert.All(hits, h => Assert.Equal(1, h));
        int total = 0;
        sharing.For(64, 1, 0, (_, _, start, end) => Interlocked.Add(ref total, end - start));
        Assert.Equal(64, total);
    }

    [Fact]
    public void WorkersThatIdledOutComeBack()
    {
        using var sharing = new WorkSharing(2, TimeSpan.FromMilliseconds(20));
        var threadsSeen = new HashSet<int>();
        for (int round = 0; round < 3; round++)
        {
            var hits = new int[256];
            sharing.For(256, 1, 0, (_, _, start, end) =>
            {
                lock (threadsSeen) threadsSeen.Add(Environment.CurrentManagedThreadId);
                for (int i = start; i < end; i++) hits[i]++;
                Thread.Sleep(1);   // long enough blocks that a worker joins
            });
            Assert.All(hits, h => Assert.Equal(1, h));
            Thread.Sleep(100);     // the worker times out and ends
        }
        Assert.True(threadsSeen.Count >= 2, $"only {threadsSeen.Count} thread ran blocks");
    }
}
