using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using LaPerm.Core.IO;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// The checkpoints of one run: RUN/checkpoints/step-NNNNNNNN/ directories, each with a
/// manifest.json that lists every file with its size and SHA-256, and a `latest` file naming the
/// newest. A checkpoint is built under .tmp-step-NNNNNNNN, every file and the directory are
/// fsynced, and only then is it renamed into place and `latest` replaced (temp + rename), so a
/// kill at any moment leaves either the old or the new checkpoint complete, never a mix.
/// </summary>
public sealed class CheckpointStore(string runDirectory)
{
    public const string ManifestFile = "manifest.json";
    private const string TempPrefix = ".tmp-";
    private const string DeletingPrefix = ".deleting-";

    private const string FolderName = "checkpoints";

    public string Directory { get; } = Path.Combine(runDirectory, FolderName);
    public string LatestPointer => Path.Combine(Directory, "latest");

    public static string NameOf(long step) => string.Create(CultureInfo.InvariantCulture, $"step-{step:D8}");

    public static long? StepOf(string name) =>
        name.StartsWith("step-", StringComparison.Ordinal) && long.TryParse(name.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out long s) ? s : null;

    /// <summary>
    /// For a file inside a checkpoint (RUN/checkpoints/step-NNNNNNNN/FILE): the run directory, as
    /// <paramref name="file"/> spells paths (a relative path stays relative, to the current
    /// directory), and the checkpoint's name; otherwise null.
    /// </summary>
    public static (string RunDirectory, string Checkpoint)? Containing(string file)
    {
        string? checkpoint = Path.GetDirectoryName(Path.GetFullPath(file)), checkpoints = checkpoint is null ? null : Path.GetDirectoryName(checkpoint);
        if (checkpoint is null || checkpoints is null || StepOf(Path.GetFileName(checkpoint)) is null || Path.GetFileName(checkpoints) != FolderName
            || Path.GetDirectoryName(checkpoints) is not { } run)
            return null;
        return (Path.IsPathRooted(file) ? run : Path.GetRelativePath(".", run), Path.GetFileName(checkpoint));
    }

    /// <summary>Removes what a killed writer left behind (temporary and half-deleted checkpoints).</summary>
    public void RemoveLeftovers()
    {
        if (!System.IO.Directory.Exists(Directory)) return;
        foreach (var d in System.IO.Directory.GetDirectories(Directory))
        {
            string name = Path.GetFileName(d);
            if (name.StartsWith(TempPrefix, StringComparison.Ordinal) || name.StartsWith(DeletingPrefix, StringComparison.Ordinal))
                System.IO.Directory.Delete(d, recursive: true);
        }
        foreach (var f in System.IO.Directory.GetFiles(Directory, ".latest*"))
            File.Delete(f);
        foreach (var f in System.IO.Directory.GetFiles(Directory, ".write-probe-*"))
            File.Delete(f);
    }

    /// <summary>
    /// Writes checkpoint <paramref name="step"/>: each writer creates its file (named by the
    /// key) in the directory it is given. Then keeps the newest <paramref name="keep"/>.
    /// Returns the checkpoint's directory.
    /// </summary>
    public string Write(long step, IReadOnlyList<(string File, Action<string> Write)> files, int keep)
    {
        string name = NameOf(step);
        string temp = Path.Combine(Directory, TempPrefix + name);
        string final = Path.Combine(Directory, name);
        System.IO.Directory.CreateDirectory(Directory);
        if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
        try
        {
            System.IO.Directory.CreateDirectory(temp);
            Fill(temp, step, files);
            if (System.IO.Directory.Exists(final)) Remove(final);
            System.IO.Directory.Move(temp, final);
        }
        catch
        {
            // Give the space back (a full disk or a directory made read-only are the usual causes);
            // the previous checkpoints are untouched.
            if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
            throw;
        }
        DirectorySync.Flush(Directory);
        AtomicFile.WriteAllText(LatestPointer, name + "\n");
        DirectorySync.Flush(Directory);
        KeepNewest(keep);
        return final;
    }

    /// <summary>Removes all but the newest <paramref name="keep"/> checkpoints (at least one stays).</summary>
    public void KeepNewest(int keep)
    {
        foreach (var old in Checkpoints().Skip(Math.Max(1, keep)))
            Remove(old.Path);
    }

