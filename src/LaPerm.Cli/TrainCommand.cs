using System.Globalization;
using System.Runtime.InteropServices;
using LaPerm.Core.Data;
using LaPerm.Core.IO;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;
using LaPerm.Core.Backend;
using LaPerm.Cuda.Backend;
using LaPerm.Cuda.Runtime;

namespace LaPerm.Cli;

internal static class TrainCommand
{
    private static readonly HashSet<string> ValueFlags =
    [
        "--preset", "--model", "--data", "--epochs", "--batch", "--k", "--lr", "--lr-schedule", "--optimizer", "--momentum",
        "--init", "--keep", "--prune", "--augment", "--seed", "--threads", "--eval-every", "--train-eval-size", "--target-accuracy",
        "--limit-train", "--limit-test", "--out", "--device", "--math", "--cudnn", "--channel-reduction",
        "--reconnect-variant", "--profile-steps", "--loss-reduction",
        "--resume", "--checkpoint-every", "--keep-checkpoints", "--on-nan", "--stop-after", "--trace-reconnection",
    ];

    private static readonly HashSet<string> Switches = ["--skip-bias", "--skip-bn", "--no-skip-bias", "--no-skip-bn", "--no-reconnect", "--verify-invariants", "--quiet", "--no-graphs", "--stop-at-target", "--overwrite"];

    public const string Help = """
        laperm train [options]

        With no options: lenet300 on the embedded MNIST, 2 epochs, batch 32, Adam lr 1e-3 x0.5 per epoch,
        sync every 50 steps.
        --preset NAME          a published setup: conv7-mnist, f1-mnist, f2-mnist, conv2-cifar10,
                               conv4-cifar10, conv13-cifar10, resnet50c-cifar10 (every other flag
                               overrides it, wherever it stands)
        --model M              f1, f2, lenet300, conv7, conv2, conv4, conv13, resnet20, resnet50c, resnetD
                               or FILE.json
        --data D               mnist (embedded), fashion-mnist, cifar10, NAME:DIR or DIR
        --epochs E  --batch B
        --k K                  sync every K steps; or per epoch: 0:100,5:400 (from epoch 0 K=100, from
                               epoch 5 K=400)
        --lr L                 base learning rate (default 1e-3)
        --lr-schedule S        constant | exp:0.95 (x0.95 per epoch) | step:0.6/10 (x0.6 every 10 epochs)
                               | piecewise:80=0.1,120=0.01 (factor from that epoch on)
        --optimizer adam|sgd   Adam (0.9, 0.999, 1e-7) or momentum SGD (--momentum, default 0.9)
        --init he-uniform|shared:V   He-uniform kernels and biases (default; `he` for short), or every
                               weight = V (weight-agnostic)
        --keep a/b[,a/b...]    with shared:V, the probability that a weight is V rather than 0, per kernel
                               tensor (one value = all; default 1: every weight V, nothing to reconnect)
        --prune P              random sparse: drop kernel weights with probability P (first layer keeps >= 80%)
        --skip-bias --skip-bn  leave biases / batch-norm parameters to the inner optimizer only
        --no-skip-bias --no-skip-bn  reconnect them after all (the CIFAR presets skip both)
        --loss-reduction mean|sum  the batch's loss: its mean (Keras fit; default) or its sum (the
                               authors' LaPerm loop; every preset)
        --no-reconnect         train with the inner optimizer alone (the baseline)
        --profile-steps A:B    cuProfilerStart before step A, cuProfilerStop after step B (GPU; for an
                               Nsight capture range); NVTX ranges name every step and phase
        --verify-invariants    after every sync check each row is a bit-exact permutation of its initial row
        --augment none|mnist|cifar|shift-flip  (default none)
        --seed N  --threads N  default seed 1, threads = logical cores (cpu only); same seed: bit-identical
                               results, on any number of threads
        --eval-every N         evaluate every N steps (default or 0: right after a sync, at most ~4 times an
                               epoch; every epoch with --no-reconnect); a progress line of weights
                               between syncs shows a * after its sync count
        --train-eval-size N    also evaluate on the first N training images
        --target-accuracy A    record when the test accuracy first reaches A (0.995 or 99.5%; synchronised
                               evaluations only): step, training and wall seconds in summary.json
        --stop-at-target       end the run there (final sync, evaluation and weights as usual)
        --limit-train N  --limit-test N
        --out DIR              metrics.jsonl, summary.json, best/final.safetensors (default runs/MODEL-TIME);
                               a DIR holding a run is refused unless --overwrite
        --overwrite            replace the run DIR holds (its checkpoints, summary, weights, figures)
        --device cpu|cuda|cuda:N|emu|auto  (default cpu; cuda is GPU 0, cuda:N GPU N as laperm info
                               numbers them; auto: cuda when a usable GPU is found, else cpu)
        --math fp32|tf32       GPU GEMMs: pedantic FP32 (default) or TF32 tensor cores
        --cudnn none|all|conv,pool,bn  GPU op families that cuDNN runs where it can express them
                               (convolution, pooling, batch-norm); the rest on our kernels (default: none)
        --channel-reduction chunked|per-channel  GPU batch-norm and bias gradient: chunked over the
                               whole GPU (v2, default) or one block per channel (v1, for comparison)
        --reconnect-variant N  GPU reconnection kernels: 0 the dispatcher (default), 1..9 one variant
                               (`laperm bench reconnect`), 10 each size class's fastest of 7, 8 and 9,
                               timed on the GPU at start; every variant gives the same bits
        --no-graphs            cuda/emu: run each step's ops one by one instead of replaying the step
                               captured as a CUDA graph (same results, bit for bit; for comparison)
        --quiet                no progress lines (the header, warnings and the closing line stay)
        --checkpoint-every N   also checkpoint every N steps in DIR/checkpoints/step-NNNNNNNN (always: at every
                               epoch end; 0: only there)
        --keep-checkpoints K   keep the newest K checkpoints (default 3)
        --resume DIR           continue the run in DIR from its newest valid checkpoint (bit-identical to an
                               uninterrupted run); its configuration comes from DIR; only --threads,
                               --quiet, --checkpoint-every, --keep-checkpoints, --on-nan, --stop-after,
                               --verify-invariants, --no-graphs, --reconnect-variant and --profile-steps
                               may be given with it;
                               other flags only with the values the run recorded (the command that started
                               the run, with --resume DIR added, continues it)
        --on-nan stop|skip-step  NaN/Inf in the loss or gradients: stop naming step and tensor (default), or
                               leave that step's update out
        --stop-after N         checkpoint after step N and stop (continue later with --resume);
                               Ctrl-C or SIGTERM does the same after the step in progress (exit code 130)
        --trace-reconnection on|off  record per tensor the fraction of positions changed at each sync in
                               metrics.jsonl (default: on for cpu, off for cuda and emu: it copies every tensor
                               to the host)

        """;

