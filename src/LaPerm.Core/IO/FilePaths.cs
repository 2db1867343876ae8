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
    /// The absolute path with each existing component's links followed, left to right; the
    /// components that do not exist (yet) are kept as written. A loop of links is followed
    /// 40 times, then left as it stands.
    /// </summary>
    public static string Resolved(string path)
    {
        // 40 links in all, as Linux allows one lookup (ELOOP beyond).
        int links = 40;
        return Resolve(Path.GetFullPath(path), ref links);
    }

    private static string Resolve(string full, ref int links)
    {
        full = Path.TrimEndingDirectorySeparator(full);
        string root = Path.GetPathRoot(full) ?? "";
        string resolved = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(resolved, part);
            // The target (relative to the link's directory) may pass through links of its own.
            if (links > 0 && new FileInfo(next) is { LinkTarget: not null } link && link.ResolveLinkTarget(returnFinalTarget: false) is { } target)
            {
                links--;
                next = Resolve(Path.GetFullPath(target.FullName), ref links);
            }
            resolved = next;
        }
        return resolved;
    }
}
