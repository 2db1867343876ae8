using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LaPerm.Plots;

/// <summary>A metrics.jsonl that cannot be plotted; the message names the file and line.</summary>
public sealed class MetricsFormatException(string message) : Exception(message);

/// <summary>The lines of a run's metrics.jsonl, read once.</summary>
public sealed partial class RunMetrics
{
    private RunMetrics(string path, IReadOnlyList<JsonObject> lines, bool tornLastLine)
    {
        Path = path;
        Lines = lines;
        TornLastLine = tornLastLine;
    }

    public string Path { get; }
    public IReadOnlyList<JsonObject> Lines { get; }

    /// <summary>The last line was cut short (the run was killed while writing it) and left out.</summary>
    public bool TornLastLine { get; }

    public IEnumerable<JsonObject> Events(string kind) => Lines.Where(l => l["event"]!.GetValue<string>() == kind);

    /// <summary>Reads DIR/metrics.jsonl. A torn last line (a killed run) is ignored; any other bad line is an error naming it.</summary>
    public static RunMetrics Load(string runDirectory)
    {
        string path = System.IO.Path.Combine(runDirectory, "metrics.jsonl");
        if (!File.Exists(path)) throw new MetricsFormatException($"'{path}' {LaPerm.Core.IO.FilePaths.Missing(path)}; is '{runDirectory}' a laperm run directory (laperm train --out DIR)?");
        var text = File.ReadAllLines(path);
        var lines = new List<JsonObject>();
        bool torn = false;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i].Length == 0) continue;
            JsonObject line;
            try
            {
                line = JsonNode.Parse(text[i])?.AsObject() ?? throw new JsonException("null");
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // Torn: the last line, with no line break after it (each line is written with its
                // break in one call), and the start of an object, or zero bytes (a file system may
                // leave those at the end of a file appended to before a power loss). A complete last
                // line that is no JSON object is an error, and so is one that never began as one.
                if (i == text.Length - 1 && !EndsWithLineBreak(path) && (text[i].StartsWith('{') || text[i].All(c => c == '\0')))
                {
                    torn = true;
                    break;
                }
                // The parser's own position refers to the line alone (LineNumber: 0): left out.
                throw new MetricsFormatException($"'{path}' line {i + 1} is not a JSON object ({ParserPosition().Replace(e.Message, "").TrimEnd(' ', '.')})");
            }
            // What every line of ours has: a string "event" and (but "target" lines, too) a numeric "step".
            if (line["event"] is not JsonValue ev || ev.GetValueKind() != JsonValueKind.String)
                throw new MetricsFormatException($"'{path}' line {i + 1} has no \"event\" string");
            if (line["step"] is { } step && !IsStep(step))
                throw new MetricsFormatException($"'{path}' line {i + 1}: \"step\" must be a whole number from 0 to 2^53, got {step.ToJsonString()}");
            CheckFields(path, i + 1, line);
            lines.Add(line);
        }
        return new RunMetrics(path, lines, torn);
    }

    private static bool IsStep(JsonNode step) =>
        step is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && d >= 0 && d <= 1L << 53 && Math.Floor(d) == d;

    /// <summary>
    /// The fields the figures read, on the lines that always carry them: an eval line's step and
    /// test accuracy, a sync line's step and its traffic fractions. A line without them would
    /// leave a point out of the figure, or the whole figure empty, without a word.
    /// </summary>
    private static void CheckFields(string path, int lineNumber, JsonObject line)
    {
        string kind = line["event"]!.GetValue<string>();
        if (kind is not ("eval" or "sync")) return;
        if (line["step"] is null) throw new MetricsFormatException($"'{path}' line {lineNumber}: {(kind == "eval" ? "an" : "a")} {kind} line needs a \"step\"");
        if (kind == "eval" && !IsFraction(line["test_accuracy"]))
            throw new MetricsFormatException($"'{path}' line {lineNumber}: \"test_accuracy\" must be a number from 0 to 1, got {line["test_accuracy"]?.ToJsonString() ?? "nothing"}");
        foreach (string field in (string[])["changed_since_previous_sync", "changed_since_init"])
        {
            if (kind != "sync" || line[field] is null) continue;
            if (line[field] is not JsonObject fractions)
                throw new MetricsFormatException($"'{path}' line {lineNumber}: \"{field}\" must be an object of fractions per tensor");
            foreach (var (tensor, value) in fractions)
                if (!IsFraction(value))
                    throw new MetricsFormatException($"'{path}' line {lineNumber}: \"{field}\" of '{tensor}' must be a number from 0 to 1, got {value?.ToJsonString() ?? "null"}");
        }
    }

    private static bool IsFraction(JsonNode? value) =>
        value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && d >= 0 && d <= 1;

    private static bool EndsWithLineBreak(string path)
    {
        using var file = File.OpenRead(path);
        if (file.Length == 0) return true;
        file.Seek(-1, SeekOrigin.End);
        return file.ReadByte() == '\n';
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\s*(Path:|LineNumber:).*$")]
    private static partial System.Text.RegularExpressions.Regex ParserPosition();

    internal static double? Number(JsonObject line, string field) =>
        line[field] is JsonValue v && v.TryGetValue<double>(out double d) && double.IsFinite(d) ? d : null;
}

