using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using LaPerm.Core.IO;

namespace LaPerm.Core.Model;

/// <summary>
/// The structure of a JSON model description, checked before System.Text.Json deserialises it,
/// so that a mistake reads as one sentence in the model file's terms (the layer by position,
/// type and name; the property; what the layer takes) instead of the serialiser's (.NET type
/// names, "type discriminator", zero-based line numbers). The schema is read from the spec
/// records themselves: a layer type's properties are its constructor's parameters, required
/// when they have no default, plus "type" and "name".
/// </summary>
internal static partial class ModelFileCheck
{
    // The serialiser matches the "type" property and its values exactly (property names otherwise ignore case).
    private static readonly Dictionary<string, Type> LayerTypes = typeof(LayerSpec)
        .GetCustomAttributes<JsonDerivedTypeAttribute>()
        .ToDictionary(a => (string)a.TypeDiscriminator!, a => a.DerivedType, StringComparer.Ordinal);

    private static readonly string[] TopLevel = ["name", "input", "layers"];

    /// <summary>Throws <see cref="ModelSpecException"/> naming <paramref name="source"/> and the layer at the first structural mistake.</summary>
    public static void Check(string json, string source)
    {
        JsonNode? root;
        try
        {
            var options = new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };
            // A property given twice is found here, where the layer it is in can be named (the parser says only its name).
            using (var document = JsonDocument.Parse(json, options)) RefuseDuplicates(document.RootElement, source);
            root = JsonNode.Parse(json, documentOptions: options);
        }
        catch (JsonException e)
        {
            throw new ModelSpecException($"{source} is not valid JSON{JsonText.Where(e)}: {JsonText.Plain(e.Message)}");
        }
        if (root is not JsonObject model)
            throw new ModelSpecException($"{source} must be a JSON object with \"name\", \"input\" and \"layers\"");
        foreach (var (key, _) in model)
            if (!TopLevel.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new ModelSpecException($"{source} has an unknown property '{key}'; a model has \"name\", \"input\" and \"layers\"");
        foreach (string key in TopLevel)
            if (Get(model, key) is null)
                throw new ModelSpecException($"{source} has {Absent(model, key)}; a model has \"name\", \"input\" and \"layers\"");
        if (Get(model, "layers") is not JsonArray layers)
            throw new ModelSpecException($"{source}: \"layers\" must be a list of layers");
        CheckLayers(layers, source, "");
    }

    /// <summary>
    /// A deserialisation error left after <see cref="Check"/> (a value of the wrong kind, out of
    /// range), in the model file's terms: where it is and what was expected.
    /// </summary>
    public static string Describe(JsonException e)
    {
        // Only a value the serialiser could not convert is put in the file's terms; anything else
        // (a duplicate property spelled in another case, ...) keeps its own words.
        if (!e.Message.Contains("could not be converted to", StringComparison.Ordinal))
            return e.Path is { Length: > 0 } at ? $"at {InFileTerms(at)}{JsonText.Where(e, column: false)}: {JsonText.Plain(e.Message)}" : $"{JsonText.Plain(e.Message)}{JsonText.Where(e)}";
        // The serialiser names the target type, or for a constructor parameter the record's own
        // type: then the parameter's type is found by the property's name (the same everywhere).
        string? property = e.Path is { } p && LastName().Match(p) is { Success: true } m ? m.Groups[1].Value : null;
        Type? target = property is null ? null : LayerTypes.Values.Append(typeof(ModelSpec))
            .SelectMany(t => t.GetConstructors().SelectMany(c => c.GetParameters()))
            .FirstOrDefault(x => string.Equals(x.Name, property, StringComparison.OrdinalIgnoreCase))?.ParameterType;
        // A list element ($.input[2]) has no name: the serialiser names its type (System.Int32).
        target ??= ConvertedTo().Match(e.Message) is { Success: true } c ? Type.GetType(c.Groups[1].Value) : null;
        string what = target is null ? JsonText.Plain(e.Message) : Expected(Nullable.GetUnderlyingType(target) ?? target) ?? JsonText.Plain(e.Message);
        // Line only: after a value of the wrong kind the reader's column is the one past it.
        return e.Path is { Length: > 0 } path ? $"the value of {InFileTerms(path)}{JsonText.Where(e, column: false)}: {what}" : $"{what}{JsonText.Where(e, column: false)}";
    }

