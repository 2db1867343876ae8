using LaPerm.Core.Checkpoints;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Training;

/// <summary>Saves and loads a network's parameters and state as safetensors (name -> F32 tensor).</summary>
public static class Checkpoint
{
    public static void Save(Network network, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var arrays = new List<NamedArray>();
        foreach (var (name, shape, tensor) in network.CheckpointTensors())
        {
            var values = new float[tensor.Length];
            network.Backend.Download(tensor, values);
            arrays.Add(new NamedArray(name, [.. shape.Dims], values));
        }
        SafeTensors.Write(path, arrays, metadata);
    }

    /// <summary>Uploads every tensor of the file into the network; every network tensor must be present with its shape.</summary>
    public static void Load(Network network, string path)
    {
        var (tensors, _) = SafeTensors.Read(path);
        var byName = tensors.ToDictionary(t => t.Name);
        foreach (var (name, shape, tensor) in network.CheckpointTensors())
        {
            if (!byName.TryGetValue(name, out var array))
                throw new WeightsFormatException($"weights file '{path}' has no tensor '{name}' that model '{network.Definition.Name}' needs");
            if (!array.Shape.SequenceEqual(shape.Dims))
                throw new WeightsFormatException($"weights file '{path}': tensor '{name}' has shape ({string.Join(", ", array.Shape)}), model '{network.Definition.Name}' expects {shape}");
            // NaN or infinity gives a NaN loss and chance accuracy, not an evaluation of anything.
            int firstBad = Array.FindIndex(array.Values, v => !float.IsFinite(v));
            if (firstBad >= 0)
                throw new WeightsFormatException(
                    $"weights file '{path}': tensor '{name}' holds {NonFiniteGuard.CountNonFinite(array.Values)} NaN or infinite value(s), the first at index {firstBad}; expected finite numbers");
            network.Backend.Upload<float>(array.Values, tensor);
        }
    }

    /// <summary>
    /// What every weights file of a run records besides its tensors: the model (name and JSON
    /// description, so that eval and profile-weights need no --model), the data set it was
    /// trained on (eval's default --data), the step and the seed.
    /// </summary>
    public static Dictionary<string, string> Metadata(ModelDefinition model, TrainingOptions options, long step)
    {
        var metadata = new Dictionary<string, string>
        {
            ["model"] = model.Name,
            ["model_spec"] = ModelDefinition.ToJson(model.Spec),
            [DataKey] = options.Data,
            ["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["seed"] = options.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        // The run's test slice, so that eval measures what the run's accuracies were measured on.
        if (options.LimitTest is { } limit) metadata[LimitTestKey] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return metadata;
    }

    /// <summary>The metadata key of the data set (absent from files written before it was recorded).</summary>
    public const string DataKey = "data";

    /// <summary>The metadata key of the run's --limit-test (absent when the run tested on the whole test split).</summary>
    public const string LimitTestKey = "limit_test";

    /// <summary>A weights file's metadata (see <see cref="Metadata"/>); empty when it has none.</summary>
    public static IReadOnlyDictionary<string, string> StoredMetadata(string path) => SafeTensors.Read(path).Metadata;
}
