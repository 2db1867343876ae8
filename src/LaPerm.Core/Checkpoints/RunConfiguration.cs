using System.Text.Json;
using System.Text.Json.Nodes;
using LaPerm.Core.Data;
using LaPerm.Core.IO;
using LaPerm.Core.LaPerm;
using LaPerm.Core.Model;
using LaPerm.Core.Training;

namespace LaPerm.Core.Checkpoints;

/// <summary>
/// The full configuration of a run as JSON (config.json in every checkpoint, run-config.json in
/// the run directory): every training option in its command-line text form, plus the model's
/// description, so a resumed run needs neither the original flags nor the original model file.
/// </summary>
public static class RunConfiguration
{
    public const int FormatVersion = 1;

    public static string ToJson(TrainingOptions o, ModelSpec model)
    {
        var c = o.Checkpoints;
        var json = new JsonObject
        {
            ["format"] = "laperm-run-config",
            ["version"] = FormatVersion,
            ["model"] = o.Model,
            ["model_spec"] = JsonNode.Parse(ModelDefinition.ToJson(model)),
            ["data"] = o.Data,
            ["epochs"] = o.Epochs,
            ["batch"] = o.Batch,
            ["k"] = o.K.ToString(),
            ["lr"] = o.LearningRate,
            ["lr_schedule"] = o.LearningRateSchedule.ToString(),
            ["optimizer"] = o.Optimizer == OptimizerKind.Adam ? "adam" : "sgd",
            ["momentum"] = o.Momentum,
            ["loss_reduction"] = o.LossReduction == LossReduction.Sum ? "sum" : "mean",
            ["init_shared_value"] = o.Init.SharedValue,
            ["init_keep"] = o.Init.Keep is null ? null : new JsonArray([.. o.Init.Keep.Select(k => (JsonNode)k)]),
            ["init_prune"] = o.Init.Prune,
            ["skip_bias"] = o.SkipBias,
            ["skip_bn"] = o.SkipBatchNorm,
            ["augment"] = o.Augment,
            ["seed"] = o.Seed,
            ["threads"] = o.Threads,
            ["eval_every"] = o.EvalEvery,
            ["train_eval_size"] = o.TrainEvalSize,
            ["limit_train"] = o.LimitTrain,
            ["limit_test"] = o.LimitTest,
            ["reconnect"] = o.Reconnect,
            ["verify_invariants"] = o.VerifyInvariants,
            ["device"] = o.Device,
            ["math"] = o.GpuMath,
            ["cudnn"] = o.Cudnn,
            ["channel_reduction"] = o.ChannelReduction,
            ["preset"] = o.Preset,
            ["checkpoint_every"] = c.Every,
            ["keep_checkpoints"] = c.Keep,
            ["on_nan"] = CheckpointOptions.Describe(c.OnNonFinite),
            ["trace_reconnection"] = c.TraceReconnectionFor(o.Device),
            ["target_accuracy"] = o.TargetAccuracy,
            ["stop_at_target"] = o.StopAtTarget,
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// The device as configurations compare it: which GPU ("cuda:N") is where a run runs, not what
    /// it computes, so every GPU is "cuda" (a run may go on on another GPU).
    /// </summary>
    public static string DeviceKind(string device) => device.StartsWith("cuda:", StringComparison.Ordinal) ? "cuda" : device;

    /// <summary>
    /// Reads a configuration written by <see cref="ToJson"/>; <paramref name="outDir"/> becomes the
    /// output directory (the run may have been moved). Throws <see cref="ResumeException"/> naming
    /// the file and field on anything unexpected.
    /// </summary>
    public static (TrainingOptions Options, ModelSpec Model) FromJson(string text, string path, string outDir)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(text)?.AsObject() ?? throw new ResumeException($"run configuration '{path}' is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ResumeException($"run configuration '{path}' is not a JSON object ({(e is JsonException parse ? JsonText.Describe(parse) : e.Message)})");
        }
        T Get<T>(string field)
        {
            try
            {
                var node = json[field];
                if (node is null) throw new ResumeException($"run configuration '{path}' has no field '{field}'");
                return node.GetValue<T>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new ResumeException($"run configuration '{path}': field '{field}' is {json[field]?.ToJsonString()}, expected {Expected<T>()}");
            }
        }
        T? Optional<T>(string field) where T : struct => json[field] is null ? null : Get<T>(field);
        if (!(json["format"] is JsonValue format && format.TryGetValue(out string? name) && name == "laperm-run-config") || Get<int>("version") != FormatVersion)
            throw new ResumeException($"run configuration '{path}' must have format 'laperm-run-config' and version {FormatVersion}");
        try
        {
            var spec = json["model_spec"] is { } stored
                ? ModelDefinition.ParseSpec(stored.ToJsonString(), $"run configuration '{path}' field 'model_spec'")
                : throw new ResumeException($"run configuration '{path}' has no field 'model_spec'");
            var keep = json["init_keep"] is JsonArray k
                ? k.Select(x => x?.GetValue<double>() ?? throw new ResumeException($"run configuration '{path}': field 'init_keep' holds null; expected fractions")).ToList()
                : null;
            var options = new TrainingOptions
            {
                Model = Get<string>("model"),
                Data = Get<string>("data"),
                Epochs = Get<int>("epochs"),
                Batch = Get<int>("batch"),
                K = SyncSchedule.Parse(Get<string>("k")),
                LearningRate = Get<float>("lr"),
                LearningRateSchedule = LearningRateSchedule.Parse(Get<string>("lr_schedule")),
                Optimizer = Get<string>("optimizer") switch
                {
                    "adam" => OptimizerKind.Adam,
                    "sgd" => OptimizerKind.Sgd,
                    var other => throw new ResumeException($"run configuration '{path}': field 'optimizer' is '{other}', expected 'adam' or 'sgd'"),
                },
                Momentum = Get<float>("momentum"),
                LossReduction = Get<string>("loss_reduction") switch
                {
                    "sum" => LossReduction.Sum,
                    "mean" => LossReduction.Mean,
                    var other => throw new ResumeException($"run configuration '{path}': field 'loss_reduction' is '{other}', expected 'mean' or 'sum'"),
                },
                Init = new InitOptions(Optional<float>("init_shared_value"), keep, Get<double>("init_prune")),
                SkipBias = Get<bool>("skip_bias"),
                SkipBatchNorm = Get<bool>("skip_bn"),
                Augment = Get<string>("augment"),
                Seed = Get<ulong>("seed"),
                Threads = Get<int>("threads"),
                EvalEvery = Get<int>("eval_every"),
                TrainEvalSize = Get<int>("train_eval_size"),
                LimitTrain = Optional<int>("limit_train"),
                LimitTest = Optional<int>("limit_test"),
                Reconnect = Get<bool>("reconnect"),
                VerifyInvariants = Get<bool>("verify_invariants"),
                Device = Get<string>("device"),
                // Absent from configurations written before they were recorded: the defaults then.
                GpuMath = json["math"] is null ? "fp32" : Get<string>("math"),
                Cudnn = json["cudnn"] is null ? "none" : Get<string>("cudnn"),
                ChannelReduction = json["channel_reduction"] is null ? "chunked" : Get<string>("channel_reduction"),
                Preset = json["preset"] is null ? null : Get<string>("preset"),
                // Absent from configurations written before targets were resumed: none then.
                TargetAccuracy = Optional<double>("target_accuracy"),
                StopAtTarget = Optional<bool>("stop_at_target") ?? false,
                Out = outDir,
                Checkpoints = new CheckpointOptions
                {
                    Every = Get<int>("checkpoint_every"),
                    Keep = Get<int>("keep_checkpoints"),
                    OnNonFinite = CheckpointOptions.ParsePolicy(Get<string>("on_nan")),
                    TraceReconnection = Get<bool>("trace_reconnection"),
                    Resume = true,
                },
            };
            // Checked here, naming the file and field: later checks speak of flags the user never gave.
            foreach (var (field, valid) in new (string, bool)[]
            {
                ("epochs", options.Epochs > 0), ("batch", options.Batch > 0), ("lr", float.IsFinite(options.LearningRate) && options.LearningRate > 0),
                ("momentum", options.Momentum is >= 0 and < 1), ("init_prune", options.Init.Prune is >= 0 and < 1),
                ("init_keep", options.Init.Keep is null || options.Init.Keep.All(q => q is >= 0 and <= 1)), ("target_accuracy", options.TargetAccuracy is null or (> 0 and <= 1)),
                ("threads", options.Threads is > 0 and <= TrainingOptions.MaxThreads), ("eval_every", options.EvalEvery >= 0), ("train_eval_size", options.TrainEvalSize >= 0),
                ("checkpoint_every", options.Checkpoints.Every >= 0), ("keep_checkpoints", options.Checkpoints.Keep > 0),
                ("limit_train", options.LimitTrain is null or > 0), ("limit_test", options.LimitTest is null or > 0),
            })
                if (!valid) throw new ResumeException($"run configuration '{path}': field '{field}' is {json[field]?.ToJsonString()}, which no run can have; the file was edited or damaged");
            try
            {
                AugmentationPreset.Parse(options.Augment);
            }
            catch (ArgumentException)
            {
                throw new ResumeException($"run configuration '{path}': field 'augment' is '{options.Augment}', expected none, mnist, cifar or shift-flip");
            }
            return (options, spec);
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException)
        {
            throw new ResumeException($"run configuration '{path}' holds an invalid value ({e.Message.TrimEnd('.')})");
        }
        catch (ModelSpecException e)
        {
            // A ResumeException, so --resume goes on to the next configuration it can read.
            throw new ResumeException(e.Message);
        }
    }

    /// <summary>A field's kind in the words of the file, not of .NET (Int32, Single).</summary>
    private static string Expected<T>() => typeof(T) switch
    {
        var t when t == typeof(string) => "a string",
        var t when t == typeof(bool) => "true or false",
        var t when t == typeof(int) => "a whole number (32-bit)",
        var t when t == typeof(ulong) => "a whole number from 0 to 2^64 - 1",
        _ => "a number",
    };

    public static void Write(string path, TrainingOptions o, ModelSpec model) => AtomicFile.WriteAllText(path, ToJson(o, model));
}
