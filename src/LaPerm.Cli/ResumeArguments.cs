using System.Globalization;
using System.Text.Json.Nodes;
using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Cli;

/// <summary>
/// `laperm train --resume DIR`: the run's configuration comes from DIR (DIR/run-config.json,
/// written when the run started; else, for a directory without one, the newest checkpoint's
/// config.json that parses); only flags that cannot change the results may be given with it.
/// A checkpoint is then resumed only if its own config.json agrees (RunSession), so an edited or
/// damaged checkpoint cannot change the run's configuration.
/// </summary>
internal static class ResumeArguments
{
    public static readonly string[] Allowed = ["--resume", "--threads", "--quiet", "--checkpoint-every", "--keep-checkpoints", "--on-nan", "--stop-after", "--verify-invariants", "--no-graphs", "--reconnect-variant", "--profile-steps"];

    public static (TrainingOptions Options, ModelSpec Model) Load(Arguments a, IReadOnlyList<string> given, TextWriter warnings)
    {
        string dir = a.String("--resume")!;
        if (a.Has("--overwrite"))
            throw new UsageException($"--overwrite starts a new run in place of the one in its --out; --resume continues the run in '{dir}'. Give one of them.");
        var extra = given.Where(f => f.StartsWith("--", StringComparison.Ordinal) && !Allowed.Contains(f.Split('=')[0])).Select(f => f.Split('=')[0]).ToList();
        if (!Directory.Exists(dir))
            throw new UsageException(File.Exists(dir) ? $"--resume: '{dir}' is a file; expected a run directory (the --out of a run)." : $"--resume: run directory '{dir}' does not exist.");
        var store = new CheckpointStore(dir);
        var sources = store.Checkpoints().Select(c => Path.Combine(c.Path, RunSession.ConfigFile)).Prepend(Path.Combine(dir, RunSession.RunConfigFile));
        ResumeException? first = null;
        string? missing = null;
        foreach (var path in sources)
        {
            if (!File.Exists(path))
            {
                missing ??= path;
                continue;
            }
            try
            {
                string json;
                try
                {
                    json = Utf8Text.ReadFile(path, at => new ResumeException($"'{path}' is not UTF-8 text (byte {at}); a run configuration is UTF-8 JSON."));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new ResumeException($"'{path}' cannot be read: {e.Message}");
                }
                var (options, model) = RunConfiguration.FromJson(json, path, dir);
                CheckRecordedFlags(options, model, path);
                if (extra.Count > 0) RequireAgreement(a, extra, dir, options, model, warnings);
                // A configuration that could not be read, or is gone, is said, not passed over in silence.
                if (first is not null) warnings.WriteLine($"laperm: warning: {CommandLine.OneLine(first.Message).TrimEnd('.')}; using '{path}' instead.");
                else if (missing is not null) warnings.WriteLine($"laperm: warning: '{missing}' is missing; using '{path}' instead.");
                return (Apply(a, options), model);
            }
            catch (ResumeException e)
            {
                first ??= e;
            }
        }
        if (first is not null) throw first;
        // A run takes the directory's lock before it records its configuration: killed in between (not running now), it left only the lock.
        RunSession.RefuseDirectoryInUse(dir);
        if (File.Exists(Path.Combine(dir, RunSession.LockFile)))
            throw new ResumeException($"--resume: the run in '{dir}' stopped before it recorded its configuration ({RunSession.RunConfigFile}); nothing of it is left to continue: run its command again without --resume.");
        throw new ResumeException($"--resume: '{dir}' holds no run configuration ({RunSession.RunConfigFile} or a checkpoint); it is not a laperm run directory.");
    }

