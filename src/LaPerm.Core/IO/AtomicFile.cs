namespace LaPerm.Core.IO;

/// <summary>Writes a file so readers see either the old or the complete new contents (temp file + rename).</summary>
public static partial class AtomicFile
{
    public static void Write(string path, Action<Stream> write) => WriteThroughPath(path, temp =>
    {
        using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        write(stream);
    });

    /// <summary>
    /// The same for a writer that takes a file name (a library that saves to a path):
    /// <paramref name="write"/> writes the temporary file it is given.
    /// </summary>
    public static void WriteThroughPath(string path, Action<string> write)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(directory);
            write(temp);
            using (var written = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                written.Flush(flushToDisk: true);   // the contents reach the disk before the rename
            File.Move(temp, full, overwrite: true);
            DirectorySync.Flush(directory);   // the rename itself survives a power loss
        }
        // The file the caller asked for, not the temporary one the system's message names.
        catch (UnauthorizedAccessException e)
        {
            throw new UnauthorizedAccessException($"cannot write '{path}' ({e.Message.Replace(temp, full, StringComparison.Ordinal).TrimEnd('.')})", e);
        }
        catch (IOException e)
        {
            throw new IOException($"cannot write '{path}' ({e.Message.Replace(temp, full, StringComparison.Ordinal).TrimEnd('.')})", e);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>
    /// Deletes the temporary files that writers killed mid-write left in <paramref name="directory"/>
    /// (".NAME.PID.GUID.tmp"). Only for a directory no other writer is using (a run holds its lock).
    /// </summary>
    public static void RemoveLeftovers(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var f in Directory.GetFiles(directory, ".*.tmp"))
            if (TempName().IsMatch(Path.GetFileName(f))) File.Delete(f);   // ours only: another program's .x.tmp stays
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\..+\.[0-9]+\.[0-9a-f]{32}\.tmp$")]
    private static partial System.Text.RegularExpressions.Regex TempName();

    public static void WriteAllText(string path, string text) =>
        Write(path, s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)));
}
