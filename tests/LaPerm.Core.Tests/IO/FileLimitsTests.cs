using System.Buffers.Binary;
using LaPerm.Core.IO;
using LaPerm.Core.Model;

namespace LaPerm.Core.Tests.IO;

/// <summary>Files that are endless, huge or no files at all get a sentence, not an out-of-memory abort.</summary>
public sealed class FileLimitsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("laperm-limits-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void AnEndlessDeviceIsNeitherAModelFileNorAWeightsFile()
    {
        Assert.SkipUnless(File.Exists("/dev/zero"), "needs /dev/zero (Linux, macOS)");
        // Both were read whole into memory: "Out of memory." and exit 134.
        var model = Assert.Throws<ModelSpecException>(() => ModelDefinition.LoadSpec("/dev/zero"));
        Assert.Equal("model file '/dev/zero' cannot be read: it holds more than 67,108,864 bytes, more than a model file or run configuration would (is it the right file?)", model.Message);
        var weights = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read("/dev/zero"));
        Assert.Equal("weights file '/dev/zero' is 0 bytes; a safetensors file starts with an 8-byte header length", weights.Message);
    }

    [Fact]
    public void AHeaderLongerThanTheFormatAllowsIsRefusedBeforeItIsRead()
    {
        // A sparse file: the declared header is really there, and larger than the format's 100 MB.
        string path = Path.Combine(_root, "big-header.safetensors");
        using (var stream = File.Create(path))
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, 150_000_000);
            stream.Write(length);
            stream.WriteByte((byte)'{');
            stream.SetLength(8 + 150_000_000);
        }
        var e = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
        Assert.Equal($"weights file '{path}' declares a 150000000-byte header; a safetensors header is at most 100000000 bytes", e.Message);
    }

    [Fact]
    public void TensorsAreReadFromTheirOwnOffsetsNotInTheHeadersOrder()
    {
        // Hand-made: the header lists "late" (bytes 8..16) before "early" (bytes 0..8); a reader
        // that read the data in header order would swap them.
        string path = Path.Combine(_root, "order.safetensors");
        byte[] header = System.Text.Encoding.UTF8.GetBytes(
            "{\"late\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},\"early\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
        using (var stream = File.Create(path))
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (float v in new[] { 1.5f, -2.5f, 3.25f, -4.75f }) stream.Write(BitConverter.GetBytes(v));
        }
        var (tensors, _) = SafeTensors.Read(path);
        Assert.Equal([1.5f, -2.5f], tensors.Single(t => t.Name == "early").Values);
        Assert.Equal([3.25f, -4.75f], tensors.Single(t => t.Name == "late").Values);
    }

    [Theory]
    [InlineData(0L, 4, 0)]
    [InlineData(10L, 4, 3)]
    [InlineData(8L, 4, 2)]
    // The largest array, in the writer's 2^28-float pieces: an int counter wrapped after 7 of them.
    [InlineData(2_147_483_591L, 1 << 28, 8)]
    public void LargeArraysAreCutIntoPiecesThatCoverThemExactly(long length, int slice, int pieces)
    {
        var cut = SafeTensors.Slices(length, slice).ToList();
        Assert.Equal(pieces, cut.Count);
        long next = 0;
        foreach (var (start, count) in cut)
        {
            Assert.Equal(next, start);
            Assert.InRange(count, 1, slice);
            next += count;
        }
        Assert.Equal(length, next);
    }
}
