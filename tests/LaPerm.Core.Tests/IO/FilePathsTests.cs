using LaPerm.Core.IO;

namespace LaPerm.Core.Tests.IO;

public sealed class FilePathsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("laperm-paths-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string At(params string[] parts) => Path.Combine([_root, .. parts]);

    /// <summary>The same place as the system names it (the temp folder itself may be reached through a link: macOS's /var).</summary>
    private string Real(params string[] parts) => Path.Combine([FilePaths.Resolved(_root), .. parts]);

    [Fact]
    public void APathThroughALinkIsTheSameAsTheTargetsPath()
    {
        Directory.CreateDirectory(At("data", "runs", "x"));
        Directory.CreateSymbolicLink(At("runs"), At("data", "runs"));
        Assert.True(FilePaths.Same(At("runs", "x"), At("data", "runs", "x")));
        Assert.True(FilePaths.Same(At("runs", "x") + Path.DirectorySeparatorChar, At("data", "runs", "x")));
        Assert.False(FilePaths.Same(At("runs"), At("data")));
        // A part that does not exist yet is kept as written, after the links before it.
        Assert.True(FilePaths.Same(At("runs", "new"), At("data", "runs", "new")));
        Assert.False(FilePaths.Same(At("runs", "new"), At("data", "runs", "other")));
    }

    [Fact]
    public void ARelativeTargetIsRelativeToTheLinksDirectoryAndLinksChain()
    {
        Directory.CreateDirectory(At("data", "runs"));
        Directory.CreateDirectory(At("links"));
        Directory.CreateSymbolicLink(At("links", "first"), Path.Combine("..", "data"));
        Directory.CreateSymbolicLink(At("second"), Path.Combine("links", "first", "runs"));
        Assert.Equal(Real("data", "runs"), FilePaths.Resolved(At("second")));
        Assert.Equal(Real("data", "runs", "x"), FilePaths.Resolved(At("links", "first", "runs", "x")));
    }

    [Fact]
    public void DotDotIsTheParentOfWhereTheLinkLeads()
    {
        // As the system walks it: deep/.. is the parent of deep's target, not the directory holding deep.
        Directory.CreateDirectory(At("data", "runs", "x"));
        Directory.CreateSymbolicLink(At("deep"), At("data", "runs", "x"));
        Assert.Equal(Real("data", "runs"), FilePaths.Resolved(At("deep", "..")));
        Assert.Equal(Real("data", "runs", "x"), FilePaths.Resolved(At("deep", ".", "..", "x")));
        Assert.True(FilePaths.Same(At("deep", ".."), At("data", "runs")));
    }

    [Fact]
    public void ALoopOfLinksEndsAndRelativePathsAreTakenFromTheCurrentDirectory()
    {
        File.CreateSymbolicLink(At("a"), At("b"));
        File.CreateSymbolicLink(At("b"), At("a"));
        Assert.StartsWith(Real(), FilePaths.Resolved(At("a")), StringComparison.Ordinal);
        Assert.False(FilePaths.Same(At("a"), At("c")));
        Assert.Equal(Path.Combine(FilePaths.Resolved(Directory.GetCurrentDirectory()), "no-such-dir-here"), FilePaths.Resolved("no-such-dir-here"));
    }
}