    /// <summary>
    /// NVTX ranges per step and phase (no-ops unless Nsight is attached) and, with
    /// --profile-steps A:B, cuProfilerStart/Stop around those steps on the GPU.
    /// </summary>
    private static NvtxStepTracer Tracer(Arguments a, IBackend backend, long lastStep, TextWriter stdout)
    {
        ProfileSteps? steps = a.String("--profile-steps") is { } text ? ProfileSteps.Parse(text) : null;
        var device = (backend as CudaBackend)?.Device;
        if (steps is not null && device is null)
        {
            // Asked of auto, which found no GPU (another device was refused before the header, RefuseProfileStepsOn):
            // the run goes on (as for the other GPU flags), without a capture range.
            stdout.WriteLine("laperm: warning: --profile-steps needs a GPU; --device auto found none and runs on the cpu, so nothing is captured.");
            steps = null;
        }
        // The emulator has no profiler to start: the range is checked and bracketed, nothing is captured.
        if (steps is not null && device?.Kind == "emu")
            stdout.WriteLine("laperm: note: --profile-steps on emu brackets the steps as on a GPU, but no profiler runs here: nothing is captured.");
        if (steps is not null && steps.Last > lastStep)
            stdout.WriteLine(steps.First > lastStep
                ? $"laperm: warning: --profile-steps {steps.First}:{steps.Last} starts after the run's last step ({lastStep}); nothing will be captured."
                : $"laperm: warning: --profile-steps {steps.First}:{steps.Last} ends after the run's last step ({lastStep}); the capture stops with the run.");
        return new NvtxStepTracer(new StepProfiler(device, steps, stdout));
    }

