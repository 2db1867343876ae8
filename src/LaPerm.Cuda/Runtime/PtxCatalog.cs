using System.Reflection;
using System.Text.Json;

namespace LaPerm.Cuda.Runtime;

/// <summary>One embedded PTX file: its kernels and the compiler that produced it.</summary>
public sealed record PtxFile(string FileName, IReadOnlyList<string> Kernels, string Compiler)
{
    /// <summary>What the native build read of each kernel (the manifest's); empty when unknown (a directory's files).</summary>
    public IReadOnlyDictionary<string, PtxKernelResources> Resources { get; init; } = new Dictionary<string, PtxKernelResources>();
}

/// <summary>
/// What a kernel's PTX fixes: static shared memory, the most threads a block may have
/// (__launch_bounds__; 0 when none) and, when the build assembled the PTX with ptxas, its
/// registers per thread and spilled bytes for the architecture it assembled for.
/// </summary>
public sealed record PtxKernelResources(int StaticSharedBytes, int MaxThreads, int? Registers, int? SpillStoreBytes);

/// <summary>
/// The PTX embedded in this assembly by the native build: resources named
/// "LaPerm.Cuda.Ptx.&lt;file&gt;.ptx" plus the generated "LaPerm.Cuda.Ptx.manifest.json" that lists
/// each file, its kernels and its compiler. Empty when the build had no CUDA compiler.
/// </summary>
public sealed class PtxCatalog
{
    private const string Prefix = "LaPerm.Cuda.Ptx.";
    private const string ManifestResource = Prefix + "manifest.json";

    /// <summary>
    /// LAPERM_PTX_DIR=DIR: the runtime loads the same files from DIR instead of the embedded ones,
    /// e.g. PTX that nvcc built on the GPU machine, to compare compilers side by side with the
    /// same runtime (perf/gpu/check.sh's ptx-nvcc part).
    /// </summary>
    public const string DirectoryVariable = "LAPERM_PTX_DIR";

    private readonly Assembly _assembly;

    private PtxCatalog(Assembly assembly, IReadOnlyList<PtxFile> files, string? problem, string? directory = null, string? source = null,
        string? assembler = null)
    {
        _assembly = assembly;
        Files = files;
        Problem = problem;
        Directory = directory;
        Source = source;
        Assembler = assembler;
    }

    /// <summary>The catalog of this assembly (read once; the resources never change).</summary>
    public static PtxCatalog Embedded { get; } = Load(typeof(PtxCatalog).Assembly);