    private static void Fill(string temp, long step, IReadOnlyList<(string File, Action<string> Write)> files)
    {
        var manifest = new JsonObject { ["format"] = "laperm-checkpoint", ["version"] = 1, ["step"] = step };
        var entries = new JsonObject();
        foreach (var (file, write) in files)
        {
            string path = Path.Combine(temp, file);
            write(path);
            var (bytes, sha) = Hash(path);
            entries[file] = new JsonObject { ["bytes"] = bytes, ["sha256"] = sha };
        }
        manifest["files"] = entries;
        AtomicFile.WriteAllText(Path.Combine(temp, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        DirectorySync.Flush(temp);
    }

    /// <summary>Every step-NNNNNNNN directory, newest first.</summary>
    public IReadOnlyList<(long Step, string Path)> Checkpoints()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        return [.. System.IO.Directory.GetDirectories(Directory)
            .Select(d => (Step: StepOf(Path.GetFileName(d)), Path: d))
            .Where(c => c.Step is not null)
            .Select(c => (c.Step!.Value, c.Path))
            .OrderByDescending(c => c.Item1)];
    }

    /// <summary>Why the manifest does not list one of <paramref name="required"/> (or cannot be read); null when it lists them all.</summary>
    public static string? Unlisted(string checkpoint, IEnumerable<string> required) => ListedFiles(checkpoint, required, out _);

    private static string? ListedFiles(string checkpoint, IEnumerable<string> required, out JsonObject files)
    {
        string manifestPath = Path.Combine(checkpoint, ManifestFile);
        try
        {
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))?.AsObject();
            files = manifest?["files"]?.AsObject() ?? throw new InvalidOperationException("no 'files' object");
        }
        catch (Exception e) when (e is IOException or JsonException or InvalidOperationException or UnauthorizedAccessException)
        {
            files = [];
            return $"its manifest '{manifestPath}' is missing or unreadable ({(e is JsonException json ? JsonText.Describe(json) : e.Message)})";
        }
        foreach (var file in required)
            if (!files.ContainsKey(file)) return $"its manifest does not list '{file}'";
        return null;
    }

    /// <summary>
    /// Checks a checkpoint directory against its manifest: every listed file present with its
    /// size and SHA-256, and every file in <paramref name="required"/> listed. Returns null when
    /// it holds, else why not (one sentence naming the file).
    /// </summary>
    public static string? Verify(string checkpoint, IEnumerable<string> required)
    {
        if (ListedFiles(checkpoint, required, out JsonObject files) is { } problem) return problem;
        foreach (var (file, node) in files)
        {
            string path = Path.Combine(checkpoint, file);
            if (!File.Exists(path)) return $"'{path}' is missing";
            long bytes;
            string? sha;
            try
            {
                bytes = node!["bytes"]!.GetValue<long>();
                sha = node["sha256"]!.GetValue<string>();
            }
            catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException)
            {
                return $"its manifest entry for '{file}' needs bytes and sha256";
            }
            var (actualBytes, actualSha) = Hash(path);
            if (actualBytes != bytes) return $"'{path}' is {actualBytes} bytes, its manifest says {bytes} (truncated?)";
            if (!string.Equals(actualSha, sha, StringComparison.OrdinalIgnoreCase)) return $"'{path}' does not match its SHA-256 in the manifest";
        }
        return null;
    }

    public static (long Bytes, string Sha256) Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        byte[] hash = SHA256.HashData(stream);
        return (stream.Length, Convert.ToHexStringLower(hash));
    }

    /// <summary>Moves a checkpoint out of the step-* namespace first, so a crash mid-delete never leaves a half checkpoint that looks whole.</summary>
    private void Remove(string checkpoint)
    {
        string doomed = Path.Combine(Directory, DeletingPrefix + Path.GetFileName(checkpoint) + "-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.Move(checkpoint, doomed);
        System.IO.Directory.Delete(doomed, recursive: true);
    }

    /// <summary>Renames a checkpoint that failed validation to rejected-step-NNNNNNNN (kept for inspection, never loaded).</summary>
    public void Reject(string checkpoint) => SetAside(checkpoint, RejectedPrefix);

    private const string RejectedPrefix = "rejected-", OtherConfigurationPrefix = "other-config-";

    /// <summary>Whether a checkpoint was ever written here: one of the run's, or one set aside (rejected, of another configuration).</summary>
    public bool AnyWritten() => Checkpoints().Count > 0 || (System.IO.Directory.Exists(Directory)
        && System.IO.Directory.EnumerateDirectories(Directory).Select(d => Path.GetFileName(d)).Any(name =>
            new[] { RejectedPrefix, OtherConfigurationPrefix }.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal) && StepOf(name[prefix.Length..]) is not null)));

    /// <summary>
    /// Renames an intact checkpoint of another configuration to other-config-step-NNNNNNNN: kept
    /// as it is, but no longer one of this run's (which would rank it newest, prune by it, resume from it).
    /// </summary>
    public void SetAsideOtherConfiguration(string checkpoint) => SetAside(checkpoint, OtherConfigurationPrefix);

    private void SetAside(string checkpoint, string prefix)
    {
        string target = Path.Combine(Directory, prefix + Path.GetFileName(checkpoint));
        if (System.IO.Directory.Exists(target)) System.IO.Directory.Delete(target, recursive: true);
        System.IO.Directory.Move(checkpoint, target);
    }
}