    /// <summary>--profile-steps (already parsed) on a device other than cuda or emu, given explicitly, is an error to say before the run's header.</summary>
    private static void RefuseProfileStepsOn(Arguments a, IBackend backend)
    {
        if (a.Has("--profile-steps") && backend is not CudaBackend && a.String("--device") != "auto")
        {
            throw new UsageException($"--profile-steps brackets steps for a GPU profiler; it needs --device cuda (or emu), not {backend.Name}.");
        }
    }

    public static int Run(string[] args, TextWriter stdout, bool terminal)
    {
        // "--preset" alone: the question is which presets there are.
        int presetAt = Array.IndexOf(args, "--preset");
        if (presetAt >= 0 && (presetAt == args.Length - 1 || args[presetAt + 1].StartsWith("--", StringComparison.Ordinal)))
            throw new UsageException($"--preset needs a value: one of {string.Join(", ", Presets.Names)}.");
        var a = new Arguments(args, ValueFlags, Switches, "train");
        TrainingOptions o;
        ModelSpec spec;
        if (a.Has("--resume")) (o, spec) = ResumeArguments.Load(a, args, stdout);
        else (o, spec) = (Parse(a), null!);
        spec ??= Backends.ResolveModel(o.Model);
        var model = new ModelDefinition(spec);
        var data = DataSource.Load(o.Data, o.LimitTrain, o.LimitTest);
        // Before the run's header line: a data set that does not fit the model is no run at all.
        data.EnsureFits(model.Input.Channels, model.Input.Height, model.Input.Width, model.Classes, model.Name);
        // The largest pass (training or evaluation) takes --batch examples, or all there are.
        if (model.TooLargeBatch(Math.Min(o.Batch, Math.Max(data.Train.Count, data.Test.Count))) is { } tooLarge)
            throw new UsageException($"--batch {o.Batch}: {tooLarge}; give a smaller --batch.");
        // The result-changing GPU flags come from the options (a resumed run's recorded ones); the variant from this command line.
        var gpu = Backends.Gpu(o.GpuMath, o.Cudnn, o.ChannelReduction, Backends.ReconnectVariantFlag(a));
        using var backend = Backends.Create(o.Device, o.Threads, gpu, stdout);
        // auto becomes the device that runs: what the run records, and what device-dependent
        // defaults (the reconnection traffic, on for cpu) follow.
        // (A resumed run keeps what it recorded: its checkpoints' configuration must match.)
        if (o.Device == "auto" && !o.Checkpoints.Resume) o = o with { Device = backend.Name };
        // Before the header too: flags the trainer would refuse once the run has been announced.
        if (a.String("--profile-steps") is { } profile) ProfileSteps.Parse(profile);
        RefuseProfileStepsOn(a, backend);
        try
        {
            Initializer.Validate(model, o.Init);
        }
        catch (ArgumentException e)
        {
            // A preset's --keep on another model: the user gave no --keep to blame.
            throw new UsageException(a.String("--preset") is { } preset && !a.Has("--keep") && o.Init.Keep is not null
                ? $"{e.Message.TrimEnd('.')} (the --keep of --preset {preset}; give --keep for model '{model.Name}')."
                : e.Message);
        }
        foreach (string warning in IneffectiveFlags(a, o, model, backend.Name, data.Train.Count, data.Test.Count)) stdout.WriteLine($"laperm: warning: {warning}");
        // More outputs than classes trains (softmax over all of them), but is rarely what a model file meant.
        if (model.Classes > data.Train.Classes)
            stdout.WriteLine($"laperm: warning: model {model.Name} has {model.Classes} outputs, {o.Data} has {data.Train.Classes} classes: output{(model.Classes - data.Train.Classes == 1 ? $" {data.Train.Classes} is" : $"s {data.Train.Classes} to {model.Classes - 1} are")} never a label.");
        if (o.Out is null)
            o = o with { Out = ClaimNewDirectory(Path.Combine("runs", $"{Path.GetFileNameWithoutExtension(o.Model)}-{DateTime.UtcNow:yyyyMMdd-HHmmss}")) };
        else if (!o.Checkpoints.Resume)
        {
            LaPerm.Core.Checkpoints.RunSession.RefuseFileAsDirectory(o.Out);
            LaPerm.Core.Checkpoints.RunSession.RefuseDirectoryInUse(o.Out);
            if (!o.Checkpoints.Overwrite) LaPerm.Core.Checkpoints.RunSession.RefuseEarlierRun(o.Out);
        }
        bool quiet = a.Has("--quiet");
        stdout.WriteLine($"laperm train: {model.Name} ({model.ParameterCount:N0} parameters) on {o.Data} " +
                         $"({data.Train.Count:N0} train / {data.Test.Count:N0} test), {backend.Description}");
        stdout.WriteLine($"  {o.Epochs} epoch{(o.Epochs == 1 ? "" : "s")}, batch {o.Batch}, {o.DescribeOptimizer()} lr {NumberText.Rate(o.LearningRate, exact: true)} {o.LearningRateSchedule}, " +
                         $"{(o.Reconnect ? $"k {o.K}" : "no reconnection")}, init {o.Init.Describe()}, augment {o.Augment}, seed {o.Seed} -> {o.Out}");
        var observer = quiet ? null : new ConsoleProgress(stdout, terminal, o.Epochs);
        // Ctrl-C or SIGTERM: finish the step, checkpoint it, stop (exit 130); a second one quits at once.
        using var interrupt = new CancellationTokenSource();
        Trainer? running = null;
        void OnSignal(PosixSignalContext context)
        {
            if (interrupt.IsCancellationRequested)
            {
                // The second: the default action ends the process. Checkpoints are written atomically, so those on disk are whole.
                bool saved = new LaPerm.Core.Checkpoints.CheckpointStore(o.Out!).Checkpoints().Count > 0;
                Console.Error.WriteLine($"laperm: {context.Signal} again: quitting at once; " + (saved
                    ? $"the checkpoints already in {o.Out} are intact (laperm train --resume {Shell.Quote(o.Out!)})"
                    : "no checkpoint was written yet"));
                return;
            }
            context.Cancel = true;
            interrupt.Cancel();
            Console.Error.WriteLine(Volatile.Read(ref running)?.Ending == true
                ? $"laperm: {context.Signal}: this is the run's last step: it and the run's end (final sync, evaluation, weights) finish (again to quit at once)"
                : $"laperm: {context.Signal}: stopping after this step{(o.Out is null ? "" : " and its checkpoint")} (again to quit at once)");
        }
        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        Trainer trainer;
        try
        {
            long lastStep = o.LastStep(data.Train.Count);
            trainer = new Trainer(o, model, data, backend, observer)
            {
                Warnings = stdout, Tracer = Tracer(a, backend, lastStep, stdout), Interrupt = interrupt.Token,
            };
            Volatile.Write(ref running, trainer);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        TrainingSummary summary;
        try
        {
            summary = trainer.Run();
            (trainer.Tracer as NvtxStepTracer)?.Profiler.Finish();
        }
        catch (LaPerm.Core.Checkpoints.TrainingStoppedException e)
        {
            observer?.Finish();
            stdout.WriteLine($"stopped after step {e.Step}; checkpoint '{e.Checkpoint}'. Continue with: laperm train --resume {Shell.Quote(o.Out!)}");
            return 0;
        }
        catch (LaPerm.Cuda.Interop.CudaException e)
        {
            observer?.Finish();
            // What is safe on disk, so the sentence promises only what exists.
            var checkpoints = o.Out is null ? [] : new LaPerm.Core.Checkpoints.CheckpointStore(o.Out).Checkpoints();
            throw new DeviceFailedException(e, o.Out is null ? "without --out nothing was saved"
                : checkpoints.Count == 0 ? "no checkpoint had been written yet"
                : $"the newest checkpoint, step {checkpoints.Max(c => c.Step)}, is intact; laperm train --resume {Shell.Quote(o.Out!)} continues from it");
        }
        catch (LaPerm.Core.Checkpoints.TrainingInterruptedException e)
        {
            observer?.Finish();
            stdout.WriteLine(e.Checkpoint is null
                ? $"interrupted after step {e.Step}; without --out nothing was saved."
                : $"interrupted after step {e.Step}; checkpoint '{e.Checkpoint}'. Continue with: laperm train --resume {Shell.Quote(o.Out!)}");
            return CommandLine.Interrupted;
        }
        finally
        {
            trainer.Network?.Dispose();
        }
        observer?.Finish();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: best test accuracy {summary.BestTestAccuracy * 100:F2}% (step {summary.BestStep}), final {summary.FinalTestAccuracy * 100:F2}%, " +
            $"{summary.Syncs} sync{(summary.Syncs == 1 ? "" : "s")}, {summary.TrainImagesPerSecond:F0} train images/s, {summary.WallSeconds:F1} s; results in {o.Out}"));
        if (summary.FinalTestAccuracy > summary.BestTestAccuracy && summary.Reconnect)
            stdout.WriteLine("  (final is above best: the final evaluation follows the end-of-run sync, outside the schedule of every k steps, so best does not count it)");
        if (summary.SkippedSteps > 0)
            stdout.WriteLine($"laperm: warning: {Count(summary.SkippedSteps, "step")} of {summary.Steps} skipped for a non-finite loss or gradient (--on-nan skip-step); their updates were not applied.");
        Backends.ReportCudnnRefusals(backend, stdout);
        if (o.TargetAccuracy is { } goal)
            stdout.WriteLine(summary.Target is { } t
                ? string.Create(CultureInfo.InvariantCulture, $"target {goal * 100:F2}%: reached {t.TestAccuracy * 100:F2}% at step {t.Step} (epoch {t.Epochs:F2}) after {t.TrainSeconds:F1} s of training, {t.WallSeconds:F1} s wall")
                : string.Create(CultureInfo.InvariantCulture, $"target {goal * 100:F2}%: not reached (best {summary.BestTestAccuracy * 100:F2}%)"));
        return 0;
    }

    /// <summary>Flags that the rest of the command line leaves nothing to act on: accepted (a preset or a script may carry them), but said.</summary>
    internal static IEnumerable<string> IneffectiveFlags(Arguments a, TrainingOptions o, ModelDefinition model, string device, int trainImages, int testImages)
    {
        if (Backends.IgnoredGpuFlags(a, device) is { } ignored) yield return ignored;
        if (Backends.IgnoredCpuFlags(a, device) is { } cpuOnly) yield return cpuOnly;
        // A limit beyond the data set is cut to it; run-config.json keeps the number given.
        var inv = CultureInfo.InvariantCulture;
        // A value the user did not type here is named by where it came from.
        string Flag(string flag) => a.Has(flag) ? flag
            : o.Checkpoints.Resume ? $"the run's {flag}"
            : a.String("--preset") is { } preset ? $"--preset {preset}'s {flag}" : flag;
        if (o.LimitTrain > trainImages)
            yield return string.Create(inv, $"{Flag("--limit-train")} {o.LimitTrain} is more than the {trainImages:N0} training images of {o.Data}: the run trains on all {trainImages:N0}.");
        if (o.LimitTest > testImages)
            yield return string.Create(inv, $"{Flag("--limit-test")} {o.LimitTest} is more than the {testImages:N0} test images of {o.Data}: the run tests on all {testImages:N0}.");
        if (o.TrainEvalSize > trainImages)
            yield return string.Create(inv, $"{Flag("--train-eval-size")} {o.TrainEvalSize} is more than the {trainImages:N0} training images: the training evaluation uses all {trainImages:N0}.");
        // The header and summary.json say the batch asked for; the steps take what there is.
        if (o.Batch > trainImages)
            yield return string.Create(CultureInfo.InvariantCulture, $"batch {o.Batch} is more than the {trainImages:N0} training images: every step trains on all {trainImages:N0}, one step per epoch.");
        if (o.Checkpoints.StopAfterStep is { } stop && stop > o.LastStep(trainImages))
            yield return string.Create(CultureInfo.InvariantCulture, $"--stop-after {stop} is after the run's last step ({o.LastStep(trainImages)}); the run ends first.");
        // Digits are not mirror images of each other: a 2 flipped is no 2.
        if (o.Data.StartsWith("mnist", StringComparison.OrdinalIgnoreCase) && AugmentationPreset.Parse(o.Augment).HorizontalFlip)
            yield return $"{Flag("--augment")} {o.Augment} flips images left-right, which turns digits into shapes of no class; for {o.Data} use --augment mnist (or none).";
        if (device == "cpu" && o.Threads > Environment.ProcessorCount)
            yield return string.Create(inv, $"{Flag("--threads")} {o.Threads} is more than the {Environment.ProcessorCount} logical cores here: threads take turns on them (the results are the same, the run slower).");
        if (o.Optimizer == OptimizerKind.Adam && a.Has("--momentum"))
            yield return "--momentum applies to --optimizer sgd; adam does not use it.";
        if (!o.Reconnect)
        {
            string[] laperm = [.. new[] { "--k", "--verify-invariants", "--skip-bias", "--skip-bn", "--reconnect-variant" }.Where(a.Has)];
            if (laperm.Length > 0)
                yield return $"--no-reconnect: {string.Join(", ", laperm)} {(laperm.Length == 1 ? "has" : "have")} no reconnection to act on.";
        }
        else if (FrozenByReconnection(model, o) is { Count: > 0 } frozen)
        {
            var keepOf = Initializer.KeepOf(model, o.Init);
            if (o.Init.SharedValue == 0f)
                yield return $"init {o.Init.Describe()} makes every weight 0, which reconnection cannot change.";
            else if (frozen.All(p => keepOf.GetValueOrDefault(p.Name, -1) == 0))
                yield return $"init {o.Init.Describe()} leaves a tensor with keep 0 all zeros, which reconnection cannot change.";
            else
            {
                string names = string.Join(", ", frozen.Take(4).Select(p => p.Name)) + (frozen.Count > 4 ? $" and {frozen.Count - 4} more" : "");
                string advice = frozen.All(p => p.Kind == ParameterKind.BatchNorm)
                    ? "batch-norm's gamma and beta start as all 1 and all 0; --skip-bn trains them with the optimizer instead, as the CIFAR presets do"
                    : frozen.All(p => p.Kind == ParameterKind.BatchNorm || keepOf.GetValueOrDefault(p.Name, -1) is 0 or 1)
                        ? $"init {o.Init.Describe()} gives such a tensor one value; a keep strictly between 0 and 1 (--keep a/b) mixes V and 0"
                        : "a row of one weight, or one whose random draws all came out alike; --skip-bias and --skip-bn leave biases and batch-norm to the optimizer";
                yield return $"reconnection cannot change {names}: every row of {(frozen.Count == 1 ? "it holds one value, so it stays" : "them holds one value, so they stay")} as initialised ({advice}).";
            }
        }
    }

    /// <summary>
    /// The reconnected tensors that reconnection leaves as they are: every row holds one value
    /// (bit for bit), so every permutation of it is the row itself. Batch-norm's gamma and beta
    /// start constant and a row of one weight is; he-uniform rows of more never are (pruned to
    /// zeros entirely, almost never). Only shared:V values are random enough to need a look: those
    /// are computed, from the seed alone, as the run will.
    /// </summary>
    private static List<ParameterInfo> FrozenByReconnection(ModelDefinition model, TrainingOptions o)
    {
        var initial = o.Init.SharedValue is null ? null : Initializer.Compute(model, o.Init, o.Seed);
        return [.. model.Parameters.Where(p => o.ReconnectOptions.Includes(p) && (p.Kind == ParameterKind.BatchNorm || p.RowLength == 1
            || (initial is not null && Enumerable.Range(0, p.Rows).All(r =>
            {
                var row = initial[p.Name].AsSpan(r * p.RowLength, p.RowLength);
                foreach (float v in row)
                    if (BitConverter.SingleToInt32Bits(v) != BitConverter.SingleToInt32Bits(row[0])) return false;
                return true;
            }))))];
    }

    private static string Count(long n, string noun) => string.Create(CultureInfo.InvariantCulture, $"{n:N0} {noun}{(n == 1 ? "" : "s")}");

    /// <summary>A switch and its --no- form (to undo a preset's): the one given, else <paramref name="current"/>; both at once is an error.</summary>
    private static bool OnOff(Arguments a, string flag, bool current)
    {
        string off = "--no-" + flag[2..];
        if (a.Has(flag) && a.Has(off)) throw new UsageException($"{flag} and {off} contradict each other; give one.");
        return a.Has(flag) || (!a.Has(off) && current);
    }

    public static TrainingOptions Parse(Arguments a) => Parse(a, new TrainingOptions());

    /// <summary>The flags of <paramref name="a"/> applied to <paramref name="start"/> (a preset replaces it).</summary>
    public static TrainingOptions Parse(Arguments a, TrainingOptions start)
    {
        var o = start;
        if (a.String("--preset") is { } preset)
            o = Presets.TryGet(preset) ?? throw new UsageException($"unknown preset '{preset}'{LaPerm.Core.IO.NameSuggestion.DidYouMean(preset, Presets.Names)}; expected one of {string.Join(", ", Presets.Names)}.");
        if (a.String("--model") is { } m) o = o with { Model = m };
        if (a.String("--data") is { } d) o = o with { Data = DataSource.Canonical(d) };
        if (a.Int("--epochs", 1) is { } e) o = o with { Epochs = e };
        if (a.Int("--batch", 1) is { } b) o = o with { Batch = b };
        if (a.String("--k") is { } k) o = o with { K = SyncSchedule.Parse(k) };
        if (a.Double("--lr", 1e-12, 10) is { } lr) o = o with { LearningRate = (float)lr };
        if (a.String("--lr-schedule") is { } s) o = o with { LearningRateSchedule = LearningRateSchedule.Parse(s) };
        if (a.String("--optimizer") is { } opt)
            o = o with { Optimizer = opt switch { "adam" => OptimizerKind.Adam, "sgd" => OptimizerKind.Sgd, _ => throw new UsageException($"--optimizer expects adam or sgd, got '{opt}'.") } };
        if (a.Double("--momentum", 0, 0.999999) is { } mom) o = o with { Momentum = (float)mom };
        if (a.String("--init") is { } init)
        {
            // He-uniform has no keep fractions: a preset's (f1/f2) go with its shared value.
            if (init is "he-uniform" or "he") o = o with { Init = o.Init with { SharedValue = null, Keep = null } };
            else if (init.StartsWith("shared:", StringComparison.Ordinal) && float.TryParse(init.AsSpan(7), NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v))
                o = o with { Init = o.Init with { SharedValue = v } };
            else throw new UsageException($"--init expects he-uniform or shared:V (e.g. shared:0.08), got '{init}'.");
        }
        if (a.String("--keep") is { } keep)
            o = o with { Init = o.Init with { Keep = [.. keep.Split(',').Select(x => Arguments.Fraction(x.Trim(), "--keep"))] } };
        if (o.Init.Keep is not null && o.Init.SharedValue is null)
            throw new UsageException("--keep applies to --init shared:V only.");
        if (a.Double("--prune", 0, 0.999) is { } prune) o = o with { Init = o.Init with { Prune = prune } };
        o = o with { SkipBias = OnOff(a, "--skip-bias", o.SkipBias), SkipBatchNorm = OnOff(a, "--skip-bn", o.SkipBatchNorm) };
        if (a.String("--loss-reduction") is { } reduction)
            o = o with { LossReduction = reduction switch { "mean" => LossReduction.Mean, "sum" => LossReduction.Sum,
                _ => throw new UsageException($"--loss-reduction expects mean or sum, got '{reduction}'.") } };
        if (a.Has("--no-reconnect")) o = o with { Reconnect = false };
        if (a.Has("--verify-invariants")) o = o with { VerifyInvariants = true };
        if (a.Has("--no-graphs")) o = o with { Graphs = false };
        if (a.String("--augment") is { } aug)
        {
            try
            {
                o = o with { Augment = AugmentationPreset.Parse(aug).Name };
            }
            catch (ArgumentException)
            {
                throw new UsageException($"--augment expects none, mnist, cifar or shift-flip, got '{aug}'.");
            }
        }
        if (a.ULong("--seed") is { } seed) o = o with { Seed = seed };
        o = o with { Threads = Backends.Threads(a) };
        if (a.Int("--eval-every", 0) is { } ee) o = o with { EvalEvery = ee };
        if (a.Int("--train-eval-size", 0) is { } tes) o = o with { TrainEvalSize = tes };
        if (a.String("--target-accuracy") is { } goal)
        {
            bool percent = goal.EndsWith('%');
            if (!double.TryParse(percent ? goal[..^1] : goal, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
                || !((percent ? value / 100 : value) is > 0 and <= 1))
                throw new UsageException($"--target-accuracy expects a test accuracy like 0.995 or 99.5%, got '{goal}'.");
            o = o with { TargetAccuracy = percent ? value / 100 : value };
        }
        if (a.Has("--stop-at-target"))
        {
            if (o.TargetAccuracy is null) throw new UsageException("--stop-at-target needs --target-accuracy A.");
            o = o with { StopAtTarget = true };
        }
        if (a.Int("--limit-train", 1) is { } lt) o = o with { LimitTrain = lt };
        if (a.Int("--limit-test", 1) is { } lte) o = o with { LimitTest = lte };
        if (a.String("--device") is { } dev) o = o with { Device = Backends.ParseDevice(dev) };
        o = o with { GpuMath = a.String("--math") ?? o.GpuMath, Cudnn = a.String("--cudnn") ?? o.Cudnn, ChannelReduction = a.String("--channel-reduction") ?? o.ChannelReduction };
        _ = Backends.Gpu(o.GpuMath, o.Cudnn, o.ChannelReduction, null);   // refuses a bad value before anything runs
        string? outDir = a.String("--out");
        o = o with { Out = outDir };   // null: a new directory under runs/, claimed by Run right before the header
        o = o with { Checkpoints = ResumeArguments.CheckpointFlags(a, o.Checkpoints) with { Overwrite = a.Has("--overwrite") } };
        return o;
    }

    /// <summary>
    /// The default --out: <paramref name="path"/>, or with -2, -3, ... when that exists or another
    /// laperm claimed it first, so that runs started within the same second never share (and so
    /// replace) a directory the user did not name. A directory is claimed by creating its lock
    /// file exclusively (the run's session then holds that same file).
    /// </summary>
    internal static string ClaimNewDirectory(string path)
    {
        for (int n = 1; ; n++)
        {
            string candidate = n == 1 ? path : $"{path}-{n}";
            if (Directory.Exists(candidate) || File.Exists(candidate)) continue;
            try
            {
                Directory.CreateDirectory(candidate);
                using (new FileStream(Path.Combine(candidate, LaPerm.Core.Checkpoints.RunSession.LockFile), FileMode.CreateNew, FileAccess.Write)) { }
                return candidate;
            }
            catch (IOException) when (File.Exists(Path.Combine(candidate, LaPerm.Core.Checkpoints.RunSession.LockFile)))
            {
                // Another laperm created the same directory a moment earlier and claimed it.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new LaPerm.Core.Checkpoints.RunStorageException($"output directory '{candidate}' cannot be created ({e.Message.TrimEnd('.')}); choose one with --out", e);
            }
        }
    }
}

