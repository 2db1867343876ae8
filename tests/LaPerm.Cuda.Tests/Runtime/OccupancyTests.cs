using LaPerm.Cuda.Runtime;
using Xunit;

namespace LaPerm.Cuda.Tests.Runtime;

public sealed class OccupancyTests
{
    // Nsight Compute on an H200 (perf/results/2026-11-29-h200-check.md, ncu-reconnect): per launch
    // its registers per thread, block size and dynamic shared memory, and what ncu reported:
    // theoretical occupancy (%) and "Block Limit Registers".
    [Theory]
    [InlineData("reconnect_bucket_narrow_256", 64, 32, 4224, 50.0, 32)]
    [InlineData("reconnect_bucket_narrow_512", 80, 32, 7424, 37.5, 24)]
    [InlineData("reconnect_bucket_narrow_1024", 80, 64, 14592, 37.5, 12)]
    [InlineData("reconnect_bucket_narrow_2048", 80, 128, 28928, 37.5, 6)]
    [InlineData("reconnect_bucket_narrow_4096", 80, 256, 36096, 37.5, 3)]
    [InlineData("reconnect_bucket_narrow_8192", 64, 512, 71936, 50.0, 2)]
    [InlineData("reconnect_bucket_staged_256", 56, 256, 11392, 50.0, 4)]
    [InlineData("reconnect_bucket_staged_512", 56, 256, 14464, 50.0, 4)]
    [InlineData("reconnect_bucket_staged_1024", 56, 256, 20608, 50.0, 4)]
    [InlineData("reconnect_bucket_staged_2048", 64, 256, 32896, 50.0, 4)]
    [InlineData("reconnect_bucket_staged_4096", 64, 512, 44160, 50.0, 2)]
    [InlineData("reconnect_bucket_staged_8192", 95, 512, 71936, 25.0, 1)]
    [InlineData("reconnect_bucket_i1", 56, 256, 9088, 50.0, 4)]
    [InlineData("reconnect_bucket_i4", 64, 256, 20608, 50.0, 4)]
    [InlineData("reconnect_bucket_i8", 63, 256, 32896, 50.0, 4)]
    public void HopperModelReproducesNsightComputeOnTheH200(string kernel, int registers, int threads, int sharedBytes, double theoreticalPercent,
        int blockLimitRegisters)
    {
        KernelOccupancy o = KernelOccupancy.Of(SmResources.Hopper, threads, registers, sharedBytes);
        Assert.True(blockLimitRegisters == o.ByRegisters, $"{kernel}: {o.ByRegisters} blocks by registers, ncu said {blockLimitRegisters}");
        Assert.Equal(theoreticalPercent, 100 * o.Fraction, 6);
    }

    [Fact]
    public void EachLimitBindsWhereItShould()
    {
        // Shared memory: 100 KB blocks, two per SM (with the reserved KB each, 202 KB of 228).
        KernelOccupancy shared = KernelOccupancy.Of(SmResources.Hopper, 128, 32, 100 * 1024);
        Assert.Equal((2, "shared memory"), (shared.BlocksPerSm, shared.LimitedBy));
        // One more byte per block than fits three (76 KB - 1 KB reserved, rounded to 128 B).
        Assert.Equal(3, KernelOccupancy.Of(SmResources.Hopper, 32, 32, 233472 / 3 - 1024).BySharedMemory);
        Assert.Equal(2, KernelOccupancy.Of(SmResources.Hopper, 32, 32, 233472 / 3 - 1024 + 1).BySharedMemory);
        // Warps: 1024-thread blocks with few registers, two per SM (at 32 registers the register
        // file holds exactly two as well).
        KernelOccupancy wide = KernelOccupancy.Of(SmResources.Hopper, 1024, 16, 0);
        Assert.Equal((2, "warps"), (wide.BlocksPerSm, wide.LimitedBy));
        Assert.Equal("registers+warps", KernelOccupancy.Of(SmResources.Hopper, 1024, 32, 0).LimitedBy);
        // Blocks: 32 one-warp blocks, registers and warps to spare.
        KernelOccupancy small = KernelOccupancy.Of(SmResources.Hopper, 32, 16, 0);
        Assert.Equal((32, "blocks"), (small.BlocksPerSm, small.LimitedBy));
        // Registers count per sub-partition: 9 warps of 64 registers fit 3 blocks (8 warps in each of 4),
        // 288 threads at 72 registers (7 per sub-partition, 28 in all) fit 3 too, at 80 two.
        Assert.Equal(3, KernelOccupancy.Of(SmResources.Hopper, 288, 64, 0).ByRegisters);
        Assert.Equal(3, KernelOccupancy.Of(SmResources.Hopper, 288, 72, 0).ByRegisters);
        Assert.Equal(2, KernelOccupancy.Of(SmResources.Hopper, 288, 80, 0).ByRegisters);
        // Over the per-thread maximum: nothing fits.
        Assert.Equal(0, KernelOccupancy.Of(SmResources.Hopper, 32, 256, 0).BlocksPerSm);
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelOccupancy.Of(SmResources.Hopper, 0, 32, 0));
    }
}