    /// <summary>
    /// Flags that change results may come with --resume when they say what the run recorded (the
    /// original command with --resume added): applied to the recorded configuration, they must
    /// leave it as it is. One that would change it is refused, naming it and both values.
    /// </summary>
    private static void RequireAgreement(Arguments a, IReadOnlyList<string> extra, string dir, TrainingOptions recorded, ModelSpec model, TextWriter warnings)
    {
        if (a.String("--out") is { } outDir && !FilePaths.Same(outDir, dir))
            throw new UsageException($"--resume continues the run in '{dir}'; --out '{outDir}' names another directory (give --out as '{dir}', or leave it out).");
        var parsed = TrainCommand.Parse(a, recorded);
        // A run records the device auto chose; auto given again agrees with it (a resume runs on the recorded device).
        // Which GPU is where a run runs, not what it computes: a run on one may go on on another.
        if (parsed.Device == "auto" || RunConfiguration.DeviceKind(parsed.Device) == RunConfiguration.DeviceKind(recorded.Device)) parsed = parsed with { Device = recorded.Device };
        var given = JsonNode.Parse(RunConfiguration.ToJson(parsed, model))!.AsObject();
        var stored = JsonNode.Parse(RunConfiguration.ToJson(recorded, model))!.AsObject();
        foreach (var (field, value) in stored)
        {
            if (RunSession.FlagsOfOneCommand.Contains(field) || JsonNode.DeepEquals(value, given[field])) continue;
            // The flag named like the field, else the preset (which sets many), else every flag given.
            string flag = extra.FirstOrDefault(f => f == "--" + field.Replace('_', '-')) ?? (extra.Contains("--preset") ? "--preset" : string.Join(", ", extra));
            throw new UsageException($"--resume takes the run's configuration from '{dir}'; {flag} would change it ({field} is {value?.ToJsonString() ?? "null"} in the run, "
                + $"{given[field]?.ToJsonString() ?? "null"} here). Give --resume without it; allowed with it: {string.Join(", ", Allowed.Skip(1))}.");
        }
        // --model names what the run recorded; read again, the file it names may since have been edited.
        // One that cannot be read here (another working directory, since removed or broken) is not
        // needed: the run keeps the model it recorded, and says so.
        if (a.String("--model") is not { } modelFlag) return;
        ModelSpec givenModel;
        try
        {
            givenModel = Backends.ResolveModel(modelFlag);
        }
        catch (Exception e) when (e is UsageException or ModelSpecException)
        {
            warnings.WriteLine($"laperm: warning: --model '{modelFlag}' cannot be read here to compare with the run's ({CommandLine.OneLine(e.Message).TrimEnd('.')}); the run keeps the model it recorded.");
            return;
        }
        // ToJson writes a spec one way only: equal texts, equal models.
        if (ModelDefinition.ToJson(givenModel) != ModelDefinition.ToJson(model))
        {
            long inRun = new ModelDefinition(model).ParameterCount, inFile = new ModelDefinition(givenModel).ParameterCount;
            string how = inRun == inFile ? $"other layers, the same {inRun:N0} parameters" : $"{inFile:N0} parameters, the run's has {inRun:N0}";
            throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                $"--resume takes the run's configuration from '{dir}'; --model '{modelFlag}' would change it: that model is not the one the run recorded ({how}). Give --resume without --model: the run keeps its recorded model."));
        }
    }

    /// <summary>
    /// The recorded values only the command line knows how to read (the device, the GPU flags, the
    /// keep list against the model's kernels), checked here so that the error names the file and
    /// field, and the next configuration is tried: the flags' own errors speak of flags the user never gave.
    /// </summary>
    private static void CheckRecordedFlags(TrainingOptions o, ModelSpec model, string path)
    {
        Check("device", () => Backends.ParseDevice(o.Device, flag: null));
        Check("math", () => Backends.Gpu(o.GpuMath, null, null, null));
        Check("cudnn", () => Backends.Gpu(null, o.Cudnn, null, null));
        Check("channel_reduction", () => Backends.Gpu(null, null, o.ChannelReduction, null));
        Check("init_keep", () => Initializer.Validate(new ModelDefinition(model), o.Init));

        void Check(string field, Action check)
        {
            try
            {
                check();
            }
            catch (Exception e) when (e is UsageException or ArgumentException)
            {
                throw new ResumeException($"run configuration '{path}': field '{field}' holds an invalid value ({e.Message.TrimEnd('.')})");
            }
        }
    }

    private static TrainingOptions Apply(Arguments a, TrainingOptions o)
    {
        var recorded = o;
        if (a.Int("--threads", 1, TrainingOptions.MaxThreads) is { } threads) o = o with { Threads = threads };
        // Agreed in RequireAgreement: another GPU for a run recorded on one.
        if (a.String("--device") is { } given && Backends.ParseDevice(given) is var device && RunConfiguration.DeviceKind(device) == RunConfiguration.DeviceKind(o.Device))
            o = o with { Device = device };
        if (a.Has("--verify-invariants")) o = o with { VerifyInvariants = true };
        if (a.Has("--no-graphs")) o = o with { Graphs = false };
        return o with { Checkpoints = CheckpointFlags(a, o.Checkpoints) with { Resume = true, Recorded = recorded } };
    }

    /// <summary>--checkpoint-every, --keep-checkpoints, --on-nan, --stop-after, --trace-reconnection.</summary>
    public static CheckpointOptions CheckpointFlags(Arguments a, CheckpointOptions c)
    {
        if (a.Int("--checkpoint-every", 0) is { } every) c = c with { Every = every };
        if (a.Int("--keep-checkpoints", 1) is { } keep) c = c with { Keep = keep };
        if (a.String("--on-nan") is { } onNan)
        {
            try
            {
                c = c with { OnNonFinite = CheckpointOptions.ParsePolicy(onNan) };
            }
            catch (FormatException e)
            {
                throw new UsageException(e.Message);
            }
        }
        if (a.Int("--stop-after", 1) is { } stop) c = c with { StopAfterStep = stop };
        if (a.String("--trace-reconnection") is { } trace)
            c = c with { TraceReconnection = trace switch { "on" => true, "off" => false, _ => throw new UsageException($"--trace-reconnection expects on or off, got '{trace}'.") } };
        return c;
    }
}
