using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaPerm.Core.Model;

/// <summary>
/// A <see cref="ModelSpec"/> with every shape inferred and every parameter named;
/// backend-independent (what `laperm models` lists and what <see cref="Network"/> binds).
/// </summary>
public sealed class ModelDefinition
{
    public ModelDefinition(ModelSpec spec)
    {
        Spec = spec;
        CheckName(spec.Name, "model name");
        if (spec.Input is not { Count: 3 } || spec.Input.Any(d => d <= 0))
            throw new ModelSpecException($"model '{spec.Name}': input must be [channels, height, width] with positive entries");
        if ((long)spec.Input[0] * spec.Input[1] * spec.Input[2] > MaxFeatures)
            throw new ModelSpecException($"model '{spec.Name}': input {spec.Input[0]}x{spec.Input[1]}x{spec.Input[2]} has more than {MaxFeatures:N0} values per example");
        Input = new FeatureShape(spec.Input[0], spec.Input[1], spec.Input[2]);
        if (spec.Layers is not { Count: > 0 }) throw new ModelSpecException($"model '{spec.Name}': it has no layers");
        var counters = new Dictionary<string, int>();
        var names = new HashSet<string>();
        bool inputLayerPending = true;
        Layers = Build(spec.Layers, Input, counters, names, ref inputLayerPending);
        Parameters = [.. Layers.SelectMany(l => l.Parameters)];
        State = [.. Layers.SelectMany(l => l.State)];
        var last = Layers[^1].Output;
        if (last.Height != 1 || last.Width != 1 || last.Channels < 2)
            throw new ModelSpecException($"model '{spec.Name}': the last layer must give class logits (a vector of at least 2), got {last}");
        Classes = last.Channels;
    }

    public ModelSpec Spec { get; }
    public string Name => Spec.Name;
    public FeatureShape Input { get; }
    public int Classes { get; }
    public IReadOnlyList<Layer> Layers { get; }
    public IReadOnlyList<ParameterInfo> Parameters { get; }
    public IReadOnlyList<StateInfo> State { get; }
    public long ParameterCount => Parameters.Sum(p => (long)p.Shape.Length);
    public long StateCount => State.Sum(s => (long)s.Length);

    /// <summary>
    /// Each layer and whether a training step computes its input gradient: only when some layer
    /// before it has parameters (for f2 and lenet300, flatten then dense, that spares the first
    /// dense layer's input-gradient GEMM).
    /// </summary>
    public IEnumerable<(Layer Layer, bool NeedInputGradient)> LayersWithInputGradient()
    {
        bool parametersBefore = false;
        foreach (var layer in Layers)
        {
            yield return (layer, parametersBefore);
            parametersBefore |= layer.Parameters.Count > 0;
        }
    }

    /// <summary>Multiply-adds of the dense and convolution layers in one example's training step (forward and backward): what `bench train` turns into GFLOP/s.</summary>
    public long TrainingMultiplyAddsPerExample => LayersWithInputGradient().Sum(x => x.Layer.TrainingMultiplyAdds(x.NeedInputGradient));

    private static List<Layer> Build(IReadOnlyList<LayerSpec> specs, FeatureShape input, Dictionary<string, int> counters, HashSet<string> names, ref bool inputLayerPending)
    {
        var layers = new List<Layer>();
        var shape = input;
        foreach (var spec in specs)
        {
            if (spec is null) throw new ModelSpecException("a layer entry is null");
            string prefix = spec switch
            {
                DenseSpec => "dense",
                Conv2dSpec => "conv",
                MaxPoolSpec => "maxpool",
                AvgPoolSpec => "avgpool",
                GlobalAvgPoolSpec => "gap",
                BatchNormSpec => "bn",
                DropoutSpec => "dropout",
                ReluSpec => "relu",
                FlattenSpec => "flatten",
                ResidualSpec => "res",
                _ => throw new ModelSpecException($"unknown layer type {spec.GetType().Name}"),
            };
            int ordinal = counters[prefix] = counters.GetValueOrDefault(prefix) + 1;
            string name = spec.Name ?? $"{prefix}{ordinal}";
            CheckName(name, "layer name");
            if (!names.Add(name)) throw new ModelSpecException($"layer name '{name}' is used twice");
            bool weighted = spec is DenseSpec or Conv2dSpec;
            bool isInput = weighted && inputLayerPending;
            if (weighted) inputLayerPending = false;
            Layer layer;
            try
            {
                layer = Create(spec, name, shape, isInput, ordinal, counters, names, ref inputLayerPending);
            }
            catch (ArgumentException e)
            {
                // E.g. a kernel of more than int.MaxValue weights (Shape refuses it).
                string message = e.ParamName is { } parameter ? e.Message.Replace($" (Parameter '{parameter}')", "", StringComparison.Ordinal) : e.Message;
                throw new ModelSpecException($"layer '{name}': {message}");
            }
            var output = layer.Output;
            if ((long)output.Channels * output.Height * output.Width > MaxFeatures)
                throw new ModelSpecException($"layer '{name}': its output {output} has more than {MaxFeatures:N0} values per example");
            layers.Add(layer);
            shape = output;
        }
        return layers;
    }

