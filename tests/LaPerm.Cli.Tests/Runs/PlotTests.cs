using System.Buffers.Binary;
using System.Xml.Linq;
using LaPerm.Cli;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.Model;
using LaPerm.Plots;

namespace LaPerm.Cli.Tests.Runs;

/// <summary>One short reconnecting run and one baseline run, shared by the plot tests.</summary>
public sealed class PlottedRuns : IDisposable
{
    public PlottedRuns()
    {
        Directory.CreateDirectory(Root);
        string[] common = ["train", "--model", "f2", "--limit-train", "1500", "--limit-test", "300", "--epochs", "2", "--batch", "50", "--threads", "2", "--quiet"];
        if (CommandLine.Run([.. common, "--k", "10", "--out", LaPerm], TextWriter.Null, Console.Error) != 0) throw new InvalidOperationException("training failed");
        if (CommandLine.Run([.. common, "--no-reconnect", "--eval-every", "10", "--out", Baseline], TextWriter.Null, Console.Error) != 0) throw new InvalidOperationException("training failed");
    }

    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"laperm-plots-{Guid.NewGuid():N}");
    public string LaPerm => Path.Combine(Root, "laperm");
    public string Baseline => Path.Combine(Root, "baseline");

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }
}

public sealed class PlotTests(PlottedRuns runs) : IClassFixture<PlottedRuns>
{
    private static (int Width, int Height) Png(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A], bytes[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(bytes, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    private static XDocument Svg(string path, int width, int height)
    {
        var doc = XDocument.Load(path);
        Assert.Equal("svg", doc.Root!.Name.LocalName);
        Assert.Equal(width.ToString(System.Globalization.CultureInfo.InvariantCulture), doc.Root.Attribute("width")!.Value);
        Assert.Equal(height.ToString(System.Globalization.CultureInfo.InvariantCulture), doc.Root.Attribute("height")!.Value);
        return doc;
    }

    private static int Paths(XDocument doc) => doc.Descendants().Count(e => e.Name.LocalName == "path");

    [Fact]
    public void PlotWritesAccuracyAndLossAgainstStepsWithSyncsMarked()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["plot", runs.LaPerm], stdout, TextWriter.Null));
        string png = Path.Combine(runs.LaPerm, "training.png"), svg = Path.Combine(runs.LaPerm, "training.svg");
        Assert.Contains(png, stdout.ToString(), StringComparison.Ordinal);
        var figure = RunFigures.Training(RunMetrics.Load(runs.LaPerm));
        Assert.Equal((figure.Width, figure.Height), Png(png));
        var doc = Svg(svg, figure.Width, figure.Height);

