using System.Globalization;
using LaPerm.Cuda.Interop;

namespace LaPerm.Cuda.Runtime;

/// <summary>An allocation did not fit in device memory; the message names the sizes and what to do.</summary>
public sealed class DeviceMemoryException : Exception
{
    public DeviceMemoryException(string device, long requestedBytes, long freeBytes, long totalBytes, Exception? inner = null, string? purpose = null)
        : base(string.Create(CultureInfo.InvariantCulture,
            $"out of device memory on {device}: {requestedBytes:N0} bytes requested{(purpose is null ? "" : $" for {purpose}")}, {freeBytes:N0} of {totalBytes:N0} bytes free; a smaller --batch shrinks the activations and workspaces (not the weights, their sorted initial rows or the optimizer state)."), inner)
    {
        RequestedBytes = requestedBytes;
        FreeBytes = freeBytes;
        TotalBytes = totalBytes;
    }

    public long RequestedBytes { get; }
    public long FreeBytes { get; }
    public long TotalBytes { get; }

    /// <summary>Whether <paramref name="e"/> says an allocation did not fit: the driver's status, or the host's (the emulator).</summary>
    public static bool IsOutOfMemory(Exception e) => e is CudaException { ErrorName: "CUDA_ERROR_OUT_OF_MEMORY" } or OutOfMemoryException;
}
