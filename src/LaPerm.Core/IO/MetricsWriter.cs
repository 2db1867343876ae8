using System.Text;
using System.Text.Json;

namespace LaPerm.Core.IO;

/// <summary>DIR/metrics.jsonl: one JSON object per line, flushed per line so a crashed run keeps its history.</summary>
public sealed class MetricsWriter : IDisposable
{
    private readonly StreamWriter _writer;

    /// <param name="append">Continue an existing file (a resumed run) instead of starting it over.</param>
    public MetricsWriter(string path, bool append = false)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".");
        _writer = new StreamWriter(path, append, new UTF8Encoding(false));
    }

    public void Write(IReadOnlyDictionary<string, object?> record)
    {
        _writer.WriteLine(JsonSerializer.Serialize(record, Json.Compact));
        _writer.Flush();
    }

    /// <summary>
    /// Forces the lines written so far to disk and returns the file's length: what a checkpoint
    /// records, so that after a power loss the file is never shorter than its checkpoint says.
    /// </summary>
    public long SyncToDisk()
    {
        _writer.Flush();
        var stream = (FileStream)_writer.BaseStream;
        stream.Flush(flushToDisk: true);
        return stream.Length;
    }

    public void Dispose() => _writer.Dispose();
}

internal static class Json
{
    // Relaxed escaping: these files are read by people and tools, never embedded in HTML, so a '+'
    // in a backend's description stays '+' rather than \u002B.
    public static JsonSerializerOptions Compact { get; } = new()
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static JsonSerializerOptions Indented { get; } = new(Compact) { WriteIndented = true };
}
