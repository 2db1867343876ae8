using LaPerm.Core.IO;

namespace LaPerm.Core.Tests.Checkpoints;

/// <summary>Readers see the old contents or the complete new ones, never a part, and a failed write leaves nothing behind.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("laperm-atomic-");

    public void Dispose() => _dir.Delete(true);

    [Fact]
    public void BothWritersReplaceTheFileWhole()
    {
        string path = Path.Combine(_dir.FullName, "sub", "out.txt");
        AtomicFile.WriteAllText(path, "first");
        Assert.Equal("first", File.ReadAllText(path));
        AtomicFile.WriteThroughPath(path, temp =>
        {
            Assert.NotEqual(path, temp);
            Assert.Equal("first", File.ReadAllText(path));   // untouched while the new contents are written
            File.WriteAllText(temp, "second");
        });
        Assert.Equal("second", File.ReadAllText(path));
        Assert.Equal(["out.txt"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void AWriterThatFailsKeepsTheOldFileAndLeavesNoTemporaryFile()
    {
        string path = Path.Combine(_dir.FullName, "keep.txt");
        AtomicFile.WriteAllText(path, "old");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteThroughPath(path, temp =>
        {
            File.WriteAllText(temp, "half");
            throw new InvalidOperationException("the renderer failed");
        }));
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write("half"u8);
            throw new IOException("the disk is full");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["keep.txt"], _dir.GetFiles().Select(f => f.Name));
    }

    [Fact]
    public void AFailedWriteNamesTheFileAskedForNotItsTemporaryFile()
    {
        // The message named '.x.png.16332.<guid>.tmp', or a directory the caller never mentioned.
        string blocker = Path.Combine(_dir.FullName, "a-file");
        File.WriteAllText(blocker, "x");
        string path = Path.Combine(blocker, "out.txt");   // its directory is a file
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(path, "y"));
        Assert.StartsWith($"cannot write '{path}' (", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(".tmp", e.Message, StringComparison.Ordinal);
        var thrown = Assert.Throws<IOException>(() => AtomicFile.Write(Path.Combine(_dir.FullName, "full.txt"), _ => throw new IOException("the disk is full")));
        Assert.Equal($"cannot write '{Path.Combine(_dir.FullName, "full.txt")}' (the disk is full)", thrown.Message);
    }

    [Fact]
    public void LeftoversOfKilledWritersAreRemovedAndOtherFilesAreNot()
    {
        string ours = Path.Combine(_dir.FullName, $".run.json.4242.{Guid.NewGuid():N}.tmp");
        string theirs = Path.Combine(_dir.FullName, ".editor.tmp");
        string data = Path.Combine(_dir.FullName, "run.json");
        foreach (string f in new[] { ours, theirs, data }) File.WriteAllText(f, "x");
        AtomicFile.RemoveLeftovers(_dir.FullName);
        Assert.Equal([".editor.tmp", "run.json"], _dir.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal));
    }
}
