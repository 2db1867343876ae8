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
        if (spec.Input is not { Count: 3 } || spec.Input.Any(d => d <= 0))
            throw new ModelSpecException($"model '{spec.Name}': input must be [channels, height, width] with positive entries");
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
            if (!names.Add(name)) throw new ModelSpecException($"layer name '{name}' is used twice");
            bool weighted = spec is DenseSpec or Conv2dSpec;
            bool isInput = weighted && inputLayerPending;
            if (weighted) inputLayerPending = false;
            Layer layer = spec switch
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
            layers.Add(layer);
            shape = layer.Output;
        }
        return layers;
    }

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
    };

    /// <summary>Reads a JSON model file; any problem becomes one sentence naming the file.</summary>
    public static ModelSpec LoadSpec(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException e)
        {
            throw new ModelSpecException($"model file '{path}' cannot be read: {e.Message}");
        }
        ModelSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<ModelSpec>(text, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ModelSpecException($"model file '{path}' is not a valid model description ({e.Message})");
        }
        if (spec is null || spec.Layers is null || spec.Input is null)
            throw new ModelSpecException($"model file '{path}' must be an object with \"name\", \"input\" and \"layers\"");
        return spec;
    }

    public static string ToJson(ModelSpec spec) => JsonSerializer.Serialize(spec, JsonOptions);
}