    /// <summary>
    /// The serialiser's path in the words the other messages use, layers counted from 1:
    /// "$.layers[2].main[0].units" -> layer 3, main layer 1, "units"; "$.input[2]" -> "input" item 3.
    /// </summary>
    private static string InFileTerms(string path) => string.Join(", ", PathPart().Matches(path).Select(m =>
    {
        string name = m.Groups[1].Value;
        if (!m.Groups[2].Success) return $"\"{name}\"";
        int number = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + 1;
        // Property names ignore case, and the path keeps the file's spelling ("Layers").
        return name.ToLowerInvariant() switch
        {
            "layers" => $"layer {number}",
            "main" or "shortcut" => $"{name.ToLowerInvariant()} layer {number}",
            _ => $"\"{name}\" item {number}",
        };
    }));

    [GeneratedRegex(@"\.([A-Za-z0-9_]+)(?:\[(\d+)\])?")]
    private static partial Regex PathPart();

    private static string? Expected(Type t) =>
        t == typeof(int) ? $"expected a whole number (at most {int.MaxValue})"
        : t == typeof(float) || t == typeof(double) ? "expected a number"
        : t == typeof(string) ? "expected a string"
        : t == typeof(bool) ? "expected true or false"
        : t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? "expected a list"
        : null;

    private static void CheckLayers(JsonArray layers, string source, string parent)
    {
        for (int i = 0; i < layers.Count; i++)
        {
            string at = $"{parent}layer {i + 1}";
            if (layers[i] is not JsonObject layer)
                throw new ModelSpecException($"{source}: {at} must be an object with a \"type\"");
            string? type = layer["type"] is JsonValue t && t.TryGetValue(out string? s) ? s : null;
            if (type is null)
                throw new ModelSpecException(layer.FirstOrDefault(p => string.Equals(p.Key, "type", StringComparison.OrdinalIgnoreCase)).Key is { } spelled
                    ? spelled == "type"
                        // There, but null, a number, a list: not a name of a layer type.
                        ? $"{source}: {at}'s \"type\" is {layer["type"]?.ToJsonString() ?? "null"}; expected a string, one of {string.Join(", ", LayerTypes.Keys)}"
                        : $"{source}: {at} spells \"type\" as \"{spelled}\"; the layer type's property is \"type\", in lower case"
                    : $"{source}: {at} has no \"type\"; expected one of {string.Join(", ", LayerTypes.Keys)}");
            if (!LayerTypes.TryGetValue(type, out Type? spec))
                throw new ModelSpecException(LayerTypes.Keys.FirstOrDefault(k => string.Equals(k, type, StringComparison.OrdinalIgnoreCase)) is { } lower
                    ? $"{source}: {at} has the type '{type}'; layer types are lower case: '{lower}'"
                    : $"{source}: {at} has the unknown type '{type}'; expected one of {string.Join(", ", LayerTypes.Keys)}");
            string label = Label(at, type, Get(layer, "name") is JsonValue n && n.TryGetValue(out string? text) ? text : null);
            var parameters = spec.GetConstructors().MaxBy(c => c.GetParameters().Length)!.GetParameters();
            var known = parameters.Select(p => JsonName(p)).Append("type").Append("name").ToList();
            foreach (var (key, _) in layer)
                if (!known.Contains(key, StringComparer.OrdinalIgnoreCase))
                    throw new ModelSpecException($"{source}: {label} has no property '{key}'; a {type} layer takes {Takes(parameters)}");
            foreach (var p in parameters.Where(p => !p.HasDefaultValue))
                if (Get(layer, JsonName(p)) is null)
                    throw new ModelSpecException($"{source}: {label} has {Absent(layer, JsonName(p))}; a {type} layer takes {Takes(parameters)}");
            foreach (string list in (string[])["main", "shortcut"])
                if (spec == typeof(ResidualSpec) && Get(layer, list) is { } nested)
                {
                    if (nested is not JsonArray inner)
                        throw new ModelSpecException($"{source}: {label}'s \"{list}\" must be a list of layers");
                    CheckLayers(inner, source, $"{label}, {list} ");
                }
        }
    }