    /// <summary>What the runtime loads: with <see cref="DirectoryVariable"/> set, the embedded files read from that directory; else <see cref="Embedded"/>.</summary>
    public static PtxCatalog Active =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } directory ? FromDirectory(directory, Embedded) : Embedded;

    /// <summary>
    /// "ptxas release 11.8, V11.8.89 for sm_90" when the native build assembled every file with
    /// ptxas (so none is PTX a GPU's driver refuses); null when it had no ptxas, and for a
    /// directory's files (nothing is known of them).
    /// </summary>
    public string? Assembler { get; }

    /// <summary>The directory the files are read from; null for the embedded PTX.</summary>
    public string? Directory { get; }

    /// <summary>"PTX from LAPERM_PTX_DIR (nvcc 13.0, compute_80)" for a directory's files (no path: it goes into reports); null for the embedded PTX.</summary>
    public string? Source { get; }

    /// <summary>
    /// The embedded catalog's files and kernels, read from <paramref name="directory"/>, each with
    /// the compiler its header names. A file missing there is named in <see cref="Problem"/> (and
    /// loading it fails, naming the path): a half-replaced set would compare nothing.
    /// </summary>
    public static PtxCatalog FromDirectory(string directory, PtxCatalog embedded)
    {
        ArgumentNullException.ThrowIfNull(embedded);
        var files = new List<PtxFile>();
        var missing = new List<string>();
        var compilers = new List<string>();
        foreach (PtxFile file in embedded.Files)
        {
            string path = Path.Combine(directory, file.FileName);
            string compiler = File.Exists(path) ? CompilerOf(File.ReadLines(path).Take(40)) : "missing";
            if (compiler == "missing") missing.Add(file.FileName);
            compilers.Add(compiler);
            files.Add(file with { Compiler = $"{compiler}, {DirectoryVariable}", Resources = new Dictionary<string, PtxKernelResources>() });
        }
        string? problem = embedded.Files.Count == 0 ? embedded.Problem
            : missing.Count > 0 ? $"{DirectoryVariable}={directory} lacks {string.Join(", ", missing)}" : null;
        string source = $"PTX from {DirectoryVariable} ({string.Join("; ", compilers.Distinct())})";
        return new PtxCatalog(embedded._assembly, files, problem, directory, source);
    }

    /// <summary>"nvcc 13.0, sm_90" or "clang (LLVM NVPTX), sm_80" from a PTX file's first lines.</summary>
    public static string CompilerOf(IEnumerable<string> headerLines)
    {
        string? compiler = null, target = null;
        foreach (string line in headerLines)
        {
            if (line.Contains("Cuda compilation tools, release ", StringComparison.Ordinal))
                compiler = "nvcc " + line[(line.IndexOf("release ", StringComparison.Ordinal) + 8)..].Split(',')[0].Trim();
            else if (line.Contains("LLVM NVPTX", StringComparison.Ordinal)) compiler ??= "clang (LLVM NVPTX)";
            else if (line.Contains("NVIDIA NVVM", StringComparison.Ordinal)) compiler ??= "nvcc";
            else if (line.TrimStart().StartsWith(".target ", StringComparison.Ordinal)) target = line.Trim()[8..].Split(',')[0].Trim();
        }
        return (compiler ?? "unknown compiler") + (target is null ? "" : $", {target}");
    }

    public IReadOnlyList<PtxFile> Files { get; }

    /// <summary>Why the catalog is empty or incomplete, in one sentence; null when all is well.</summary>
    public string? Problem { get; }

    public PtxFile? Find(string fileName) => Files.FirstOrDefault(f => f.FileName == fileName);

    public byte[] ReadPtx(string fileName)
    {
        if (Directory is not null)
        {
            string path = Path.Combine(Directory, fileName);
            return File.Exists(path) ? File.ReadAllBytes(path)
                : throw new FileNotFoundException($"{DirectoryVariable}={Directory} has no {fileName} (the kernels of the embedded {fileName} are expected there)", path);
        }
        using var stream = _assembly.GetManifestResourceStream(Prefix + fileName)
            ?? throw new FileNotFoundException($"PTX resource {Prefix + fileName} is not embedded in {_assembly.GetName().Name}");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    internal static PtxCatalog Load(Assembly assembly)
    {
        string[] resources = assembly.GetManifestResourceNames();
        using var manifest = assembly.GetManifestResourceStream(ManifestResource);
        if (manifest is null)
        {
            int ptxCount = resources.Count(r => r.StartsWith(Prefix, StringComparison.Ordinal) && r.EndsWith(".ptx", StringComparison.Ordinal));
            return new PtxCatalog(assembly, [], ptxCount == 0
                ? "no PTX is embedded: the native build found no CUDA compiler (nvcc or clang)"
                : $"{ptxCount} PTX file(s) are embedded but {ManifestResource} is missing");
        }
        try
        {
            JsonElement root = JsonDocument.Parse(manifest).RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("available", out var available) && available.ValueKind == JsonValueKind.False)
            {
                string reason = root.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "the native build compiled no PTX";
                return new PtxCatalog(assembly, [], reason.TrimEnd('.'));
            }
            string? assembler = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("assembler", out var a)
                && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
            return new PtxCatalog(assembly, Parse(root), null, assembler: assembler);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return new PtxCatalog(assembly, [], $"{ManifestResource} is not valid: {e.Message}");
        }
    }

    /// <summary>
    /// The native build's manifest: {"compiler", "compilerVersion", "arch", "files": [{"file",
    /// "kernels": [names]}]}; a per-file "compiler" overrides the shared one.
    /// </summary>
    internal static IReadOnlyList<PtxFile> Parse(JsonElement root)
    {
        JsonElement list = root.ValueKind == JsonValueKind.Array ? root : root.GetProperty("files");
        string? sharedCompiler = root.ValueKind == JsonValueKind.Object ? SharedCompiler(root) : null;
        var files = new List<PtxFile>();
        foreach (JsonElement entry in list.EnumerateArray())
        {
            string file = (First(entry, "file", "name", "ptx") ?? throw new InvalidOperationException("an entry has no \"file\"")).GetString()!;
            var kernels = entry.TryGetProperty("kernels", out var k)
                ? k.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetProperty("name").GetString()!).ToList()
                : [];
            string compiler = First(entry, "compiler") is { } ce ? Describe(ce) : sharedCompiler ?? "unknown compiler";
            files.Add(new PtxFile(Path.GetFileName(file), kernels, compiler) { Resources = ResourcesOf(entry, kernels) });
        }
        return files;
    }

    /// <summary>Per kernel, from the entry's "staticSharedBytes", "maxThreads", "registers" and "spillStoreBytes" objects (absent ones unknown).</summary>
    private static Dictionary<string, PtxKernelResources> ResourcesOf(JsonElement entry, IReadOnlyList<string> kernels)
    {
        int? Number(string property, string kernel) =>
            entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty(property, out var map) && map.ValueKind == JsonValueKind.Object
            && map.TryGetProperty(kernel, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : null;
        var resources = new Dictionary<string, PtxKernelResources>();
        foreach (string kernel in kernels)
            if (Number("staticSharedBytes", kernel) is int shared)
                resources[kernel] = new PtxKernelResources(shared, Number("maxThreads", kernel) ?? 0, Number("registers", kernel), Number("spillStoreBytes", kernel));
        return resources;
    }

    /// <summary>"Debian clang version 14.0.6, sm_80" from compiler / compilerVersion / arch.</summary>
    private static string? SharedCompiler(JsonElement root)
    {
        string? Text(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        string? compiler = Text("compilerVersion") ?? Text("compiler");
        string? arch = Text("arch");
        return compiler is null ? null : arch is null ? compiler : $"{compiler}, {arch}";
    }

    private static JsonElement? First(JsonElement entry, params string[] names)
    {
        foreach (string name in names)
            if (entry.TryGetProperty(name, out var value)) return value;
        return null;
    }

    private static string Describe(JsonElement compiler) => compiler.ValueKind switch
    {
        JsonValueKind.String => compiler.GetString()!,
        JsonValueKind.Object => string.Join(" ", compiler.EnumerateObject().Select(p => p.Value.ToString())),
        _ => compiler.ToString(),
    };
}
