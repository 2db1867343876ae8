using System.Buffers.Binary;
using System.IO.Compression;

namespace LaPerm.Core.Tests.Data;

/// <summary>A temporary directory the data tests write generated IDX and CIFAR-10 files into.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "laperm-data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Write(string name, byte[] bytes, bool gzip = false)
    {
        string path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, gzip ? DataFiles.Gzip(bytes) : bytes);
        return path;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>Builds IDX and CIFAR-10 byte images of random content.</summary>
internal static class DataFiles
{
    public static byte[] Gzip(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
            gz.Write(raw);
        return output.ToArray();
    }

    public static byte[] RandomBytes(Random rng, int count, int maxExclusive = 256)
    {
        var bytes = new byte[count];
        for (int i = 0; i < count; i++)
            bytes[i] = (byte)rng.Next(maxExclusive);
        return bytes;
    }

    public static byte[] IdxImages(byte[] pixels, int count, int rows, int columns, uint magic = 0x00000803)
    {
        var file = new byte[16 + pixels.Length];
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(0), magic);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(4), (uint)count);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(8), (uint)rows);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(12), (uint)columns);
        pixels.CopyTo(file, 16);
        return file;
    }

    public static byte[] IdxLabels(byte[] labels, uint magic = 0x00000801, int? declaredCount = null)
    {
        var file = new byte[8 + labels.Length];
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(0), magic);
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(4), (uint)(declaredCount ?? labels.Length));
        labels.CopyTo(file, 8);
        return file;
    }

    public static byte[] CifarRecords(byte[] labels, byte[] pixels)
    {
        var file = new byte[labels.Length * 3073];
        for (int r = 0; r < labels.Length; r++)
        {
            file[r * 3073] = labels[r];
            pixels.AsSpan(r * 3072, 3072).CopyTo(file.AsSpan(r * 3073 + 1));
        }
        return file;
    }

    /// <summary>Writes a complete MNIST-style directory of random content; returns (trainPixels, trainLabels, testPixels, testLabels).</summary>
    public static (byte[], byte[], byte[], byte[]) WriteIdxDirectory(TempDirectory dir, Random rng, int train, int test, int rows, int columns, bool gzip)
    {
        string ext = gzip ? ".gz" : "";
        var trainPixels = RandomBytes(rng, train * rows * columns);
        var trainLabels = RandomBytes(rng, train, 10);
        var testPixels = RandomBytes(rng, test * rows * columns);
        var testLabels = RandomBytes(rng, test, 10);
        dir.Write("train-images-idx3-ubyte" + ext, IdxImages(trainPixels, train, rows, columns), gzip);
        dir.Write("train-labels-idx1-ubyte" + ext, IdxLabels(trainLabels), gzip);
        dir.Write("t10k-images-idx3-ubyte" + ext, IdxImages(testPixels, test, rows, columns), gzip);
        dir.Write("t10k-labels-idx1-ubyte" + ext, IdxLabels(testLabels), gzip);
        return (trainPixels, trainLabels, testPixels, testLabels);
    }
}
