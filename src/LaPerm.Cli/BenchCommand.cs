using System.Globalization;
using LaPerm.Core.Backend;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Cuda;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Reconnect;

namespace LaPerm.Cli;

internal static class BenchCommand
{
    private const string TrainHelp = """
        laperm bench train [--model M] [--batch 128] [--steps N] [--windows W] [--threads N]
                           [--device cpu|cuda|cuda:N|emu|auto] [--math fp32|tf32] [--no-graphs]
                           [--cudnn none|all|conv,pool,bn] [--channel-reduction chunked|per-channel]
            training images/s of full steps (batch gathered from a resident synthetic data set, forward,
            loss, backward, Adam): warm-up, then the median of W windows (default 5) of N steps (default
            100; 10 for convolutional models over 200,000 parameters). Without --model: f2, lenet300
            and conv7. On cuda/emu the step is captured once and replayed as a CUDA graph
            ("graphs" in the line); --no-graphs runs its ops one by one; --channel-reduction per-channel
            uses the v1 batch-norm and bias-gradient kernels (one block per channel), for comparison.
            Below each line: the step's dense and convolution multiply-adds as GFLOP/s and, on the cpu,
            as a share of the FMA peak of as many threads (measured then: a loop of nothing but FMAs);
            on cuda, of the card's FP32 peak (SMs x lanes x 2 x clock, as laperm info prints it); for a
            captured step, its graph's nodes (on cuda with the step's time per node: a few microseconds
            per node means the replay is bound by launching its nodes rather than by their work).

        """;

    private const string SyncHelp = """
        laperm bench sync [--model conv7] [--samples N] [--threads N] [--device cpu|cuda|cuda:N|emu|auto]
                          [--reconnect-variant N]
            time of one full LaPerm sync of every tensor, kernels, biases and batch-norm parameters
            alike (median of N, default 21); on cuda/emu --reconnect-variant picks the reconnection
            kernels (0 the dispatcher, default; see bench reconnect). A sync runs no GEMM, convolution or
            batch-norm kernel, so --math, --cudnn and --channel-reduction have nothing to change here.

        """;

    private const string ReconnectHelp = """
        laperm bench reconnect [--variant all|N] [--shapes S[,S...]] [--device auto|cuda|cuda:N|emu]
                               [--samples N] [--json FILE] [--per-launch] [--plan]
            the reconnection kernels, one line per variant and shape set: median time (device events,
            inputs rotated past L2), elements/s, GB/s against the 12 B/element floor, % of the measured
            copy bandwidth, mismatches against the CPU reference (must be 0; exit code 3 otherwise).
            S: conv7 (default), resnet50c, conv13, resnet50-imagenet, or ROWS:LENGTH (consecutive ones
            form one set). N samples per line, default 15.
            On emu it verifies only (keep the shapes small); auto (default) is cuda when usable, else emu.
            --per-launch: on cuda, each launch (size class) timed alone under its line (always in the JSON).
            --plan runs nothing: per variant and set, each launch on an H100/H200 (kernel, blocks, threads,
            shared memory, ptxas's registers) and the blocks per SM an occupancy model gives it.

        """;

