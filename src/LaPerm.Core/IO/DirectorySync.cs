using System.Runtime.InteropServices;

namespace LaPerm.Core.IO;

/// <summary>
/// fsync of a directory, so that a rename or a new file inside it survives a power loss. .NET has
/// no API for it; on Linux it is open(O_RDONLY) + fsync + close from libc. Elsewhere it does
/// nothing (Windows commits directory entries with the file metadata).
/// </summary>
internal static partial class DirectorySync
{
    private const int Einval = 22, Enotsup = 95;   // Linux errno values

    public static void Flush(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        int fd = Open(directory, 0);
        if (fd < 0) throw new IOException($"cannot open directory '{directory}' to flush it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            // EINVAL / ENOTSUP: a file system that cannot sync a directory (some network and FUSE ones); nothing to do there.
            if (Fsync(fd) != 0 && Marshal.GetLastPInvokeError() is not (Einval or Enotsup) and var errno)
                throw new IOException($"cannot flush directory '{directory}' to disk (errno {errno})");
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
