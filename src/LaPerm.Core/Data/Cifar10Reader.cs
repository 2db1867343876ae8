using LaPerm.Core.IO;

namespace LaPerm.Core.Data;

/// <summary>
/// Reads the official CIFAR-10 binary version: each record is 1 label byte (0..9) followed by
/// 3072 pixel bytes, the 1024 red, then 1024 green, then 1024 blue values of a 32 x 32 image
/// in row-major order, which is already the C x H x W layout of <see cref="Dataset"/>.
/// The training split is data_batch_1.bin .. data_batch_5.bin, the test split test_batch.bin.
/// </summary>
public static class Cifar10Reader
{
    public const int Channels = 3;
    public const int Height = 32;
    public const int Width = 32;
    public const int Classes = 10;
    public const int PixelBytes = Channels * Height * Width;
    public const int RecordBytes = 1 + PixelBytes;

    public static IReadOnlyList<string> TrainFiles { get; } =
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

    public static string TestFile => "test_batch.bin";

    /// <summary>True when <paramref name="directory"/> holds the CIFAR-10 binary batches.</summary>
    public static bool IsCifar10Directory(string directory) =>
        File.Exists(Path.Combine(directory, TrainFiles[0])) || File.Exists(Path.Combine(directory, TestFile));

    /// <summary>Reads and concatenates the given batch files into one data set.</summary>
    /// <exception cref="DataFormatException">A file is missing, empty, not a whole number of records, or has a label above 9.</exception>
    public static Dataset Read(string name, IReadOnlyList<string> paths)
    {
        var lengths = new long[paths.Count];
        long totalRecords = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            if (!File.Exists(paths[f]))
                throw new DataFormatException($"{paths[f]} {FilePaths.Missing(paths[f])}; expected a CIFAR-10 binary batch file there.");
            lengths[f] = new FileInfo(paths[f]).Length;
            if (lengths[f] == 0 || lengths[f] % RecordBytes != 0)
                throw new DataFormatException($"{paths[f]} is truncated or not a CIFAR-10 binary batch: expected a non-zero multiple of {RecordBytes} bytes (1 label byte + {PixelBytes} pixel bytes per record), found {lengths[f]}.");
            totalRecords += lengths[f] / RecordBytes;
        }
        if (totalRecords * PixelBytes > Array.MaxLength)
            throw new DataFormatException($"{name}: {totalRecords} records are more than one data set may hold.");

        var images = new byte[totalRecords * PixelBytes];
        var labels = new byte[totalRecords];
        int record = 0;
        var buffer = new byte[RecordBytes * 256];
        for (int f = 0; f < paths.Count; f++)
        {
            using var file = IdxReader.OpenFile(paths[f], "a CIFAR-10 binary batch file");
            long recordsInFile = lengths[f] / RecordBytes;
            for (long r = 0; r < recordsInFile;)
            {
                int chunk = (int)Math.Min(256, recordsInFile - r);
                int got = file.ReadAtLeast(buffer.AsSpan(0, chunk * RecordBytes), chunk * RecordBytes, throwOnEndOfStream: false);
                if (got < chunk * RecordBytes)
                    throw new DataFormatException($"{paths[f]} is truncated: expected {lengths[f]} bytes, found {r * RecordBytes + got}.");
                for (int i = 0; i < chunk; i++, r++, record++)
                {
                    var rec = buffer.AsSpan(i * RecordBytes, RecordBytes);
                    if (rec[0] >= Classes)
                        throw new DataFormatException($"{paths[f]}: label {rec[0]} of record {r} (counting from 0) is out of range, expected 0..{Classes - 1}.");
                    labels[record] = rec[0];
                    rec[1..].CopyTo(images.AsSpan(record * PixelBytes, PixelBytes));
                }
            }
        }
        return new Dataset(name, images, labels, Channels, Height, Width, Classes) { Source = paths.Count == 1 ? paths[0] : $"{paths[0]} and {paths.Count - 1} more" };
    }

    /// <summary>Reads the training split (data_batch_1..5.bin) from a directory of the official binaries.</summary>
    public static Dataset ReadTrain(string directory, string name) => Read($"{name} train", [.. TrainFiles.Select(f => Path.Combine(directory, f))]);

    /// <summary>Reads the test split (test_batch.bin) from a directory of the official binaries.</summary>
    public static Dataset ReadTest(string directory, string name) => Read($"{name} test", [Path.Combine(directory, TestFile)]);
}
