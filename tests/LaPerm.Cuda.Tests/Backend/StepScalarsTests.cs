using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LaPerm.Core.Backend;
using LaPerm.Cuda.Backend;

namespace LaPerm.Cuda.Tests.Backend;

/// <summary>
/// The per-step block has one layout on both sides: C# <see cref="StepScalars"/> and the C struct
/// of cuda/include/laperm/step.cuh (read from the header, laid out by C's natural alignment), and
/// the bytes step_begin_v1 writes on emu land where C# reads them.
/// </summary>
public sealed partial class StepScalarsTests
{
    private static readonly Dictionary<string, int> CTypeSizes = new() { ["long long"] = 8, ["int"] = 4, ["float"] = 4 };

    /// <summary>(name, offset, size) of every field of struct StepScalars in step.cuh, C layout rules.</summary>
    private static List<(string Name, int Offset, int Size)> HeaderLayout(out int total)
    {
        string header = File.ReadAllText(Path.Combine(RepositoryRoot(), "cuda", "include", "laperm", "step.cuh"));
        var body = StructBody().Match(header);
        Assert.True(body.Success, "step.cuh declares no struct StepScalars { ... };");
        var fields = new List<(string, int, int)>();
        int offset = 0, alignment = 1;
        foreach (Match f in FieldDeclaration().Matches(body.Groups[1].Value))
        {
            int size = CTypeSizes[f.Groups[1].Value];
            offset = (offset + size - 1) / size * size;
            fields.Add((f.Groups[2].Value, offset, size));
            offset += size;
            alignment = Math.Max(alignment, size);
        }
        total = (offset + alignment - 1) / alignment * alignment;
        return fields;
    }

    /// <summary>C# offsets of the record's fields, in declaration order, found by writing each one.</summary>
    private static List<(string Name, int Offset, int Size)> ManagedLayout()
    {
        var probe = new StepScalars(-1, -1, -1, -1, BitConverter.Int32BitsToSingle(-1), -1);
        (string Name, StepScalars Value, int Size)[] single =
        [
            ("step", new StepScalars(-1, 0, 0, 0, 0, 0), 8), ("epoch", new StepScalars(0, -1, 0, 0, 0, 0), 4),
            ("batch_start", new StepScalars(0, 0, -1, 0, 0, 0), 4), ("batch_size", new StepScalars(0, 0, 0, -1, 0, 0), 4),
            ("learning_rate", new StepScalars(0, 0, 0, 0, BitConverter.Int32BitsToSingle(-1), 0), 4), ("adam_t", new StepScalars(0, 0, 0, 0, 0, -1), 8),
        ];
        var result = new List<(string, int, int)>();
        foreach (var (name, value, size) in single)
        {
            var bytes = MemoryMarshal.AsBytes(new[] { value }.AsSpan());
            int first = bytes.IndexOf((byte)0xFF), last = bytes.LastIndexOf((byte)0xFF);
            Assert.Equal(size, last - first + 1);
            result.Add((name, first, size));
        }
        Assert.True(MemoryMarshal.AsBytes(new[] { probe }.AsSpan()).IndexOfAnyExcept((byte)0xFF) < 0, "StepScalars has padding bytes");
        return result;
    }

    [Fact]
    public void TheHeaderAndTheRecordAgreeOnSizeAndEveryOffset()
    {
        var header = HeaderLayout(out int headerSize);
        var managed = ManagedLayout();
        Assert.Equal(headerSize, Unsafe.SizeOf<StepScalars>());
        Assert.Equal(32, headerSize);
        Assert.Equal(header, managed);
    }

    [Fact]
    public void BeginStepWritesEveryFieldWhereTheRecordReadsIt()
    {
        using var backend = CudaBackend.Open("emu");
        var rng = new Random(77);
        for (int i = 0; i < 3; i++)
        {
            var expected = new StepScalars(rng.NextInt64(1, long.MaxValue), rng.Next(), rng.Next(), rng.Next(1, 1 << 20),
                (float)rng.NextDouble(), rng.NextInt64(1, long.MaxValue));
            backend.BeginStep(expected);
            byte[] bytes = backend.DownloadStepBlock();
            Assert.Equal(Unsafe.SizeOf<StepScalars>(), bytes.Length);
            Assert.Equal(expected, MemoryMarshal.Read<StepScalars>(bytes));
        }
    }

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "cuda", "include", "laperm", "step.cuh"))) return dir.FullName;
        throw new InvalidOperationException($"no cuda/include/laperm/step.cuh above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"struct\s+StepScalars\s*\{([^}]*)\}\s*;")]
    private static partial Regex StructBody();

    [GeneratedRegex(@"(long long|int|float)\s+(\w+)\s*;")]
    private static partial Regex FieldDeclaration();
}
