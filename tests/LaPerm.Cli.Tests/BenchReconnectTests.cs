namespace LaPerm.Cli.Tests;

public sealed class BenchReconnectTests
{
    [Theory]
    [InlineData("conv7", "conv7")]
    [InlineData("conv7,resnet50c", "conv7;resnet50c")]
    [InlineData("4:100,3:33,conv13,2:9", "4:100,3:33;conv13;2:9")]
    [InlineData("conv7;1:5", "conv7;1:5")]
    public void ShapeListsBecomeTheBenchsSets(string cli, string sets) =>
        Assert.Equal(sets, BenchCommand.ShapeSets(cli));

    [Fact]
    public void EmuVerifiesEveryVariantWithNoMismatch()
    {
        var stdout = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "all", "--shapes", "5:70,3:33,2:300"], stdout, TextWriter.Null);
        Assert.Equal(0, code);
        var lines = stdout.ToString().Split('\n').Where(l => l.StartsWith("reconnect ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count >= 7, stdout.ToString());
        Assert.All(lines, l => Assert.Contains("mismatches 0", l, StringComparison.Ordinal));
    }

    [Fact]
    public void UnknownVariantIsAUserError()
    {
        var stderr = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "99", "--shapes", "2:3"], TextWriter.Null, stderr);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("variant", stderr.ToString(), StringComparison.OrdinalIgnoreCase);
    }
}
