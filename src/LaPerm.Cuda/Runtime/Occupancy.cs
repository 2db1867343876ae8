namespace LaPerm.Cuda.Runtime;

/// <summary>
/// What one SM offers resident blocks, as the CUDA occupancy calculator (cuda_occupancy.h) counts
/// it: registers per sub-partition in units per warp, shared memory per block rounded up with the
/// driver's reserved kilobyte, warps and blocks per SM.
/// </summary>
public sealed record SmResources(string Name, int RegistersPerSm, int SubPartitions, int RegisterUnitPerWarp, int MaxRegistersPerThread,
    int SharedBytesPerSm, int ReservedSharedPerBlock, int SharedUnit, int MaxWarpsPerSm, int MaxBlocksPerSm)
{
    /// <summary>
    /// Compute capability 9.0 (H100, H200): 64 Ki registers in 4 sub-partitions, 228 KB of shared
    /// memory at the largest carveout (1 KB of it reserved per block), 64 warps, 32 blocks.
    /// </summary>
    public static SmResources Hopper { get; } = new("sm_90", 65536, 4, 256, 255, 233472, 1024, 128, 64, 32);
}

/// <summary>
/// How many blocks of a kernel fit on one SM, and what stops one more: the minimum of the limits
/// from registers, shared memory (at the largest carveout; the driver may configure less when
/// another limit binds first), warps and blocks.
/// </summary>
public sealed record KernelOccupancy(int Threads, int BlocksPerSm, int ByRegisters, int BySharedMemory, int ByWarps, int ByBlocks,
    SmResources Sm)
{
    /// <summary>Resident warps over the SM's most: the "theoretical occupancy" Nsight Compute reports.</summary>
    public double Fraction => (double)BlocksPerSm * WarpsPerBlock / Sm.MaxWarpsPerSm;

    public int WarpsPerBlock => (Threads + 31) / 32;

    /// <summary>The limits that equal the result ("registers", "shared memory", "warps", "blocks"), joined by '+'.</summary>
    public string LimitedBy => string.Join("+", new[] { (ByRegisters, "registers"), (BySharedMemory, "shared memory"), (ByWarps, "warps"), (ByBlocks, "blocks") }
        .Where(l => l.Item1 == BlocksPerSm).Select(l => l.Item2));

    public static KernelOccupancy Of(SmResources sm, int threads, int registersPerThread, int sharedBytesPerBlock)
    {
        ArgumentNullException.ThrowIfNull(sm);
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), $"a block has at least 1 thread, got {threads}");
        if (registersPerThread < 0) throw new ArgumentOutOfRangeException(nameof(registersPerThread), $"registers per thread must not be negative, got {registersPerThread}");
        if (sharedBytesPerBlock < 0) throw new ArgumentOutOfRangeException(nameof(sharedBytesPerBlock), $"shared memory must not be negative, got {sharedBytesPerBlock}");
        int warps = (threads + 31) / 32;
        // Registers go to warps, in units, within each sub-partition: a sub-partition holds
        // floor(its registers / a warp's) warps, and the SM four times that.
        int perWarp = RoundUp(registersPerThread * 32, sm.RegisterUnitPerWarp);
        int byRegisters = registersPerThread > sm.MaxRegistersPerThread ? 0
            : perWarp == 0 ? int.MaxValue
            : sm.RegistersPerSm / sm.SubPartitions / perWarp * sm.SubPartitions / warps;
        int perBlock = RoundUp(sharedBytesPerBlock + sm.ReservedSharedPerBlock, sm.SharedUnit);
        int byShared = sm.SharedBytesPerSm / perBlock;
        int byWarps = sm.MaxWarpsPerSm / warps;
        int blocks = Math.Min(Math.Min(byRegisters, byShared), Math.Min(byWarps, sm.MaxBlocksPerSm));
        return new KernelOccupancy(threads, blocks, byRegisters, byShared, byWarps, sm.MaxBlocksPerSm, sm);
    }

    private static int RoundUp(int value, int unit) => (value + unit - 1) / unit * unit;
}