    /// <summary>
    /// Names become file names (a model's default run directory) and tensor-name prefixes
    /// ("layer/kernel"): not empty, no path separator, not "." or "..".
    /// </summary>
    private static void CheckName(string? name, string what)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(['/', '\\']) >= 0 || name is "." or ".." || name.Any(char.IsControl))
            throw new ModelSpecException($"{what} '{name}' must be a non-empty name without '/', '\\' or control characters");
    }

    /// <summary>Values per example that an activation may hold: a batch of them must still be indexable.</summary>
    public const int MaxFeatures = 1 << 28;

    /// <summary>
    /// The largest batch whose activations each fit one tensor (at most int.MaxValue values), and
    /// the layer whose output (or the input) sets it. A batch beyond it is a user error to say
    /// before a run starts, not an allocation that fails after it has.
    /// </summary>
    public (int Batch, string Layer, long Features) MaxBatch()
    {
        long inputFeatures = (long)Input.Channels * Input.Height * Input.Width;
        var (layer, features) = Layers.Select(l => (l.Name, Features: (long)l.Output.Channels * l.Output.Height * l.Output.Width))
            .Prepend(("input", inputFeatures)).MaxBy(x => x.Item2);
        return ((int)(int.MaxValue / features), layer, features);
    }

    /// <summary>Why a pass of <paramref name="batch"/> examples is beyond <see cref="MaxBatch"/>, naming the layer; null when it is not.</summary>
    public string? TooLargeBatch(int batch)
    {
        var (max, layer, features) = MaxBatch();
        return batch <= max ? null : string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"a batch of {batch:N0} is too large for {Name}: {(layer == "input" ? "its input" : $"layer '{layer}'")} has {features:N0} values per example, so more than {max:N0} would not fit one tensor ({int.MaxValue:N0} values)");
    }

    private static Layer Create(LayerSpec spec, string name, FeatureShape shape, bool isInput, int ordinal,
        Dictionary<string, int> counters, HashSet<string> names, ref bool inputLayerPending) =>
            spec switch
            {
                DenseSpec d => new DenseLayer(name, shape, d, isInput),
                Conv2dSpec c => new Conv2dLayer(name, shape, c, isInput),
                MaxPoolSpec p => new PoolLayer(name, shape, true, p.Pool, p.Stride ?? p.Pool),
                AvgPoolSpec p => new PoolLayer(name, shape, false, p.Pool, p.Stride ?? p.Pool),
                GlobalAvgPoolSpec => new GlobalAvgPoolLayer(name, shape),
                BatchNormSpec b => new BatchNormLayer(name, shape, b),
                DropoutSpec d => new DropoutLayer(name, shape, d, ordinal),
                ReluSpec => new ReluLayer(name, shape),
                FlattenSpec => new FlattenLayer(name, shape),
                ResidualSpec r => new ResidualLayer(name, shape,
                    Build(r.Main ?? [], shape, counters, names, ref inputLayerPending),
                    Build(r.Shortcut ?? [], shape, counters, names, ref inputLayerPending)),
                _ => throw new ModelSpecException($"unknown layer type {spec.GetType().Name}"),
            };

    // ---- JSON model files -----------------------------------------------------------------

    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        // "type" may come anywhere in a layer (Keras users write "name" first); a field the schema
        // requires (a dense layer's units, a dropout's rate, the model's name) must be present, not
        // read as 0 or null; a field given twice is an error, not the last one silently.
        AllowOutOfOrderMetadataProperties = true,
        RespectRequiredConstructorParameters = true,
        RespectNullableAnnotations = true,
        AllowDuplicateProperties = false,
    };

    /// <summary>Reads a JSON model file; any problem becomes one sentence naming the file.</summary>
    public static ModelSpec LoadSpec(string path)
    {
        string text;
        try
        {
            text = IO.Utf8Text.ReadFile(path, at => new ModelSpecException($"model file '{path}' is not UTF-8 text (byte {at}); model files are UTF-8 JSON"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelSpecException($"model file '{path}' cannot be read: {e.Message}");
        }
        return ParseSpec(text, $"model file '{path}'");
    }

    /// <summary>
    /// Parses a model description (a model file, or one recorded in a weights file or a run's
    /// configuration: <paramref name="source"/> names it) and builds it once, so that a layer
    /// that does not fit its input is reported here, naming the source, before anything runs.
    /// </summary>
    public static ModelSpec ParseSpec(string json, string source)
    {
        ModelFileCheck.Check(json, source);
        ModelSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<ModelSpec>(json, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ModelSpecException($"{source}: {ModelFileCheck.Describe(e)}");
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
        {
            throw new ModelSpecException($"{source} is not a valid model description ({e.Message})");
        }
        if (spec is null || spec.Layers is null || spec.Input is null)
            throw new ModelSpecException($"{source} must be an object with \"name\", \"input\" and \"layers\"");
        try
        {
            _ = new ModelDefinition(spec);
        }
        catch (ModelSpecException e)
        {
            throw new ModelSpecException($"{source}: {e.Message}");
        }
        return spec;
    }

    public static string ToJson(ModelSpec spec) => JsonSerializer.Serialize(spec, JsonOptions);
}