    /// <summary>`laperm bench --help` lists every mode; `laperm bench MODE --help` that mode alone.</summary>
    public static string HelpFor(IReadOnlyList<string> args) => args.Count > 0 && args[0] is "train" or "sync" or "reconnect"
        ? args[0] switch { "train" => TrainHelp, "sync" => SyncHelp, _ => ReconnectHelp }
        : TrainHelp + SyncHelp + ReconnectHelp;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is not ("train" or "sync" or "reconnect"))
            throw new UsageException("'laperm bench' expects 'train', 'sync' or 'reconnect' (see 'laperm bench --help').");
        if (args[0] == "reconnect") return RunReconnect(args[1..], stdout);
        // Each mode takes its own flags: one it would ignore is refused.
        var common = new[] { "--model", "--threads", "--device" };
        var a = args[0] == "train"
            ? new Arguments(args[1..], new HashSet<string>([.. common, "--math", "--cudnn", "--channel-reduction", "--batch", "--steps", "--windows"]), new HashSet<string> { "--no-graphs" }, "bench train")
            : new Arguments(args[1..], new HashSet<string>([.. common, "--samples", "--reconnect-variant"]), new HashSet<string>(), "bench sync");
        int threads = Backends.Threads(a);
        string device = a.String("--device") ?? "cpu";
        var inv = CultureInfo.InvariantCulture;
        if (args[0] == "train")
        {
            int batch = a.Int("--batch", 1) ?? 128;
            int windows = a.Int("--windows", 1) ?? 5;
            string[] models = a.String("--model") is { } m ? [m] : ["f2", "lenet300", "conv7"];
            double? fmaPeak = null;
            foreach (var name in models)
            {
                var model = new ModelDefinition(Backends.ResolveModel(name));
                if (model.TooLargeBatch(batch) is { } tooLarge)
                    throw new UsageException($"--batch {batch}: {tooLarge}.");
                if (batch > TrainStepBench.MaxBatch(model))
                    throw new UsageException(string.Create(inv, $"--batch {batch} is more than bench train can hold for {model.Name}: at most {TrainStepBench.MaxBatch(model):N0} (its synthetic data set must fit one array)."));
                using var backend = Backends.Create(device, threads, Backends.Gpu(a), stdout);
                if (name == models[0]) Note(a, backend, stdout);
                TrainStepBench bench;
                try
                {
                    bench = new TrainStepBench(model, backend, batch, graphs: !a.Has("--no-graphs"));
                }
                catch (ArgumentOutOfRangeException e) when (e.ParamName == "dims")
                {
                    // A layer's batch of values (or its scratch) is a tensor of more than int.MaxValue elements.
                    throw new UsageException($"--batch {batch} is too large for {model.Name}: {e.Message.Replace(" (Parameter 'dims')", "", StringComparison.Ordinal)}.");
                }
                using var _ = bench;
                // Aim for windows of about a second: the default step count follows the model size.
                int steps = a.Int("--steps", 1) ?? (model.ParameterCount > 200_000 && model.Parameters.Any(p => p.Shape.Rank == 4) ? 10 : 100);
                var (median, all) = bench.Measure(Math.Max(3, steps / 5), windows, steps);
                stdout.WriteLine(string.Create(inv,
                    $"bench train {model.Name,-10} batch {batch} {Where(backend, threads)}{(bench.Graphs ? " graphs" : "")}: {median,9:F0} images/s (median of {windows} x {steps} steps; windows {string.Join(" ", all.Select(x => x.ToString("F0", inv)))})"));
                if (Arithmetic(model, backend, threads, median, ref fmaPeak) is { } arithmetic) stdout.WriteLine(arithmetic);
                if (bench.GraphNodes is int nodes)
                    stdout.WriteLine(GraphLine(nodes, backend.Name == "emu" ? null : batch / median * 1e6));
                if (bench.CaptureFailure is { } failure)
                    stdout.WriteLine($"  eager, not graphs: capturing the step failed ({failure})");
                Backends.ReportCudnnRefusals(backend, stdout);
            }
        }
        else
        {
            var model = new ModelDefinition(Backends.ResolveModel(a.String("--model") ?? "conv7"));
            int samples = a.Int("--samples", 1) ?? 21;
            using var backend = Backends.Create(device, threads, Backends.Gpu(a), stdout);
            Note(a, backend, stdout);
            using var bench = new SyncBench(model, backend);
            var (median, times) = bench.Measure(3, samples);
            stdout.WriteLine(string.Create(inv,
                $"bench sync {model.Name} ({bench.Weights:N0} weights in {bench.Rows:N0} rows: every kernel, bias and batch-norm tensor) {Where(backend, threads)}{Variant(backend)}: {median * 1e3:F3} ms per full sync (median of {samples}; min {times.Min() * 1e3:F3}, max {times.Max() * 1e3:F3})"));
        }
        return 0;
    }

    /// <summary>What the numbers below are not: flags the cpu ignores, and timings of the emulator (kernels run on the host, one thread at a time).</summary>
    private static void Note(Arguments a, IBackend backend, TextWriter stdout)
    {
        if (Backends.IgnoredGpuFlags(a, backend.Name) is { } ignored) stdout.WriteLine($"laperm: warning: {ignored}");
        if (Backends.IgnoredCpuFlags(a, backend.Name) is { } cpuOnly) stdout.WriteLine($"laperm: warning: {cpuOnly}");
        if (backend.Name == "emu") stdout.WriteLine("laperm: note: emu runs the GPU kernels on the host to check them; its timings say nothing about a GPU.");
    }

    /// <summary>
    /// "  arithmetic: ..." for a bench train line: the dense and convolution multiply-adds of a
    /// step as GFLOP/s, and on the cpu as a share of the FMA peak of as many threads, measured the
    /// first time it is needed (<paramref name="fmaPeak"/> keeps it for the next models); on cuda
    /// as a share of the GPU's FP32 peak, computed from what the driver reports (<see cref="GpuInfo.Fp32PeakGflops"/>).
    /// Null on emu, whose timings are not a GPU's.
    /// </summary>
    private static string? Arithmetic(ModelDefinition model, IBackend backend, int threads, double imagesPerSecond, ref double? fmaPeak)
    {
        if (backend.Name == "emu" || !(imagesPerSecond > 0)) return null;
        var inv = CultureInfo.InvariantCulture;
        long multiplyAdds = model.TrainingMultiplyAddsPerExample;
        double gflops = 2.0 * multiplyAdds * imagesPerSecond / 1e9;
        string line = string.Create(inv, $"  arithmetic: {multiplyAdds:N0} multiply-adds per image (dense and convolution layers, forward and backward), {gflops:F1} GFLOP/s");
        if (backend is CudaBackend cuda)
        {
            GpuInfo? gpu = CudaInfo.Collect().Gpus.FirstOrDefault(g => g.Ordinal == cuda.Device.GpuOrdinal);
            if (gpu?.Fp32PeakGflops is not { } gpuPeak) return line;
            return line + string.Create(inv, $", {100 * gflops / gpuPeak:F1} % of GPU {gpu.Ordinal}'s FP32 peak ({gpuPeak / 1000:F1} TFLOP/s = {gpu.Fp32PeakFormula})")
                   + (cuda.GemmMath == GemmMath.Tf32 ? "; --math tf32 runs the GEMMs on tensor cores, which that peak leaves out" : "");
        }
        if (backend.Name != "cpu" || !LaPerm.Cpu.FmaPeak.Applies) return line;
        fmaPeak ??= LaPerm.Cpu.FmaPeak.MeasureGflops(threads, TimeSpan.FromMilliseconds(200));
        string cores = threads > Environment.ProcessorCount ? $" on {Environment.ProcessorCount} logical cores" : "";
        return line + string.Create(inv, $", {100 * gflops / fmaPeak.Value:F0} % of the FMA peak of {threads} thread{(threads == 1 ? "" : "s")}{cores} ({fmaPeak.Value:F1} GFLOP/s, measured by this command)");
    }

    /// <summary>"threads N cpu", or just the device: --threads sizes the CPU backend only (cuda and emu ignore it).</summary>
    /// <summary>
    /// "  graph: 57 nodes per step (...), 2.4 us of the step per node": with the step's time, how
    /// near a replay is to being bound by launching nodes rather than by their work (a GPU runs a
    /// graph's tiny kernels at a few microseconds each); null on the emulator, whose times mean nothing.
    /// </summary>
    internal static string GraphLine(int nodes, double? stepMicroseconds) =>
        $"  graph: {nodes} nodes per step (kernel launches, ours and the libraries', copies and memsets)"
        + (stepMicroseconds is double us && nodes > 0 ? string.Create(CultureInfo.InvariantCulture, $", {us / nodes:F1} us of the step per node") : "");

    private static string Where(IBackend backend, int threads) => backend.Name == "cpu" ? $"threads {threads} cpu" : backend.Name;

    /// <summary>" variant N" when a GPU backend runs one reconnection variant rather than the dispatcher.</summary>
    private static string Variant(IBackend backend) =>
        (backend is CudaBackend { ReconnectVariant: not ReconnectVariant.Auto } cuda ? $" variant {(int)cuda.ReconnectVariant}" : "")
        + (backend is CudaBackend { ReconnectPaths: { } paths } ? $" [{paths}]" : "");

    private static int RunReconnect(string[] args, TextWriter stdout)
    {
        var a = new Arguments(args, new HashSet<string> { "--variant", "--shapes", "--device", "--samples", "--json" }, new HashSet<string> { "--plan", "--per-launch" }, "bench reconnect");
        if (a.Has("--plan")) return PlanReconnect(a, stdout);
        string device = a.String("--device") ?? "auto";
        if (device is not ("emu" or "auto") && Backends.GpuOrdinal(device) is null)
            throw new UsageException($"--device of 'laperm bench reconnect' expects cuda, cuda:N (GPU N), emu or auto, got '{device}'.");
        device = Backends.ParseDevice(device);
        string variant = a.String("--variant") ?? "all", shapes = ShapeSets(a.String("--shapes") ?? "conv7");
        try
        {
            // Before the device is chosen and said: a bad option is the whole answer.
            LaPerm.Cuda.Reconnect.ReconnectBench.ParseVariants(variant);
            foreach (string set in shapes.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                LaPerm.Cuda.Reconnect.ReconnectShapes.Parse(set);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"bench reconnect: {e.Message}");
        }
        var report = LaPerm.Cuda.CudaInfo.Collect();
        if (device == "auto")
        {
            // As everywhere else: the GPU when there is a usable one; otherwise the emulator verifies (no timing).
            // A GPU older than the kernels' PTX is no usable GPU either (it fails when the device opens).
            device = report.GpuUnusableReason is null ? "cuda" : "emu";
            if (device == "emu") stdout.WriteLine($"no usable GPU ({CommandLine.OneLine(report.GpuUnusableReason!).TrimEnd('.')}): verifying the kernels on the emulator, not timing them");
        }
        // Said as train and bench train say it, before anything runs.
        if (Backends.GpuOrdinal(device) is int gpu && report.GpuUnusableReasonFor(gpu) is { } unusable)
            throw new UsageException($"--device {device} is unavailable here: {unusable}");
        if (device == "emu" && !report.Emulator.Found) throw new UsageException($"--device emu is unavailable here: {report.Emulator.Problem}");
        var options = new LaPerm.Cuda.Reconnect.ReconnectBenchOptions(
            Variant: variant,
            Shapes: shapes,
            Device: device,
            Samples: a.Int("--samples", 1) ?? 15,
            JsonPath: a.String("--json"),
            PerLaunch: a.Has("--per-launch"));
        try
        {
            // A mismatch is a reconnection that is not bit-exact: the LaPerm invariant is broken.
            return LaPerm.Cuda.Reconnect.ReconnectBench.Run(options, stdout) == 0 ? 0 : CommandLine.InvariantBroken;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // A bad --variant or --shapes (the message names the flag), or a library the device lacks.
            throw new UsageException($"bench reconnect: {e.Message}");
        }
    }

    /// <summary>--plan: the launches and their modelled occupancy on an H100/H200; nothing runs, so no device is needed.</summary>
    private static int PlanReconnect(Arguments a, TextWriter stdout)
    {
        string[] runOnly = [.. new[] { "--device", "--samples", "--json", "--per-launch" }.Where(a.Has)];
        if (runOnly.Length > 0)
            throw new UsageException($"bench reconnect --plan runs nothing: {string.Join(", ", runOnly)} {(runOnly.Length == 1 ? "does" : "do")} not apply.");
        try
        {
            var variants = LaPerm.Cuda.Reconnect.ReconnectBench.ParseVariants(a.String("--variant") ?? "all");
            var sets = ShapeSets(a.String("--shapes") ?? "conv7").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(set => (set, LaPerm.Cuda.Reconnect.ReconnectShapes.Parse(set))).ToList();
            LaPerm.Cuda.Reconnect.ReconnectPlanReport.Write(stdout, variants, sets, LaPerm.Cuda.Runtime.PtxCatalog.Active);
            return 0;
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"bench reconnect: {e.Message}");
        }
    }

    /// <summary>
    /// "conv7,resnet50c,10:300,4:77" -> "conv7;resnet50c;10:300,4:77": named sets stand alone,
    /// consecutive ROWS:LENGTH items form one custom set (the bench's own ';'-separated form).
    /// </summary>
    internal static string ShapeSets(string spec)
    {
        var sets = new List<string>();
        var custom = new List<string>();
        foreach (var item in spec.Split([',', ';'], StringSplitOptions.TrimEntries))
        {
            // As --k and --keep: an empty item (10:10,,10:10) is a typo, not nothing.
            if (item.Length == 0 && spec.Trim().Length > 0)
                throw new UsageException($"--shapes of 'laperm bench reconnect' has an empty item in '{spec}'; expected names or ROWS:LENGTH items separated by commas.");
            if (item.Contains(':', StringComparison.Ordinal)) { custom.Add(item); continue; }
            if (custom.Count > 0) { sets.Add(string.Join(',', custom)); custom.Clear(); }
            sets.Add(item);
        }
        if (custom.Count > 0) sets.Add(string.Join(',', custom));
        if (sets.Count == 0) throw new UsageException("--shapes of 'laperm bench reconnect' is empty.");
        return string.Join(';', sets);
    }
}
