using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LaPerm.Core.IO;

/// <summary>A float32 tensor as stored in a safetensors file.</summary>
public sealed record NamedArray(string Name, IReadOnlyList<int> Shape, float[] Values);

/// <summary>A malformed or unexpected weights file; the message names the file and what was expected.</summary>
public sealed class WeightsFormatException(string message) : Exception(message);

/// <summary>
/// The safetensors format (as the Hugging Face library writes it): an 8-byte little-endian
/// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...,
/// "__metadata__": {string: string}}, padded with spaces so the data starts 8-byte aligned,
/// then the raw little-endian tensor bytes. Only F32 is written and read here.
/// </summary>
public static class SafeTensors
{
    public static void Write(string path, IReadOnlyList<NamedArray> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var t in tensors)
        {
            long bytes = (long)t.Values.Length * sizeof(float);
            long expected = t.Shape.Aggregate(1L, (a, d) => a * d);
            if (expected != t.Values.Length) throw new ArgumentException($"tensor '{t.Name}': shape holds {expected} values, got {t.Values.Length}");
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray([.. t.Shape.Select(d => (JsonNode)d)]),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (headerBytes.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(headerBytes);
            for (int i = headerBytes.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var t in tensors)
            {
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors writing needs a little-endian machine");
                // In slices: a span of more than 2^29 floats has more bytes than a span can count.
                foreach (var (start, count) in Slices(t.Values.Length, SliceFloats))
                    stream.Write(MemoryMarshal.AsBytes(t.Values.AsSpan(start, count)));
            }
        });
    }

    /// <summary>Floats per read or write: their bytes must fit a span's int length.</summary>
    private const int SliceFloats = 1 << 28;

    /// <summary>
    /// [0, <paramref name="length"/>) in pieces of at most <paramref name="slice"/>, for an array
    /// (length at most Array.MaxLength). Counted in long: an int counter would wrap past
    /// int.MaxValue before the last piece of a large array.
    /// </summary>
    internal static IEnumerable<(int Start, int Count)> Slices(long length, int slice)
    {
        for (long i = 0; i < length; i += slice) yield return ((int)i, (int)Math.Min(slice, length - i));
    }

    /// <summary>The largest header the format allows (as the reference implementation has it).</summary>
    private const long MaxHeaderBytes = 100_000_000;

    /// <summary>Reads every F32 tensor and the metadata; throws <see cref="WeightsFormatException"/> on a malformed file.</summary>
    public static (IReadOnlyList<NamedArray> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        try
        {
            // Read as a stream, tensor by tensor: a file of more than 2 GB is no byte array.
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            return Read(path, file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsFormatException($"weights file '{path}' cannot be read: {e.Message}");
        }
        catch (NotSupportedException)
        {
            throw new WeightsFormatException($"weights file '{path}' is not a regular file (it has no length); a safetensors file is");
        }
    }

    private static (IReadOnlyList<NamedArray> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path, FileStream file)
    {
        long fileLength = file.Length;
        if (fileLength < 8) throw new WeightsFormatException($"weights file '{path}' is {fileLength} bytes; a safetensors file starts with an 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        file.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        // A length past the end: a truncated safetensors file when a JSON object follows, else another kind of file.
        if (headerLength > (ulong)(fileLength - 8) && (fileLength == 8 || file.ReadByte() != '{'))
            throw new WeightsFormatException($"weights file '{path}' is not a safetensors file (expected an 8-byte header length, then a JSON header starting with '{{')");
        if (headerLength > (ulong)(fileLength - 8)) throw new WeightsFormatException($"weights file '{path}' declares a {headerLength}-byte header but holds only {fileLength - 8} bytes after the length");
        if (headerLength > MaxHeaderBytes)
            throw new WeightsFormatException($"weights file '{path}' declares a {headerLength}-byte header; a safetensors header is at most {MaxHeaderBytes} bytes");
        var headerBytes = new byte[headerLength];
        file.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;
        // JSON readers check UTF-8 only when a string is decoded (a name or value, later, as
        // another exception): check the whole header first and say where it breaks.
        if (Utf8Text.InvalidAt(headerBytes) is int invalid)
            throw new WeightsFormatException($"weights file '{path}' has a header that is not valid UTF-8 (byte {8 + invalid} of the file); safetensors headers are UTF-8 JSON");
        JsonObject header;
        try
        {
            // A name given twice is an error (which tensor would it be?), found while parsing.
            header = JsonNode.Parse(headerBytes, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) as JsonObject
                ?? throw new WeightsFormatException($"weights file '{path}' has a header that is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new WeightsFormatException($"weights file '{path}' has a header that is not JSON ({JsonText.Describe(e)})");
        }
        var metadata = new Dictionary<string, string>();
        var tensors = new List<NamedArray>();
        var extents = new List<(long Begin, long End, string Name)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta)
                        metadata[k] = v is null ? "" : v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
                            : throw new WeightsFormatException($"weights file '{path}': metadata '{k}' is {v.GetValueKind()}, expected a string");
                continue;
            }
            try
            {
                var entry = node!.AsObject();
                string dtype = entry["dtype"]!.GetValue<string>();
                if (dtype != "F32") throw new WeightsFormatException($"weights file '{path}': tensor '{name}' has dtype {dtype}, expected F32");
                int[] shape = [.. entry["shape"]!.AsArray().Select(d => d!.GetValue<int>())];
                var offsets = entry["data_offsets"]!.AsArray();
                if (offsets.Count != 2 || shape.Any(d => d < 0)) throw new FormatException();
                long begin = offsets[0]!.GetValue<long>(), end = offsets[1]!.GetValue<long>();
                long count = shape.Aggregate(1L, (a, d) => checked(a * d));
                // end is compared with what follows the header (dataStart + end could wrap round).
                if (count > Array.MaxLength || begin < 0 || end < begin || end - begin != count * 4 || end > dataLength)
                    throw new WeightsFormatException($"weights file '{path}': tensor '{name}' has data offsets [{begin}, {end}] that do not fit its shape ({string.Join(", ", shape)}) or the file");
                var values = new float[count];
                file.Position = dataStart + begin;
                foreach (var (start, length) in Slices(count, SliceFloats))
                    file.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan(start, length)));
                tensors.Add(new NamedArray(name, shape, values));
                extents.Add((begin, end, name));
            }
            catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException or JsonException or OverflowException)
            {
                throw new WeightsFormatException($"weights file '{path}': the header entry for '{name}' must have dtype, shape (non-negative) and two data_offsets");
            }
        }
        RequireTiledData(path, extents, dataLength);
        return (tensors, metadata);
    }

    /// <summary>
    /// The format's rule: the tensors' data tile the bytes after the header, with no gap, overlap
    /// or trailing bytes. A file that breaks it was damaged or built to be read two ways (two
    /// tensors sharing bytes, data hidden between them), so it is refused, as the reference reader does.
    /// </summary>
    private static void RequireTiledData(string path, List<(long Begin, long End, string Name)> extents, long dataLength)
    {
        extents.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long covered = 0;
        string? previous = null;
        foreach (var (begin, end, name) in extents)
        {
            if (begin < covered)
                throw new WeightsFormatException($"weights file '{path}': the data of tensors '{previous}' and '{name}' overlap (bytes {begin} to {covered} of the data); each byte belongs to one tensor");
            if (begin > covered)
                throw new WeightsFormatException($"weights file '{path}': bytes {covered} to {begin} of the data belong to no tensor (before '{name}'); the tensors' data must follow one another without gaps");
            covered = end;
            previous = name;
        }
        if (covered != dataLength)
            throw new WeightsFormatException($"weights file '{path}' holds {dataLength - covered} byte(s) after the last tensor's data; expected the file to end there");
    }
}
