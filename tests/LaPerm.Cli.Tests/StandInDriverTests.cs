using System.Globalization;
using System.Text.Json.Nodes;
using LaPerm.Cli.Tests.Runs;

namespace LaPerm.Cli.Tests;

/// <summary>
/// The CLI on the stand-in driver (cuda/emu/standin: a libcuda.so.1, libcublas.so.12 and libcudnn.so.9
/// that run the kernels on the emulator), in a child process whose loader finds it first: train's real-GPU path
/// end to end, and a GPU too old for the kernels (LAPERM_STANDIN_CC).
/// </summary>
public sealed class StandInDriverTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"laperm-standin-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static string StandInFolderOrSkip()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string folder = Path.Combine(dir.FullName, "src", "LaPerm.Cuda", "obj", "native", "standin");
            if (File.Exists(Path.Combine(dir.FullName, "LaPerm.Native.sln")))
            {
                if (!File.Exists(Path.Combine(folder, "libcuda.so.1"))) Assert.Skip("the stand-in driver was not built (no C++ compiler or CMake)");
                return folder;
            }
        }
        throw new InvalidOperationException("the repository root (LaPerm.Native.sln) is not above the test binaries");
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string[] args, string? computeCapability = null, int? gpus = null)
    {
        var environment = new Dictionary<string, string> { ["LD_LIBRARY_PATH"] = StandInFolderOrSkip() };
        if (computeCapability is not null) environment["LAPERM_STANDIN_CC"] = computeCapability;
        if (gpus is not null) environment["LAPERM_STANDIN_DEVICES"] = gpus.Value.ToString(CultureInfo.InvariantCulture);
        var ct = TestContext.Current.CancellationToken;
        using var child = KillAndResumeTests.Start(args, environment);
        var stdout = child.StandardOutput.ReadToEndAsync(ct);
        var stderr = child.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        await child.WaitForExitAsync(timeout.Token);
        return (child.ExitCode, await stdout, await stderr);
    }

    private static string[] Train(string device, string dir) =>
        ["train", "--device", device, "--epochs", "1", "--limit-train", "256", "--limit-test", "128", "--seed", "5", "--out", dir];

    [Fact]
    public async Task TrainOnTheStandInGpuTakesTheCudaPathAndEndsWhereTheCpuDoes()
    {
        string gpu = Path.Combine(_root, "cuda"), cpu = Path.Combine(_root, "cpu");
        var (code, stdout, stderr) = await RunAsync(Train("cuda", gpu));
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("LaPerm stand-in GPU (host emulator), cuBLAS 12.8.0, pedantic FP32", stdout, StringComparison.Ordinal);
        Assert.Equal(0, CommandLine.Run(Train("cpu", cpu), TextWriter.Null, TextWriter.Null));
        var onGpu = JsonNode.Parse(File.ReadAllText(Path.Combine(gpu, "summary.json")))!;
        var onCpu = JsonNode.Parse(File.ReadAllText(Path.Combine(cpu, "summary.json")))!;
        Assert.Equal("cuda", (string?)onGpu["device"]);
        Assert.Equal((int)onCpu["syncs"]!, (int)onGpu["syncs"]!);
        // The same steps, syncs and data; the GEMMs round otherwise (cuBLAS vs the CPU's), so a test
        // image may land on the other side of a near-tie: at most one of 128.
        double gpuAccuracy = (double)onGpu["final_test_accuracy"]!, cpuAccuracy = (double)onCpu["final_test_accuracy"]!;
        Assert.True(Math.Abs(gpuAccuracy - cpuAccuracy) <= 1.0 / 128 + 1e-9,
            string.Create(CultureInfo.InvariantCulture, $"final test accuracy {gpuAccuracy} on the stand-in GPU, {cpuAccuracy} on the CPU"));
    }

    [Fact]
    public async Task BenchReconnectOnTheGpuPathTimesEachLaunch()
    {
        // Rows of 300 and 1152: variant 9 runs them as 32 x 12 and 96 x 12, two launches, each
        // timed alone under the line and in the JSON (the stand-in's events time the emulator).
        string json = Path.Combine(_root, "bench.json");
        Directory.CreateDirectory(_root);
        var (code, stdout, stderr) = await RunAsync(["bench", "reconnect", "--device", "cuda", "--variant", "9", "--shapes", "3:300,2:1152",
            "--samples", "2", "--per-launch", "--json", json]);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int line = Array.FindIndex(lines, l => l.StartsWith("reconnect 3:300,2:1152", StringComparison.Ordinal));
        Assert.True(line >= 0, stdout);
        Assert.Contains("median", lines[line], StringComparison.Ordinal);
        Assert.Contains("mismatches 0", lines[line], StringComparison.Ordinal);
        Assert.Matches(@"^  launch reconnect_bucket_sized_i12 +rows +3  <= +300  threads +32  median +[0-9.]+ us", lines[line + 1]);
        Assert.Matches(@"^  launch reconnect_bucket_sized_i12 +rows +2  <=  1152  threads +96  median +[0-9.]+ us", lines[line + 2]);
        var launches = JsonNode.Parse(File.ReadAllText(json))![0]!["launch_times"]!.AsArray();
        Assert.Equal([300, 1152], launches.Select(l => (int)l!["max_row_length"]!));
        Assert.All(launches, l => Assert.True((double)l!["median_microseconds"]! > 0, l!.ToJsonString()));
    }

    [Fact]
    public async Task TunedReconnectionTimesItsClassesOnTheGpuPathAndStaysExact()
    {
        // Variant 10 times variants 7, 8 and 9 on each staged class (here 256 and 2048; the
        // stand-in's events time the emulator, so any may win) and must still match the CPU.
        var (code, stdout, stderr) = await RunAsync(["bench", "reconnect", "--device", "cuda", "--variant", "10", "--shapes", "3:200,2:1152,4:64",
            "--samples", "1"]);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        string line = Assert.Single(stdout.Split('\n'), l => l.StartsWith("reconnect ", StringComparison.Ordinal));
        Assert.Contains("variant 10 Tuned", line, StringComparison.Ordinal);
        Assert.Contains("mismatches 0", line, StringComparison.Ordinal);
        Assert.Matches(@"\[(BlockBucket(Staged|Narrow|Sized)( x\d)?(, )?)+\]$", line);
    }

    [Fact]
    public async Task AGpuOlderThanTheKernelsIsNoUsableGpuForAutoAndRefusedForCuda()
    {
        // bench reconnect's auto took such a GPU for usable and then failed where the device opened.
        var (code, stdout, stderr) = await RunAsync(["bench", "reconnect", "--variant", "8", "--shapes", "2:17", "--samples", "1"], "7.5");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("no usable GPU (GPU 0 (LaPerm stand-in GPU (host emulator)) has compute capability 7.5", stdout, StringComparison.Ordinal);
        Assert.Contains("verifying the kernels on the emulator", stdout, StringComparison.Ordinal);
        Assert.Contains("mismatches 0", stdout, StringComparison.Ordinal);

        // train's warnings go with its output, to stdout.
        (code, stdout, stderr) = await RunAsync(Train("auto", Path.Combine(_root, "auto")), "7.5");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("--device auto found a GPU but cannot use it (CUDA unavailable: GPU 0 (LaPerm stand-in GPU (host emulator)) has compute capability 7.5", stdout, StringComparison.Ordinal);
        Assert.Contains("; running on the CPU.", stdout, StringComparison.Ordinal);

        (code, _, stderr) = await RunAsync(Train("cuda", Path.Combine(_root, "refused")), "7.5");
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("--device cuda is unavailable here", stderr, StringComparison.Ordinal);
        Assert.Contains("compute capability 7.5, and the kernels are PTX for 8.0", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// On a machine with two GPUs, --device cuda:1 trains on GPU 1 (the header names it) and records
    /// cuda:1; which GPU is not what a run computes, so it goes on on GPU 0 from its checkpoint; a
    /// GPU the driver does not have is refused before the run, naming how many there are.
    /// </summary>
    [Fact]
    public async Task DeviceCudaNTrainsOnThatGpuAndAResumeMayGoOnOnAnother()
    {
        string dir = Path.Combine(_root, "gpu1");
        var (code, stdout, stderr) = await RunAsync([.. Train("cuda:1", dir), "--checkpoint-every", "2", "--stop-after", "2"], gpus: 2);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("GPU 1: LaPerm stand-in GPU (host emulator), cuBLAS", stdout, StringComparison.Ordinal);
        Assert.Equal("cuda:1", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "run-config.json")))!["device"]);

        (code, stdout, stderr) = await RunAsync(["train", "--resume", dir, "--device", "cuda"], gpus: 2);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("resuming from", stdout, StringComparison.Ordinal);
        Assert.Contains("(step 2)", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("GPU 1:", stdout, StringComparison.Ordinal);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
        Assert.Equal(8, (int)summary["steps"]!);
        Assert.Equal("cuda", (string?)summary["device"]);   // where it ended
        string whole = Path.Combine(_root, "gpu1-whole");
        (code, _, stderr) = await RunAsync([.. Train("cuda:1", whole), "--limit-train", "64"], gpus: 2);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("cuda:1", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(whole, "summary.json")))!["device"]);

        // Another kind of device is still another configuration.
        (code, _, stderr) = await RunAsync(["train", "--resume", dir, "--device", "cpu"], gpus: 2);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("--device would change it (device is \"cuda:1\" in the run, \"cpu\" here)", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await RunAsync(Train("cuda:2", Path.Combine(_root, "gpu2")), gpus: 2);
        Assert.Equal(CommandLine.UserError, code);
        Assert.Contains("--device cuda:2 is unavailable here: GPU 2 was asked for and the driver reports 2 GPUs (numbered from 0; laperm info lists them).", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_root, "gpu2")), "a refused device left a run directory");
    }
}
