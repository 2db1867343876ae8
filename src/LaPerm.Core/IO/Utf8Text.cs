using System.Text;
using System.Text.Unicode;

namespace LaPerm.Core.IO;

/// <summary>
/// The text we read (model files, run configurations, safetensors headers) is UTF-8. A byte that
/// is not is reported with its offset: File.ReadAllText would read it as U+FFFD, and a layer or
/// tensor name would then silently differ from the one written.
/// </summary>
public static class Utf8Text
{
    private static ReadOnlySpan<byte> ByteOrderMark => [0xEF, 0xBB, 0xBF];
    private static ReadOnlySpan<byte> Utf16LittleEndianMark => [0xFF, 0xFE];
    private static ReadOnlySpan<byte> Utf16BigEndianMark => [0xFE, 0xFF];

    /// <summary>
    /// Reads <paramref name="path"/> as UTF-8 (a leading byte-order mark is skipped), or as UTF-16
    /// when it starts with UTF-16's byte-order mark (what Windows PowerShell 5's `>` and Out-File
    /// write; it decodes without loss). When a byte is not part of such text, throws what
    /// <paramref name="notUtf8"/> makes of its offset in the file. I/O errors are thrown as they
    /// come; a file of more than <see cref="MaxBytes"/> (or an endless one: /dev/zero) is one.
    /// </summary>
    public static string ReadFile(string path, Func<long, Exception> notUtf8)
    {
        byte[] bytes = ReadAtMost(path, MaxBytes);
        if (bytes.AsSpan().StartsWith(Utf16LittleEndianMark) || bytes.AsSpan().StartsWith(Utf16BigEndianMark))
        {
            var utf16 = new UnicodeEncoding(bigEndian: bytes[0] == 0xFE, byteOrderMark: true, throwOnInvalidBytes: true);
            try
            {
                return utf16.GetString(bytes, 2, bytes.Length - 2);
            }
            catch (DecoderFallbackException e)
            {
                throw notUtf8(2 + Math.Max(0, e.Index));
            }
        }
        int start = bytes.AsSpan().StartsWith(ByteOrderMark) ? ByteOrderMark.Length : 0;
        var text = bytes.AsSpan(start);
        if (InvalidAt(text) is int invalid) throw notUtf8(start + invalid);
        return System.Text.Encoding.UTF8.GetString(text);
    }

    /// <summary>The most a text file laperm reads may hold: far more than any model file or run configuration.</summary>
    public const int MaxBytes = 64 << 20;

    /// <summary>
    /// The file's bytes, read to its end, or an <see cref="IOException"/> once more than
    /// <paramref name="limit"/> have come (a device or pipe has no length to check first).
    /// </summary>
    private static byte[] ReadAtMost(string path, int limit)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        using var bytes = new MemoryStream();
        var chunk = new byte[1 << 16];
        int read;
        while ((read = stream.Read(chunk)) > 0)
        {
            if (bytes.Length + read > limit)
                throw new IOException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"it holds more than {limit:N0} bytes, more than a model file or run configuration would (is it the right file?)"));
            bytes.Write(chunk, 0, read);
        }
        return bytes.ToArray();
    }

    /// <summary>The offset of the first byte that is not part of valid UTF-8 in <paramref name="text"/>; null when all of it is.</summary>
    public static int? InvalidAt(ReadOnlySpan<byte> text)
    {
        if (Utf8.IsValid(text)) return null;
        var chars = new char[text.Length];
        Utf8.ToUtf16(text, chars, out int read, out _, replaceInvalidSequences: false);
        return read;
    }
}