        // 60 steps, k = 10: syncs (and evaluations) at 10, 20, ..., 60.
        var expectedSteps = Enumerable.Range(1, 6).Select(i => i * 10.0).ToArray();
        Assert.Equal(["Accuracy (6 syncs dashed)", "Loss (6 syncs dashed)"], figure.Panels.Select(p => p.Title));
        foreach (var panel in figure.Panels)
        {
            Assert.Equal(expectedSteps, panel.Markers);
            Assert.Equal(["train (running)", "test"], panel.Lines.Select(l => l.Name));
            Assert.All(panel.Lines, l => Assert.Equal(expectedSteps, l.X));
        }
        var test = figure.Panels[0].Lines[1].Y;
        Assert.All(test, v => Assert.InRange(v, 0, 100));
        Assert.True(test[^1] > 50, $"f2 should learn something in 60 steps, test accuracy {test[^1]}%");
        // At least one drawn path per line and per sync marker.
        Assert.True(Paths(doc) >= 2 * (2 + 6), $"{Paths(doc)} paths");
    }

    [Fact]
    public void ProfileWeightsDrawsInitialAndTrainedRowsAndSummarises()
    {
        var stdout = new StringWriter();
        string weights = Path.Combine(runs.Baseline, "final.safetensors");
        Assert.Equal(0, CommandLine.Run(["profile-weights", "--weights", weights, "--model", "f2"], stdout, TextWriter.Null));
        string text = stdout.ToString();
        Assert.Contains("against " + Path.Combine(runs.Baseline, "initial.safetensors"), text, StringComparison.Ordinal);
        foreach (var layer in new[] { "dense1/kernel", "dense2/kernel", "dense3/kernel" }) Assert.Contains(layer, text, StringComparison.Ordinal);

        var model = new ModelDefinition(BuiltInModels.F2());
        var (figure, summary) = WeightProfile.Build(model, weights, Path.Combine(runs.Baseline, "initial.safetensors"));
        Assert.Equal(6, figure.Panels.Count);
        Assert.Equal(["dense1/kernel initial (64 of 128 rows)", "dense1/kernel trained (64 of 128 rows)"], figure.Panels.Take(2).Select(p => p.Title));
        Assert.Equal(10, figure.Panels[^1].Lines.Count);
        // Every drawn line is a sorted row: non-decreasing values against increasing ranks.
        Assert.All(figure.Panels.SelectMany(p => p.Lines), l =>
        {
            for (int i = 1; i < l.Y.Length; i++) Assert.True(l.Y[i] >= l.Y[i - 1] && l.X[i] > l.X[i - 1]);
        });
        // The baseline's Adam moves values, so no row stays a permutation of its initial row; the profiles stay close.
        Assert.All(summary, l => Assert.Equal(0, l.PermutedRows));
        Assert.All(summary, l => Assert.Equal(0, l.UnchangedRows));
        Assert.All(summary, l => Assert.InRange(l.MeanProfileDistance!.Value, 1e-6, 0.05));

        string png = Path.Combine(runs.Baseline, "final.profile.png");
        Assert.Equal((figure.Width, figure.Height), Png(png));
        var doc = Svg(Path.ChangeExtension(png, ".svg"), figure.Width, figure.Height);
        Assert.True(Paths(doc) >= 2 * (64 + 64 + 10), $"{Paths(doc)} paths");
    }

    [Fact]
    public void ACheckpointsProfileGoesBesideTheRunAndANewRunRemovesTheEarlierRunsFigures()
    {
        // A copy of the reconnecting run: a new run is trained in it below.
        string dir = Path.Combine(runs.Root, "reused");
        foreach (var file in Directory.GetFiles(runs.LaPerm, "*", SearchOption.AllDirectories))
        {
            string copy = Path.Combine(dir, Path.GetRelativePath(runs.LaPerm, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
        var (step, checkpoint) = new CheckpointStore(dir).Checkpoints()[0];
        Assert.Equal(0, CommandLine.Run(["profile-weights", "--weights", Path.Combine(checkpoint, RunSession.WeightsFile)], TextWriter.Null, TextWriter.Null));
        // Inside the checkpoint it would vanish when the checkpoint is rotated out.
        string profile = Path.Combine(dir, CheckpointStore.NameOf(step) + ".profile");
        Assert.True(File.Exists(profile + ".png") && File.Exists(profile + ".svg"), profile);
        Assert.Empty(Directory.GetFiles(checkpoint, "*.png"));
        Assert.Equal(0, CommandLine.Run(["plot", dir], TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CommandLine.Run(["trace", dir, "--layer", "dense2/kernel"], TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CommandLine.Run(["profile-weights", "--weights", Path.Combine(dir, RunSession.FinalWeightsFile)], TextWriter.Null, TextWriter.Null));
        string[] figures = [.. new[] { "training", "trace-dense2-kernel", "final.profile", CheckpointStore.NameOf(step) + ".profile" }
            .SelectMany(stem => new[] { stem + ".png", stem + ".svg" })];
        Assert.All(figures, name => Assert.True(File.Exists(Path.Combine(dir, name)), name));
        File.WriteAllText(Path.Combine(dir, "notes.png"), "the user's");

        // A new run there is refused, naming what it would delete; with --overwrite it removes the earlier
        // run's figures too: they would sit beside its metrics as if drawn from them.
        string[] train = ["train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--quiet", "--out", dir];
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(train, TextWriter.Null, stderr));
        Assert.Contains($"'{dir}' holds the results of an earlier run (summary.json, best.safetensors, final.safetensors, {string.Join(", ", figures.Order(StringComparer.Ordinal))})",
            stderr.ToString(), StringComparison.Ordinal);
        Assert.All(figures, name => Assert.True(File.Exists(Path.Combine(dir, name)), name));
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run([.. train, "--overwrite"], stdout, TextWriter.Null));
        Assert.Contains(string.Join(", ", figures.Order(StringComparer.Ordinal)) + " of an earlier run", stdout.ToString(), StringComparison.Ordinal);
        Assert.All(figures, name => Assert.False(File.Exists(Path.Combine(dir, name)), name));
        Assert.Equal("the user's", File.ReadAllText(Path.Combine(dir, "notes.png")));
    }

    [Fact]
    public void ProfileWeightsTellsRowsLeftAsInitialisedFromRowsPermuted()
    {
        // A row plain Adam never moved (a dead unit's) counted as "permuted", where the README promised none.
        string dir = Path.Combine(runs.Root, "unchanged");
        Directory.CreateDirectory(dir);
        string initialPath = Path.Combine(runs.LaPerm, "initial.safetensors");
        var (initial, metadata) = LaPerm.Core.IO.SafeTensors.Read(initialPath);
        var trained = initial.Select(t =>
        {
            if (t.Name != "dense3/kernel") return t with { Values = [.. t.Values.Select(v => v + 0.5f)] };
            // 10 rows of 64: row 0 as initialised, row 1 reversed (a permutation), the rest moved.
            var v = t.Values.ToArray();
            Array.Reverse(v, 64, 64);
            for (int j = 128; j < v.Length; j++) v[j] += 0.5f;
            return t with { Values = v };
        }).ToList();
        string weights = Path.Combine(dir, "final.safetensors");
        LaPerm.Core.IO.SafeTensors.Write(weights, trained, metadata);
        var (_, summary) = WeightProfile.Build(new ModelDefinition(BuiltInModels.F2()), weights, initialPath);
        var dense3 = summary.Single(l => l.Name == "dense3/kernel");
        Assert.Equal((2, 1), (dense3.PermutedRows, dense3.UnchangedRows));
        Assert.All(summary.Where(l => l.Name != "dense3/kernel"), l => Assert.Equal((0, 0), (l.PermutedRows, l.UnchangedRows)));
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["profile-weights", "--weights", weights, "--initial", initialPath], stdout, TextWriter.Null));
        Assert.Matches(@"(?m)^dense3/kernel .* 2/10 +1$", stdout.ToString().ReplaceLineEndings("\n"));
    }

    [Fact]
    public void ProfileWeightsSaysHowManyValuesAreNaNOrInfiniteAndLeavesThemOutOfTheFigure()
    {
        // They were left out of the figure without a word; the table's NaN was the only trace.
        string dir = Path.Combine(runs.Root, "non-finite");
        Directory.CreateDirectory(dir);
        var (tensors, metadata) = LaPerm.Core.IO.SafeTensors.Read(Path.Combine(runs.LaPerm, "final.safetensors"));
        var poked = tensors.Select(t => t.Name == "dense2/kernel"
            ? t with { Values = [float.NaN, .. t.Values.AsSpan(1, 2), float.PositiveInfinity, float.NegativeInfinity, .. t.Values.AsSpan(5)] } : t).ToList();
        string weights = Path.Combine(dir, "final.safetensors");
        LaPerm.Core.IO.SafeTensors.Write(weights, poked, metadata);
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["profile-weights", "--weights", weights, "--initial", Path.Combine(runs.LaPerm, "initial.safetensors")], stdout, TextWriter.Null));
        int length = poked.Single(t => t.Name == "dense2/kernel").Values.Length;
        Assert.Contains($"dense2/kernel: 3 of {length} trained values are NaN or infinite (not drawn)", stdout.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("dense1/kernel: ", stdout.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("initial values are", stdout.ToString(), StringComparison.Ordinal);

        var (figure, summary) = WeightProfile.Build(new ModelDefinition(BuiltInModels.F2()), weights, Path.Combine(runs.LaPerm, "initial.safetensors"));
        Assert.Equal([0L, 3L, 0L], summary.Select(l => l.TrainedNonFinite));
        Assert.Equal([0L, 0L, 0L], summary.Select(l => l.InitialNonFinite!.Value));
        Assert.Contains(figure.Panels, p => p.Title.StartsWith("dense2/kernel trained (", StringComparison.Ordinal) && p.Title.EndsWith("; 3 NaN/inf not drawn)", StringComparison.Ordinal));
        Assert.Single(figure.Panels, p => p.Title.Contains("NaN", StringComparison.Ordinal));
    }

    [Fact]
    public void AfterReconnectionEveryRowIsAPermutationOfItsInitialRow()
    {
        var (_, summary) = WeightProfile.Build(new ModelDefinition(BuiltInModels.F2()), Path.Combine(runs.LaPerm, "final.safetensors"), Path.Combine(runs.LaPerm, "initial.safetensors"));
        Assert.All(summary, l => Assert.Equal(l.Rows, l.PermutedRows));
        Assert.All(summary, l => Assert.Equal(0, l.MeanProfileDistance));
    }

    [Fact]
    public void ATraceOfNoTrafficStartsItsAxisAtZeroWithNoNegativePercentages()
    {
        // Autoscaled, lines of zeros sat in the middle of an axis labelled -1 % to 1 %.
        string dir = Path.Combine(runs.Root, "no-traffic");
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), Enumerable.Range(1, 4).Select(i =>
            $$$"""{"event":"sync","step":{{{4 * i}}},"epoch":0,"syncs":{{{i}}},"changed_since_previous_sync":{"dense1/kernel":0},"changed_since_init":{"dense1/kernel":0}}"""));
        var figure = RunFigures.Trace(RunMetrics.Load(dir), "dense1/kernel");
        var panel = figure.Panels.Single();
        Assert.True(panel.YFromZero);
        Assert.Equal((-0.02, 1.0), panel.ZeroBasedYLimits());
        var (_, svg) = FigureRenderer.Save(figure, Path.Combine(dir, "trace"));
        var labels = Svg(svg, figure.Width, figure.Height).Descendants().Where(e => e.Name.LocalName == "text")
            .Select(e => e.Value.Trim()).Where(t => double.TryParse(t, System.Globalization.CultureInfo.InvariantCulture, out _))
            .Select(t => double.Parse(t, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Contains(0.0, labels);
        Assert.All(labels, v => Assert.True(v >= 0, $"tick label {v}"));
        // With traffic the top follows the highest value.
        Assert.Equal((-0.63, 31.5), (panel with { Lines = [new Series("x", [1, 2], [10, 30])] }).ZeroBasedYLimits());
    }

    /// <summary>A layer name of hundreds of characters (a model file may have one) made trace's default file name too long to write (exit 5).</summary>
    [Fact]
    public void ALongLayerNameGivesAFileNameThatFitsAndStaysUnique()
    {
        Assert.Equal("dense1-kernel", LaPerm.Plots.RunFigures.FileSafe("dense1/kernel"));
        string a = new string('x', 300) + "/kernel", b = new string('x', 300) + "/bias";
        string fa = LaPerm.Plots.RunFigures.FileSafe(a), fb = LaPerm.Plots.RunFigures.FileSafe(b);
        Assert.True(fa.Length <= 100, fa);
        Assert.StartsWith(new string('x', 80) + "-", fa, StringComparison.Ordinal);
        Assert.NotEqual(fa, fb);
        Assert.Equal(fa, LaPerm.Plots.RunFigures.FileSafe(a));
    }

    [Fact]
    public void TracePlotsTheTrafficOfOneLayer()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["trace", runs.LaPerm, "--layer", "dense2/kernel"], stdout, TextWriter.Null));
        // The directory may come after the options too (it was refused: "expects a run directory first").
        Assert.Equal(0, CommandLine.Run(["trace", "--layer", "dense2/kernel", runs.LaPerm], TextWriter.Null, TextWriter.Null));
        var figure = RunFigures.Trace(RunMetrics.Load(runs.LaPerm), "dense2/kernel");
        var lines = figure.Panels.Single().Lines;
        Assert.Equal(["since the previous sync", "since initialisation"], lines.Select(l => l.Name));
        Assert.All(lines, l => Assert.Equal(Enumerable.Range(1, 6).Select(i => i * 10.0), l.X));
        Assert.All(lines, l => Assert.All(l.Y, v => Assert.InRange(v, 0, 100)));
        Assert.Equal(lines[0].Y[0], lines[1].Y[0]); // at the first sync, previous = initial
        Assert.True(lines[1].Y.Max() > 0);
        string png = Path.Combine(runs.LaPerm, "trace-dense2-kernel.png");
        Assert.Equal((figure.Width, figure.Height), Png(png));
        Svg(Path.ChangeExtension(png, ".svg"), figure.Width, figure.Height);

        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["trace", runs.LaPerm, "--layer", "nope"], TextWriter.Null, stderr));
        Assert.Contains("dense1/kernel", stderr.ToString(), StringComparison.Ordinal);
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["trace", runs.Baseline, "--layer", "dense1/kernel"], TextWriter.Null, stderr));
        Assert.Contains("has no syncs (a run with --no-reconnect", stderr.ToString(), StringComparison.Ordinal);

        // Without --layer: the list, on stdout, exit 0 (as the help says); a run without syncs says so.
        stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["trace", runs.LaPerm], stdout, TextWriter.Null));
        Assert.Contains("  dense2/kernel", stdout.ToString(), StringComparison.Ordinal);
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["trace", runs.Baseline], TextWriter.Null, stderr));
        Assert.Contains("no syncs", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnOutThatIsADirectoryGetsTheDefaultFileNameInside()
    {
        // It wrote DIR/.png and DIR/.svg.
        string folder = Path.Combine(runs.Root, "figures-" + Guid.NewGuid().ToString("N")) + Path.DirectorySeparatorChar;
        Assert.Equal(0, CommandLine.Run(["plot", runs.LaPerm, "--out", folder], TextWriter.Null, TextWriter.Null));
        Assert.True(File.Exists(Path.Combine(folder, "training.png")));
        Assert.True(File.Exists(Path.Combine(folder, "training.svg")));
        Assert.False(File.Exists(Path.Combine(folder, ".png")));
    }

    [Theory]
    [InlineData("fig.png")]
    [InlineData("fig.SVG")]
    [InlineData("fig")]
    public void AnOutWithEitherExtensionNamesTheStemOfBothFiles(string name)
    {
        // It wrote fig.png.png and fig.png.svg.
        string folder = Path.Combine(runs.Root, "named-" + Guid.NewGuid().ToString("N"));
        Assert.Equal(0, CommandLine.Run(["plot", runs.LaPerm, "--out", Path.Combine(folder, name)], TextWriter.Null, TextWriter.Null));
        Assert.Equal(["fig.png", "fig.svg"], Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void PlottingSomethingThatIsNotARunIsOneSentence()
    {
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["plot", runs.Root], TextWriter.Null, stderr));
        Assert.Contains("metrics.jsonl", stderr.ToString(), StringComparison.Ordinal);
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["plot", Path.Combine(runs.LaPerm, "metrics.jsonl")], TextWriter.Null, stderr));
        Assert.Contains("is a file", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"event":1,"step":2}""", "no \"event\" string")]    // crashed plot and trace with a stack trace
    [InlineData("""{"event":"eval","step":"2"}""", "\"step\" must be a whole number")]   // plotted blank, syncs at step 0
    // Each of these plotted an empty or partial figure and exited 0, saying nothing.
    [InlineData("""{"event":"eval","stp":2,"test_accuracy":0.5}""", "an eval line needs a \"step\"")]
    [InlineData("""{"event":"eval","step":16.5,"test_accuracy":0.5}""", "\"step\" must be a whole number from 0 to 2^53, got 16.5")]
    [InlineData("""{"event":"eval","step":1e20,"test_accuracy":0.5}""", "\"step\" must be a whole number")]
    [InlineData("""{"event":"eval","step":2}""", "\"test_accuracy\" must be a number from 0 to 1, got nothing")]
    [InlineData("""{"event":"eval","step":2,"test_accuracy":"NaN"}""", "\"test_accuracy\" must be a number from 0 to 1, got \"NaN\"")]
    [InlineData("""{"event":"eval","step":2,"test_accuracy":1e400}""", "\"test_accuracy\" must be a number from 0 to 1")]
    [InlineData("""{"event":"sync","step":2,"changed_since_init":{"dense1/kernel":"x"}}""", "\"changed_since_init\" of 'dense1/kernel' must be a number from 0 to 1")]
    [InlineData("""{"event":"sync","step":2,"changed_since_previous_sync":[0.5]}""", "\"changed_since_previous_sync\" must be an object")]
    public void AMetricsLineOfTheWrongShapeIsOneSentenceNamingTheLine(string line, string expected)
    {
        string dir = Path.Combine(runs.Root, "bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), [line, """{"event":"sync","step":3}"""]);
        foreach (var command in new[] { "plot", "trace" })
        {
            var stderr = new StringWriter();
            Assert.Equal(CommandLine.UserError, CommandLine.Run([command, dir], TextWriter.Null, stderr));
            Assert.Contains("line 1", stderr.ToString(), StringComparison.Ordinal);
            Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void MetricsMessagesSpeakOfTheFileNotTheParser()
    {
        string dir = Path.Combine(runs.Root, "torn-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        string eval = """{"event":"eval","step":4,"test_accuracy":0.5,"test_loss":1.2,"synchronized":true}""";
        // A torn last line is left out, and said.
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\n" + """{"event":"ev""");
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["plot", dir], stdout, TextWriter.Null));
        Assert.Contains("is cut short (the run stopped while writing it); it is left out", stdout.ToString(), StringComparison.Ordinal);
        // A last line that ends with its line break was written whole: not JSON, it is an error, not a torn line.
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\n" + "[1,2]\n");
        var complete = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["plot", dir], TextWriter.Null, complete));
        Assert.Contains("line 2 is not a JSON object", complete.ToString(), StringComparison.Ordinal);
        // Zero bytes at the end (left by a power loss) are a torn line too.
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\n" + "\0\0\0\0");
        Assert.Equal(0, CommandLine.Run(["plot", dir], TextWriter.Null, TextWriter.Null));
        // A last line with no line break that never began as an object is no torn line: not a metrics file.
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\n" + "\u0001\u00ff\u0001\u00ff");
        var binary = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["plot", dir], TextWriter.Null, binary));
        Assert.Contains("line 2 is not a JSON object", binary.ToString(), StringComparison.Ordinal);
        // A bad line inside: its number in the file, not the parser's position within the line.
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\ngarbage\n" + eval + "\n");
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["plot", dir], TextWriter.Null, stderr));
        Assert.Contains("line 2 is not a JSON object", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", stderr.ToString(), StringComparison.Ordinal);
        // No syncs at all: trace --layer says so, not "train with --trace-reconnection on".
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), eval + "\n");
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["trace", dir, "--layer", "dense1/kernel"], TextWriter.Null, stderr));
        Assert.Contains("has no syncs", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void TheLegendGoesWhereItCoversTheLeastOfTheLines()
    {
        double[] x = [.. Enumerable.Range(0, 11).Select(i => (double)i)];
        // A falling training loss, and a test loss that falls and then climbs back at the right (overfitting):
        // the preferred upper-right corner covered the test curve's end.
        var train = new Series("train", x, [.. x.Select(v => 10 - 0.9 * v)]);
        var test = new Series("test", x, [.. x.Select(v => v < 5 ? 10 - v : 5 + (v - 5) * 4 / 5.0)]);
        var loss = new Panel("Loss", "step", "loss", [train, test], []) { LegendAtTop = true };
        Assert.Equal(LegendCorner.LowerLeft, loss.BestLegendCorner());
        // Rising curves leave the preferred lower right free; no lines at all keep the preference.
        var accuracy = new Panel("Accuracy", "step", "accuracy", [new Series("test", x, [.. x.Select(v => 0.1 + 0.08 * v)])], []);
        Assert.Equal(LegendCorner.LowerRight, accuracy.BestLegendCorner());
        Assert.Equal(LegendCorner.UpperRight, (loss with { Lines = [] }).BestLegendCorner());
    }

    [Fact]
    public void AHugeLossIsLabelledWithAnExponent()
    {
        // A diverging run's loss axis was labelled with numbers of up to 22 digits, squeezing the panel.
        string dir = Path.Combine(runs.Root, "huge-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), Enumerable.Range(1, 6).Select(step =>
            $$"""{"event":"eval","step":{{step}},"train_loss":{{step}}e20,"train_accuracy":0.1,"test_loss":{{step + 1}}e20,"test_accuracy":0.1,"synchronized":true}"""));
        Assert.Equal(0, CommandLine.Run(["plot", dir], TextWriter.Null, TextWriter.Null));
        var labels = XDocument.Load(Path.Combine(dir, "training.svg")).Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value.Trim()).ToList();
        Assert.Contains(labels, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d(\.\d+)?E\+20$"));
        Assert.DoesNotContain(labels, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\d{7}"));
        // Ordinary values keep ScottPlot's labels.
        Assert.Equal(ScottPlot.TickGenerators.LabelFormatters.Numeric(2.5), FigureRenderer.AxisLabel(2.5));
        Assert.Equal("-3.2E+07", FigureRenderer.AxisLabel(-3.2e7));
    }

    [Fact]
    public void EvaluationsBetweenSyncsAreASeriesOfTheirOwn()
    {
        // With --eval-every the points between syncs (free Adam iterates) were drawn on the test curve.
        var lines = new List<string>();
        for (int step = 1; step <= 6; step++)
            lines.Add($$"""{"event":"eval","step":{{step}},"test_accuracy":0.{{step}},"test_loss":1.0,"synchronized":{{(step % 3 == 0 ? "true" : "false")}}}""");
        string dir = Path.Combine(runs.Root, "mixed-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), lines);
        var accuracy = LaPerm.Plots.RunFigures.Training(LaPerm.Plots.RunMetrics.Load(dir)).Panels[0].Lines;
        var after = Assert.Single(accuracy, x => x.Name == "test (after a sync)");
        var between = Assert.Single(accuracy, x => x.Name == "test (between syncs)");
        Assert.Equal([3.0, 6.0], after.X);
        Assert.Equal([1.0, 2.0, 4.0, 5.0], between.X);
        // A run evaluated only after syncs keeps one test series, and so does one without reconnection
        // (its evaluations are all of free weights, none of them "between syncs").
        Assert.Contains(LaPerm.Plots.RunFigures.Training(LaPerm.Plots.RunMetrics.Load(runs.LaPerm)).Panels[0].Lines, x => x.Name == "test");
        var baseline = LaPerm.Plots.RunFigures.Training(LaPerm.Plots.RunMetrics.Load(runs.Baseline)).Panels[0].Lines;
        Assert.Contains(baseline, x => x.Name == "test");
        Assert.DoesNotContain(baseline, x => x.Name.Contains("sync", StringComparison.Ordinal));
    }
}
