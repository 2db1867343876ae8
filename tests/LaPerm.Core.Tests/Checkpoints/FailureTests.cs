using System.Text.Json.Nodes;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Tests.Checkpoints;

public sealed class FailureTests
{
    public enum Damage
    {
        Truncated,
        BadJsonHeader,
        WrongShapeWithMatchingChecksum,
        ChecksumMismatch,
        MissingManifest,
        UnsortedInitialRowWithMatchingChecksum,
        NonFiniteInitialRowWithMatchingChecksum,
    }

    /// <summary>Rewrites one tensor of a checkpoint file and makes the manifest agree: only the content checks can catch it.</summary>
    private static void RewriteWithMatchingChecksum(string checkpoint, string file, Func<NamedArray, NamedArray> change)
    {
        string path = Path.Combine(checkpoint, file);
        var (tensors, meta) = SafeTensors.Read(path);
        SafeTensors.Write(path, [.. tensors.Select(change)], meta);
        var manifestPath = Path.Combine(checkpoint, CheckpointStore.ManifestFile);
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        var (size, sha) = CheckpointStore.Hash(path);
        manifest["files"]![file] = new JsonObject { ["bytes"] = size, ["sha256"] = sha };
        File.WriteAllText(manifestPath, manifest.ToJsonString());
    }

