using System.Globalization;

namespace LaPerm.Cuda.Backend;

/// <summary>An allocation did not fit in device memory; the message names the sizes and what to do.</summary>
public sealed class DeviceMemoryException : Exception
{
    public DeviceMemoryException(string device, long requestedBytes, long freeBytes, long totalBytes, Exception? inner = null)
        : base(string.Create(CultureInfo.InvariantCulture,
            $"out of device memory on {device}: {requestedBytes:N0} bytes requested, {freeBytes:N0} of {totalBytes:N0} bytes free; try a smaller --batch."), inner)
    {
        RequestedBytes = requestedBytes;
        FreeBytes = freeBytes;
        TotalBytes = totalBytes;
    }

    public long RequestedBytes { get; }
    public long FreeBytes { get; }
    public long TotalBytes { get; }
}
