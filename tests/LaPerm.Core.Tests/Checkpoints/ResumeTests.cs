using System.Text.Json.Nodes;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Core.Tests.Checkpoints;

public sealed class ResumeTests
{
    [Theory]
    [InlineData(OptimizerKind.Adam, 10, 0, 1)] // mid-epoch; default evaluation after syncs, spaced: the eval gap carries over
    [InlineData(OptimizerKind.Adam, 11, 3, 5)] // mid-epoch, between syncs
    [InlineData(OptimizerKind.Sgd, 16, 3, 5)] // an epoch end
    public void StoppingAndResumingIsBitIdenticalToAnUninterruptedRun(OptimizerKind optimizer, long stopAfter, int evalEvery, int k)
    {
        using var fx = new RunFixture();
        string straight = fx.Dir("straight"), split = fx.Dir("split");
        var a = RunFixture.Train((RunFixture.Options(straight, optimizer) with { EvalEvery = evalEvery, K = Core.LaPerm.SyncSchedule.Constant(k) }));
        var stopped = Assert.Throws<TrainingStoppedException>(() =>
            RunFixture.Train(RunFixture.Options(split, optimizer) with { EvalEvery = evalEvery, K = Core.LaPerm.SyncSchedule.Constant(k), Checkpoints = RunFixture.Options(split).Checkpoints with { StopAfterStep = stopAfter } }));
        Assert.Equal(stopAfter, stopped.Step);
        Assert.False(File.Exists(Path.Combine(split, "final.safetensors")));
        var log = new StringWriter();
        var b = RunFixture.Train(RunFixture.Options(split, optimizer) with { EvalEvery = evalEvery, K = Core.LaPerm.SyncSchedule.Constant(k), Checkpoints = RunFixture.Options(split).Checkpoints with { Resume = true } }, log);
        Assert.Contains(CheckpointStore.NameOf(stopAfter), log.ToString(), StringComparison.Ordinal);

        Assert.Equal(24, b.Steps);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final.safetensors")), File.ReadAllBytes(Path.Combine(split, "final.safetensors")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "best.safetensors")), File.ReadAllBytes(Path.Combine(split, "best.safetensors")));
        Assert.Matches("^[0-9a-f]{64}$", a.FinalWeightsSha256!);
        Assert.Equal(a.FinalWeightsSha256, b.FinalWeightsSha256);
        Assert.Equal((a.Syncs, a.BestStep, a.BestTestAccuracy, a.FinalTestAccuracy, a.FinalTestLoss), (b.Syncs, b.BestStep, b.BestTestAccuracy, b.FinalTestAccuracy, b.FinalTestLoss));
        Assert.Equal(RunFixture.MetricsWithoutClock(straight), RunFixture.MetricsWithoutClock(split));
        Assert.Contains(a.FinalWeightsSha256!, File.ReadAllText(Path.Combine(split, "summary.json")), StringComparison.Ordinal);
    }

    /// <summary>
    /// An interrupt (the CLI's Ctrl-C) stops the run after the step in progress with a checkpoint
    /// of that step, mid-epoch or at an epoch's end, and resuming gives the uninterrupted result.
    /// </summary>
    [Theory]
    [InlineData(9, 10)]    // asked during step 9's evaluation: step 10 finishes, mid-epoch checkpoint
    [InlineData(15, 16)]   // step 16 ends epoch 2: the epoch-end checkpoint
    public void AnInterruptCheckpointsTheStepInProgressAndResumesBitIdentically(long askedAt, long stoppedAfter)
    {
        using var fx = new RunFixture();
        string straight = fx.Dir("straight"), split = fx.Dir("split");
        var a = RunFixture.Train(RunFixture.Options(straight));
        using var interrupt = new CancellationTokenSource();
        var observer = new EvaluationHook(step => { if (step == askedAt) interrupt.Cancel(); });
        var stopped = Assert.Throws<TrainingInterruptedException>(() => RunFixture.Train(RunFixture.Options(split), observer: observer, interrupt: interrupt));
        Assert.Equal(stoppedAfter, stopped.Step);
        var store = new CheckpointStore(split);
        Assert.Equal(Path.Combine(store.Directory, CheckpointStore.NameOf(stoppedAfter)), stopped.Checkpoint);
        Assert.Equal(CheckpointStore.NameOf(stoppedAfter), File.ReadAllText(store.LatestPointer).Trim());
        Assert.False(File.Exists(Path.Combine(split, "final.safetensors")));

        var b = RunFixture.Train(RunFixture.Options(split) with { Checkpoints = RunFixture.Options(split).Checkpoints with { Resume = true } });
        Assert.Equal(a.FinalWeightsSha256, b.FinalWeightsSha256);
        Assert.Equal(RunFixture.MetricsWithoutClock(straight), RunFixture.MetricsWithoutClock(split));
    }

