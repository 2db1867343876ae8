namespace LaPerm.Cpu.Tests;

public sealed class FmaPeakTests
{
    [Fact]
    public void MeasuresAFiniteRateOrSaysThereIsNoFma()
    {
        if (!FmaPeak.Applies)
        {
            Assert.Throws<PlatformNotSupportedException>(() => FmaPeak.MeasureGflops(1, TimeSpan.FromMilliseconds(5)));
            return;
        }
        // No speed is asserted (the machine may be busy): only that both thread counts run and report a rate.
        foreach (int threads in (int[])[1, 2])
        {
            double gflops = FmaPeak.MeasureGflops(threads, TimeSpan.FromMilliseconds(10), repeats: 1);
            Assert.True(double.IsFinite(gflops) && gflops > 0, $"{threads} thread(s): {gflops} GFLOP/s");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => FmaPeak.MeasureGflops(0, TimeSpan.FromMilliseconds(5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => FmaPeak.MeasureGflops(1, TimeSpan.FromMilliseconds(5), repeats: 0));
    }
}
