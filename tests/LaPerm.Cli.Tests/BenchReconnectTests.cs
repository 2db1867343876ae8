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

    [Theory]
    [InlineData("10:10,,10:10")]
    [InlineData("conv7,")]
    [InlineData(";conv7")]
    public void AnEmptyItemInAShapeListIsRefusedAsTheOtherListsRefuseIt(string cli)
    {
        var e = Assert.Throws<UsageException>(() => BenchCommand.ShapeSets(cli));
        Assert.Equal($"--shapes of 'laperm bench reconnect' has an empty item in '{cli}'; expected names or ROWS:LENGTH items separated by commas.", e.Message);
    }

    [Fact]
    public void EmuVerifiesEveryVariantWithNoMismatch()
    {
        var stdout = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "all", "--shapes", "5:70,3:33,2:300"], stdout, TextWriter.Null);
        Assert.Equal(0, code);
        var lines = stdout.ToString().Split('\n').Where(l => l.StartsWith("reconnect ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count >= 7, stdout.ToString());
        Assert.All(lines, l => Assert.Contains("mismatches 0", l, StringComparison.Ordinal));
        // Each line says which paths its launches (one per size class) took.
        Assert.Contains(lines, l => l.Contains("variant 0 ", StringComparison.Ordinal) && l.EndsWith("[BlockBucketStaged x2]", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("variant 2 ", StringComparison.Ordinal) && l.EndsWith("[Warp64, Warp128, BlockRadix]", StringComparison.Ordinal));
    }

    [Fact]
    public void PlanShowsEachLaunchOnHopperWithItsOccupancyAndRunsNothing()
    {
        var stdout = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--plan", "--variant", "9", "--shapes", "3:4608,2:256"], stdout, TextWriter.Null);
        Assert.Equal(0, code);
        string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("plan for sm_90 (H100/H200: 232448 B of shared memory per block)", lines[0], StringComparison.Ordinal);
        Assert.StartsWith("plan 3:4608,2:256", lines[1], StringComparison.Ordinal);
        Assert.Contains("variant 9 BlockBucketSized", lines[1], StringComparison.Ordinal);
        Assert.Contains("launches  2", lines[1], StringComparison.Ordinal);
        // 4608 elements: 384 threads x 12; shared memory is the radix fallback's (256 counters per
        // warp and 32 words, 12,416 B, over the bucket path's 9,488) plus 12 bytes per element.
        string wide = Assert.Single(lines, l => l.Contains("reconnect_bucket_sized_i12", StringComparison.Ordinal));
        Assert.Contains("blocks       3  rows <=  4608  threads  384  shared   67712 B", wide, StringComparison.Ordinal);
        string narrow = Assert.Single(lines, l => l.Contains("reconnect_bucket_sized_i8", StringComparison.Ordinal));
        Assert.Contains("blocks       2  rows <=   256  threads   32", narrow, StringComparison.Ordinal);
        // Three 67.7 KB blocks fit 228 KB of shared memory, four do not; registers (when the build
        // ran ptxas) may bind first.
        Assert.Matches(@"blocks/SM  [1-3] \(", wide);
        var resources = LaPerm.Cuda.Runtime.PtxCatalog.Active.Files.Single(f => f.FileName == "reconnect.ptx").Resources;
        if (resources.GetValueOrDefault("reconnect_bucket_sized_i12")?.Registers is int registers)
            Assert.Contains($"registers {registers,3}", wide, StringComparison.Ordinal);
        else
            Assert.Contains("registers   ?", wide, StringComparison.Ordinal);

        var stderr = new StringWriter();
        Assert.Equal(2, CommandLine.Run(["bench", "reconnect", "--plan", "--device", "emu", "--json", "x.json"], TextWriter.Null, stderr));
        Assert.Contains("bench reconnect --plan runs nothing: --device, --json do not apply.", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutAGpuTheDefaultDeviceVerifiesOnTheEmulator()
    {
        // The default was cuda, so on a machine without a GPU the bare command only failed.
        if (LaPerm.Cuda.CudaInfo.Collect().GpuUnusableReason is null)
            Assert.Skip("a usable GPU is present: the default device is cuda here");
        var stdout = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--variant", "8", "--shapes", "2:17"], stdout, TextWriter.Null);
        Assert.Equal(0, code);
        Assert.Contains("verifying the kernels on the emulator", stdout.ToString(), StringComparison.Ordinal);
        // The variant name's column is wide enough for the longest name: the columns after it line up.
        var line = stdout.ToString().Split('\n').Single(l => l.StartsWith("reconnect ", StringComparison.Ordinal));
        Assert.Contains("BlockBucketNarrow elements", line, StringComparison.Ordinal);
        Assert.Contains("mismatches 0", line, StringComparison.Ordinal);
    }

    [Fact]
    public void AJsonPathThatCannotBeWrittenFailsBeforeAnythingIsMeasured()
    {
        // It failed after the first line had been verified and timed.
        string file = Path.Combine(Path.GetTempPath(), $"laperm-bench-{Guid.NewGuid():N}");
        File.WriteAllText(file, "a file, not a directory");
        try
        {
            var (stdout, stderr) = (new StringWriter(), new StringWriter());
            Assert.Equal(CommandLine.StorageFailed, CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "8", "--shapes", "2:17", "--json", Path.Combine(file, "out.json")], stdout, stderr));
            Assert.DoesNotContain("mismatches", stdout.ToString(), StringComparison.Ordinal);
            Assert.Contains("laperm: I/O error:", stderr.ToString(), StringComparison.Ordinal);
            // A bad option is refused before the file is touched: an earlier run's results stay.
            string earlier = file + ".json";
            File.WriteAllText(earlier, "[\"earlier\"]");
            Assert.Equal(CommandLine.UserError, CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "99", "--json", earlier], TextWriter.Null, TextWriter.Null));
            Assert.Equal("[\"earlier\"]", File.ReadAllText(earlier));
            File.Delete(earlier);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void TheJsonUsesTheSnakeCaseKeysOfEveryOtherLapermFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"laperm-bench-{Guid.NewGuid():N}.json");
        try
        {
            var stdout = new StringWriter();
            Assert.Equal(0, CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "8", "--shapes", "2:17", "--json", path], stdout, TextWriter.Null));
            Assert.EndsWith($"wrote {path}{Environment.NewLine}", stdout.ToString(), StringComparison.Ordinal);   // as plot and trace say what they wrote
            var row = Assert.Single(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsArray())!.AsObject();
            Assert.Equal(["shapes", "variant", "elements", "launches", "mismatches", "median_microseconds", "effective_gb_per_second", "copy_gb_per_second", "paths",
                "launch_times"],
                row.Select(p => p.Key));
            Assert.Equal(0, row["mismatches"]!.GetValue<long>());
            Assert.Null(row["launch_times"]);   // the emulator verifies; nothing is timed
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void UnknownVariantIsAUserError()
    {
        var stderr = new StringWriter();
        var stdout = new StringWriter();
        int code = CommandLine.Run(["bench", "reconnect", "--device", "emu", "--variant", "99", "--shapes", "2:3"], stdout, stderr);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Equal("", stdout.ToString());   // refused before anything is said of the device
        // So under auto too (it said "no usable GPU ... verifying on the emulator" first), and for a bad shape.
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["bench", "reconnect", "--variant", "99"], stdout, TextWriter.Null));
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["bench", "reconnect", "--shapes", "3:0"], stdout, TextWriter.Null));
        Assert.Equal("", stdout.ToString());
        Assert.Contains("variant", stderr.ToString(), StringComparison.OrdinalIgnoreCase);
        // The range it names is the variants that exist.
        Assert.Contains($"from 0 to {Enum.GetValues<LaPerm.Cuda.Reconnect.ReconnectVariant>().Length - 1}", stderr.ToString(), StringComparison.Ordinal);
    }
}

public sealed class ProfileStepsFlagTests
{
    [Theory]
    [InlineData("--device", "cpu", "--profile-steps", "2:3", "needs --device cuda")]
    [InlineData("--device", "emu", "--profile-steps", "3:1", "A:B")]
    public void ProfileStepsIsCheckedBeforeTraining(string f1, string v1, string f2, string v2, string expected)
    {
        var stderr = new StringWriter();
        int code = CommandLine.Run(["train", "--model", "f2", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--quiet",
            "--out", Path.Combine(Path.GetTempPath(), "laperm-profile-" + Guid.NewGuid().ToString("N")), f1, v1, f2, v2], TextWriter.Null, stderr);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
    }
}