    [Fact]
    public void AnInterruptWithoutAnOutputDirectorySaysNothingWasSaved()
    {
        using var interrupt = new CancellationTokenSource();
        interrupt.Cancel();
        var stopped = Assert.Throws<TrainingInterruptedException>(() =>
            RunFixture.Train(RunFixture.Options("unused") with { Out = null, Checkpoints = new CheckpointOptions() }, interrupt: interrupt));
        Assert.Equal(1, stopped.Step);   // the first step finishes, then the run stops
        Assert.Null(stopped.Checkpoint);
        Assert.Contains("nothing was saved", stopped.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ACheckpointHoldsEveryFileWithItsChecksumAndTheNewestKAreKept()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Checkpoints = new CheckpointOptions { Every = 4, Keep = 2 } });
        var store = new CheckpointStore(dir);
        // Steps 4, 8 (epoch end), 12, 16 (epoch end), 20, 24 (epoch end): the newest two remain.
        Assert.Equal([24L, 20L], store.Checkpoints().Select(c => c.Step));
        Assert.Equal("step-00000024", File.ReadAllText(store.LatestPointer).Trim());
        Assert.Empty(Directory.GetDirectories(store.Directory, ".*"));
        string newest = store.Checkpoints()[0].Path;
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(newest, "manifest.json")))!["files"]!.AsObject();
        Assert.Equal(
            new[] { "config.json", "optimizer.safetensors", "sorted_initial.safetensors", "state.json", "traffic.safetensors", "weights.safetensors" },
            manifest.Select(kv => kv.Key).Order());
        foreach (var (file, entry) in manifest)
            Assert.Equal(CheckpointStore.Hash(Path.Combine(newest, file)).Sha256, entry!["sha256"]!.GetValue<string>());
        Assert.Null(CheckpointStore.Verify(newest, ["weights.safetensors"]));

        var state = RunState.FromJson(File.ReadAllText(Path.Combine(newest, "state.json")), "state.json");
        Assert.Equal((24L, 3, 0, 8), (state.Step, state.Epoch, state.BatchInEpoch, state.StepsPerEpoch));
        Assert.Equal(24L, state.OptimizerSteps);
        Assert.Equal(4, state.Syncs); // steps 5, 10, 15, 20; the final sync comes after the last checkpoint
        Assert.Equal(11UL, state.Seed);

        // Optimizer state: Adam m and v for every parameter, with t.
        var (optimizerArrays, optimizerMeta) = SafeTensors.Read(Path.Combine(newest, "optimizer.safetensors"));
        Assert.Equal("adam", optimizerMeta["optimizer"]);
        Assert.Equal("24", optimizerMeta["t"]);
        Assert.Contains(optimizerArrays, t => t.Name == "adam/v/dense1/kernel");
        // Sorted initial rows: each row ascending, and the rows of initial.safetensors sorted.
        var sorted = SafeTensors.Read(Path.Combine(newest, "sorted_initial.safetensors")).Tensors.Single(t => t.Name == "conv1/kernel");
        var initial = SafeTensors.Read(Path.Combine(dir, "initial.safetensors")).Tensors.Single(t => t.Name == "conv1/kernel");
        int rowLength = sorted.Values.Length / sorted.Shape[0];
        for (int r = 0; r < sorted.Shape[0]; r++)
        {
            var expected = initial.Values.AsSpan(r * rowLength, rowLength).ToArray();
            Array.Sort(expected, (x, y) => Backend.Reconnection.OrderKey(x).CompareTo(Backend.Reconnection.OrderKey(y)));
            Assert.Equal(expected, sorted.Values.AsSpan(r * rowLength, rowLength).ToArray());
        }
    }

    /// <summary>A state whose position and counters contradict each other was not written by a run (an edited state.json with its manifest re-hashed resumed at epoch 1000, or reported a best accuracy of 500 %).</summary>
    [Fact]
    public void AStateThatContradictsItselfIsRefused()
    {
        var state = new RunState { Step = 10, Epoch = 1, BatchInEpoch = 2, StepsPerEpoch = 8, BestTestAccuracy = 0.5, BestStep = 8, LastEvalStep = 8, LastSyncStep = 10 };
        Assert.Equal(state, RunState.FromJson(state.ToJson(), "state.json"));
        Assert.Equal(-1, RunState.FromJson((state with { BestTestAccuracy = -1, BestStep = 0, LastSyncStep = -1 }).ToJson(), "state.json").BestTestAccuracy);
        foreach (var (bad, expected) in new (RunState, string)[]
        {
            (state with { Epoch = 1000 }, "step 10 must be epoch x steps_per_epoch + batch_in_epoch (1000 x 8 + 2)"),
            (state with { Step = 11 }, "step 11 must be epoch x steps_per_epoch + batch_in_epoch"),
            (state with { BestTestAccuracy = 5 }, "best_test_accuracy -1 or from 0 to 1"),
            (state with { BestStep = 11 }, "best_step, last_eval_step and last_sync_step"),
            (state with { LastEvalStep = -3 }, "best_step, last_eval_step and last_sync_step"),
            (state with { LastSyncStep = -2 }, "best_step, last_eval_step and last_sync_step"),
        })
        {
            var e = Assert.Throws<ResumeException>(() => RunState.FromJson(bad.ToJson(), "state.json"));
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
            Assert.Contains("'state.json'", e.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>metrics.jsonl is cut back to the checkpoint's length only where a line ends there (it was cut mid-line, and the resumed run's first line glued on).</summary>
    [Fact]
    public void MetricsAreCutBackOnlyAtALineBreak()
    {
        using var fx = new RunFixture();
        string path = Path.Combine(fx.Dir("metrics"), "metrics.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        const string text = "{\"event\":\"sync\",\"step\":1}\n{\"event\":\"sync\",\"step\":2}\n";
        File.WriteAllText(path, text);
        var log = new StringWriter();
        RunSession.TrimMetrics(path, 10, log);
        Assert.Equal(text, File.ReadAllText(path));
        Assert.Contains("has no line break at the checkpoint's length (10 bytes); keeping it as it is", log.ToString(), StringComparison.Ordinal);
        int firstLine = text.IndexOf('\n') + 1;
        RunSession.TrimMetrics(path, firstLine, log = new StringWriter());
        Assert.Equal(text[..firstLine], File.ReadAllText(path));
        Assert.Equal("", log.ToString());
    }

    [Fact]
    public void ANewRunInAUsedDirectoryRemovesTheEarlierRunsCheckpoints()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 2 });
        Assert.Equal(4, new CheckpointStore(dir).Checkpoints().Count);
        var log = new StringWriter();
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1, Seed = 12, Checkpoints = new CheckpointOptions { Overwrite = true } }, log);
        Assert.Contains("holds 4 checkpoints of an earlier run; removing them (", log.ToString(), StringComparison.Ordinal);
        var only = Assert.Single(new CheckpointStore(dir).Checkpoints());
        Assert.Equal(8L, only.Step);
        Assert.Equal(12UL, RunState.FromJson(File.ReadAllText(Path.Combine(only.Path, "state.json")), "state.json").Seed);
    }

    [Fact]
    public void ANewRunInADirectoryWithAnUnfinishedRunIsRefusedAndTouchesNothing()
    {
        // Repeating the command of an interrupted run without --resume must not delete what --resume would continue.
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        var options = RunFixture.Options(dir) with { Epochs = 2 };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 8 } }));
        var before = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(RunSession.LockFile, StringComparison.Ordinal))
            .ToDictionary(f => f, File.ReadAllBytes);
        Assert.NotEmpty(new CheckpointStore(dir).Checkpoints());

        var e = Assert.Throws<ResumeException>(() => RunFixture.Train(options with { Seed = 12 }));
        Assert.Contains("holds an unfinished run", e.Message, StringComparison.Ordinal);
        Assert.Contains("the newest of step 8", e.Message, StringComparison.Ordinal);
        Assert.Contains($"--resume {dir}", e.Message, StringComparison.Ordinal);
        foreach (var (path, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(path));

        // --resume continues it. The finished run is then refused as well, naming its results (a repeated
        // command deleted them with a warning); --overwrite replaces it (with the warning).
        RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } });
        Assert.True(File.Exists(Path.Combine(dir, RunSession.SummaryFile)));
        byte[] summary = File.ReadAllBytes(Path.Combine(dir, RunSession.SummaryFile));
        e = Assert.Throws<ResumeException>(() => RunFixture.Train(options with { Seed = 12 }));
        Assert.Equal($"'{dir}' holds the results of an earlier run ({RunSession.SummaryFile}, {RunSession.BestWeightsFile}, {RunSession.FinalWeightsFile}), "
            + "which a new run there would delete; choose another --out, or give --overwrite to replace them", e.Message);
        Assert.Equal(summary, File.ReadAllBytes(Path.Combine(dir, RunSession.SummaryFile)));
        var log = new StringWriter();
        RunFixture.Train(options with { Seed = 12, Checkpoints = options.Checkpoints with { Overwrite = true } }, log);
        Assert.Contains("metrics.jsonl and run-config.json start over", log.ToString(), StringComparison.Ordinal);
        Assert.NotEqual(summary, File.ReadAllBytes(Path.Combine(dir, RunSession.SummaryFile)));
    }

    [Fact]
    public void ANewRunInAUsedDirectoryRemovesTheEarlierRunsResultsBeforeTraining()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1 });
        string[] results = [RunSession.SummaryFile, RunSession.BestWeightsFile, RunSession.FinalWeightsFile];
        Assert.All(results, name => Assert.True(File.Exists(Path.Combine(dir, name)), name));

        // Opening the new run (before its first step) removes them: should it fail, nothing of the
        // earlier run is left beside its metrics to be taken for its results.
        var log = new StringWriter();
        using var session = RunSession.Open(RunFixture.Options(dir) with { Seed = 12, Checkpoints = new CheckpointOptions { Overwrite = true } }, new ModelDefinition(RunFixture.Spec), log);
        Assert.Contains("summary.json, best.safetensors, final.safetensors of an earlier run", log.ToString(), StringComparison.Ordinal);
        Assert.All(results, name => Assert.False(File.Exists(Path.Combine(dir, name)), name));
    }

    [Fact]
    public void FiguresInADirectoryThatNeverHeldARunAreTheUsers()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("figures");
        Directory.CreateDirectory(dir);
        string[] theirs = ["training.png", "final.profile.svg", "trace-notes.svg"];
        foreach (var name in theirs) File.WriteAllText(Path.Combine(dir, name), "the user's");
        var log = new StringWriter();
        using (RunSession.Open(RunFixture.Options(dir) with { Checkpoints = new CheckpointOptions() }, new ModelDefinition(RunFixture.Spec), log)) { }
        Assert.DoesNotContain("earlier run", log.ToString(), StringComparison.Ordinal);
        Assert.All(theirs, name => Assert.Equal("the user's", File.ReadAllText(Path.Combine(dir, name))));
        // Where a run was, only the names our figures take go: logo.profile.png is no weights file's profile.
        File.WriteAllText(Path.Combine(dir, RunSession.MetricsFileName), "");
        File.WriteAllText(Path.Combine(dir, "logo.profile.png"), "the user's");
        using (RunSession.Open(RunFixture.Options(dir) with { Checkpoints = new CheckpointOptions { Overwrite = true } }, new ModelDefinition(RunFixture.Spec), log)) { }
        Assert.All(theirs, name => Assert.False(File.Exists(Path.Combine(dir, name)), name));
        Assert.True(File.Exists(Path.Combine(dir, "logo.profile.png")));
    }

    [Fact]
    public void TheTrainerSaysWhenItIsInItsLastStepOrItsEnd()
    {
        // A signal then stops nothing; the CLI said "stopping after this step" and the run went on to its end.
        using var fx = new RunFixture();
        var options = RunFixture.Options(fx.Dir("ending")) with { Epochs = 1 };
        var seen = new List<(long Step, bool Ending)>();
        var evaluations = new List<bool>();
        RunFixture.Train(options, makeObserver: trainer => new Observed(step => seen.Add((step, trainer.Ending)), () => evaluations.Add(trainer.Ending)));
        // 8 steps: reported at step 8 (the last) only, the final evaluation after it.
        Assert.Equal([(8L, true)], seen);
        Assert.False(evaluations[0]);
        Assert.True(evaluations[^1]);

        // With --stop-after at the last step the run stops there (a checkpoint, no end): not ending.
        seen.Clear();
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Out = fx.Dir("stopped"), Checkpoints = options.Checkpoints with { StopAfterStep = 8 } },
            makeObserver: trainer => new Observed(step => seen.Add((step, trainer.Ending)), () => { })));
        Assert.Equal([(8L, false)], seen);
    }

    private sealed class Observed(Action<long> onStep, Action onEvaluation) : ITrainingObserver
    {
        public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy) => onStep(step);
        public void OnEvaluation(EvaluationRecord record) => onEvaluation();
        public void OnSync(long step, int syncs, double seconds) { }
    }

    [Fact]
    public void ARunDirectoryIsLockedWhileASessionHoldsIt()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        var model = new ModelDefinition(RunFixture.Spec);
        using (var first = RunSession.Open(RunFixture.Options(dir), model, null))
        {
            var e = Assert.Throws<RunStorageException>(() => RunSession.Open(RunFixture.Options(dir), model, null));
            Assert.Contains("in use by another laperm run", e.Message, StringComparison.Ordinal);
        }
        using var second = RunSession.Open(RunFixture.Options(dir), model, null);   // free again once the first is disposed
    }

    [Fact]
    public void TemporaryFilesOfAKilledWriterAreRemovedWhenTheDirectoryIsOpened()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        Directory.CreateDirectory(Path.Combine(dir, "checkpoints"));
        string[] leftovers = [Path.Combine(dir, ".best.safetensors.123.0123456789abcdef0123456789abcdef.tmp"), Path.Combine(dir, "checkpoints", ".write-probe-123")];
        foreach (var path in leftovers) File.WriteAllText(path, "half");
        string[] others = [Path.Combine(dir, "notes.txt"), Path.Combine(dir, ".editor-swap.tmp")];   // not ours: they stay
        foreach (var path in others) File.WriteAllText(path, "the user's");
        using var session = RunSession.Open(RunFixture.Options(dir), new ModelDefinition(RunFixture.Spec), null);
        Assert.All(leftovers, path => Assert.False(File.Exists(path), path));
        Assert.All(others, path => Assert.True(File.Exists(path), path));
    }

    [Fact]
    public void IntactCheckpointsOfAnotherConfigurationStopTheResumeAndStayWhereTheyAre()
    {
        // They are not broken: set aside as rejected and replaced by a run from step 0 (as before),
        // a good run would be lost for a configuration that does not match.
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1 });
        var before = new CheckpointStore(dir).Checkpoints();
        var resume = RunFixture.Options(dir) with { Epochs = 1, Batch = 16, Checkpoints = RunFixture.Options(dir).Checkpoints with { Resume = true } };
        var log = new StringWriter();
        var e = Assert.Throws<ResumeException>(() => RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), log));
        // The checkpoint's value is said with its file, this run's apart (it read as if 16 were in the checkpoint's file).
        Assert.Matches(@"field 'batch' is 32 in '[^']*step-\d{8}[/\\]config\.json', 16 in this run's configuration", e.Message);
        Assert.Contains("those checkpoints were left in place", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, new CheckpointStore(dir).Checkpoints());
        Assert.True(File.Exists(Path.Combine(dir, "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(dir, RunSession.SummaryFile)));
    }

    /// <summary>
    /// Which GPU a run ran on is where it ran, not what it computed: a checkpoint recorded on
    /// cuda:1 resumes on cuda (GPU 0) or cuda:2, and matches no run on another kind of device.
    /// </summary>
    [Theory]
    [InlineData("cuda", true)]
    [InlineData("cuda:2", true)]
    [InlineData("emu", false)]
    [InlineData("cpu", false)]
    public void ACheckpointOfOneGpuResumesOnAnotherButNotOnAnotherKindOfDevice(string device, bool resumes)
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(RunFixture.Options(dir) with
        {
            Device = "cuda:1", Epochs = 1, Checkpoints = RunFixture.Options(dir).Checkpoints with { StopAfterStep = 4 },
        }));
        var resume = RunFixture.Options(dir) with { Device = device, Epochs = 1, Checkpoints = RunFixture.Options(dir).Checkpoints with { Resume = true } };
        if (resumes)
        {
            var log = new StringWriter();
            Assert.Equal(8, RunFixture.Train(resume, log).Steps);
            Assert.Contains(CheckpointStore.NameOf(4), log.ToString(), StringComparison.Ordinal);
        }
        else
        {
            var e = Assert.Throws<ResumeException>(() => RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), TextWriter.Null));
            Assert.Matches($@"field 'device' is ""cuda:1"" in '[^']*config\.json', ""{device}"" in this run's configuration", e.Message);
        }
    }

    /// <summary>
    /// A run that traces the reconnection (the cpu's default) resumes only from a checkpoint that
    /// holds the trace: one whose manifest lacks it is set aside as damaged, and the older one resumes.
    /// </summary>
    [Fact]
    public void ATracedRunsCheckpointWithoutTheTraceIsRejectedForAnOlderOne()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        var options = RunFixture.Options(dir) with { Epochs = 2 };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 8 } }));
        string newest = Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(8));
        string manifestPath = Path.Combine(newest, "manifest.json");
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        Assert.True(manifest["files"]!.AsObject().Remove(RunSession.TrafficFile), "the cpu run's checkpoint lists the trace");
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        File.Delete(Path.Combine(newest, RunSession.TrafficFile));

        var log = new StringWriter();
        Assert.Equal(16, RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }, log).Steps);
        Assert.Contains($"its manifest does not list '{RunSession.TrafficFile}'", log.ToString(), StringComparison.Ordinal);
        Assert.Contains($"resuming from '{Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(4))}'", log.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Data with another number of training images gives epochs of another length: the resume
    /// continued (with a warning) and wrote checkpoints whose step contradicted their epoch and
    /// batch, which the next resume then set aside as damaged. It is refused before anything is cut.
    /// </summary>
    [Fact]
    public void AResumeOnDataWithEpochsOfAnotherLengthIsRefusedAndChangesNothing()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        var options = RunFixture.Options(dir) with { Epochs = 2 };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 10 } }));
        string metrics = File.ReadAllText(Path.Combine(dir, "metrics.jsonl"));
        var before = new CheckpointStore(dir).Checkpoints();
        var resume = options with { Checkpoints = options.Checkpoints with { Resume = true } };
        var e = Assert.Throws<ResumeException>(() => RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), null, stepsPerEpoch: 9));
        Assert.Contains("has epochs of 8 steps, but --batch 32 over the training images of", e.Message, StringComparison.Ordinal);
        Assert.Contains("gives 9: the data is not what the run trained on", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, new CheckpointStore(dir).Checkpoints());
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(dir, "metrics.jsonl")));
        // The same epochs resume.
        using var session = RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), null, stepsPerEpoch: 8);
        Assert.True(session.Resumed);
    }

    [Fact]
    public void ANewerCheckpointOfAnotherConfigurationIsSetAsideWhenAnOlderOneIsResumed()
    {
        // Left as step-N it would rank above the resumed run's own checkpoints, and pruning would delete those.
        using var fx = new RunFixture();
        string dir = fx.Dir("run"), other = fx.Dir("other");
        var options = RunFixture.Options(dir) with { Epochs = 2, Checkpoints = RunFixture.Options(dir).Checkpoints with { Keep = 1 } };
        Assert.Throws<TrainingStoppedException>(() => RunFixture.Train(options with { Checkpoints = options.Checkpoints with { StopAfterStep = 8 } }));
        RunFixture.Train(RunFixture.Options(other) with { Epochs = 3, Seed = 99 });
        string foreign = Path.Combine(new CheckpointStore(dir).Directory, CheckpointStore.NameOf(20));
        CopyDirectory(Path.Combine(new CheckpointStore(other).Directory, CheckpointStore.NameOf(20)), foreign);

        var log = new StringWriter();
        RunFixture.Train(options with { Checkpoints = options.Checkpoints with { Resume = true } }, log);
        Assert.Contains("setting", log.ToString(), StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(new CheckpointStore(dir).Directory, "other-config-" + CheckpointStore.NameOf(20))));
        var (step, path) = Assert.Single(new CheckpointStore(dir).Checkpoints());
        Assert.Equal(16L, step);   // the run's own last checkpoint, kept by --keep-checkpoints 1
        Assert.Equal(11UL, RunState.FromJson(File.ReadAllText(Path.Combine(path, "state.json")), "state.json").Seed);
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    [Fact]
    public void ACheckpointWrittenBeforeStopAtTargetExistedStillResumes()
    {
        // config.json of the older format has no stop_at_target: absent means false, not a different run.
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1 });
        var (step, newest) = new CheckpointStore(dir).Checkpoints()[0];
        string config = Path.Combine(newest, RunSession.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        Assert.True(json.Remove("stop_at_target"));
        File.WriteAllText(config, json.ToJsonString());
        string manifestPath = Path.Combine(newest, CheckpointStore.ManifestFile);
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        var (bytes, sha) = CheckpointStore.Hash(config);
        manifest["files"]![RunSession.ConfigFile] = new JsonObject { ["bytes"] = bytes, ["sha256"] = sha };
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        var resume = RunFixture.Options(dir) with { Epochs = 1, Checkpoints = RunFixture.Options(dir).Checkpoints with { Resume = true } };
        var log = new StringWriter();
        using var session = RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), log);
        Assert.True(session.Resumed, log.ToString());
        Assert.Contains($"step {step}", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void StopAfterAStepNotAfterTheCheckpointIsRefused()
    {
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1 });
        long step = new CheckpointStore(dir).Checkpoints()[0].Step;
        var resume = RunFixture.Options(dir) with { Epochs = 1, Checkpoints = RunFixture.Options(dir).Checkpoints with { Resume = true, StopAfterStep = step } };
        var e = Assert.Throws<ResumeException>(() => RunSession.Open(resume, new ModelDefinition(RunFixture.Spec), null));
        Assert.Contains($"--stop-after {step} is not after", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WeightsFileIsPlainSafetensorsWithLayerNamesAndShapes()
    {
        // Parsed here by hand, as numpy or PyTorch's safetensors would: u64 header length, JSON, raw little-endian F32.
        using var fx = new RunFixture();
        string dir = fx.Dir("run");
        RunFixture.Train(RunFixture.Options(dir) with { Epochs = 1 });
        string path = Path.Combine(new CheckpointStore(dir).Checkpoints()[0].Path, "weights.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(System.Text.Encoding.UTF8.GetString(bytes, 8, (int)n))!.AsObject();
        var expected = new Dictionary<string, int[]>
        {
            ["conv1/kernel"] = [4, 1, 3, 3], ["conv1/bias"] = [4], ["bn1/gamma"] = [4], ["bn1/beta"] = [4],
            ["bn1/moving_mean"] = [4], ["bn1/moving_variance"] = [4], ["dense1/kernel"] = [10, 676], ["dense1/bias"] = [10],
        };
        var names = header.Where(kv => kv.Key != "__metadata__").Select(kv => kv.Key).ToHashSet();
        Assert.Equal(expected.Keys.Order(), names.Order());
        foreach (var (name, shape) in expected)
        {
            var entry = header[name]!;
            Assert.Equal("F32", entry["dtype"]!.GetValue<string>());
            Assert.Equal(shape, entry["shape"]!.AsArray().Select(d => d!.GetValue<int>()));
            var offsets = entry["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            Assert.Equal(shape.Aggregate(1L, (a, d) => a * d) * 4, offsets[1] - offsets[0]);
        }
    }

    [Theory]
    // Relative spellings stay relative; the run may be the current directory (this crashed: an empty parent).
    [InlineData("checkpoints/step-00000004/weights.safetensors", ".", "step-00000004")]
    [InlineData("run/checkpoints/step-00000004/weights.safetensors", "run", "step-00000004")]
    [InlineData("run/checkpoints/./step-00000004/weights.safetensors", "run", "step-00000004")]
    [InlineData("/data/run/checkpoints/step-00000012/weights.safetensors", "/data/run", "step-00000012")]
    // Not inside a checkpoint.
    [InlineData("run/checkpoints/rejected-step-00000004/weights.safetensors", null, null)]
    [InlineData("run/step-00000004/weights.safetensors", null, null)]
    [InlineData("run/final.safetensors", null, null)]
    [InlineData("weights.safetensors", null, null)]
    public void AFileInsideACheckpointNamesItsRun(string file, string? run, string? checkpoint)
    {
        file = file.Replace('/', Path.DirectorySeparatorChar);
        var found = CheckpointStore.Containing(file);
        Assert.Equal(run is null ? null : (run.Replace('/', Path.DirectorySeparatorChar), checkpoint!), found);
    }
}
