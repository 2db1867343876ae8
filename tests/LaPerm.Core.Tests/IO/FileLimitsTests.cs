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
    public void TensorsAreReadBackFromTheirOffsetsWhateverTheOrderOfTheHeader()
    {
        // Read tensor by tensor from the stream: each one from its own offsets.
        string path = Path.Combine(_root, "w.safetensors");
        float[] a = [.. Enumerable.Range(0, 37).Select(i => MathF.Sin(i) * 3)], b = [.. Enumerable.Range(0, 6).Select(i => -i - 0.5f)];
        SafeTensors.Write(path, [new NamedArray("z", [37], a), new NamedArray("a", [2, 3], b)], new Dictionary<string, string> { ["k"] = "v" });
        var (tensors, metadata) = SafeTensors.Read(path);
        Assert.Equal(a, tensors.Single(t => t.Name == "z").Values);
        Assert.Equal(b, tensors.Single(t => t.Name == "a").Values);
        Assert.Equal([2, 3], tensors.Single(t => t.Name == "a").Shape);
        Assert.Equal("v", metadata["k"]);
    }
}
