using System.Diagnostics;
using System.Text.Json.Nodes;
using LaPerm.Cli;
using LaPerm.Core.Checkpoints;

namespace LaPerm.Cli.Tests.Runs;

public sealed partial class KillAndResumeTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"laperm-kill-{Guid.NewGuid():N}");

    public KillAndResumeTests() => Directory.CreateDirectory(_root);

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static string[] TrainArgs(string dir) =>
        ["train", "--model", "f1", "--limit-train", "2000", "--limit-test", "200", "--epochs", "4", "--batch", "20", "--k", "7",
         "--checkpoint-every", "3", "--keep-checkpoints", "2", "--threads", "1", "--seed", "3", "--quiet", "--out", dir];

    /// <summary>Starts the built laperm (laperm.dll next to this test assembly) as a child process, with extra environment variables.</summary>
    internal static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "laperm.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        return Process.Start(info)!;
    }

    [Fact]
    public async Task KillNineAtRandomMomentsLeavesARunThatResumesToTheUninterruptedResult()
    {
        var ct = TestContext.Current.CancellationToken;
        string straight = Path.Combine(_root, "straight"), killed = Path.Combine(_root, "killed");
        Assert.Equal(0, CommandLine.Run(TrainArgs(straight), TextWriter.Null, TextWriter.Null));

        var rng = new Random(Environment.TickCount);
        var log = new List<string>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            bool configured = File.Exists(Path.Combine(killed, RunSession.RunConfigFile));
            using var child = Start(configured ? ["train", "--resume", killed, "--quiet"] : TrainArgs(killed));
            var stdout = child.StandardOutput.ReadToEndAsync(ct);
            var stderr = child.StandardError.ReadToEndAsync(ct);
            int delay = rng.Next(300, 2500);
            bool exited = child.WaitForExit(delay);
            if (!exited) child.Kill(entireProcessTree: true); // SIGKILL on Linux
            await child.WaitForExitAsync(ct);
            var reached = new CheckpointStore(killed).Checkpoints().Select(c => c.Step).DefaultIfEmpty(0).Max();
            log.Add($"attempt {attempt}: {(configured ? "resume" : "start")}, {(exited ? "finished" : $"killed after {delay} ms")}, newest checkpoint step {reached}: {await stdout} {await stderr}");
        }

        using (var final = Start(File.Exists(Path.Combine(killed, RunSession.RunConfigFile)) ? ["train", "--resume", killed, "--quiet"] : TrainArgs(killed)))
        {
            var stdout = final.StandardOutput.ReadToEndAsync(ct);
            var stderr = final.StandardError.ReadToEndAsync(ct);
            await final.WaitForExitAsync(ct);
            log.Add($"final: {await stdout} {await stderr}");
            Assert.True(final.ExitCode == 0, string.Join("\n", log));
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", log));
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(straight, "summary.json")))!;
        var actual = JsonNode.Parse(File.ReadAllText(Path.Combine(killed, "summary.json")))!;
        Assert.True(expected["final_weights_sha256"]!.GetValue<string>() == actual["final_weights_sha256"]!.GetValue<string>(), string.Join("\n", log));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final.safetensors")), File.ReadAllBytes(Path.Combine(killed, "final.safetensors")));
        Assert.Equal(MetricsWithoutClock(straight), MetricsWithoutClock(killed));
        var store = new CheckpointStore(killed);
        Assert.Equal(2, store.Checkpoints().Count);
        Assert.All(store.Checkpoints(), c => Assert.Null(CheckpointStore.Verify(c.Path, [RunSession.WeightsFile, RunSession.StateFile])));
        Assert.Equal(CheckpointStore.NameOf(400), File.ReadAllText(store.LatestPointer).Trim());
    }

    /// <summary>
    /// Ctrl-C (SIGINT) or SIGTERM ends a run after the step in progress with a checkpoint of that
    /// step and exit code 130, and --resume then finishes it exactly as an uninterrupted run.
    /// (SIGTERM here: a test host started in the background inherits SIGINT ignored, and the
    /// runtime leaves an ignored signal ignored; both signals take the same path.)
    /// </summary>
    [Fact]
    public async Task CtrlCCheckpointsTheStepInProgressAndResumesToTheUninterruptedResult()
    {
        var ct = TestContext.Current.CancellationToken;
        string[] Args(string dir) =>
            ["train", "--model", "lenet300", "--limit-train", "4000", "--limit-test", "200", "--epochs", "6", "--batch", "20", "--k", "7",
             "--checkpoint-every", "50", "--threads", "1", "--seed", "4", "--quiet", "--out", dir];
        string straight = Path.Combine(_root, "straight"), interrupted = Path.Combine(_root, "interrupted");
        Assert.Equal(0, CommandLine.Run(Args(straight), TextWriter.Null, TextWriter.Null));

        using var child = Start(Args(interrupted));
        var stdout = child.StandardOutput.ReadToEndAsync(ct);
        var stderr = child.StandardError.ReadToEndAsync(ct);
        // Signal once the run is under way (its first checkpoint, of step 50, is in place), long before its 1,200 steps end.
        string latest = new CheckpointStore(interrupted).LatestPointer;
        var waited = Stopwatch.StartNew();
        while (!child.HasExited && waited.Elapsed < TimeSpan.FromSeconds(60) && !File.Exists(latest))
            await Task.Delay(5, ct);
        Assert.False(child.HasExited, "the run ended before it could be interrupted");   // (its output would wait for its end)
        // kill(2) directly: starting a kill process could be delayed past the run's end.
        Assert.True(SendSignal(child.Id, SigTerm) == 0, $"kill({child.Id}, SIGTERM): errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        await child.WaitForExitAsync(ct);
        string output = await stdout, errors = await stderr;
        Assert.True(child.ExitCode == CommandLine.Interrupted, $"exit {child.ExitCode}: {output} {errors}");
        Assert.Contains("SIGTERM: stopping after this step", errors, StringComparison.Ordinal);
        var match = System.Text.RegularExpressions.Regex.Match(output, @"interrupted after step (\d+); checkpoint '([^']+)'");
        Assert.True(match.Success, output);
        long step = long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(step, 50, 1199);
        var store = new CheckpointStore(interrupted);
        Assert.Equal(CheckpointStore.NameOf(step), File.ReadAllText(store.LatestPointer).Trim());   // the step in progress, not an earlier one
        Assert.Null(CheckpointStore.Verify(match.Groups[2].Value, [RunSession.WeightsFile, RunSession.StateFile]));
        Assert.False(File.Exists(Path.Combine(interrupted, "summary.json")));

        Assert.Equal(0, CommandLine.Run(["train", "--resume", interrupted, "--quiet"], TextWriter.Null, TextWriter.Null));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final.safetensors")), File.ReadAllBytes(Path.Combine(interrupted, "final.safetensors")));
        Assert.Equal(MetricsWithoutClock(straight), MetricsWithoutClock(interrupted));
    }

    [Theory]
    [InlineData("--model", "--model would change it (model is \"f1\" in the run, \"2\" here)")]
    [InlineData("--epochs", "--epochs would change it (epochs is 1 in the run, 2 here)")]
    [InlineData("--seed", "--seed would change it (seed is 3 in the run, 2 here)")]
    public void ResumeRefusesFlagsThatWouldChangeTheRun(string flag, string expected)
    {
        string dir = Path.Combine(_root, "run");
        Assert.Equal(0, CommandLine.Run([.. TrainArgs(dir).Select(a => a == "4" ? "1" : a), "--stop-after", "5"], TextWriter.Null, TextWriter.Null));
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", "--resume", dir, flag, "2"], TextWriter.Null, stderr));
        Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("Give --resume without it", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--no-reconnect", "--eval-every", "2")]   // reached between epoch ends, mid-epoch
    [InlineData("--k", "3")]                               // reached at a sync's evaluation
    public void ARunStoppedRightAtItsTargetAndResumedEndsThereAsTheOneRunStraight(params string[] how)
    {
        // Resumed, it went on to its last epoch: 30 steps and "epochs_trained: 3" where the run straight stopped at its target.
        string straight = Path.Combine(_root, "straight"), dir = Path.Combine(_root, "run");
        string[] Args(string d) => ["train", "--model", "f1", "--limit-train", "200", "--limit-test", "100", "--epochs", "3", "--batch", "20",
            "--target-accuracy", "0.05", "--stop-at-target", "--threads", "1", "--quiet", "--out", d, .. how];
        Assert.Equal(0, CommandLine.Run(Args(straight), TextWriter.Null, TextWriter.Null));
        JsonNode Summary(string d) => JsonNode.Parse(File.ReadAllText(Path.Combine(d, "summary.json")))!;
        long reached = Summary(straight)["steps"]!.GetValue<long>();
        Assert.Equal(reached, Summary(straight)["steps_to_target"]!.GetValue<long>());
        Assert.Equal(0, CommandLine.Run([.. Args(dir), "--stop-after", reached.ToString(System.Globalization.CultureInfo.InvariantCulture)], TextWriter.Null, TextWriter.Null));
        var stderr = new StringWriter();
        Assert.True(CommandLine.Run(["train", "--resume", dir, "--quiet"], TextWriter.Null, stderr) == 0, stderr.ToString());
        foreach (string field in (string[])["steps", "epochs_trained", "steps_to_target", "best_test_accuracy", "final_test_accuracy", "final_test_loss", "final_weights_sha256"])
            Assert.True(JsonNode.DeepEquals(Summary(straight)[field], Summary(dir)[field]), $"{field}: {Summary(straight)[field]} straight, {Summary(dir)[field]} resumed");
        List<string> Metrics(string d) => [.. MetricsWithoutClock(d).Select(l => System.Text.RegularExpressions.Regex.Replace(l, "\"train_seconds\":[^,}]*", ""))];
        Assert.Equal(Metrics(straight), Metrics(dir));
    }

    [Fact]
    public void ResumingOnOtherDataIsSaid()
    {
        // A label changed between the stop and the resume went unnoticed, under a promise of bit-identical results.
        string data = Path.Combine(_root, "mnist"), dir = Path.Combine(_root, "run");
        Directory.CreateDirectory(data);
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "LaPerm.Native.sln")))
            {
                foreach (var file in Directory.GetFiles(Path.Combine(d.FullName, "data", "mnist"), "*.gz")) File.Copy(file, Path.Combine(data, Path.GetFileName(file)));
                break;
            }
        string[] args = ["train", "--model", "f1", "--data", "mnist:" + data, "--limit-train", "200", "--limit-test", "50", "--epochs", "1", "--batch", "20",
            "--checkpoint-every", "2", "--threads", "1", "--quiet", "--out", dir];
        Assert.Equal(0, CommandLine.Run([.. args, "--stop-after", "2"], TextWriter.Null, TextWriter.Null));
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--stop-after", "4"], stdout, TextWriter.Null));
        Assert.DoesNotContain("warning", stdout.ToString(), StringComparison.Ordinal);   // the same data: nothing to say
        // One training label changed (within the 200 the run uses).
        string labels = Path.Combine(data, "train-labels-idx1-ubyte.gz");
        byte[] raw;
        using (var input = new System.IO.Compression.GZipStream(File.OpenRead(labels), System.IO.Compression.CompressionMode.Decompress))
        using (var buffer = new MemoryStream())
        {
            input.CopyTo(buffer);
            raw = buffer.ToArray();
        }
        raw[8 + 17] = (byte)((raw[8 + 17] + 1) % 10);
        using (var output = new System.IO.Compression.GZipStream(File.Create(labels), System.IO.Compression.CompressionLevel.Fastest))
            output.Write(raw);
        stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir], stdout, TextWriter.Null));
        Assert.Contains($"laperm: warning: the data (mnist:{data}) is not what this run trained and tested on before it stopped (its images or labels differ)", stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ResumeRefusesAModelFileEditedSinceTheRunRecordedIt()
    {
        // The path was compared, not the model: an edited file was accepted without a word.
        string dir = Path.Combine(_root, "run"), model = Path.Combine(_root, "tiny.json");
        const string Original = """{"name": "tiny", "input": [1, 28, 28], "layers": [{"type": "dense", "units": 10}]}""";
        File.WriteAllText(model, Original);
        string[] args = ["train", "--model", model, "--limit-train", "200", "--limit-test", "50", "--epochs", "1", "--batch", "20",
            "--k", "3", "--checkpoint-every", "3", "--threads", "1", "--quiet", "--out", dir];
        Assert.Equal(0, CommandLine.Run([.. args, "--stop-after", "4"], TextWriter.Null, TextWriter.Null));
        File.WriteAllText(model, """{"name": "tiny", "input": [1, 28, 28], "layers": [{"type": "dense", "units": 3}, {"type": "dense", "units": 10}]}""");
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run([.. args, "--resume", dir], TextWriter.Null, stderr));
        Assert.Contains($"--model '{model}' would change it: that model is not the one the run recorded (2,395 parameters, the run's has 7,850)",
            stderr.ToString(), StringComparison.Ordinal);
        // Same parameter count, other layers: still another model.
        File.WriteAllText(model, Original.Replace("\"units\": 10}", "\"units\": 10, \"bias\": true, \"l2\": 0.001}", StringComparison.Ordinal));
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run([.. args, "--resume", dir], TextWriter.Null, stderr));
        Assert.Contains("(other layers, the same 7,850 parameters)", stderr.ToString(), StringComparison.Ordinal);
        // Without --model the run keeps its recorded model; with the file as it was, the command is the run's own.
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--stop-after", "6", "--quiet"], TextWriter.Null, TextWriter.Null));
        File.WriteAllText(model, Original);
        stderr = new StringWriter();
        Assert.True(CommandLine.Run([.. args, "--stop-after", "8", "--resume", dir], TextWriter.Null, stderr) == 0, stderr.ToString());
        // A file that cannot be read here (given from another directory, or removed) is not needed: said, and the run goes on.
        File.Delete(model);
        var stdout = new StringWriter();
        Assert.True(CommandLine.Run([.. args, "--resume", dir], stdout, stderr) == 0, stderr.ToString());
        Assert.Contains($"laperm: warning: --model '{model}' cannot be read here to compare with the run's (model file '{model}' does not exist); the run keeps the model it recorded.",
            stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void TheOriginalCommandWithResumeAddedContinuesTheRun()
    {
        // Flags that say what the run recorded were refused ("'--seed' cannot be changed"), so the command a user
        // has at hand, the one that started the run, could not simply be given --resume.
        string straight = Path.Combine(_root, "straight"), dir = Path.Combine(_root, "run");
        string[] original = [.. TrainArgs(dir).Select(a => a == "4" ? "1" : a)];
        Assert.Equal(0, CommandLine.Run([.. TrainArgs(straight).Select(a => a == "4" ? "1" : a)], TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CommandLine.Run([.. original, "--stop-after", "5"], TextWriter.Null, TextWriter.Null));
        var stderr = new StringWriter();
        Assert.Equal(0, CommandLine.Run([.. original, "--resume", dir, "--stop-after", "40"], TextWriter.Null, stderr));
        // --device auto agrees with the device auto chose (the run records that one).
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--seed", "3", "--epochs=1", "--device", "auto", "--stop-after", "60",
            "--out", dir + Path.DirectorySeparatorChar], TextWriter.Null, stderr));
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--seed", "3"], TextWriter.Null, stderr));
        Assert.Equal("", stderr.ToString());
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final.safetensors")), File.ReadAllBytes(Path.Combine(dir, "final.safetensors")));
        // --out naming another directory is not the same run.
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", "--resume", dir, "--out", straight], TextWriter.Null, stderr));
        Assert.Contains($"--out '{straight}' names another directory", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ARunResumedOnOtherThreadCountsEndsAsTheOneRunStraight()
    {
        // Documented: same seed, bit-identical results on any number of threads, which is why --resume takes --threads.
        string straight = Path.Combine(_root, "straight"), dir = Path.Combine(_root, "run");
        string[] OneEpoch(string d, string threads)
        {
            string[] args = [.. TrainArgs(d).Select(a => a == "4" ? "1" : a)];
            args[Array.IndexOf(args, "--threads") + 1] = threads;
            return args;
        }
        Assert.Equal(0, CommandLine.Run(OneEpoch(straight, "1"), TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CommandLine.Run([.. OneEpoch(dir, "2"), "--stop-after", "40"], TextWriter.Null, TextWriter.Null));
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--threads", "3", "--quiet"], TextWriter.Null, TextWriter.Null));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final.safetensors")), File.ReadAllBytes(Path.Combine(dir, "final.safetensors")));
        Assert.Equal(MetricsWithoutClock(straight), MetricsWithoutClock(dir));
    }

    [Fact]
    public void ResumeTakesAnOutThatReachesTheRunThroughALink()
    {
        // --out compared as written: runs/x, where runs links to the directory holding x, was "another directory".
        string dir = Path.Combine(_root, "run"), link = Path.Combine(_root, "link"), elsewhere = Path.Combine(_root, "elsewhere");
        Directory.CreateSymbolicLink(link, _root);
        string[] original = [.. TrainArgs(dir).Select(a => a == "4" ? "1" : a)];
        Assert.Equal(0, CommandLine.Run([.. original, "--stop-after", "5"], TextWriter.Null, TextWriter.Null));
        var stderr = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--out", Path.Combine(link, "run"), "--stop-after", "10"], TextWriter.Null, stderr));
        Assert.Equal("", stderr.ToString());
        Assert.Equal(0, CommandLine.Run(["train", "--resume", Path.Combine(link, "run"), "--out", dir + Path.DirectorySeparatorChar, "--stop-after", "15"], TextWriter.Null, stderr));
        Assert.Equal("", stderr.ToString());
        // A link to another directory is another directory.
        Directory.CreateDirectory(elsewhere);
        string other = Path.Combine(_root, "other");
        Directory.CreateSymbolicLink(other, elsewhere);
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", "--resume", dir, "--out", other], TextWriter.Null, stderr));
        Assert.Contains($"--out '{other}' names another directory", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ResumeOfADirectoryWithoutARunSaysWhatItHolds()
    {
        string empty = Path.Combine(_root, "empty"), locked = Path.Combine(_root, "locked");
        Directory.CreateDirectory(empty);
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", "--resume", empty], TextWriter.Null, stderr));
        Assert.Contains($"'{empty}' holds no run configuration (run-config.json or a checkpoint); it is not a laperm run directory", stderr.ToString(), StringComparison.Ordinal);
        // A run killed after taking the directory's lock and before writing run-config.json left only the lock.
        Directory.CreateDirectory(locked);
        File.WriteAllBytes(Path.Combine(locked, RunSession.LockFile), []);
        stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", "--resume", locked], TextWriter.Null, stderr));
        Assert.Contains($"the run in '{locked}' stopped before it recorded its configuration (run-config.json)", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("run its command again without --resume", stderr.ToString(), StringComparison.Ordinal);
        // And that command runs there.
        Assert.Equal(0, CommandLine.Run([.. TrainArgs(locked).Select(a => a == "4" ? "1" : a), "--stop-after", "3"], TextWriter.Null, TextWriter.Null));
    }

    [Fact]
    public void StopAfterThenResumeThroughTheCommandLineFinishesTheRun()
    {
        string dir = Path.Combine(_root, "run");
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run([.. TrainArgs(dir).Select(a => a == "4" ? "1" : a), "--stop-after", "50"], stdout, TextWriter.Null));
        Assert.Contains("stopped after step 50", stdout.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir, "summary.json")));
        stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["train", "--resume", dir, "--quiet"], stdout, TextWriter.Null));
        Assert.Contains("resuming from", stdout.ToString(), StringComparison.Ordinal);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
        Assert.Equal(100, summary["steps"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("--on-nan", "maybe", "--on-nan expects stop or skip-step")]
    [InlineData("--trace-reconnection", "yes", "--trace-reconnection expects on or off")]
    [InlineData("--keep-checkpoints", "0", "--keep-checkpoints expects an integer of at least 1")]
    // Beyond int: the range names its upper end too (it said "of at least 1" of 99999999999).
    [InlineData("--batch", "99999999999", "--batch expects an integer from 1 to 2147483647, got '99999999999'")]
    public void BadRunFlagsAreOneSentence(string flag, string value, string expected)
    {
        var stderr = new StringWriter();
        Assert.Equal(CommandLine.UserError, CommandLine.Run(["train", flag, value, "--out", Path.Combine(_root, "x")], TextWriter.Null, stderr));
        Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnwritableOutputDirectoryExitsWithTheStorageCodeBeforeTraining()
    {
        string file = Path.Combine(_root, "file");
        File.WriteAllText(file, "x");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Assert.Equal(CommandLine.StorageFailed, CommandLine.Run([.. TrainArgs(Path.Combine(file, "run"))], stdout, stderr));
        Assert.Contains($"'{file}' is a file, not a directory", stderr.ToString(), StringComparison.Ordinal);
        // Said before the run's header: nothing looks as if training had started.
        Assert.DoesNotContain("laperm train:", stdout.ToString(), StringComparison.Ordinal);
    }

    private const int SigTerm = 15;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    internal static List<string> MetricsWithoutClock(string dir) =>
        [.. File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(line =>
        {
            var o = JsonNode.Parse(line)!.AsObject();
            o.Remove("wall_seconds");
            o.Remove("seconds");
            return o.ToJsonString();
        })];
}
