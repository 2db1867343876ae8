using System.Text.Json.Nodes;
using LaPerm.Cli;
using LaPerm.Core.Checkpoints;

namespace LaPerm.Cli.Tests.Runs;

/// <summary>
/// Device failures during training, on the emulator, in a child process (so its variables reach no
/// other test): LAPERM_EMU_FAULT makes the N-th run of a kernel fail as an illegal address does on
/// a GPU, LAPERM_EMU_MEMORY gives the emulated device that many bytes, LAPERM_EMU_CUDNN=missing
/// takes cuDNN away.
/// </summary>
public sealed class DeviceFailureTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"laperm-fault-{Guid.NewGuid():N}");

    public DeviceFailureTests() => Directory.CreateDirectory(_root);

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static string[] TrainArgs(string dir) =>
        ["train", "--device", "emu", "--model", "f2", "--limit-train", "160", "--limit-test", "32", "--epochs", "1", "--batch", "16",
         "--k", "3", "--checkpoint-every", "4", "--seed", "5", "--quiet", "--out", dir];

    [Fact]
    public async Task AKernelFaultStopsWithOneSentenceNamingTheKernelAndTheCheckpointsStayIntact()
    {
        var ct = TestContext.Current.CancellationToken;
        string straight = Path.Combine(_root, "straight"), faulted = Path.Combine(_root, "faulted");
        Assert.Equal(0, CommandLine.Run(TrainArgs(straight), TextWriter.Null, TextWriter.Null));

        // The optimizer's kernel runs once per step (in the captured step's replay from the second
        // step on): its 6th run is step 6, after the checkpoint of step 4.
        using (var child = KillAndResumeTests.Start(TrainArgs(faulted), new Dictionary<string, string> { ["LAPERM_EMU_FAULT"] = "adam_multi_v2:6" }))
        {
            var stdout = child.StandardOutput.ReadToEndAsync(ct);
            var stderr = child.StandardError.ReadToEndAsync(ct);
            await child.WaitForExitAsync(ct);
            string error = (await stderr).TrimEnd();
            Assert.True(child.ExitCode == CommandLine.DeviceFailed, $"exit code {child.ExitCode}: {await stdout} {error}");
            Assert.StartsWith("laperm: STOPPED: GPU error: ", error, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', error);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
            Assert.Contains("CUDA_ERROR_ILLEGAL_ADDRESS", error, StringComparison.Ordinal);
            Assert.Matches(@"kernel adam_multi_v2 grid \(\d+,\d+,\d+\) block \(256,1,1\) shared \d+ B", error);
            Assert.EndsWith($"; the newest checkpoint, step 4, is intact; laperm train --resume {faulted} continues from it.", error, StringComparison.Ordinal);
        }
        var store = new CheckpointStore(faulted);
        var newest = Assert.Single(store.Checkpoints());
        Assert.Equal(4, newest.Step);
        Assert.Null(CheckpointStore.Verify(newest.Path, [RunSession.WeightsFile, RunSession.StateFile]));
        Assert.False(File.Exists(Path.Combine(faulted, RunSession.SummaryFile)));

        // Without the fault the run resumes from step 4 and ends where the uninterrupted one did.
        Assert.Equal(0, CommandLine.Run(["train", "--resume", faulted, "--quiet"], TextWriter.Null, TextWriter.Null));
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(straight, RunSession.SummaryFile)))!;
        var actual = JsonNode.Parse(File.ReadAllText(Path.Combine(faulted, RunSession.SummaryFile)))!;
        Assert.Equal(expected["final_weights_sha256"]!.GetValue<string>(), actual["final_weights_sha256"]!.GetValue<string>());
    }

    /// <summary>
    /// --cudnn all where cuDNN is missing: the run says so twice (the backend line names the
    /// reason, the end of the run says our kernels ran in its place, since a timing or a result
    /// must say what ran) and trains bit for bit as with --cudnn none.
    /// </summary>
    [Fact]
    public async Task CudnnAskedForButMissingTrainsOnOurKernelsAndSaysWhy()
    {
        var ct = TestContext.Current.CancellationToken;
        string[] Args(string dir, string cudnn) =>
            ["train", "--device", "emu", "--model", "conv7", "--limit-train", "16", "--limit-test", "8", "--epochs", "1", "--batch", "8",
             "--k", "1", "--seed", "3", "--cudnn", cudnn, "--out", dir];
        string kernels = Path.Combine(_root, "kernels"), missing = Path.Combine(_root, "missing");
        Assert.Equal(0, CommandLine.Run(Args(kernels, "none"), TextWriter.Null, TextWriter.Null));
        using (var child = KillAndResumeTests.Start(Args(missing, "all"), new Dictionary<string, string> { ["LAPERM_EMU_CUDNN"] = "missing" }))
        {
            var stdout = child.StandardOutput.ReadToEndAsync(ct);
            var stderr = child.StandardError.ReadToEndAsync(ct);
            await child.WaitForExitAsync(ct);
            string output = await stdout;
            Assert.True(child.ExitCode == 0, $"exit code {child.ExitCode}: {output} {await stderr}");
            const string reason = "cuDNN unavailable: libcudnn.so.9 not found (emulated by LAPERM_EMU_CUDNN=missing)";
            Assert.Contains($"our kernels only ({reason})", output.Split('\n')[0], StringComparison.Ordinal);
            Assert.Contains($"cuDNN was asked for and is off ({reason}); our kernels ran in its place.", output, StringComparison.Ordinal);
        }
        string Sha(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, RunSession.SummaryFile)))!["final_weights_sha256"]!.GetValue<string>();
        Assert.Equal(Sha(kernels), Sha(missing));
    }

    [Fact]
    public async Task OutOfDeviceMemoryNamesTheRequestTheFreeMemoryAndTheRemedy()
    {
        var ct = TestContext.Current.CancellationToken;
        // 2 MB: f2's weights and optimizer state fit, not everything a step needs.
        using var child = KillAndResumeTests.Start(TrainArgs(Path.Combine(_root, "small")), new Dictionary<string, string> { ["LAPERM_EMU_MEMORY"] = "2000000" });
        var stdout = child.StandardOutput.ReadToEndAsync(ct);
        var stderr = child.StandardError.ReadToEndAsync(ct);
        await child.WaitForExitAsync(ct);
        string error = (await stderr).TrimEnd();
        Assert.True(child.ExitCode == CommandLine.UserError, $"exit code {child.ExitCode}: {await stdout} {error}");
        Assert.Matches(@"^laperm: out of device memory on host emulator \(\d+ kernels\): [\d,]+ bytes requested, [\d,]+ of 2,000,000 bytes free; a smaller --batch shrinks the activations and workspaces \(not the weights, their sorted initial rows or the optimizer state\)\.$", error);
    }
}
