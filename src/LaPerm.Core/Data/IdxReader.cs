using System.Buffers.Binary;
using System.IO.Compression;
using LaPerm.Core.IO;

namespace LaPerm.Core.Data;

/// <summary>Images read from an IDX file: <see cref="Pixels"/> holds Count x Rows x Columns bytes, row-major.</summary>
public sealed record IdxImages(byte[] Pixels, int Count, int Rows, int Columns);

/// <summary>
/// Reads the IDX format of MNIST and Fashion-MNIST: a big-endian header (magic, then one
/// 32-bit size per dimension) followed by unsigned bytes. Files may be gzip-compressed or
/// raw; compression is detected by the gzip magic bytes (1F 8B), never by the file name.
/// Pixels are read straight into their final array, so a data set costs its size once.
/// </summary>
public static class IdxReader
{
    /// <summary>Magic of an unsigned-byte IDX file with 3 dimensions [count, rows, cols].</summary>
    public const uint ImagesMagic = 0x00000803;

    /// <summary>Magic of an unsigned-byte IDX file with 1 dimension [count].</summary>
    public const uint LabelsMagic = 0x00000801;

    public static IdxImages ReadImages(string path)
    {
        using var file = OpenFile(path, "an IDX image file");
        return ReadImages(file, path);
    }

    public static byte[] ReadLabels(string path)
    {
        using var file = OpenFile(path, "an IDX label file");
        return ReadLabels(file, path);
    }

    /// <param name="stream">The file's bytes, gzip-compressed or raw.</param>
    /// <param name="source">The name used in error messages (a path or a resource name).</param>
    public static IdxImages ReadImages(Stream stream, string source)
    {
        using var input = OpenMaybeGzip(stream, source);
        var header = new byte[16];
        ReadHeader(input, source, header, ImagesMagic, "unsigned-byte images [count, rows, columns]");
        int count = ReadDimension(header, 4, source, "image count");
        int rows = ReadDimension(header, 8, source, "row count");
        int columns = ReadDimension(header, 12, source, "column count");
        long pixelBytes = (long)count * rows * columns;
        if (pixelBytes > Array.MaxLength)
            throw new DataFormatException($"{source}: the header declares {count} x {rows} x {columns} pixels, more than the {Array.MaxLength} bytes one data set may hold.");
        var pixels = ReadBody(input, source, header.Length, pixelBytes);
        return new IdxImages(pixels, count, rows, columns);
    }

    /// <inheritdoc cref="ReadImages(Stream, string)"/>
    public static byte[] ReadLabels(Stream stream, string source)
    {
        using var input = OpenMaybeGzip(stream, source);
        var header = new byte[8];
        ReadHeader(input, source, header, LabelsMagic, "unsigned-byte labels [count]");
        int count = ReadDimension(header, 4, source, "label count");
        if (count > Array.MaxLength)
            throw new DataFormatException($"{source}: the header declares {count} labels, more than the {Array.MaxLength} one data set may hold.");
        var labels = ReadBody(input, source, header.Length, count);
        return labels;
    }

    /// <summary>True when the bytes start with the gzip magic 1F 8B.</summary>
    public static bool IsGzip(ReadOnlySpan<byte> firstBytes) =>
        firstBytes.Length >= 2 && firstBytes[0] == 0x1F && firstBytes[1] == 0x8B;

