namespace LaPerm.Core.IO;

/// <summary>Whether two paths a user gave name the same file or directory.</summary>
public static class FilePaths
{
    /// <summary>
    /// True when <paramref name="a"/> and <paramref name="b"/> name the same place once made
    /// absolute and every symbolic link on the way is followed (runs/x where runs links to
    /// /data/runs is /data/runs/x; macOS's /tmp is /private/tmp). Windows' and macOS's file
    /// systems ignore case by default, so there Runs/x is runs/x.
    /// </summary>
    public static bool Same(string a, string b)
    {
        var names = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return string.Equals(Resolved(a), Resolved(b), names);
    }

    /// <summary>
    /// Why <paramref name="path"/> is not the file (or, with <paramref name="directory"/>, the
    /// directory) expected: "does not exist", or what is there instead.
    /// </summary>
    public static string Missing(string path, bool directory = false) =>
        directory ? (File.Exists(path) ? "is a file, not a directory" : "does not exist")
                  : (Directory.Exists(path) ? "is a directory, not a file" : "does not exist");

    /// <summary>
    /// The absolute path with each existing component's links followed, left to right, as the
    /// operating system walks it: a ".." is the parent of what the path has reached so far (of a
    /// link's target, not of the link). Components that do not exist (yet) are kept as written;
    /// a loop of links is followed 40 times, then left as it stands.
    /// </summary>
    public static string Resolved(string path)
    {
        // 40 links in all, as Linux allows one lookup (ELOOP beyond).
        int links = 40;
        // Absolute without GetFullPath, which would fold "a/.." away before "a" is followed.
        return Resolve(Path.IsPathRooted(path) ? path : Path.Combine(Directory.GetCurrentDirectory(), path), ref links);
    }

    private static string Resolve(string absolute, ref int links)
    {
        string root = Path.GetPathRoot(absolute) ?? "";
        string resolved = root;
        foreach (var part in absolute[root.Length..].Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                resolved = Path.GetDirectoryName(resolved) ?? root;
                continue;
            }
            string next = Path.Combine(resolved, part);
            if (links > 0 && new FileInfo(next).LinkTarget is { } target)
            {
                links--;
                // A relative target is relative to the link's directory, which is resolved already.
                next = Resolve(Path.IsPathRooted(target) ? target : Path.Combine(resolved, target), ref links);
            }
            resolved = next;
        }
        return resolved;
    }
}