    /// <summary>A layer as messages name it: by position, type and name ("layer 2 (dense 'fc')").</summary>
    private static string Label(string at, string type, string? name) => name is null ? $"{at} ({type})" : $"{at} ({type} '{name}')";

    /// <summary>
    /// A property given twice, in the model or in any layer (nested ones too): with the same
    /// spelling (the parser would name only the property), or in different case ("units" and
    /// "Units": the parser lets it through, the deserialiser, which ignores case, does not).
    /// </summary>
    private static void RefuseDuplicates(JsonElement model, string source)
    {
        if (model.ValueKind != JsonValueKind.Object) return;
        Refuse(model, source);
        if (Property(model, "layers") is { ValueKind: JsonValueKind.Array } layers) InLayers(layers, "");

        void InLayers(JsonElement list, string parent)
        {
            int i = 0;
            foreach (var layer in list.EnumerateArray())
            {
                string at = $"{parent}layer {++i}";
                if (layer.ValueKind != JsonValueKind.Object) continue;
                string label = Property(layer, "type") is { ValueKind: JsonValueKind.String } type
                    ? Label(at, type.GetString()!, Property(layer, "name") is { ValueKind: JsonValueKind.String } name ? name.GetString() : null)
                    : at;
                Refuse(layer, $"{source}: {label}");
                foreach (string nested in (string[])["main", "shortcut"])
                    if (Property(layer, nested) is { ValueKind: JsonValueKind.Array } inner) InLayers(inner, $"{label}, {nested} ");
            }
        }

        static void Refuse(JsonElement o, string where)
        {
            if (o.EnumerateObject().GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1) is not { } twice) return;
            var spellings = twice.Select(p => p.Name).Distinct(StringComparer.Ordinal).ToList();
            throw new ModelSpecException(spellings.Count == 1
                ? $"{where} gives \"{twice.Key}\" twice; give each property once"
                : $"{where} gives \"{twice.Key}\" twice (as {string.Join(" and ", spellings.Select(n => $"\"{n}\""))}); property names ignore case");
        }

        static JsonElement? Property(JsonElement o, string key) =>
            o.EnumerateObject().Where(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase)).Select(p => (JsonElement?)p.Value).FirstOrDefault();
    }

    /// <summary>A spec record's constructor parameter as the model file spells it (camelCase, as the serialiser reads it).</summary>
    private static string JsonName(System.Reflection.ParameterInfo p) => JsonNamingPolicy.CamelCase.ConvertName(p.Name!);

    private static string Takes(System.Reflection.ParameterInfo[] parameters) => parameters.Length == 0
        ? "no properties besides \"name\""
        : string.Join(", ", parameters.Select(p => $"\"{JsonName(p)}\"{(p.HasDefaultValue ? " (optional)" : "")}")) + " and \"name\" (optional)";

    /// <summary>How a required property is missing: not there, or there as null.</summary>
    private static string Absent(JsonObject o, string key) =>
        o.Any(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase)) ? $"\"{key}\": null, which must be a value" : $"no \"{key}\"";

    /// <summary>A property by name, ignoring case as the deserialiser does; null when absent or JSON null.</summary>
    private static JsonNode? Get(JsonObject o, string key) =>
        o.FirstOrDefault(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase)).Value;


    [GeneratedRegex(@"\.([A-Za-z0-9_]+)$")]
    private static partial Regex LastName();

    [GeneratedRegex(@"converted to (System\.[A-Za-z0-9]+)\.")]
    private static partial Regex ConvertedTo();
}
