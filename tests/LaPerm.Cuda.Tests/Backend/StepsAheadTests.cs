using LaPerm.Core.Backend;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The host queues at most <see cref="CudaBackend.StepsAhead"/> steps ahead of the device, so a
/// stop waits for a few steps, not for the driver's whole queue. The emulator's events stay "in
/// flight" here until waited for, as a slow GPU's would.
/// </summary>
public sealed class EmuStepsAheadTests
{
    [Fact]
    public void EachStepWaitsForTheOneBegunStepsAheadBefore()
    {
        using var backend = CudaBackend.Open("emu");
        var runtime = (EmulatorRuntime)backend.Device.Runtime;
        runtime.EventQueriesUntilComplete = int.MaxValue;
        const int Steps = 10;
        for (int step = 1; step <= Steps; step++)
        {
            backend.BeginStep(new StepScalars(step, 0, 0, 1, 0.001f, step));
            Assert.Equal(Math.Max(0, step - CudaBackend.StepsAhead), runtime.EventWaits.Count);
        }
        // The waits go round a ring of StepsAhead events: step s waits for what step s - StepsAhead recorded.
        var waits = runtime.EventWaits;
        Assert.Equal(CudaBackend.StepsAhead, waits.Take(CudaBackend.StepsAhead).Distinct().Count());
        for (int i = CudaBackend.StepsAhead; i < waits.Count; i++) Assert.Equal(waits[i - CudaBackend.StepsAhead], waits[i]);
    }
}