/// <summary>
/// A one-line progress bar on a terminal; plain per-evaluation lines otherwise. The bar counts
/// epochs from 1 ("epoch 1/2": the first of two); the evaluation lines and metrics.jsonl give
/// the epochs done (0.79: most of the first).
/// </summary>
internal sealed class ConsoleProgress(TextWriter stdout, bool terminal, int epochs) : ITrainingObserver
{
    private bool _barShown;

    public void OnStep(long step, long totalSteps, int epoch, double runningLoss, double runningAccuracy)
    {
        if (!terminal) return;
        const int width = 30;
        int filled = (int)(width * step / Math.Max(1, totalSteps));
        // NaN: no sums have come back from the device yet (they are read without waiting).
        string running = double.IsNaN(runningLoss) ? "loss ... acc ..." : string.Create(CultureInfo.InvariantCulture, $"loss {NumberText.Loss(runningLoss)} acc {runningAccuracy * 100:F2}%");
        stdout.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r[{new string('#', filled)}{new string('.', width - filled)}] step {step}/{totalSteps} epoch {epoch + 1}/{epochs} {running}   "));
        _barShown = true;
    }

    public void OnEvaluation(EvaluationRecord r)
    {
        // --train-eval-size: the first N training images in inference mode, beside the running figures.
        string trainEval = r.TrainEvalAccuracy is { } accuracy ? string.Create(CultureInfo.InvariantCulture, $"train-eval acc {accuracy * 100:F2}%  ") : "";
        if (_barShown)
        {
            stdout.Write('\r' + new string(' ', 100) + '\r');
            _barShown = false;
        }
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"step {r.Step,7} epoch {r.Epoch + r.EpochProgress,6:F2} lr {NumberText.Rate(r.LearningRate)} syncs {r.Syncs,4}{(r.BetweenSyncs ? "*" : " ")} " +
            $"train loss {NumberText.Loss(r.TrainLoss)} acc {r.TrainAccuracy * 100:F2}%  {trainEval}" +
            $"test loss {NumberText.Loss(r.TestLoss)} acc {r.TestAccuracy * 100:F2}%  {r.WallSeconds:F1}s"));
    }

    public void OnSync(long step, int syncs, double seconds)
    {
    }

    public void Finish()
    {
        if (_barShown) stdout.WriteLine();
    }
}
