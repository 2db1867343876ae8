using System.Globalization;
using System.Text.Json;
using LaPerm.Cli;
using LaPerm.Core.IO;
using LaPerm.Core.Training;

namespace LaPerm.Cli.Tests;

public sealed class CliTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("laperm-cli-");

    public void Dispose() => _dir.Delete(true);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CommandLine.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void TrainOnAnMnistSliceWritesMetricsSummaryAndWeightsThatEvalReproduces()
    {
        string outDir = Path.Combine(_dir.FullName, "run");
        var (code, stdout, stderr) = Run("train", "--model", "lenet300", "--limit-train", "512", "--limit-test", "256", "--epochs", "1",
            "--batch", "32", "--k", "5", "--verify-invariants", "--train-eval-size", "64", "--seed", "3", "--threads", "2", "--out", outDir);
        Assert.True(code == 0, stderr);
        Assert.Contains("done: best test accuracy", stdout, StringComparison.Ordinal);
        // --train-eval-size is on the progress lines too (it was in metrics.jsonl only).
        Assert.Matches(@"step +5 .* train-eval acc \d+\.\d\d%  test loss", stdout);

        var lines = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl"));
        var records = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var syncs = records.Where(r => r.GetProperty("event").GetString() == "sync").ToList();
        var evals = records.Where(r => r.GetProperty("event").GetString() == "eval").ToList();
        Assert.Equal(16 / 5 + 1, syncs.Count); // 16 steps: syncs at 5, 10, 15, and the final one at 16
        Assert.Equal(syncs.Count, evals.Count); // evaluated after every sync by default
        Assert.All(evals, e => Assert.True(e.GetProperty("synchronized").GetBoolean()));
        Assert.All(evals, e => Assert.InRange(e.GetProperty("test_accuracy").GetDouble(), 0.0, 1.0));
        Assert.All(evals, e => Assert.InRange(e.GetProperty("train_eval_accuracy").GetDouble(), 0.0, 1.0));

        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        foreach (var field in new[] { "model", "data", "device", "seed", "threads", "steps", "epochs", "syncs", "best_test_accuracy",
                     "best_step", "final_test_accuracy", "train_images_per_second", "wall_seconds" })
            Assert.True(summary.TryGetProperty(field, out _), $"summary.json lacks {field}");
        Assert.Equal("lenet300", summary.GetProperty("model").GetString());
        Assert.Equal("cpu", summary.GetProperty("device").GetString());
        Assert.Equal(1.0, summary.GetProperty("epochs_trained").GetDouble());   // a run to its end makes its epochs
        // Which build made it, as --version names it: version and commit.
        Assert.Equal($"laperm {summary.GetProperty("laperm_version").GetString()}{Environment.NewLine}", Run("--version").Out);
        Assert.Matches(@"^\d+\.\d+\.\d+", summary.GetProperty("laperm_version").GetString());
        Assert.Matches(@"logical cores\), \d+ threads?, ", summary.GetProperty("backend").GetString());   // the backend's description
        Assert.DoesNotContain("\\u002B", File.ReadAllText(Path.Combine(outDir, "summary.json")), StringComparison.Ordinal);   // "AVX2+FMA", not "AVX2\u002BFMA"
        Assert.False(summary.GetProperty("graphs").GetBoolean()); // the cpu backend runs ops as they come
        Assert.Equal(JsonValueKind.Null, summary.GetProperty("graph_nodes").ValueKind);
        Assert.Equal(16, summary.GetProperty("steps").GetInt64());
        Assert.Equal(4, summary.GetProperty("syncs").GetInt32());
        double final = summary.GetProperty("final_test_accuracy").GetDouble();
        double best = summary.GetProperty("best_test_accuracy").GetDouble();
        Assert.Equal(evals[^1].GetProperty("test_accuracy").GetDouble(), final);
        // The final sync at step 16 is not on the schedule (k 5): not a candidate for the best.
        Assert.Equal([true, true, true, false], evals.Select(e => e.GetProperty("candidate").GetBoolean()));
        Assert.Equal(evals.Where(e => e.GetProperty("candidate").GetBoolean()).Max(e => e.GetProperty("test_accuracy").GetDouble()), best);
        Assert.True(final > 0.3, $"final accuracy {final} after 16 steps is no better than chance"); // chance is 0.1
        Assert.True(summary.GetProperty("train_images_per_second").GetDouble() > 0);

        var (tensors, metadata) = SafeTensors.Read(Path.Combine(outDir, "final.safetensors"));
        Assert.Equal("lenet300", metadata["model"]);
        Assert.Equal(["dense1/kernel", "dense1/bias", "dense2/kernel", "dense2/bias", "dense3/kernel", "dense3/bias"], tensors.Select(t => t.Name));
        Assert.Equal([300, 784], tensors[0].Shape);
        Assert.True(File.Exists(Path.Combine(outDir, "best.safetensors")));

        var (evalCode, evalOut, evalErr) = Run("eval", "--weights", Path.Combine(outDir, "final.safetensors"), "--model", "lenet300",
            "--data", "mnist", "--limit-test", "256", "--threads", "2");
        Assert.True(evalCode == 0, evalErr);
        long correct = (long)Math.Round(final * 256);
        Assert.Contains($"({correct.ToString(CultureInfo.InvariantCulture)} correct)", evalOut, StringComparison.Ordinal);
        // The model recorded in the file is enough, and so is the test slice the run measured (it evaluated all 10,000 images).
        Assert.Contains($"({correct.ToString(CultureInfo.InvariantCulture)} correct)",
            Run("eval", "--weights", Path.Combine(outDir, "final.safetensors"), "--limit-test", "256").Out, StringComparison.Ordinal);
        string alone = Run("eval", "--weights", Path.Combine(outDir, "final.safetensors")).Out;
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"(256 images): accuracy {final * 100:F2}% ({correct} correct)"), alone, StringComparison.Ordinal);
        // --data alone asks for that data's whole test split.
        Assert.Contains("(10,000 images)", Run("eval", "--weights", Path.Combine(outDir, "final.safetensors"), "--data", "mnist").Out, StringComparison.Ordinal);

        // Weights holding NaN or infinity are refused by name (they evaluated to loss NaN, exit 0).
        tensors[2].Values[7] = float.NaN;
        tensors[2].Values[9] = float.PositiveInfinity;
        string broken = Path.Combine(outDir, "broken.safetensors");
        SafeTensors.Write(broken, tensors, metadata);
        var (brokenCode, _, brokenErr) = Run("eval", "--weights", broken, "--limit-test", "256");
        Assert.Equal(CommandLine.UserError, brokenCode);
        Assert.Contains($"weights file '{broken}': tensor 'dense2/kernel' holds 2 NaN or infinite value(s), the first at index 7; expected finite numbers", brokenErr, StringComparison.Ordinal);
    }

    [Fact]
    public void EvalUsesTheDataSetRecordedInTheWeightsAndSaysWhenItIsGone()
    {
        // Weights trained on another data set of MNIST's shape were evaluated on MNIST unless --data was given.
        string data = Path.Combine(_dir.FullName, "idx-data");
        Directory.CreateDirectory(data);
        var rng = new Random(5);
        void WriteIdx(string prefix, int count)
        {
            static byte[] BigEndian(params int[] values) => [.. values.SelectMany(v => new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v })];
            var pixels = new byte[count * 28 * 28];
            rng.NextBytes(pixels);
            File.WriteAllBytes(Path.Combine(data, $"{prefix}-images-idx3-ubyte"), [.. BigEndian(0x803, count, 28, 28), .. pixels]);
            File.WriteAllBytes(Path.Combine(data, $"{prefix}-labels-idx1-ubyte"), [.. BigEndian(0x801, count), .. Enumerable.Range(0, count).Select(i => (byte)(i % 10))]);
        }
        WriteIdx("train", 40);
        WriteIdx("t10k", 7);
        string outDir = Path.Combine(_dir.FullName, "idx-run");
        var trained = Run("train", "--model", "f1", "--data", data, "--epochs", "1", "--batch", "8", "--quiet", "--threads", "1", "--out", outDir);
        Assert.True(trained.Code == 0, trained.Err);
        string weights = Path.Combine(outDir, "final.safetensors");
        Assert.Equal(data, SafeTensors.Read(weights).Metadata["data"]);

        var recorded = Run("eval", "--weights", weights);
        Assert.True(recorded.Code == 0, recorded.Err);
        Assert.Contains(" (7 images): accuracy ", recorded.Out, StringComparison.Ordinal);
        // --data still chooses.
        Assert.Contains(" (64 images): accuracy ", Run("eval", "--weights", weights, "--data", "mnist", "--limit-test", "64").Out, StringComparison.Ordinal);

        Directory.Move(data, data + "-moved");
        var gone = Run("eval", "--weights", weights);
        Assert.Equal(CommandLine.UserError, gone.Code);
        Assert.Contains($"the data set recorded in weights file '{weights}', '{data}', cannot be loaded here (", gone.Err, StringComparison.Ordinal);
        Assert.EndsWith("; pass --data.", gone.Err.TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public void TheBestIsTheBestSynchronisedEvaluationEvenWhenEvaluationsBetweenSyncsScoreHigher()
    {
        string outDir = Path.Combine(_dir.FullName, "every");
        var (code, _, stderr) = Run("train", "--model", "lenet300", "--limit-train", "512", "--limit-test", "256", "--epochs", "4",
            "--batch", "64", "--k", "8", "--lr", "0.003", "--lr-schedule", "constant", "--eval-every", "1", "--quiet", "--threads", "1",
            "--out", outDir);
        Assert.True(code == 0, stderr);
        var evals = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("event").GetString() == "eval").ToList();
        var synchronised = evals.Where(e => e.GetProperty("synchronized").GetBoolean()).ToList();
        Assert.NotEmpty(synchronised);
        Assert.Contains(evals, e => !e.GetProperty("synchronized").GetBoolean());   // the run evaluates between syncs too
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        double best = synchronised.Max(e => e.GetProperty("test_accuracy").GetDouble());
        // The case that matters: an evaluation between syncs scored higher, and is not the best.
        Assert.Contains(evals, e => !e.GetProperty("synchronized").GetBoolean() && e.GetProperty("test_accuracy").GetDouble() > best);
        Assert.Equal(best, summary.GetProperty("best_test_accuracy").GetDouble());
        long bestStep = summary.GetProperty("best_step").GetInt64();
        Assert.Contains(synchronised, e => e.GetProperty("step").GetInt64() == bestStep);
    }

    [Fact]
    public void ATargetReachedAtAnEpochEndEvaluationEndsTheRunThere()
    {
        // Without reconnection the default evaluation is at each epoch end (16 steps of 32 here).
        string outDir = Path.Combine(_dir.FullName, "epoch-end");
        var (code, _, stderr) = Run("train", "--model", "lenet300", "--limit-train", "512", "--limit-test", "256", "--epochs", "3",
            "--batch", "32", "--no-reconnect", "--target-accuracy", "0.3", "--stop-at-target", "--quiet", "--threads", "2", "--out", outDir);
        Assert.True(code == 0, stderr);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        long reached = summary.GetProperty("steps_to_target").GetInt64();
        Assert.Equal(16, reached);
        Assert.Equal(reached, summary.GetProperty("steps").GetInt64());   // no step after the target
        // Configured 3 epochs, made 1 (16 steps of 32 over 512 images).
        Assert.Equal((3, 1.0), (summary.GetProperty("epochs").GetInt32(), summary.GetProperty("epochs_trained").GetDouble()));
        var evals = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("event").GetString() == "eval").ToList();
        Assert.Equal(reached, evals[^1].GetProperty("step").GetInt64());
        // Without reconnection no weights are synchronised, yet every evaluation counts for best and target.
        Assert.All(evals, e => Assert.False(e.GetProperty("synchronized").GetBoolean()));
        Assert.All(evals, e => Assert.True(e.GetProperty("candidate").GetBoolean()));
    }

    [Fact]
    public void AResumedRunKeepsItsTargetAndTheStepThatReachedIt()
    {
        string[] common = ["train", "--model", "lenet300", "--limit-train", "512", "--limit-test", "256", "--epochs", "3", "--batch", "64",
            "--k", "3", "--target-accuracy", "0.3", "--quiet", "--threads", "1"];
        string fullDir = Path.Combine(_dir.FullName, "target-full"), resumedDir = Path.Combine(_dir.FullName, "target-resumed");
        Assert.Equal(0, Run([.. common, "--out", fullDir]).Code);
        var stopped = Run([.. common, "--stop-after", "13", "--out", resumedDir]);
        Assert.True(stopped.Code == 0, stopped.Err);
        var resumed = Run("train", "--resume", resumedDir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        JsonElement Summary(string dir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        var (full, again) = (Summary(fullDir), Summary(resumedDir));
        Assert.True(full.GetProperty("steps_to_target").GetInt64() < 13, "the target must be reached before the interruption for this test");
        Assert.Equal(full.GetProperty("steps_to_target").GetInt64(), again.GetProperty("steps_to_target").GetInt64());
        Assert.Equal(full.GetProperty("target_accuracy").GetDouble(), again.GetProperty("target_accuracy").GetDouble());
    }

    [Fact]
    public void AnEditedCheckpointConfigurationCannotChangeTheResumedRun()
    {
        // The configuration used to come from the newest checkpoint's config.json, before its
        // manifest was checked: one edited file made --resume reject every good checkpoint and
        // start over under the edited settings.
        string dir = Path.Combine(_dir.FullName, "edited");
        var stopped = Run("train", "--model", "lenet300", "--limit-train", "512", "--limit-test", "256", "--epochs", "2", "--batch", "32",
            "--k", "4", "--quiet", "--threads", "1", "--checkpoint-every", "5", "--stop-after", "15", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        string newest = Path.Combine(dir, "checkpoints", "step-00000015", "config.json");
        string edited = File.ReadAllText(newest).Replace("\"batch\": 32", "\"batch\": 64", StringComparison.Ordinal);
        Assert.Contains("\"batch\": 64", edited, StringComparison.Ordinal);
        File.WriteAllText(newest, edited);
        var resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("resuming from", resumed.Err + resumed.Out, StringComparison.Ordinal);
        Assert.Contains("step-00000010", resumed.Err + resumed.Out, StringComparison.Ordinal);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        Assert.Equal(32, summary.GetProperty("batch").GetInt32());
    }

    [Fact]
    public void AResumedRunKeepsTheGpuFlagsThatChangeResults()
    {
        // --math, --cudnn and --channel-reduction were neither recorded nor allowed with --resume:
        // a tf32 or cuDNN run continued in pedantic FP32 with our own kernels.
        string dir = Path.Combine(_dir.FullName, "gpu-flags");
        var stopped = Run("train", "--device", "emu", "--model", "f2", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--k", "4",
            "--cudnn", "all", "--math", "tf32", "--channel-reduction", "per-channel", "--stop-after", "4", "--quiet", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        // The header (after the warning that emu ignores --math tf32, which the run records all the same).
        static string Header(string stdout) => stdout.Split('\n').First(line => line.StartsWith("laperm train:", StringComparison.Ordinal));
        string header = Header(stopped.Out);
        Assert.Contains("cuDNN for convolution", header, StringComparison.Ordinal);
        var resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Equal(header, Header(resumed.Out));
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "run-config.json"))).RootElement;
        Assert.Equal(("tf32", "all", "per-channel"), (config.GetProperty("math").GetString(), config.GetProperty("cudnn").GetString(), config.GetProperty("channel_reduction").GetString()));
    }

    [Fact]
    public void ADamagedRunConfigurationIsSaidWhenACheckpointsConfigurationReplacesIt()
    {
        // It used to be passed over in silence.
        string dir = Path.Combine(_dir.FullName, "damaged");
        var stopped = Run("train", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--batch", "32",
            "--k", "4", "--quiet", "--threads", "1", "--stop-after", "4", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        File.WriteAllText(Path.Combine(dir, "run-config.json"), "{ truncated");
        var resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("laperm: warning: run configuration", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("run-config.json' is not a JSON object", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("resuming from", resumed.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("had ended", resumed.Out, StringComparison.Ordinal);
        Assert.Contains($"using '{Path.Combine(dir, "checkpoints", "step-00000004", "config.json")}' instead", resumed.Out, StringComparison.Ordinal);
        // One that is not UTF-8 (a byte of another encoding was read as U+FFFD): said with its offset.
        byte[] config = File.ReadAllBytes(Path.Combine(dir, "run-config.json"));
        config[3] = 0xE9;
        File.WriteAllBytes(Path.Combine(dir, "run-config.json"), config);
        resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"laperm: warning: '{Path.Combine(dir, "run-config.json")}' is not UTF-8 text (byte 3); a run configuration is UTF-8 JSON; using '", resumed.Out, StringComparison.Ordinal);
        // A deleted one too (resuming rewrote it; the run ended, so its newest checkpoint is the end's).
        File.Delete(Path.Combine(dir, "run-config.json"));
        resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"laperm: warning: '{Path.Combine(dir, "run-config.json")}' is missing; using '{Path.Combine(dir, "checkpoints")}", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("(step 8; the run had ended: its end is run again)", resumed.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("device", "\"gpu9\"", "expected cpu, cuda, cuda:N (GPU N), emu or auto, got 'gpu9'")]
    [InlineData("math", "\"fp64\"", "--math expects fp32 or tf32, got 'fp64'")]
    [InlineData("cudnn", "\"bogus\"", "--cudnn expects none, all or a comma list of conv, pool, bn, got 'bogus'")]
    [InlineData("channel_reduction", "\"x\"", "--channel-reduction expects chunked or per-channel, got 'x'")]
    [InlineData("init_keep", "[0.5, 0.5, 0.5]", "--keep has 3 entries but model 'f1' has 1 kernel tensor")]
    public void AnEditedRecordedFlagIsSaidNamingTheFieldAndACheckpointsConfigurationReplacesIt(string field, string value, string expected)
    {
        // These were refused as flags the user never gave ("laperm: --math expects ..."), without trying the checkpoints' configurations.
        string dir = Path.Combine(_dir.FullName, "edited-" + field);
        var stopped = Run("train", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--batch", "32",
            "--k", "4", "--quiet", "--threads", "1", "--stop-after", "4", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        string configPath = Path.Combine(dir, "run-config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(configPath, config.ToJsonString());
        var resumed = Run("train", "--resume", dir, "--quiet");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"laperm: warning: run configuration '{configPath}': field '{field}' holds an invalid value ({expected}", resumed.Out, StringComparison.Ordinal);
        Assert.Contains($"using '{Path.Combine(dir, "checkpoints", "step-00000004", "config.json")}' instead", resumed.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void ANewRunInADirectoryALiveRunHoldsIsToldItIsInUseNotToResumeIt()
    {
        // It was told "holds an unfinished run ... continue it with --resume (or delete the directory)" while the first run wrote there.
        string dir = Path.Combine(_dir.FullName, "live");
        var stopped = Run("train", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--quiet", "--stop-after", "4", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        using (new FileStream(Path.Combine(dir, ".lock"), FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var second = Run("train", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--quiet", "--out", dir);
            Assert.Equal(CommandLine.StorageFailed, second.Code);
            Assert.Contains($"output directory '{dir}' is in use by another laperm run", second.Err, StringComparison.Ordinal);
            Assert.DoesNotContain("--resume", second.Err, StringComparison.Ordinal);
        }
        // Free again: the unfinished run is named, with the command that continues it.
        var third = Run("train", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1", "--quiet", "--out", dir);
        Assert.Equal(CommandLine.UserError, third.Code);
        Assert.Contains("holds an unfinished run", third.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void FlagsGivenWithResumeApplyToThatCommandAndTheRunConfigurationKeepsTheRecordedValues()
    {
        // They were written into run-config.json: a later plain --resume kept verifying every sync, with no flag to stop it.
        string dir = Path.Combine(_dir.FullName, "resume-flags");
        var first = Run("train", "--model", "f1", "--limit-train", "512", "--limit-test", "64", "--epochs", "1", "--batch", "32", "--k", "4",
            "--quiet", "--threads", "1", "--stop-after", "4", "--out", dir);
        Assert.True(first.Code == 0, first.Err);
        string configPath = Path.Combine(dir, "run-config.json");
        string recorded = File.ReadAllText(configPath);
        var resumed = Run("train", "--resume", dir, "--quiet", "--threads", "2", "--verify-invariants", "--checkpoint-every", "3",
            "--keep-checkpoints", "1", "--on-nan", "skip-step", "--stop-after", "8");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Equal(recorded, File.ReadAllText(configPath));
        var syncs = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("event").GetString() == "sync").ToList();
        Assert.Contains(syncs, s => s.GetProperty("step").GetInt64() == 8 && s.GetProperty("verified").GetBoolean());   // this command verified
        Assert.Single(Directory.GetDirectories(Path.Combine(dir, "checkpoints"), "step-*"));   // and kept one checkpoint

        var plain = Run("train", "--resume", dir, "--quiet");
        Assert.True(plain.Code == 0, plain.Err);
        syncs = [.. File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("event").GetString() == "sync")];
        Assert.All(syncs.Where(s => s.GetProperty("step").GetInt64() > 8), s => Assert.False(s.TryGetProperty("verified", out var v) && v.GetBoolean()));
        Assert.Equal(recorded, File.ReadAllText(configPath));
    }

    [Fact]
    public void ResumingARunStoppedAtItsLastStepSaysOnlyItsEndIsLeft()
    {
        // --stop-after at the last step stops before the run's end (final sync, evaluation, summary.json).
        string dir = Path.Combine(_dir.FullName, "last");
        var r = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32",
            "--stop-after", "2", "--quiet", "--threads", "1", "--out", dir);
        Assert.True(r.Code == 0, r.Err);
        Assert.False(File.Exists(Path.Combine(dir, "summary.json")));
        r = Run("train", "--resume", dir, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("(step 2, the last: only the run's end is left).", r.Out, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(dir, "summary.json")));
    }

    [Fact]
    public void LimitsBeyondTheDataAreSaidBeforeTheRun()
    {
        // They were cut to the data without a word, while run-config.json kept the numbers given.
        var r = Run("train", "--model", "f1", "--limit-train", "200", "--limit-test", "20000", "--train-eval-size", "500", "--epochs", "1",
            "--batch", "100", "--quiet", "--threads", "1", "--out", Path.Combine(_dir.FullName, "limits"));
        Assert.True(r.Code == 0, r.Err);
        string[] lines = r.Out.ReplaceLineEndings("\n").Split('\n');
        Assert.Equal("laperm: warning: --limit-test 20000 is more than the 10,000 test images of mnist: the run tests on all 10,000.", lines[0]);
        Assert.Equal("laperm: warning: --train-eval-size 500 is more than the 200 training images: the training evaluation uses all 200.", lines[1]);
        Assert.StartsWith("laperm train: f1", lines[2], StringComparison.Ordinal);
        r = Run("train", "--model", "f1", "--limit-train", "70000", "--limit-test", "100", "--epochs", "1", "--batch", "100",
            "--stop-after", "1", "--quiet", "--threads", "1", "--out", Path.Combine(_dir.FullName, "limits2"));
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith("laperm: warning: --limit-train 70000 is more than the 60,000 training images of mnist: the run trains on all 60,000.", r.Out, StringComparison.Ordinal);
        Assert.Single(r.Out.ReplaceLineEndings("\n").Split('\n'), l => l.Contains("warning", StringComparison.Ordinal));
    }

    [Fact]
    public void MirroredDigitsAndMoreThreadsThanCoresAreWarned()
    {
        int threads = Environment.ProcessorCount + 1;
        var r = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32", "--augment", "cifar",
            "--threads", threads.ToString(CultureInfo.InvariantCulture), "--quiet", "--out", Path.Combine(_dir.FullName, "mirrored"));
        Assert.True(r.Code == 0, r.Err);
        string[] lines = r.Out.ReplaceLineEndings("\n").Split('\n');
        Assert.Equal("laperm: warning: --augment cifar flips images left-right, which turns digits into shapes of no class; for mnist use --augment mnist (or none).", lines[0]);
        Assert.Equal($"laperm: warning: --threads {threads} is more than the {Environment.ProcessorCount} logical cores here: threads take turns on them (the results are the same, the run slower).", lines[1]);
        // A value not typed on this command line is named by where it came from, and MNIST in any case is MNIST.
        string resumed = Path.Combine(_dir.FullName, "mirrored-resumed");
        Assert.Equal(0, Run("train", "--model", "f1", "--data", "MNIST", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32",
            "--augment", "shift-flip", "--threads", "1", "--quiet", "--stop-after", "1", "--out", resumed).Code);
        r = Run("train", "--resume", resumed, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.StartsWith("laperm: warning: the run's --augment shift-flip flips images left-right", r.Out, StringComparison.Ordinal);
        // Neither where it does not apply.
        r = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32", "--augment", "mnist",
            "--threads", "1", "--quiet", "--out", Path.Combine(_dir.FullName, "upright"));
        Assert.True(r.Code == 0, r.Err);
        Assert.DoesNotContain("warning", r.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void ABatchLargerThanTheDataAndAStopAfterTheEndAreSaidBeforeTheRun()
    {
        var r = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "2", "--batch", "128",
            "--stop-after", "3", "--quiet", "--threads", "1", "--out", Path.Combine(_dir.FullName, "tiny"));
        Assert.True(r.Code == 0, r.Err);
        string[] lines = r.Out.ReplaceLineEndings("\n").Split('\n');
        Assert.Equal("laperm: warning: batch 128 is more than the 64 training images: every step trains on all 64, one step per epoch.", lines[0]);
        Assert.Equal("laperm: warning: --stop-after 3 is after the run's last step (2); the run ends first.", lines[1]);
        Assert.StartsWith("laperm train: f1", lines[2], StringComparison.Ordinal);
        // Neither is said where it does not apply.
        r = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "2", "--batch", "64",
            "--stop-after", "2", "--quiet", "--threads", "1", "--out", Path.Combine(_dir.FullName, "tiny2"));
        Assert.True(r.Code == 0, r.Err);
        Assert.DoesNotContain("warning", r.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void ARunShorterThanKHasItsFinalNetworkAsTheBest()
    {
        // 2 steps with k 250: no scheduled sync, so the end-of-run sync's network is the only LaPerm network.
        string dir = Path.Combine(_dir.FullName, "short");
        var r = Run("train", "--preset", "f1-mnist", "--limit-train", "256", "--limit-test", "128", "--epochs", "1", "--quiet", "--threads", "1",
            "--target-accuracy", "5%", "--out", dir);
        Assert.True(r.Code == 0, r.Err);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;
        Assert.Equal(2L, summary.GetProperty("best_step").GetInt64());
        Assert.Equal(2L, summary.GetProperty("steps_to_target").GetInt64());   // --target-accuracy 5 %: recorded from the same evaluation
        var last = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).Last(e => e.GetProperty("event").GetString() == "eval");
        Assert.True(last.GetProperty("candidate").GetBoolean());
        Assert.Equal(summary.GetProperty("final_test_accuracy").GetDouble(), summary.GetProperty("best_test_accuracy").GetDouble());
        Assert.True(File.Exists(Path.Combine(dir, "best.safetensors")));
    }

    [Fact]
    public void AProfileRangeAfterTheRunsLastStepIsAWarning()
    {
        var r = Run("train", "--device", "emu", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--batch", "16", "--epochs", "1",
            "--quiet", "--profile-steps", "100:200", "--out", Path.Combine(_dir.FullName, "profile"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("--profile-steps 100:200 starts after the run's last step (4)", r.Out, StringComparison.Ordinal);
        // On emu nothing is captured at all, and the run says so.
        Assert.Contains("laperm: note: --profile-steps on emu brackets the steps as on a GPU, but no profiler runs here: nothing is captured.", r.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void AResumedRunSaysWhichStepsOfItsProfileRangeRanBeforeItsCheckpoint()
    {
        string dir = Path.Combine(_dir.FullName, "profile-resumed");
        var stopped = Run("train", "--device", "emu", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--batch", "16", "--epochs", "1",
            "--quiet", "--stop-after", "2", "--out", dir);
        Assert.True(stopped.Code == 0, stopped.Err);
        var resumed = Run("train", "--resume", dir, "--quiet", "--profile-steps", "1:3");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("laperm: warning: --profile-steps 1:3: steps 1 to 2 ran before the checkpoint this run resumes from; the capture covers step 3.", resumed.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void APresetsSharedInitCanBeReplacedByHeUniform()
    {
        string outDir = Path.Combine(_dir.FullName, "f1-he");
        var (code, _, stderr) = Run("train", "--preset", "f1-mnist", "--init", "he-uniform", "--limit-train", "256", "--limit-test", "64",
            "--epochs", "1", "--quiet", "--out", outDir);
        Assert.True(code == 0, stderr);
        // The initial weights are He-uniform, not the preset's shared 0.08 kept 4/7 of the time.
        var (tensors, _) = SafeTensors.Read(Path.Combine(outDir, "initial.safetensors"));
        float[] kernel = Assert.Single(tensors).Values;
        float limit = MathF.Sqrt(6f / 784f);
        Assert.All(kernel, v => Assert.InRange(v, -limit, limit));
        Assert.True(kernel.Distinct().Count() > kernel.Length / 2, "He-uniform draws are (nearly) all distinct");
        Assert.Contains(kernel, v => v < 0);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        Assert.StartsWith("he-uniform", summary.GetProperty("init").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void TheTargetAccuracyIsRecordedAtTheFirstSynchronisedEvaluationThatReachesItAndCanEndTheRun()
    {
        string[] common = ["train", "--model", "lenet300", "--limit-train", "1024", "--limit-test", "256", "--epochs", "2",
            "--batch", "32", "--k", "4", "--seed", "2", "--threads", "2", "--quiet"];
        string fullDir = Path.Combine(_dir.FullName, "full"), stopDir = Path.Combine(_dir.FullName, "stop");
        var full = Run([.. common, "--out", fullDir]);
        Assert.True(full.Code == 0, full.Err);
        var evals = File.ReadAllLines(Path.Combine(fullDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.GetProperty("event").GetString() == "eval").ToList();
        // A goal that the run reaches part-way: the accuracy of its third evaluation (the first one at that level).
        double goal = evals[2].GetProperty("test_accuracy").GetDouble();
        var first = evals.First(e => e.GetProperty("test_accuracy").GetDouble() >= goal);
        long firstStep = first.GetProperty("step").GetInt64();
        Assert.True(firstStep < evals[^1].GetProperty("step").GetInt64(), "the goal must be reached before the run's end for this test");

        var stopped = Run([.. common, "--out", stopDir, "--target-accuracy", goal.ToString("R", CultureInfo.InvariantCulture), "--stop-at-target"]);
        Assert.True(stopped.Code == 0, stopped.Err);
        Assert.Contains($"at step {firstStep} ", stopped.Out, StringComparison.Ordinal);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(stopDir, "summary.json"))).RootElement;
        Assert.Equal(firstStep, summary.GetProperty("steps_to_target").GetInt64());
        Assert.Equal(firstStep, summary.GetProperty("steps").GetInt64()); // stopped right there
        Assert.Equal(goal, summary.GetProperty("target_accuracy").GetDouble());
        Assert.InRange(summary.GetProperty("train_seconds_to_target").GetDouble(), 1e-6, summary.GetProperty("wall_seconds_to_target").GetDouble());
        var stoppedRecords = File.ReadAllLines(Path.Combine(stopDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var target = stoppedRecords.Single(r => r.GetProperty("event").GetString() == "target");
        Assert.Equal(firstStep, target.GetProperty("step").GetInt64());
        // The evaluation that reached the target is the final one: not repeated, and in its own epoch.
        var lastEval = stoppedRecords.Last(r => r.GetProperty("event").GetString() == "eval");
        Assert.Single(stoppedRecords, r => r.GetProperty("event").GetString() == "eval" && r.GetProperty("step").GetInt64() == firstStep);
        Assert.Equal(first.GetProperty("epoch").GetDouble(), lastEval.GetProperty("epoch").GetDouble());
        Assert.Equal(first.GetProperty("test_accuracy").GetDouble(), summary.GetProperty("final_test_accuracy").GetDouble());

        // Unreachable: recorded as not reached, and the run goes to its end.
        var never = Run([.. common, "--out", Path.Combine(_dir.FullName, "never"), "--target-accuracy", "100%"]);
        Assert.True(never.Code == 0, never.Err);
        Assert.Contains("target 100.00%: not reached", never.Out, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every CIFAR-10 preset runs end to end from a CIFAR-10 binary folder (here generated: no
    /// CIFAR-10 offline): its model, augmentation, L2, skip flags and syncs, with every sync
    /// verified to be an exact permutation, and biases and batch-norm left out of reconnection.
    /// </summary>
    [Theory]
    [InlineData("conv2-cifar10", "conv2", "cifar")]
    [InlineData("conv4-cifar10", "conv4", "cifar")]
    [InlineData("conv13-cifar10", "conv13", "cifar")]
    [InlineData("resnet50c-cifar10", "resnet50c", "shift-flip")]
    public void EveryCifarPresetTrainsEndToEndFromACifar10Folder(string preset, string model, string augment)
    {
        string data = Path.Combine(_dir.FullName, "cifar", "cifar-10-batches-bin");
        if (!Directory.Exists(data))
        {
            Directory.CreateDirectory(data);
            var rng = new Random(31);
            byte[] Records(int count)
            {
                var bytes = new byte[count * 3073];
                rng.NextBytes(bytes);
                for (int i = 0; i < count; i++) bytes[i * 3073] = (byte)rng.Next(10);   // the label byte
                return bytes;
            }
            for (int b = 1; b <= 5; b++) File.WriteAllBytes(Path.Combine(data, $"data_batch_{b}.bin"), Records(4));
            File.WriteAllBytes(Path.Combine(data, "test_batch.bin"), Records(6));
        }
        string outDir = Path.Combine(_dir.FullName, preset);
        var (code, _, stderr) = Run("train", "--preset", preset, "--data", "cifar10:" + data, "--epochs", "1", "--batch", "4",
            "--k", "2", "--threads", "1", "--quiet", "--verify-invariants", "--out", outDir);
        Assert.True(code == 0, stderr);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        Assert.Equal(model, summary.GetProperty("model").GetString());
        Assert.Equal(preset, summary.GetProperty("preset").GetString());
        Assert.Equal(augment, summary.GetProperty("augment").GetString());
        Assert.Equal((20, 6), (summary.GetProperty("train_size").GetInt32(), summary.GetProperty("test_size").GetInt32()));
        Assert.Equal(5, summary.GetProperty("steps").GetInt64());
        Assert.Equal(3, summary.GetProperty("syncs").GetInt32());   // steps 2 and 4, and the end of the run
        Assert.True(summary.GetProperty("skip_bias").GetBoolean() && summary.GetProperty("skip_bn").GetBoolean());
        var reconnected = summary.GetProperty("reconnected_tensors").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.NotEmpty(reconnected);
        Assert.All(reconnected, name => Assert.EndsWith("/kernel", name, StringComparison.Ordinal));
        Assert.InRange(summary.GetProperty("final_test_accuracy").GetDouble(), 0.0, 1.0);
    }

    [Theory]
    [InlineData("--out needs a value, got an empty one (see 'laperm train --help').", "train", "--out", " ")]
    // An empty value wrote .png and .svg into the working directory (plot --out "") or nothing at all (--json "").
    [InlineData("--out needs a value, got an empty one (see 'laperm profile-weights --help').", "profile-weights", "--weights", "w.safetensors", "--out", "")]
    [InlineData("--json needs a value, got an empty one", "bench", "reconnect", "--json=")]
    [InlineData("--epochs needs a value, got an empty one", "train", "--epochs=")]
    [InlineData("--lr needs a value, not the option '--epochs' (a value that starts with -- is given as --lr=VALUE)", "train", "--lr", "--epochs", "1")]
    [InlineData("--lr needs a value", "train", "--epochs", "1", "--lr")]
    [InlineData("--overwrite starts a new run in place of the one in its --out; --resume continues the run in 'x'. Give one of them.", "train", "--resume", "x", "--overwrite")]
    // A switch given a value was "not an option".
    [InlineData("--skip-bias is a switch and takes no value; give --skip-bias alone, without '=yes'.", "train", "--skip-bias=yes")]
    [InlineData("--quiet is a switch and takes no value; give --quiet alone, without '='.", "train", "--quiet=")]
    // --preset alone asks which presets there are.
    [InlineData("--preset needs a value: one of conv7-mnist, f1-mnist, f2-mnist, ", "train", "--preset")]
    [InlineData("--preset needs a value: one of conv7-mnist, f1-mnist, f2-mnist, ", "train", "--preset", "--epochs", "1")]
    public void AMissingOrUnwantedValueIsNamedAsSuch(string expected, params string[] args)
    {
        var (code, _, stderr) = Run(args);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    /// <summary>cuda:N takes a GPU number, digits only; bench reconnect has no cpu to run on.</summary>
    [Theory]
    [InlineData("--device expects cpu, cuda, cuda:N (GPU N), emu or auto, got 'cuda:x'.", "train", "--device", "cuda:x")]
    [InlineData("--device expects cpu, cuda, cuda:N (GPU N), emu or auto, got 'cuda:-1'.", "train", "--device", "cuda:-1")]
    [InlineData("--device expects cpu, cuda, cuda:N (GPU N), emu or auto, got 'cuda:'.", "bench", "sync", "--device", "cuda:")]
    [InlineData("--device expects cpu, cuda, cuda:N (GPU N), emu or auto, got 'gpu'.", "bench", "train", "--device", "gpu")]
    [InlineData("--device of 'laperm bench reconnect' expects cuda, cuda:N (GPU N), emu or auto, got 'cpu'.", "bench", "reconnect", "--device", "cpu")]
    [InlineData("--device of 'laperm bench reconnect' expects cuda, cuda:N (GPU N), emu or auto, got 'cuda:+1'.", "bench", "reconnect", "--device", "cuda:+1")]
    public void ADeviceThatIsNoneOfTheChoicesIsRefusedListingThem(string expected, params string[] args)
    {
        var (code, _, stderr) = Run(args);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("'--epoch' is not an option of 'laperm train' (did you mean --epochs?) (see 'laperm train --help').", "train", "--epoch", "3")]
    [InlineData("'--windos' is not an option of 'laperm bench train' (did you mean --windows?)", "bench", "train", "--windos", "3")]
    [InlineData("unknown command 'trian' (did you mean train?); expected train, eval,", "trian")]
    [InlineData("unknown preset 'f1' (did you mean f1-mnist?); expected one of", "train", "--preset", "f1")]
    [InlineData("unknown model 'lenet' (did you mean lenet300?); expected one of", "train", "--model", "lenet")]
    [InlineData("unknown model 'resnet9' (did you mean resnet8 or resnet14?); expected one of", "train", "--model", "resnet9")]
    [InlineData("unknown model 'resnet6005' (did you mean resnet6002?); expected one of", "models", "resnet6005")]
    [InlineData("'--bogus' is not an option of 'laperm train' (see", "train", "--bogus")]
    [InlineData("'--kernel' is not an option of 'laperm info' (it takes --kernels)", "info", "--kernels", "--kernel")]
    // A resnetD of millions of layers was built until memory ran out.
    [InlineData("unknown model 'resnet2000000000'", "models", "resnet2000000000")]
    [InlineData("resnetD (D = 6n+2, 1 <= n <= 1000: 8, 14, 20, ..., 6002)", "train", "--model", "resnet6008")]
    public void AMistypedNameIsAnsweredWithTheOneItMostLikelyMeant(string expected, params string[] args)
    {
        var (code, _, stderr) = Run(args);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoWithKernelsAddsALinePerKernel()
    {
        var (code, stdout, stderr) = Run("info", "--kernels");
        Assert.True(code == 0, stderr);
        Assert.Contains("cpu:", stdout, StringComparison.Ordinal);
        Assert.Matches(@"\n  kernel +file +regs +spill +static smem +bounds\r?\n", stdout);
        Assert.Matches(@"\n  reconnect_warp32 +reconnect\.ptx ", stdout);
        Assert.DoesNotContain("regs", Run("info").Out, StringComparison.Ordinal);
    }

    [Fact]
    public void TheHelpAndTheReadmeListEveryFlagAllowedWithResume()
    {
        // The lists had drifted: the help named --threads only, the README left out --reconnect-variant.
        string help = string.Join(' ', TrainCommand.Help.Split(default(char[]), StringSplitOptions.RemoveEmptyEntries));
        int at = help.IndexOf("--resume DIR", StringComparison.Ordinal);
        string resumeHelp = help[at..help.IndexOf("--on-nan stop|skip-step", at, StringComparison.Ordinal)];
        string readme = File.ReadAllText(Path.Combine(RepoRoot(), "README.md"));
        string resumeReadme = readme[readme.IndexOf("`laperm train --resume DIR` continues", StringComparison.Ordinal)..][..800];
        Assert.All(ResumeArguments.Allowed.Skip(1), flag =>
        {
            Assert.Contains(flag, resumeHelp, StringComparison.Ordinal);
            Assert.Contains($"`{flag}`", resumeReadme, StringComparison.Ordinal);
        });
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LaPerm.Native.sln"))) return dir.FullName;
        throw new InvalidOperationException("the repository root (LaPerm.Native.sln) is not above the test binaries");
    }

    [Theory]
    [InlineData("--math, --reconnect-variant, --no-graphs apply to the GPU backends", "--math", "tf32", "--reconnect-variant", "8", "--no-graphs")]
    [InlineData("--no-reconnect: --k, --verify-invariants have no reconnection to act on", "--no-reconnect", "--k", "10", "--verify-invariants")]
    [InlineData("init shared:0.08 keep 0 leaves a tensor with keep 0 all zeros", "--init", "shared:0.08", "--keep", "0/7")]
    [InlineData("init shared:0 keep 1/2 makes every weight 0", "--init", "shared:0", "--keep", "1/2")]
    // Keep 1 (the default) gives every weight the shared value: nothing to permute.
    [InlineData("reconnection cannot change dense1/kernel: every row of it holds one value, so it stays as initialised (init shared:0.08 keep 1 gives such a tensor one value; a keep strictly between 0 and 1 (--keep a/b) mixes V and 0).", "--init", "shared:0.08")]
    [InlineData("--momentum applies to --optimizer sgd; adam does not use it.", "--momentum", "0.5")]
    [InlineData("--threads sizes the cpu backend; emu ignores it.", "--device", "emu", "--threads", "2")]
    [InlineData("--math tf32 chooses cuBLAS's TF32 tensor cores (--device cuda); emu runs its GEMMs on the host in FP32", "--device", "emu", "--math", "tf32")]
    public void FlagsWithNothingToActOnAreAcceptedWithAWarning(string expected, params string[] flags)
    {
        var (code, stdout, stderr) = Run(["train", "--model", "f1", "--device", "cpu", "--limit-train", "256", "--limit-test", "64", "--epochs", "1",
            "--out", Path.Combine(_dir.FullName, "w"), .. flags]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"laperm: warning: {expected}", stdout, StringComparison.Ordinal);
    }

    [Theory]
    // A kernel with keep 1 beside one with keep 0: both named (only the keep-0 one was).
    [InlineData("reconnection cannot change dense1/kernel, dense2/kernel: every row of them holds one value, so they stay as initialised (init shared:0.03 keep 1,0,1/3 gives such a tensor one value; ",
        "f2", "--init", "shared:0.03", "--keep", "1,0,1/3")]
    // A 10-value bias that drew all zeros at keep 1/15 (seed 2): chance, not the keep, is to blame.
    [InlineData("reconnection cannot change dense3/bias: every row of it holds one value, so it stays as initialised (a row of one weight, or one whose random draws all came out alike; ",
        "lenet300", "--init", "shared:0.1", "--keep", "1/15", "--seed", "2")]
    public void TensorsThatReconnectionCannotChangeAreNamedWithTheirCause(string expected, string model, params string[] flags)
    {
        var r = Run(["train", "--model", model, "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32", "--threads", "1", "--quiet",
            "--stop-after", "1", "--out", Path.Combine(_dir.FullName, "frozen-" + model), .. flags]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("laperm: warning: " + expected, r.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void ReconnectingBatchNormParametersThatStartConstantIsWarned()
    {
        // gamma starts as all 1 and beta as all 0: every sync put them back, and nothing said so.
        string model = Path.Combine(_dir.FullName, "bn.json");
        File.WriteAllText(model, """{"name": "bn", "input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 4, "kernel": 3}, {"type": "batchnorm"}, {"type": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 10}]}""");
        string[] common = ["train", "--model", model, "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--batch", "32", "--threads", "1", "--quiet"];
        var r = Run([.. common, "--out", Path.Combine(_dir.FullName, "bn-frozen")]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("laperm: warning: reconnection cannot change bn1/gamma, bn1/beta: every row of them holds one value, so they stay as initialised "
            + "(batch-norm's gamma and beta start as all 1 and all 0; --skip-bn trains them with the optimizer instead, as the CIFAR presets do).", r.Out, StringComparison.Ordinal);
        r = Run([.. common, "--skip-bn", "--out", Path.Combine(_dir.FullName, "bn-trained")]);
        Assert.True(r.Code == 0, r.Err);
        Assert.DoesNotContain("warning", r.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("train", "--help")]
    [InlineData("eval", "--help")]
    [InlineData("bench", "--help")]
    [InlineData("plot", "--help")]
    [InlineData("trace", "--help")]
    [InlineData("profile-weights", "--help")]
    [InlineData("models", "--help")]
    [InlineData("info", "--help")]
    public void HelpTextsAreWrappedAt104Columns(params string[] args)
    {
        // Lines of 110 to 220 columns (usage lines, a flag's description) wrapped mid-word in a terminal.
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(args, stdout, TextWriter.Null));
        Assert.NotEqual("", stdout.ToString());
        Assert.All(stdout.ToString().Split('\n'), line => Assert.True(line.TrimEnd('\r').Length <= 104, $"{line.Length} columns: {line}"));
    }

    [Fact]
    public void ABatchWhoseActivationsCannotFitATensorIsRefusedBeforeTheRunTouchesItsDirectory()
    {
        // It crashed with a stack trace when the first pass was allocated, after --overwrite had deleted the earlier run.
        string dir = Path.Combine(_dir.FullName, "wide"), model = Path.Combine(_dir.FullName, "wide.json");
        File.WriteAllText(model, """{"name":"wide","input":[1,28,28],"layers":[{"type":"conv2d","filters":3000,"kernel":3,"padding":"same"},{"type":"globalavgpool"},{"type":"dense","units":10}]}""");
        var earlier = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--quiet", "--out", dir);
        Assert.True(earlier.Code == 0, earlier.Err);
        var refused = Run("train", "--model", model, "--limit-train", "1000", "--limit-test", "32", "--batch", "1000", "--epochs", "1", "--overwrite", "--out", dir);
        Assert.Equal(CommandLine.UserError, refused.Code);
        Assert.Contains("--batch 1000: a batch of 1,000 is too large for wide: layer 'conv1' has 2,352,000 values per example, so more than 913 would not fit one tensor", refused.Err, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(dir, "summary.json")));
        Assert.True(File.Exists(Path.Combine(dir, "final.safetensors")));
        // Fewer examples than --batch: the pass is as large as the data, which fits.
        var small = Run("train", "--model", model, "--limit-train", "8", "--limit-test", "8", "--batch", "1000", "--epochs", "1", "--quiet", "--out", Path.Combine(_dir.FullName, "wide-small"));
        Assert.True(small.Code == 0, small.Err);
        // f1 holds at most 2,739,110 examples a pass (784 values each); eval takes what the test set has.
        var eval = Run("eval", "--weights", Path.Combine(dir, "final.safetensors"), "--batch", "5000000", "--limit-test", "64");
        Assert.True(eval.Code == 0, eval.Err);
    }

    [Fact]
    public void WeightsThatNameABuiltInModelOnlyAreEvaluatedWithIt()
    {
        // Metadata with "model": "f1" and no model_spec (written by another tool, or edited) was "records no model".
        string dir = Path.Combine(_dir.FullName, "named");
        var run = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "32", "--epochs", "1", "--quiet", "--out", dir);
        Assert.True(run.Code == 0, run.Err);
        string weights = Path.Combine(dir, "final.safetensors"), named = Path.Combine(dir, "named.safetensors");
        var (tensors, _) = SafeTensors.Read(weights);
        SafeTensors.Write(named, tensors, new Dictionary<string, string> { ["model"] = "f1" });
        var full = Run("eval", "--weights", weights, "--limit-test", "64");
        var byName = Run("eval", "--weights", named, "--limit-test", "64");
        Assert.True(byName.Code == 0, byName.Err);
        Assert.Equal(full.Out, byName.Out);
        SafeTensors.Write(named, tensors, new Dictionary<string, string> { ["model"] = "no-such-model" });
        var unknown = Run("eval", "--weights", named, "--limit-test", "64");
        Assert.Equal(CommandLine.UserError, unknown.Code);
        Assert.Contains("names model 'no-such-model', which is not built in, and records no description of it; pass --model.", unknown.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void TheProgressBarCountsEpochsFromOneOfAll()
    {
        // "epoch 1" beside eval lines' "epoch 0.79" read as two conventions; "1/2" says which epoch of how many.
        var stdout = new StringWriter();
        var progress = new ConsoleProgress(stdout, terminal: true, epochs: 2);
        progress.OnStep(10, 126, 0, double.NaN, double.NaN);
        Assert.Contains("step 10/126 epoch 1/2 loss ...", stdout.ToString(), StringComparison.Ordinal);
        progress.OnStep(70, 126, 1, 0.25, 0.5);
        Assert.Contains("step 70/126 epoch 2/2 loss 0.2500 acc 50.00%", stdout.ToString(), StringComparison.Ordinal);
        // Not on a terminal: no bar.
        var plain = new StringWriter();
        new ConsoleProgress(plain, terminal: false, epochs: 2).OnStep(10, 126, 0, 0.25, 0.5);
        Assert.Equal("", plain.ToString());
    }

    [Fact]
    public void SgdMomentumIsInTheHeaderAndSummaryAdamHasNone()
    {
        string sgdDir = Path.Combine(_dir.FullName, "sgd"), adamDir = Path.Combine(_dir.FullName, "adam");
        var sgd = Run("train", "--model", "f1", "--device", "cpu", "--limit-train", "128", "--limit-test", "32", "--epochs", "1",
            "--optimizer", "sgd", "--momentum", "0.75", "--lr", "0.01", "--out", sgdDir);
        Assert.True(sgd.Code == 0, sgd.Err);
        Assert.Contains(", sgd momentum 0.75 lr 0.01 ", sgd.Out, StringComparison.Ordinal);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(sgdDir, "summary.json"))).RootElement;
        Assert.Equal("sgd", summary.GetProperty("optimizer").GetString());
        Assert.Equal(0.75, summary.GetProperty("momentum").GetDouble());

        var adam = Run("train", "--model", "f1", "--device", "cpu", "--limit-train", "128", "--limit-test", "32", "--epochs", "1", "--out", adamDir);
        Assert.True(adam.Code == 0, adam.Err);
        Assert.Contains(", adam lr ", adam.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("momentum", adam.Out, StringComparison.Ordinal);
        summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(adamDir, "summary.json"))).RootElement;
        Assert.Equal(JsonValueKind.Null, summary.GetProperty("momentum").ValueKind);
    }

    [Fact]
    public void ProfileStepsUnderAutoWithoutAGpuWarnsAndRuns()
    {
        if (LaPerm.Cuda.CudaInfo.Collect().CudaAvailable)
            Assert.Skip("a usable GPU is present: auto runs on it and --profile-steps applies");
        var (code, stdout, stderr) = Run("train", "--device", "auto", "--model", "f1", "--limit-train", "256", "--limit-test", "64", "--epochs", "1",
            "--profile-steps", "2:3", "--out", Path.Combine(_dir.FullName, "auto-profile"));
        Assert.True(code == 0, stderr);
        Assert.Contains("laperm: warning: --profile-steps needs a GPU; --device auto found none", stdout, StringComparison.Ordinal);
        // Asked of the cpu itself, it is still an error, said before the run's header (it came after it).
        var cpu = Run("train", "--device", "cpu", "--model", "f1", "--limit-train", "64", "--limit-test", "16", "--epochs", "1",
            "--profile-steps", "2:3", "--out", Path.Combine(_dir.FullName, "cpu-profile"));
        Assert.Equal(CommandLine.UserError, cpu.Code);
        Assert.Contains("--profile-steps brackets steps for a GPU profiler; it needs --device cuda (or emu), not cpu", cpu.Err, StringComparison.Ordinal);
        Assert.Equal("", cpu.Out);
        Assert.False(Directory.Exists(Path.Combine(_dir.FullName, "cpu-profile")));
    }

    [Fact]
    public void BenchSaysWhatItsNumbersAreNot()
    {
        // bench train and sync ignored GPU flags on the cpu in silence, and timed the emulator as if it were a GPU.
        var sync = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["bench", "sync", "--model", "f1", "--samples", "3", "--device", "cpu", "--reconnect-variant", "2"], sync, TextWriter.Null));
        Assert.Contains("laperm: warning: --reconnect-variant applies to the GPU backends", sync.ToString(), StringComparison.Ordinal);
        // A sync runs no GEMM, convolution or batch-norm: flags that choose those are refused, not ignored.
        foreach (string flag in new[] { "--math", "--cudnn", "--channel-reduction" })
            Assert.Contains($"'{flag}' is not an option of 'laperm bench sync'", Run("bench", "sync", "--model", "f1", flag, "x").Err, StringComparison.Ordinal);
        // A batch whose synthetic data set cannot be one array is refused in a sentence (it was an OverflowException).
        Assert.Contains("--batch 2700000 is more than bench train can hold for f1: at most 171,196",
            Run("bench", "train", "--model", "f1", "--batch", "2700000").Err, StringComparison.Ordinal);
        var train = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["bench", "train", "--model", "f1", "--device", "emu", "--steps", "3", "--windows", "1", "--batch", "32", "--threads", "2"], train, TextWriter.Null));
        Assert.Contains("its timings say nothing about a GPU", train.ToString(), StringComparison.Ordinal);
        Assert.Contains("laperm: warning: --threads sizes the cpu backend; emu ignores it.", train.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("laperm:", Run("bench", "sync", "--model", "f1", "--samples", "3", "--device", "cpu").Out, StringComparison.Ordinal);
    }

    [Fact]
    public void APlainRunWarnsAboutNothing() =>
        Assert.DoesNotContain("warning", Run("train", "--model", "f1", "--device", "cpu", "--limit-train", "256", "--limit-test", "64", "--epochs", "1",
            "--out", Path.Combine(_dir.FullName, "plain")).Out, StringComparison.Ordinal);

    [Theory]
    [InlineData("--model", "f2", "--init", "shared:0.03", "--keep", "1/2,1/3")]
    [InlineData("--model", "f1", "--profile-steps", "5:2")]
    public void FlagsTheTrainerWouldRefuseStopTheRunBeforeItsHeader(params string[] flags)
    {
        string dir = Path.Combine(_dir.FullName, "late");
        var (code, stdout, _) = Run(["train", "--limit-train", "64", "--limit-test", "16", "--out", dir, .. flags]);
        Assert.Equal(CommandLine.UserError, code);
        Assert.DoesNotContain("laperm train:", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void APresetsKeepListOnAnotherModelIsBlamedOnThePreset()
    {
        var (code, _, stderr) = Run("train", "--preset", "f2-mnist", "--model", "f1", "--limit-train", "64", "--limit-test", "16");
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("--keep has 3 entries but model 'f1' has 1 kernel tensor; give one entry or one per kernel (the --keep of --preset f2-mnist; give --keep for model 'f1').", stderr, StringComparison.Ordinal);
        // With --keep given, the message is about that flag alone.
        (code, _, stderr) = Run("train", "--preset", "f2-mnist", "--model", "f1", "--keep", "1/2,1/3", "--limit-train", "64", "--limit-test", "16");
        Assert.Equal(CommandLine.UserError, code);
        Assert.DoesNotContain("--preset", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnfinishedRunInTheOutputDirectoryStopsANewRunBeforeItsHeader()
    {
        string dir = Path.Combine(_dir.FullName, "my run");
        Directory.CreateDirectory(Path.Combine(new LaPerm.Core.Checkpoints.CheckpointStore(dir).Directory, LaPerm.Core.Checkpoints.CheckpointStore.NameOf(8)));
        var (code, stdout, stderr) = Run("train", "--model", "f1", "--limit-train", "64", "--limit-test", "16", "--out", dir);
        Assert.Equal(CommandLine.UserError, code);
        Assert.DoesNotContain("laperm train:", stdout, StringComparison.Ordinal);
        // The command to paste quotes the directory's space.
        Assert.Contains($"holds an unfinished run (1 checkpoint, the newest of step 8, no summary.json); continue it with: laperm train --resume '{dir}';", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDefaultOutputDirectoryIsNeverOneThatExistsOrIsClaimed()
    {
        // Two runs in the same second got the same default directory, and the second replaced the first's results.
        string path = Path.Combine(_dir.FullName, "lenet300-20261127-120000");
        Assert.Equal(path, TrainCommand.ClaimNewDirectory(path));
        Assert.True(File.Exists(Path.Combine(path, LaPerm.Core.Checkpoints.RunSession.LockFile)));
        // Claimed (by the call above, as by a run starting at the same moment): the next name.
        Assert.Equal(path + "-2", TrainCommand.ClaimNewDirectory(path));
        File.WriteAllText(path + "-3", "a file, not a run");
        Assert.Equal(path + "-4", TrainCommand.ClaimNewDirectory(path));
    }

    [Theory]
    [InlineData("train", "--bogus")]
    [InlineData("train", "--epochs", "zero")]
    [InlineData("train", "--k", "0")]
    [InlineData("train", "--preset", "nope")]
    [InlineData("train", "--model", "nope")]
    [InlineData("train", "--lr-schedule", "cosine")]
    [InlineData("train", "--k", "abc")]
    [InlineData("train", "--k", "0:100,0:50")]
    [InlineData("train", "--k", "1:100")]
    [InlineData("train", "--on-nan", "maybe")]
    [InlineData("train", "--augment", "sideways")]
    [InlineData("train", "--device", "tpu")]
    [InlineData("train", "--device", "cuda", "--limit-train", "10", "--limit-test", "10")]
    [InlineData("train", "--keep", "4/7")]
    [InlineData("train", "--init", "shared:0.1", "--keep", "1/2,1/3", "--limit-train", "10", "--limit-test", "10")]
    [InlineData("train", "--model", "conv2", "--limit-train", "10", "--limit-test", "10")]
    [InlineData("train", "--target-accuracy", "101%")]
    [InlineData("train", "--target-accuracy", "0")]
    [InlineData("train", "--stop-at-target")]
    [InlineData("train", "--channel-reduction", "diagonal")]
    [InlineData("train", "--cudnn", "yes")]
    [InlineData("train", "--cudnn", "conv,conv")]
    [InlineData("train", "--cudnn", "conv,")]
    [InlineData("train", "--reconnect-variant", "11")]
    [InlineData("bench", "train", "--model", "f1", "--reconnect-variant", "1")]
    [InlineData("eval", "--weights", "missing.safetensors")]
    [InlineData("frobnicate")]
    [InlineData("train", "--threads", "100000")]
    [InlineData("train", "--data", "mnist:")]
    [InlineData("train", "--lr", "1e-300")]
    [InlineData("models", "./no-such-model")]
    [InlineData("eval", "--weights", ".")]
    [InlineData("bench", "sync", "--model", "f1", "--batch", "7")]
    [InlineData("bench", "train", "--model", "f1", "--samples", "3")]
    [InlineData("train", "--out", "")]
    [InlineData("train", "--lr", "--epochs", "1")]
    // Their messages end without a full stop; the line gets one.
    [InlineData("trace", "no-such-run", "--layer", "dense1/kernel")]
    [InlineData("bench", "reconnect", "--device", "emu", "--variant", "99")]
    public void UserErrorsPrintOneSentenceAndExitWithTwo(params string[] args)
    {
        if (args.Contains("cuda") && LaPerm.Cuda.CudaInfo.Collect().CudaAvailable)
            Assert.Skip("a usable GPU is present, so --device cuda is no user error on this machine");
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(CommandLine.UserError, code);
        var line = stderr.TrimEnd('\n', '\r');
        Assert.StartsWith("laperm: ", line, StringComparison.Ordinal);
        Assert.EndsWith(".", line, StringComparison.Ordinal);   // one sentence
        Assert.False(line.EndsWith("..", StringComparison.Ordinal), line);
        Assert.DoesNotContain('\n', line);
        Assert.DoesNotContain("   at ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("done:", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void AModelWithMoreOutputsThanTheDataHasClassesIsWarned()
    {
        string path = Path.Combine(_dir.FullName, "eleven.json");
        File.WriteAllText(path, """{"name":"eleven","input":[1,28,28],"layers":[{"type":"flatten"},{"type":"dense","units":11}]}""");
        var (code, stdout, stderr) = Run("train", "--model", path, "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch", "32",
            "--quiet", "--out", Path.Combine(_dir.FullName, "eleven"));
        Assert.True(code == 0, stderr);
        Assert.Contains("laperm: warning: model eleven has 11 outputs, mnist has 10 classes: output 10 is never a label.", stdout, StringComparison.Ordinal);
    }

    /// <summary>A name read from a file may hold an escape sequence or a NUL: the error writes them as \\uXXXX, never raw to the terminal.</summary>
    [Fact]
    public void ControlCharactersInAnErrorAreWrittenAsEscapes()
    {
        string path = Path.Combine(_dir.FullName, "escape.json");
        File.WriteAllText(path, """{"name":"m","input":[1,28,28],"layers":[{"type":"flatten","name":"a\u001b[31mb\u0000c"},{"type":"dense","units":10}]}""");
        var (code, _, stderr) = Run("models", path);
        Assert.Equal(CommandLine.UserError, code);
        Assert.DoesNotContain(stderr.TrimEnd('\n', '\r'), char.IsControl);
        Assert.Contains("a\\u001b[31mb\\u0000c", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ABadDataFileIsAUserErrorNamingTheFile()
    {
        var dir = Path.Combine(_dir.FullName, "bad");
        Directory.CreateDirectory(dir);
        // Wrong magic number in the training images; the other three files are plausible.
        File.WriteAllBytes(Path.Combine(dir, "train-images-idx3-ubyte"), [0, 0, 9, 9, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28, .. new byte[784]]);
        File.WriteAllBytes(Path.Combine(dir, "train-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 1, 3]);
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28, .. new byte[784]]);
        File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 1, 3]);
        var (code, _, stderr) = Run("train", "--data", dir, "--out", Path.Combine(_dir.FullName, "o"));
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("train-images-idx3-ubyte", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void ModelsListsConv7WithItsPublishedParameterCount()
    {
        var (code, stdout, _) = Run("models");
        Assert.Equal(0, code);
        Assert.Contains(stdout.Split('\n'), l => l.StartsWith("conv7", StringComparison.Ordinal) && l.Contains("325,578", StringComparison.Ordinal));
    }

    [Fact]
    public void PresetFlagsCanBeOverriddenByLaterFlags()
    {
        var a = new Arguments(["--preset", "conv7-mnist", "--epochs", "3", "--k", "0:100,2:400"],
            new HashSet<string> { "--preset", "--epochs", "--k" }, new HashSet<string>(), "train");
        var o = TrainCommand.Parse(a);
        Assert.Equal(("conv7", 3, 50, "0:100,2:400", "mnist"), (o.Model, o.Epochs, o.Batch, o.K.ToString(), o.Augment));
        // A preset's switches and its summed loss can be undone too.
        TrainingOptions Parsed(params string[] args) => TrainCommand.Parse(new Arguments(args,
            new HashSet<string> { "--preset", "--loss-reduction" }, new HashSet<string> { "--skip-bias", "--no-skip-bias", "--skip-bn", "--no-skip-bn" }, "train"));
        var cifar = Parsed("--preset", "conv2-cifar10");
        Assert.Equal((true, true, LossReduction.Sum), (cifar.SkipBias, cifar.SkipBatchNorm, cifar.LossReduction));
        var undone = Parsed("--preset", "conv2-cifar10", "--no-skip-bias", "--loss-reduction", "mean");
        Assert.Equal((false, true, LossReduction.Mean), (undone.SkipBias, undone.SkipBatchNorm, undone.LossReduction));
        Assert.Equal((false, false), (Parsed("--preset", "conv2-cifar10", "--no-skip-bias", "--no-skip-bn").SkipBias, Parsed("--preset", "conv2-cifar10", "--no-skip-bn").SkipBatchNorm));
        Assert.True(Parsed("--skip-bn").SkipBatchNorm);
        Assert.Contains("contradict", Assert.Throws<UsageException>(() => Parsed("--skip-bias", "--no-skip-bias")).Message, StringComparison.Ordinal);
        Assert.Throws<UsageException>(() => Parsed("--loss-reduction", "median"));
    }

    [Fact]
    public void EvalRefusesAModelWithFewerOutputsThanTheDataHasClasses()
    {
        // Trained weights of a 5-class model, evaluated on MNIST's 10 classes: one sentence, not a crash.
        string model = Path.Combine(_dir.FullName, "five.json");
        File.WriteAllText(model, """{"name": "five", "input": [1, 28, 28], "layers": [{"type": "dense", "units": 5}]}""");
        string weights = Path.Combine(_dir.FullName, "five.safetensors");
        SafeTensors.Write(weights, [new NamedArray("dense1/kernel", [5, 784], new float[5 * 784]), new NamedArray("dense1/bias", [5], new float[5])],
            new Dictionary<string, string>());
        var (code, _, stderr) = Run("eval", "--weights", weights, "--model", model, "--limit-test", "64");
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("10 classes", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void ANameWithADirectoryIsAModelFileEvenWhenItsFileNameIsABuiltInModel()
    {
        // (A bare name is a built-in model first; a file of that name in the working directory no longer replaces it.)
        string file = Path.Combine(_dir.FullName, "f1");
        File.WriteAllText(file, "not a model");
        var (code, stdout, stderr) = Run("models", "f1");
        Assert.True(code == 0, stderr);
        Assert.Contains("7,840", stdout, StringComparison.Ordinal);
        (code, _, stderr) = Run("models", file);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains($"model file '{file}' is not valid JSON (line 1, column 2): 'not a model' is an invalid JSON literal", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AJsonModelFileTrainsAndDescribesItself()
    {
        string path = Path.Combine(_dir.FullName, "tiny.json");
        File.WriteAllText(path, """
            {"name": "tiny", "input": [1, 28, 28], "layers": [
              {"type": "conv2d", "filters": 4, "kernel": 3, "stride": 2, "padding": "same"}, {"type": "relu"}, {"type": "batchnorm"},
              {"type": "residual", "main": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}, {"type": "relu"}]},
              {"type": "maxpool", "pool": 2}, {"type": "flatten"}, {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 10}]}
            """);
        var (code, stdout, stderr) = Run("models", path);
        Assert.True(code == 0, stderr);
        Assert.Contains("tiny", stdout, StringComparison.Ordinal);
        Assert.Contains("res1", stdout, StringComparison.Ordinal);
        // The residual block names its inner layers: conv2 is the name its tensors carry (conv2/kernel below).
        Assert.Contains("residual [conv2: conv 3x3x4->4", stdout, StringComparison.Ordinal);
        string outDir = Path.Combine(_dir.FullName, "tiny-run");
        (code, _, stderr) = Run("train", "--model", path, "--limit-train", "128", "--limit-test", "64", "--epochs", "1", "--batch", "32",
            "--k", "2", "--skip-bn", "--verify-invariants", "--out", outDir);
        Assert.True(code == 0, stderr);
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        Assert.Equal("tiny", summary.GetProperty("model").GetString());
        Assert.DoesNotContain("bn1/gamma", summary.GetProperty("reconnected_tensors").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("conv2/kernel", summary.GetProperty("reconnected_tensors").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public void NoGraphsRunsTheSameStepsOneOpAtATimeWithTheSameFinalWeights()
    {
        string[] common = ["train", "--device", "emu", "--model", "f2", "--limit-train", "80", "--limit-test", "32", "--epochs", "1",
            "--batch", "16", "--k", "2", "--seed", "4", "--threads", "2", "--quiet"];
        JsonElement Summary(string name, params string[] extra)
        {
            string outDir = Path.Combine(_dir.FullName, name);
            var (code, _, stderr) = Run([.. common, .. extra, "--out", outDir]);
            Assert.True(code == 0, stderr);
            return JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
        }
        var captured = Summary("graphs");
        var eager = Summary("no-graphs", "--no-graphs");
        Assert.True(captured.GetProperty("graphs").GetBoolean());
        Assert.False(eager.GetProperty("graphs").GetBoolean());
        Assert.Equal(5, captured.GetProperty("steps").GetInt64());
        Assert.Equal(eager.GetProperty("final_weights_sha256").GetString(), captured.GetProperty("final_weights_sha256").GetString());
        // 80 images at batch 16: five steps of 16, a sync every 2: one step graph and the reconnection's.
        var nodes = captured.GetProperty("graph_nodes").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        Assert.Equal(["reconnection", "step_batch_16"], nodes.Keys.Order());
        Assert.InRange(nodes["step_batch_16"], 11, 200);
        Assert.Equal(JsonValueKind.Null, eager.GetProperty("graph_nodes").ValueKind);
    }

    [Fact]
    public void ImagesOfTheWrongSizeNameTheirFileAndStopBeforeTheRunStarts()
    {
        var (code, stdout, stderr) = Run("train", "--model", "conv2", "--data", "mnist", "--limit-train", "10", "--limit-test", "10");
        Assert.Equal(CommandLine.UserError, code);
        Assert.Equal("laperm: mnist train (embedded train-images-idx3-ubyte.gz) has images of 1x28x28 (channels x height x width), but model conv2 expects 3x32x32.",
            stderr.TrimEnd());
        Assert.DoesNotContain("laperm train:", stdout, StringComparison.Ordinal);   // no header of a run that never starts
    }

    [Fact]
    public void TheUsageListsEveryExitCode()
    {
        var (code, stdout, _) = Run("--help");
        Assert.Equal(0, code);
        var codes = typeof(CommandLine).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(int)).Select(f => (int)f.GetRawConstantValue()!).ToList();
        Assert.Equal(6, codes.Count);
        Assert.All(codes, c => Assert.Matches(new System.Text.RegularExpressions.Regex($@"(^|[ ;:]){c} ", System.Text.RegularExpressions.RegexOptions.Multiline), stdout));
    }

    [Theory]
    [InlineData("train")]
    [InlineData("sync")]
    [InlineData("reconnect")]
    public void BenchModeHelpShowsThatModeAlone(string mode)
    {
        var (code, stdout, _) = Run("bench", mode, "--help");
        Assert.Equal(0, code);
        string[] modes = ["train", "sync", "reconnect"];
        Assert.All(modes, m => Assert.Equal(m == mode, stdout.Contains($"laperm bench {m} [", StringComparison.Ordinal)));
        string all = Run("bench", "--help").Out;
        Assert.All(modes, m => Assert.Contains($"laperm bench {m} [", all, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("train")]
    [InlineData("eval")]
    [InlineData("bench")]
    public void HelpWithACommandShowsThatCommandsHelp(string command)
    {
        // "laperm help train" printed the general usage.
        var (code, stdout, _) = Run("help", command);
        Assert.Equal(0, code);
        Assert.Equal(Run(command, "--help").Out, stdout);
        Assert.NotEqual(Run("--help").Out, stdout);
        // A mode and an unknown command too.
        Assert.Equal(Run("bench", "train", "--help").Out, Run("help", "bench", "train").Out);
        var unknown = Run("help", "trian");
        Assert.Equal(CommandLine.UserError, unknown.Code);
        Assert.Contains("unknown command 'trian' (did you mean train?)", unknown.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoSaysWhenItFindsAGpuItCannotUse()
    {
        var warnings = new StringWriter();
        using (var backend = Backends.Auto(1, gpuFound: true, () => throw new InvalidOperationException("cuBLAS is not installed."), warnings))
            Assert.Equal("cpu", backend.Name);
        Assert.Equal("laperm: warning: --device auto found a GPU but cannot use it (cuBLAS is not installed); running on the CPU.",
            warnings.ToString().TrimEnd());
        // A driver too old for our PTX fails inside the driver API: the same fallback.
        warnings = new StringWriter();
        using (var backend = Backends.Auto(1, gpuFound: true,
                   () => throw new LaPerm.Cuda.Interop.CudaException("cuModuleLoadData", 222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain"), warnings))
            Assert.Equal("cpu", backend.Name);
        Assert.Contains("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", warnings.ToString(), StringComparison.Ordinal);
        // No GPU at all: the CPU, without a word (the header line names the backend).
        warnings = new StringWriter();
        using (var backend = Backends.Auto(1, gpuFound: false, () => throw new InvalidOperationException("not called"), warnings))
            Assert.Equal("cpu", backend.Name);
        Assert.Empty(warnings.ToString());
    }

    [Fact]
    public void EveryReconnectVariantTrainsToTheSameFinalWeights()
    {
        // f2's rows (784, 128 and 64 long) go through the warp, bucket and block kernels; variant 9 sizes
        // 784 as 128 threads x 8 and 128 and 64 as 32 x 8.
        string[] common = ["train", "--device", "emu", "--model", "f2", "--limit-train", "48", "--limit-test", "16", "--epochs", "1",
            "--batch", "16", "--k", "1", "--seed", "9", "--threads", "2", "--quiet"];
        (string Stdout, string? Sha, string Backend) Train(string name, params string[] extra)
        {
            string outDir = Path.Combine(_dir.FullName, name);
            var (code, stdout, stderr) = Run([.. common, .. extra, "--out", outDir]);
            Assert.True(code == 0, stderr);
            var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
            Assert.Equal(3L, summary.GetProperty("syncs").GetInt64());
            return (stdout, summary.GetProperty("final_weights_sha256").GetString(), summary.GetProperty("backend").GetString()!);
        }
        var dispatcher = Train("variant-auto");
        Assert.DoesNotContain("reconnection variant", dispatcher.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("host emulator", dispatcher.Backend, StringComparison.Ordinal);
        // summary.json's backend also names the paths the launches took (one per size class).
        Assert.EndsWith("our kernels only, reconnection [BlockBucketStaged x2]", dispatcher.Backend, StringComparison.Ordinal);
        foreach (var (variant, name, paths) in new[] { ("1", "TwoPass", "TwoPass x3"), ("8", "BlockBucketNarrow", "BlockBucketNarrow x2"),
                     ("9", "BlockBucketSized", "BlockBucketSized x2") })
        {
            var forced = Train($"variant-{variant}", "--reconnect-variant", variant);
            Assert.Contains($"reconnection variant {variant} ({name})", forced.Stdout, StringComparison.Ordinal);
            Assert.EndsWith($"reconnection variant {variant} ({name}) [{paths}]", forced.Backend, StringComparison.Ordinal);
            Assert.Equal(dispatcher.Sha, forced.Sha);
        }
    }

    [Fact]
    public void CudnnNamesTheOpFamiliesTheLibraryRunsAndTrainsTheSame()
    {
        string[] common = ["train", "--device", "emu", "--model", "f2", "--limit-train", "48", "--limit-test", "16", "--epochs", "1",
            "--batch", "16", "--k", "2", "--seed", "4", "--threads", "2", "--quiet"];
        (string Stdout, JsonElement Summary) Train(string name, params string[] extra)
        {
            string outDir = Path.Combine(_dir.FullName, name);
            var (code, stdout, stderr) = Run([.. common, .. extra, "--out", outDir]);
            Assert.True(code == 0, stderr);
            return (stdout, JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement);
        }
        var kernels = Train("kernels");
        var library = Train("cudnn", "--cudnn", "pool,bn");
        Assert.Contains("our kernels only", kernels.Stdout, StringComparison.Ordinal);
        Assert.Contains("cuDNN for pooling, batch-norm (our kernels where it cannot)", library.Stdout, StringComparison.Ordinal);
        // f2 has neither pooling nor batch-norm: the same ops, the same bits.
        Assert.Equal(kernels.Summary.GetProperty("final_weights_sha256").GetString(), library.Summary.GetProperty("final_weights_sha256").GetString());
    }

    [Fact]
    public void BenchTrainWithCudnnRunsConv7EntirelyOnTheLibrary()
    {
        // conv7's two 5x5 stride-2 'same' layers pad 1 top, 2 bottom: cuDNN runs them on an
        // explicitly padded input, so nothing is refused (a refusal would be listed after the line).
        var (code, stdout, stderr) = Run("bench", "train", "--model", "conv7", "--batch", "4", "--steps", "1", "--windows", "1",
            "--device", "emu", "--cudnn", "all");
        Assert.True(code == 0, stderr);
        // --threads sizes the CPU backend only: a device line does not claim a thread count.
        Assert.Matches(@"bench train conv7 +batch 4 emu graphs: .* images/s", stdout);
        Assert.DoesNotContain("cuDNN refused", stdout, StringComparison.Ordinal);
        // The emulator's timings are not a GPU's: no arithmetic rate is made of them.
        Assert.DoesNotContain("arithmetic:", stdout, StringComparison.Ordinal);
        // The step graph's nodes, without a time per node on the emulator.
        Assert.Matches(@"\n  graph: [1-9][0-9]+ nodes per step \(kernel launches, ours and the libraries', copies and memsets\)\r?\n", stdout);
        Assert.DoesNotContain("us of the step per node", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TheGraphLineGivesTheStepTimePerNodeWhereTheTimeMeansSomething()
    {
        Assert.Equal("  graph: 40 nodes per step (kernel launches, ours and the libraries', copies and memsets), 2.5 us of the step per node",
            BenchCommand.GraphLine(40, 100.0));
        Assert.Equal("  graph: 40 nodes per step (kernel launches, ours and the libraries', copies and memsets)", BenchCommand.GraphLine(40, null));
    }

    [Fact]
    public void BenchCommandsReportThroughputAndSyncTime()
    {
        var (code, stdout, stderr) = Run("bench", "train", "--model", "f1", "--batch", "16", "--steps", "2", "--windows", "1", "--threads", "2");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"bench train f1 +batch 16 threads 2 cpu: .* images/s", stdout);
        // f1 is one dense layer, 784 -> 10, with no input gradient: a forward and a weight-gradient GEMM.
        Assert.Matches(System.Runtime.Intrinsics.X86.Fma.IsSupported
            ? @"\n  arithmetic: 15,680 multiply-adds per image \(dense and convolution layers, forward and backward\), [0-9.]+ GFLOP/s, [0-9]+ % of the FMA peak of 2 threads \([0-9.]+ GFLOP/s, measured by this command\)"
            : @"\n  arithmetic: 15,680 multiply-adds per image \(dense and convolution layers, forward and backward\), [0-9.]+ GFLOP/s\r?\n", stdout);
        (code, stdout, stderr) = Run("bench", "sync", "--model", "f1", "--samples", "3", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"bench sync f1 \(7,840 weights in 10 rows: every kernel, bias and batch-norm tensor\) threads 1 cpu: .* ms per full sync", stdout);
        // A forced reconnection variant names itself in the line; the dispatcher does not.
        (code, stdout, stderr) = Run("bench", "sync", "--model", "f1", "--samples", "1", "--device", "emu", "--reconnect-variant", "3");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"bench sync f1 \(7,840 weights in 10 rows: every kernel, bias and batch-norm tensor\) emu variant 3 \[BlockBitonic\]: .* ms per full sync", stdout);
        (code, stdout, stderr) = Run("bench", "sync", "--model", "f1", "--samples", "1", "--device", "emu");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"bench sync f1 \(7,840 weights in 10 rows: every kernel, bias and batch-norm tensor\) emu \[BlockBucketStaged\]: .* ms per full sync", stdout);
    }
}
