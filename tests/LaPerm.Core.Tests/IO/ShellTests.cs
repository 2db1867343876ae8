using LaPerm.Core.IO;

namespace LaPerm.Core.Tests.IO;

public sealed class ShellTests
{
    [Theory]
    [InlineData("runs/f1-20261127-120000", "runs/f1-20261127-120000")]
    [InlineData("/data/a_b.c:d=e+f@g%h,i", "/data/a_b.c:d=e+f@g%h,i")]
    [InlineData("my run", "'my run'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("$HOME/x", "'$HOME/x'")]
    [InlineData("a;rm -rf b", "'a;rm -rf b'")]
    [InlineData("", "''")]
    public void AWordIsQuotedOnlyWhenAShellWouldReadItOtherwise(string word, string expected) =>
        Assert.Equal(expected, Shell.Quote(word));
}
