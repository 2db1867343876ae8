using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LaPerm.Core.IO;

namespace LaPerm.Core.Tests.IO;

public sealed class JsonTextTests
{
    [Fact]
    public void AReadersErrorIsGivenOneBasedWithoutDotNetsSuffix()
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse("{\n  \"a\": 1,\n  \"b\" 2\n}"));
        string described = JsonText.Describe(e);
        Assert.DoesNotContain("LineNumber", described, StringComparison.Ordinal);
        Assert.DoesNotContain("BytePositionInLine", described, StringComparison.Ordinal);
        Assert.EndsWith("(line 3, column 7)", described, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  \n\t ")]
    [InlineData("{\"a\": [1, 2")]
    public void AnEmptyOrTruncatedTextIsNotDescribedInTheReadersParameterNames(string text)
    {
        // An empty model file said "... Expected the input to start with a valid JSON token, when isFinalBlock is true".
        var e = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(text));
        string described = JsonText.Describe(e);
        Assert.DoesNotContain("isFinalBlock", described, StringComparison.Ordinal);
        if (string.IsNullOrWhiteSpace(text)) Assert.StartsWith("it holds no JSON at all (empty or blank)", described, StringComparison.Ordinal);
        else Assert.Matches(@"\S \(line 1, column \d+\)$", described);
    }

    [Fact]
    public void AWeightsHeaderThatIsNotJsonSaysWhereInOurWords()
    {
        // It ended in "LineNumber: 0 | BytePositionInLine: 9.", .NET's zero-based words.
        string path = Path.Combine(Path.GetTempPath(), $"laperm-json-{Guid.NewGuid():N}.safetensors");
        byte[] header = Encoding.UTF8.GetBytes("{\"a\": nope}");
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        try
        {
            var e = Assert.Throws<WeightsFormatException>(() => SafeTensors.Read(path));
            Assert.StartsWith($"weights file '{path}' has a header that is not JSON (", e.Message, StringComparison.Ordinal);
            Assert.EndsWith("(line 1, column 8))", e.Message, StringComparison.Ordinal);   // where the reader saw "o" of nope
            Assert.DoesNotContain("LineNumber", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
