using LaPerm.Core.Backend;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The progress readback as a host that runs ahead of a GPU sees it: the emulator's events answer
/// "not ready" a few times after each record (the emulator itself completes work at once).
/// </summary>
public sealed class EmuReadbackRingTests
{
    [Fact]
    public void CopiesInFlightAreNotHandedOverAndAfterTheWaitOnlyTheNewestIs()
    {
        using var backend = CudaBackend.Open("emu");
        ((EmulatorRuntime)backend.Device.Runtime).EventQueriesUntilComplete = 3;
        using var tensor = Compare.Put(backend, new[] { 1f, 2f }, 2);
        using var readback = backend.CreateReadback<float>(2);
        var got = new float[] { float.NaN, float.NaN };

        Assert.True(readback.Start(tensor, 10));
        backend.Upload<float>([3f, 4f], tensor);
        Assert.True(readback.Start(tensor, 20));
        Assert.False(readback.TryGet(got, out _));   // both still in flight
        backend.Upload<float>([5f, 6f], tensor);
        Assert.True(readback.Start(tensor, 30));
        backend.Upload<float>([7f, 8f], tensor);
        Assert.True(readback.Start(tensor, 40));
        // Four copies in flight and none complete: a fifth start is skipped, not queued over one of them.
        Assert.False(readback.Start(tensor, 50));
        Assert.Equal([float.NaN, float.NaN], got);

        backend.Synchronize();   // the host waits: every copy has landed
        Assert.True(readback.TryGet(got, out long tag));
        Assert.Equal(40, tag);
        Assert.Equal([7f, 8f], got);
        Assert.False(readback.TryGet(got, out _));   // the older ones were superseded, not queued
        // Asked often enough, a copy in flight completes on its own and is handed over with its tag.
        backend.Upload<float>([9f, 10f], tensor);
        Assert.True(readback.Start(tensor, 60));
        bool arrived = false;
        for (int query = 0; query < 10 && !arrived; query++) arrived = readback.TryGet(got, out tag);
        Assert.True(arrived);
        Assert.Equal((60L, 9f, 10f), (tag, got[0], got[1]));
    }
}