/// <summary>The figures of `laperm plot` and `laperm trace`, built from metrics.jsonl.</summary>
public static class RunFigures
{
    /// <summary>Accuracy and loss (train running average, train-eval if recorded, test) against steps; syncs marked.</summary>
    public static Figure Training(RunMetrics metrics)
    {
        var evals = metrics.Events("eval").ToList();
        if (evals.Count == 0) throw new MetricsFormatException($"'{metrics.Path}' has no evaluation lines to plot");
        var syncs = metrics.Events("sync").Select(s => RunMetrics.Number(s, "step") ?? 0).ToList();
        Series Line(string name, string field, double scale, bool? synchronised = null)
        {
            var points = evals.Where(e => synchronised is null || Synchronised(e) == synchronised)
                .Select(e => (X: RunMetrics.Number(e, "step"), Y: RunMetrics.Number(e, field)))
                .Where(p => p.X is not null && p.Y is not null).ToList();
            return new Series(name, [.. points.Select(p => p.X!.Value)], [.. points.Select(p => p.Y!.Value * scale)]);
        }
        static IReadOnlyList<Series> NonEmpty(params Series[] s) => [.. s.Where(x => x.X.Length > 0)];
        // With --eval-every, evaluations between syncs are of free Adam iterates, not LaPerm networks:
        // their test points get a series of their own (a line through both would mix the two).
        // Both kinds: a LaPerm run evaluated between syncs too (--no-reconnect has only unsynchronised ones).
        bool mixed = evals.Any(e => !Synchronised(e)) && evals.Any(Synchronised);
        Series[] Test(string field, double scale) => mixed
            ? [Line("test (after a sync)", field, scale, true), Line("test (between syncs)", field, scale, false)]
            : [Line("test", field, scale)];
        var accuracy = NonEmpty([Line("train (running)", "train_accuracy", 100), Line("train (eval)", "train_eval_accuracy", 100), .. Test("test_accuracy", 100)]);
        var loss = NonEmpty([Line("train (running)", "train_loss", 1), Line("train (eval)", "train_eval_loss", 1), .. Test("test_loss", 1)]);
        string syncNote = syncs.Count > 0 ? $" ({syncs.Count} sync{(syncs.Count == 1 ? "" : "s")} dashed)" : "";
        return new Figure(
        [
            new Panel("Accuracy" + syncNote, "step", "accuracy (%)", accuracy, syncs),
            new Panel("Loss" + syncNote, "step", "cross-entropy loss", loss, syncs) { LegendAtTop = true },
        ], Columns: 2);
    }

    /// <summary>Whether an evaluation was of synchronised weights (lines written before the field existed were).</summary>
    private static bool Synchronised(JsonObject eval) => eval["synchronized"] is not JsonValue v || !v.TryGetValue(out bool b) || b;

    /// <summary>Layers whose reconnection traffic the run recorded.</summary>
    public static IReadOnlyList<string> TracedLayers(RunMetrics metrics) =>
        [.. metrics.Events("sync").SelectMany(s => s["changed_since_init"] is JsonObject o ? o.Select(kv => kv.Key) : []).Distinct()];

    /// <summary>Per sync, the fraction of <paramref name="layer"/>'s positions changed since the previous sync and since initialisation.</summary>
    public static Figure Trace(RunMetrics metrics, string layer)
    {
        var layers = TracedLayers(metrics);
        if (!metrics.Events("sync").Any())
            throw new MetricsFormatException($"'{metrics.Path}' has no syncs (a run with --no-reconnect, or shorter than its first sync): nothing to trace");
        if (layers.Count == 0)
            throw new MetricsFormatException($"'{metrics.Path}' has no reconnection traffic (train with --trace-reconnection on)");
        if (!layers.Contains(layer))
            throw new MetricsFormatException($"'{metrics.Path}' has no traffic for layer '{layer}'; it has {string.Join(", ", layers)}");
        Series Line(string name, string field)
        {
            var points = metrics.Events("sync")
                .Select(s => (X: RunMetrics.Number(s, "step"), Y: s[field] is JsonObject o && o[layer] is JsonValue v && v.TryGetValue<double>(out double d) ? d : (double?)null))
                .Where(p => p.X is not null && p.Y is not null).ToList();
            return new Series(name, [.. points.Select(p => p.X!.Value)], [.. points.Select(p => p.Y!.Value * 100)]);
        }
        return new Figure(
        [
            new Panel($"Reconnection traffic of {layer}", "step (at each sync)", "positions whose value changed (%)",
                [Line("since the previous sync", "changed_since_previous_sync"), Line("since initialisation", "changed_since_init")], []) { YFromZero = true },
        ], Columns: 1, PanelWidth: 760, PanelHeight: 420);
    }

    /// <summary>
    /// A layer name made safe for a file name (dense1/kernel -> dense1-kernel). A model file may
    /// name a layer with hundreds of characters, more than a file name holds (255 bytes): a long
    /// one keeps its first 80 characters and a hash of the whole name, so it stays unique.
    /// </summary>
    public static string FileSafe(string name)
    {
        string safe = string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-'));
        if (safe.Length <= 100) return safe;
        byte[] hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name));
        return $"{safe[..80]}-{Convert.ToHexStringLower(hash)[..12]}";
    }

    internal static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
