using LaPerm.Cli;
using LaPerm.Core.Checkpoints;

namespace LaPerm.Cli.Tests.Runs;

public sealed class DivergenceTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"laperm-diverge-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void ADivergingRunStopsWithExitCodeFourNamingTheStepAndKeepsItsLastCheckpoint()
    {
        // Momentum SGD at lr 10 on a linear network (three dense layers, no activation): each layer's
        // weights scale the others' gradients, so the weights grow geometrically and the logits
        // overflow within a few steps whatever the batch order. A real divergence, nothing injected.
        // (With ReLUs, as in lenet300, the units may all die first and leave the loss finite.)
        Directory.CreateDirectory(_root);
        string model = Path.Combine(_root, "linear.json");
        File.WriteAllText(model, """
            {"name": "linear", "input": [1, 28, 28], "layers": [{"type": "flatten"},
              {"type": "dense", "units": 300}, {"type": "dense", "units": 100}, {"type": "dense", "units": 10}]}
            """);
        string dir = Path.Combine(_root, "run");
        var stderr = new StringWriter();
        int code = CommandLine.Run(["train", "--model", model, "--limit-train", "2000", "--limit-test", "100", "--epochs", "1", "--batch", "32",
            "--optimizer", "sgd", "--lr", "10", "--momentum", "0.99", "--no-reconnect", "--checkpoint-every", "2", "--threads", "2", "--quiet", "--out", dir],
            TextWriter.Null, stderr);
        Assert.Equal(CommandLine.NonFinite, code);
        string message = stderr.ToString();
        var match = System.Text.RegularExpressions.Regex.Match(message, @"the training loss is (NaN|-?Infinity|∞|-∞) at step (\d+)");
        Assert.True(match.Success, message);
        long step = long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        var store = new CheckpointStore(dir);
        var newest = store.Checkpoints()[0];
        Assert.True(newest.Step < step && newest.Step >= step - 2, $"newest checkpoint {newest.Step}, stopped at {step}");
        Assert.Contains($"'{newest.Path}' is intact", message, StringComparison.Ordinal);
        Assert.Null(CheckpointStore.Verify(newest.Path, [RunSession.WeightsFile]));
        Assert.False(File.Exists(Path.Combine(dir, "summary.json")));

        // The message's way on (a plain --resume meets the same step again) finishes the run.
        string advice = $"laperm train --resume {dir} --on-nan skip-step continues from it";
        Assert.Contains(advice, message, StringComparison.Ordinal);
        var resumed = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--on-nan", "skip-step", "--quiet"], resumed, TextWriter.Null));
        Assert.True(File.Exists(Path.Combine(dir, "summary.json")));
        Assert.Contains("skipped for a non-finite loss or gradient", resumed.ToString(), StringComparison.Ordinal);
    }
}