    internal static FileStream OpenFile(string path, string what)
    {
        if (!File.Exists(path))
            throw new DataFormatException($"{path} {FilePaths.Missing(path)}; expected {what} there.");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFormatException($"{path} cannot be read ({e.Message.TrimEnd('.')}); expected {what} there.", e);
        }
    }

    /// <summary>
    /// Returns a stream of the decompressed bytes if <paramref name="stream"/> starts with the
    /// gzip magic, else the stream itself. The stream is left open for the caller to dispose.
    /// </summary>
    internal static Stream OpenMaybeGzip(Stream stream, string source)
    {
        if (!stream.CanSeek)
        {
            // Peeking needs a rewind; non-seekable inputs (pipes) are small enough to buffer.
            var buffered = new MemoryStream();
            stream.CopyTo(buffered);
            buffered.Position = 0;
            stream = buffered;
        }
        long start = stream.Position;
        Span<byte> magic = stackalloc byte[2];
        int got = stream.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
        stream.Position = start;
        return IsGzip(magic[..got])
            ? new GzipErrorTranslatingStream(new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true), source)
            : new NonClosingStream(stream);
    }

    private static void ReadHeader(Stream input, string source, byte[] header, uint expectedMagic, string what)
    {
        int got = input.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        // Check the magic first (if its 4 bytes are there): a wrong kind of file is the more telling error.
        if (got >= 4)
        {
            uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (magic != expectedMagic)
                throw new DataFormatException($"{source}: wrong magic number, expected 0x{expectedMagic:X8} ({what}) and found 0x{magic:X8}.");
        }
        if (got < header.Length)
            throw new DataFormatException($"{source} is truncated: expected a header of {header.Length} bytes, found {got} bytes.");
    }

    private static int ReadDimension(byte[] header, int offset, string source, string name)
    {
        uint value = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(offset));
        if (value == 0 || value > int.MaxValue)
            throw new DataFormatException($"{source}: the header's {name} is {value}, expected a number from 1 to {int.MaxValue}.");
        return (int)value;
    }

    /// <summary>
    /// The <paramref name="bodyBytes"/> bytes after the header, allocated only once the file is
    /// known to hold them (a corrupt header must not make us allocate gigabytes to find out): a raw
    /// file says its length; a compressed one only by ending, so it is read in chunks first.
    /// </summary>
    private static byte[] ReadBody(Stream input, string source, int headerBytes, long bodyBytes)
    {
        byte[] body;
        long got;
        if (input is NonClosingStream raw)
        {
            if (raw.BytesLeft is { } left && left < bodyBytes) throw Truncated(source, headerBytes, bodyBytes, left);
            body = new byte[bodyBytes];
            got = input.ReadAtLeast(body, body.Length, throwOnEndOfStream: false);
        }
        else
        {
            var chunks = new List<byte[]>();
            got = 0;
            while (got < bodyBytes)
            {
                var chunk = new byte[Math.Min(1 << 24, bodyBytes - got)];
                int n = input.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false);
                got += n;
                if (n < chunk.Length) throw Truncated(source, headerBytes, bodyBytes, got);
                chunks.Add(chunk);
            }
            body = chunks.Count == 1 ? chunks[0] : new byte[bodyBytes];
            if (chunks.Count > 1)
                for (int i = 0, at = 0; i < chunks.Count; at += chunks[i].Length, i++) chunks[i].CopyTo(body, at);
        }
        if (got < bodyBytes) throw Truncated(source, headerBytes, bodyBytes, got);
        Span<byte> probe = stackalloc byte[1];
        if (input.Read(probe) != 0)
            throw new DataFormatException($"{source} is longer than its header declares: expected {headerBytes + bodyBytes} bytes, found more.");
        return body;
    }

    private static DataFormatException Truncated(string source, int headerBytes, long bodyBytes, long found) =>
        new($"{source} is truncated: expected {headerBytes + bodyBytes} bytes (as its header declares), found {headerBytes + found}.");

    /// <summary>Turns the decompressor's errors on a corrupt gzip file into a message naming the file.</summary>
    private sealed class GzipErrorTranslatingStream(GZipStream inner, string source) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            try
            {
                return inner.Read(buffer);
            }
            catch (InvalidDataException e)
            {
                // .NET names what the decoder met first ("an unsupported compression method" for a
                // flipped byte): the cause a reader needs is the damage.
                throw new DataFormatException($"{source} is not a valid gzip file: its compressed data is damaged or cut short (the decoder says: {e.Message.TrimEnd('.')}); expected gzip-compressed or raw IDX data.", e);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Lets the raw path share the gzip path's using-disposal without closing the caller's stream.</summary>
    private sealed class NonClosingStream(Stream inner) : Stream
    {
        /// <summary>Bytes from here to the end, where the stream can tell (a file can, a pipe cannot).</summary>
        public long? BytesLeft => inner.CanSeek ? inner.Length - inner.Position : null;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
    }
}