    private static void Inflict(string checkpoint, Damage damage)
    {
        string weights = Path.Combine(checkpoint, RunSession.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        switch (damage)
        {
            case Damage.Truncated:
                File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
                break;
            case Damage.BadJsonHeader:
                bytes[8] = (byte)'#'; // the header's opening brace
                File.WriteAllBytes(weights, bytes);
                break;
            case Damage.WrongShapeWithMatchingChecksum:
                // A well-formed file whose dense kernel has the wrong shape, with a manifest made to agree:
                // the checksum cannot catch it, the shape check must.
                RewriteWithMatchingChecksum(checkpoint, RunSession.WeightsFile, t => t.Name == "dense1/kernel" ? t with { Shape = [676, 10] } : t);
                break;
            case Damage.UnsortedInitialRowWithMatchingChecksum:
                RewriteWithMatchingChecksum(checkpoint, RunSession.SortedInitialFile, t =>
                {
                    if (t.Name != "dense1/kernel") return t;
                    var values = (float[])t.Values.Clone();
                    (values[0], values[^1]) = (values[^1], values[0]);   // the first row's smallest and the last row's largest
                    return t with { Values = values };
                });
                break;
            case Damage.NonFiniteInitialRowWithMatchingChecksum:
                RewriteWithMatchingChecksum(checkpoint, RunSession.SortedInitialFile, t =>
                    t.Name == "dense1/kernel" ? t with { Values = [.. t.Values.Select(_ => float.NaN)] } : t);
                break;
            case Damage.ChecksumMismatch:
                bytes[^3] ^= 0x40; // one bit of the last weight
                File.WriteAllBytes(weights, bytes);
                break;
            case Damage.MissingManifest:
                File.Delete(Path.Combine(checkpoint, CheckpointStore.ManifestFile));
                break;
        }
    }

    [Theory]
    [InlineData(Damage.Truncated, "bytes")]
    [InlineData(Damage.BadJsonHeader, "SHA-256")]
    [InlineData(Damage.WrongShapeWithMatchingChecksum, "shape")]
    [InlineData(Damage.ChecksumMismatch, "SHA-256")]
    [InlineData(Damage.MissingManifest, "manifest")]
    [InlineData(Damage.UnsortedInitialRowWithMatchingChecksum, "a row of 'dense1/kernel' is not sorted")]
    [InlineData(Damage.NonFiniteInitialRowWithMatchingChecksum, "tensor 'dense1/kernel' holds non-finite values")]
    public void ADamagedNewestCheckpointIsSkippedWithAWarningAndThePreviousOneIsUsed(Damage damage, string reason)
    {
        using var fx = new RunFixture();
        string straight = fx.Dir("straight"), split = fx.Dir("split");
        var a = RunFixture.Train(RunFixture.Options(straight));
        var options = RunFixture.Options(split);
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 13 } }));
        var store = new CheckpointStore(split);
        Assert.Equal([13L, 12L, 8L, 4L], store.Checkpoints().Select(c => c.Step));
        string newest = store.Checkpoints()[0].Path;
        Inflict(newest, damage);

        var log = new StringWriter();
        var b = RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }, log);
        string text = log.ToString();
        Assert.Contains($"skipping checkpoint '{newest}'", text, StringComparison.Ordinal);
        Assert.Contains(reason, text, StringComparison.Ordinal);
        Assert.Contains("resuming from", text, StringComparison.Ordinal);
        Assert.Contains(CheckpointStore.NameOf(12), text, StringComparison.Ordinal);
        // Resuming from step 12 still reproduces the uninterrupted run exactly.
        Assert.Equal(a.FinalWeightsSha256, b.FinalWeightsSha256);
        Assert.Equal(RunFixture.MetricsWithoutClock(straight), RunFixture.MetricsWithoutClock(split));
        Assert.True(Directory.Exists(Path.Combine(store.Directory, "rejected-" + CheckpointStore.NameOf(13))));
    }

    [Fact]
    public void WithEveryCheckpointDamagedTheRunStartsOverAndSaysSo()
    {
        using var fx = new RunFixture();
        string straight = fx.Dir("straight"), split = fx.Dir("split");
        var a = RunFixture.Train(RunFixture.Options(straight) with { Epochs = 1 });
        var options = RunFixture.Options(split) with { Epochs = 1 };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 5 } }));
        foreach (var (_, path) in new CheckpointStore(split).Checkpoints()) Inflict(path, Damage.ChecksumMismatch);
        var log = new StringWriter();
        var b = RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }, log);
        Assert.Contains("no valid checkpoint", log.ToString(), StringComparison.Ordinal);
        Assert.Equal(a.FinalWeightsSha256, b.FinalWeightsSha256);
        Assert.Equal(RunFixture.MetricsWithoutClock(straight), RunFixture.MetricsWithoutClock(split));
    }

    /// <summary>
    /// A run that ended, every checkpoint damaged, --resume: starting over would delete its summary
    /// and best/final weights, which the user asked to continue, not to replace. Refused; the
    /// results and the metrics stay byte for byte.
    /// </summary>
    [Fact]
    public void WithEveryCheckpointDamagedAResumeOfAnEndedRunIsRefusedAndItsResultsStay()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("ended");
        var options = RunFixture.Options(dir) with { Epochs = 1 };
        RunFixture.Train(options);
        foreach (var (_, path) in new CheckpointStore(dir).Checkpoints()) Inflict(path, Damage.ChecksumMismatch);
        string[] kept = [RunSession.SummaryFile, RunSession.BestWeightsFile, RunSession.FinalWeightsFile, RunSession.MetricsFileName];
        var before = kept.Select(name => File.ReadAllBytes(Path.Combine(dir, name))).ToArray();
        var e = Assert.Throws<ResumeException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }));
        Assert.Contains("no valid checkpoint", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{RunSession.SummaryFile}, {RunSession.BestWeightsFile}, {RunSession.FinalWeightsFile}", e.Message, StringComparison.Ordinal);
        Assert.Contains("new --out", e.Message, StringComparison.Ordinal);
        for (int i = 0; i < kept.Length; i++) Assert.Equal(before[i], File.ReadAllBytes(Path.Combine(dir, kept[i])));
    }

    /// <summary>
    /// Killed before its first checkpoint (by default the end of epoch 1), a run has written only
    /// what starting over writes again: --resume starts it over and ends as the uninterrupted run.
    /// It was refused as if damaged checkpoints had been set aside, pointing to a new --out.
    /// </summary>
    [Fact]
    public void ARunKilledBeforeItsFirstCheckpointIsStartedOverByResumeAndEndsAsTheUninterruptedRun()
    {
        using var fx = new RunFixture();
        string straight = fx.Dir("straight"), killed = fx.Dir("killed");
        var options = RunFixture.Options(killed) with { Epochs = 1 };
        var a = RunFixture.Train(RunFixture.Options(straight) with { Epochs = 1 });
        RunFixture.Train(options);
        // What a kill after the first best evaluation and before the first checkpoint leaves.
        Directory.Delete(new CheckpointStore(killed).Directory, recursive: true);
        File.Delete(Path.Combine(killed, RunSession.SummaryFile));
        File.Delete(Path.Combine(killed, RunSession.FinalWeightsFile));
        Assert.True(File.Exists(Path.Combine(killed, RunSession.BestWeightsFile)));
        // A new run there is refused, naming the resume that runs it again.
        Assert.Contains($"that run stopped before its first checkpoint: laperm train --resume {killed} runs it again from step 0",
            Assert.Throws<ResumeException>(() => RunSession.RefuseEarlierRun(killed)).Message, StringComparison.Ordinal);
        var log = new StringWriter();
        var b = RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }, log);
        Assert.Contains($"laperm: no checkpoint in '{new CheckpointStore(killed).Directory}' yet (the run stopped before its first); starting the run over from step 0 with its recorded configuration, which writes {RunSession.BestWeightsFile} again.",
            log.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("rejected", log.ToString(), StringComparison.Ordinal);
        Assert.Equal(a.FinalWeightsSha256, b.FinalWeightsSha256);
        Assert.Equal(RunFixture.MetricsWithoutClock(straight), RunFixture.MetricsWithoutClock(killed));

        // A run that ended and has no checkpoint left: starting over would replace its results. Refused, nothing changed.
        Directory.Delete(new CheckpointStore(killed).Directory, recursive: true);
        byte[] summary = File.ReadAllBytes(Path.Combine(killed, RunSession.SummaryFile));
        var e = Assert.Throws<ResumeException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }));
        Assert.Contains($"holds {RunSession.SummaryFile}, {RunSession.BestWeightsFile}, {RunSession.FinalWeightsFile} of that run, which ended", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("damaged", e.Message, StringComparison.Ordinal);
        Assert.Equal(summary, File.ReadAllBytes(Path.Combine(killed, RunSession.SummaryFile)));
    }

    [Fact]
    public void ARepeatedResumeOfARunWhoseCheckpointsWereAllRejectedIsRefusedAgain()
    {
        // The first resume set every damaged checkpoint aside; the second took the run for one stopped
        // before its first checkpoint and started it over, deleting its best weights.
        using var fx = new RunFixture();
        string dir = fx.Dir("rejected");
        var options = RunFixture.Options(dir) with { Epochs = 2, EvalEvery = 5 };   // evaluations of synchronised weights: a best
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 12 } }));
        foreach (var (_, path) in new CheckpointStore(dir).Checkpoints()) Inflict(path, Damage.ChecksumMismatch);
        byte[] best = File.ReadAllBytes(Path.Combine(dir, RunSession.BestWeightsFile));
        var resume = options with { Checkpoints = options.Checkpoints with { Resume = true } };
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var e = Assert.Throws<ResumeException>(() => RunFixture.Train(resume));
            Assert.Contains("no valid checkpoint", e.Message, StringComparison.Ordinal);
            Assert.Equal(best, File.ReadAllBytes(Path.Combine(dir, RunSession.BestWeightsFile)));
        }
        Assert.Empty(new CheckpointStore(dir).Checkpoints());
    }

    /// <summary>
    /// Resuming a run that ended runs its end again: its summary.json goes when metrics.jsonl is
    /// cut back, so a kill meanwhile leaves an unfinished run, not a summary of evaluations the
    /// metrics no longer hold. Extra checkpoints (a kill between `latest` and pruning) are pruned.
    /// </summary>
    [Fact]
    public void ResumingAnEndedRunRemovesItsSummaryWithTheMetricsItDescribedAndPrunesToKeep()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("ended");
        var options = RunFixture.Options(dir) with { Epochs = 1 };
        RunFixture.Train(options);
        var store = new CheckpointStore(dir);
        Assert.Equal([8L, 4L], store.Checkpoints().Select(c => c.Step));
        long metricsBefore = new FileInfo(Path.Combine(dir, RunSession.MetricsFileName)).Length;
        var resume = options with { Checkpoints = options.Checkpoints with { Resume = true, Keep = 1 } };
        // A resume refused for its --stop-after prunes nothing (it pruned first).
        Assert.Throws<ResumeException>(() => RunSession.Open(resume with { Checkpoints = resume.Checkpoints with { StopAfterStep = 8 } }, new ModelDefinition(RunFixture.Spec), TextWriter.Null));
        Assert.Equal([8L, 4L], store.Checkpoints().Select(c => c.Step));
        using (RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), TextWriter.Null))
        {
            Assert.False(File.Exists(Path.Combine(dir, RunSession.SummaryFile)));
            Assert.True(new FileInfo(Path.Combine(dir, RunSession.MetricsFileName)).Length < metricsBefore);
            Assert.Equal([8L], store.Checkpoints().Select(c => c.Step));
        }
        // The directory is now an unfinished run: a new run there is refused, naming --resume.
        Assert.Contains("--resume", Assert.Throws<ResumeException>(() => RunSession.RefuseEarlierRun(dir)).Message, StringComparison.Ordinal);
    }

    /// <summary>A resume that cannot write run-config.json stops before it cuts metrics.jsonl back (it cut it first).</summary>
    [Fact]
    public void AResumeThatCannotWriteItsConfigurationLeavesTheMetricsWhole()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("config");
        var options = RunFixture.Options(dir) with { Epochs = 1 };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 5 } }));
        string metrics = Path.Combine(dir, RunSession.MetricsFileName), config = Path.Combine(dir, RunSession.RunConfigFile);
        File.AppendAllText(metrics, "{\"event\":\"after the checkpoint\"}\n");
        byte[] before = File.ReadAllBytes(metrics);
        File.Delete(config);
        Directory.CreateDirectory(config);
        var e = Assert.Throws<IOException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }));
        Assert.Contains(RunSession.RunConfigFile, e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(metrics));
    }

    [Fact]
    public void ANaNWeightStopsTheRunNamingStepAndTensorAndLeavesTheLastCheckpointIntact()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("nan");
        var e = Assert.Throws<NonFiniteException>(() => RunFixture.Train(RunFixture.Options(dir), makeObserver: trainer => new StepHook(step =>
        {
            if (step != 10) return;
            var p = trainer.Network!.Parameters.Single(x => x.Name == "dense1/kernel");
            var values = new float[p.Value.Length];
            trainer.Network.Backend.Download(p.Value, values);
            values[123] = float.NaN;
            trainer.Network.Backend.Upload<float>(values, p.Value);
        })));
        Assert.Contains("step 11", e.Message, StringComparison.Ordinal);
        Assert.Contains("'dense1/kernel' (1 of 6760 values)", e.Message, StringComparison.Ordinal);
        Assert.Contains(CheckpointStore.NameOf(8), e.Message, StringComparison.Ordinal);
        var store = new CheckpointStore(dir);
        Assert.Equal(8L, store.Checkpoints()[0].Step);
        Assert.Null(CheckpointStore.Verify(store.Checkpoints()[0].Path, [RunSession.WeightsFile]));
        Assert.All(SafeTensors.Read(Path.Combine(store.Checkpoints()[0].Path, RunSession.WeightsFile)).Tensors, t => Assert.All(t.Values, v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void SkipStepLeavesNonFiniteStepsOutAndRecordsThem()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("skip");
        float[]? saved = null;
        // One epoch of 32 steps, so no checkpoint (which refuses non-finite weights in any mode) falls inside the poisoned steps.
        // k = 25 keeps syncs out of steps 11..20 too (a sync would re-fill the poisoned row with initial values).
        var options = RunFixture.Options(dir) with { Epochs = 1, Batch = 8, K = Core.LaPerm.SyncSchedule.Constant(25), Checkpoints = new CheckpointOptions { OnNonFinite = NonFinitePolicy.SkipStep } };
        var summary = RunFixture.Train(options, makeObserver: trainer => new StepHook(step =>
        {
            var p = trainer.Network!.Parameters.Single(x => x.Name == "conv1/kernel");
            if (step == 10)
            {
                saved = new float[p.Value.Length];
                trainer.Network.Backend.Download(p.Value, saved);
                var poisoned = (float[])saved.Clone();
                poisoned[0] = float.PositiveInfinity;
                trainer.Network.Backend.Upload<float>(poisoned, p.Value);
            }
            else if (step == 20)
            {
                trainer.Network.Backend.Upload<float>(saved!, p.Value);
            }
        }));
        var skipped = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(n => n["event"]!.GetValue<string>() == "skipped_step").Select(n => n["step"]!.GetValue<long>()).ToList();
        // Steps 11..20 see the infinite weight (its loss is not finite); the hook at step 20 puts the weight back after that step.
        Assert.Equal(Enumerable.Range(11, 10).Select(s => (long)s), skipped);
        Assert.Equal(32, summary.Steps);
        Assert.Equal(10, summary.SkippedSteps);
        Assert.Equal(10, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, RunSession.SummaryFile)))!["skipped_steps"]!.GetValue<long>());
        // Evaluations every 3 steps: the one at step 15 follows three skipped steps, so it has no training images to average.
        var at15 = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Single(n => n["event"]!.GetValue<string>() == "eval" && n["step"]!.GetValue<long>() == 15);
        Assert.Null(at15["train_loss"]);
        Assert.Null(at15["train_accuracy"]);
        Assert.True(double.IsFinite(summary.FinalTestLoss));
    }

    [Fact]
    public void AnUnwritableOutputDirectoryFailsBeforeTraining()
    {
        using var fx = new RunFixture();
        string file = fx.Dir("a-file");
        File.WriteAllText(file, "not a directory");
        var e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(Path.Combine(file, "run"))));
        Assert.Equal($"output directory '{Path.Combine(file, "run")}' cannot be made: '{file}' is a file, not a directory; choose another --out", e.Message);
        e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(file + Path.DirectorySeparatorChar)));
        Assert.Equal($"output directory '{file}{Path.DirectorySeparatorChar}' is a file, not a directory; choose another --out", e.Message);
        Assert.Equal("not a directory", File.ReadAllText(file));
    }

    [Fact]
    public void AnOutputDirectoryBehindALinkToNothingSaysSo()
    {
        using var fx = new RunFixture();
        string missing = fx.Dir("missing"), link = fx.Dir("link");
        File.CreateSymbolicLink(link, missing);
        var e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(link)));
        Assert.Equal($"output directory '{link}' is a link to '{missing}', which does not exist; choose another --out", e.Message);
        e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(Path.Combine(link, "run"))));
        Assert.Equal($"output directory '{Path.Combine(link, "run")}' cannot be made: '{link}' is a link to '{missing}', which does not exist; choose another --out", e.Message);
        Assert.False(Path.Exists(missing));

        string loop = fx.Dir("loop");
        File.CreateSymbolicLink(loop, loop);
        e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(loop)));
        Assert.Equal($"output directory '{loop}' is a link to '{loop}' in a loop of links; choose another --out", e.Message);

        // A link to a file is a file.
        string file = fx.Dir("a-file"), toFile = fx.Dir("to-file");
        File.WriteAllText(file, "not a directory");
        File.CreateSymbolicLink(toFile, file);
        e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(toFile)));
        Assert.Equal($"output directory '{toFile}' is a file, not a directory; choose another --out", e.Message);
    }

    [Fact]
    public void AFailedCheckpointWriteStopsTheRunAndKeepsThePreviousCheckpoint()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("full");
        var store = new CheckpointStore(dir);
        // After step 10, a plain file takes the name the step-12 checkpoint is built under, so creating it fails as a full disk would.
        var e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(dir), observer: new StepHook(step =>
        {
            if (step == 10) File.WriteAllText(Path.Combine(store.Directory, ".tmp-" + CheckpointStore.NameOf(12)), "in the way");
        })));
        Assert.Contains("cannot write checkpoint step-00000012", e.Message, StringComparison.Ordinal);
        Assert.Contains("step-00000008' is intact", e.Message, StringComparison.Ordinal);
        // A full disk is not a NaN: the advice is the plain resume, not --on-nan skip-step.
        Assert.Contains($"can be written (free space, permissions), laperm train --resume {Shell.Quote(dir)} continues from it.", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--on-nan", e.Message, StringComparison.Ordinal);
        Assert.Equal(8L, store.Checkpoints()[0].Step);
        Assert.Null(CheckpointStore.Verify(store.Checkpoints()[0].Path, [RunSession.WeightsFile]));
        Assert.Equal("step-00000008", File.ReadAllText(store.LatestPointer).Trim());
    }

    [Fact]
    public void WhenOnlyTheLatestPointerCannotBeReplacedTheNewCheckpointIsNamedAsTheLastGoodOne()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("pointer");
        var store = new CheckpointStore(dir);
        // A directory where `latest` goes: step 4 is renamed into place, then replacing the pointer fails.
        Directory.CreateDirectory(store.LatestPointer);
        var e = Assert.Throws<RunStorageException>(() => RunFixture.Train(RunFixture.Options(dir)));
        Assert.Contains("cannot write checkpoint step-00000004", e.Message, StringComparison.Ordinal);
        Assert.Contains("step-00000004' is intact", e.Message, StringComparison.Ordinal);
        Assert.Null(CheckpointStore.Verify(store.Checkpoints()[0].Path, [RunSession.WeightsFile]));
    }
}
