namespace LaPerm.Cuda.Tests;

/// <summary>
/// Every test class that runs on a real GPU belongs to this collection, which runs alone: the
/// classes share the device's primary context, and a context-wide synchronisation in one class
/// (cublasDestroy and cudnnDestroy synchronise the device, so every backend's disposal does)
/// would invalidate a stream capture running in another. The emulator has no such coupling.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "Gpu";
}
